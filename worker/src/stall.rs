//! Stall reporting: a job that has work waiting and makes no progress for a configured time
//! says so, as the `Stalled` condition (with what it waits on) and a warning in the log, and
//! clears it when progress resumes. The copy counts rows and chunks; replication its applied
//! position while the source is ahead.

use std::time::{Duration, Instant};

use ferry_crds::job::MigrationJobStatus;

use crate::report::set_condition;

/// The condition's type.
pub const STALLED: &str = "Stalled";

/// No progress for this long is a stall, unless `FERRY_STALL_SECONDS` says.
const STALL_AFTER: Duration = Duration::from_secs(300);

/// The bound of the `Stalled` condition.
pub fn stall_after() -> Duration {
    std::env::var("FERRY_STALL_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(STALL_AFTER, Duration::from_secs)
}

/// Watches one stage's progress marker.
#[derive(Debug)]
pub struct StallWatch {
    after: Duration,
    stage: &'static str,
    /// The last marker seen, and since when it has not changed while work was waiting.
    since: Option<(String, Instant)>,
    stalled: bool,
}

impl StallWatch {
    pub fn new(stage: &'static str) -> Self {
        Self { after: stall_after(), stage, since: None, stalled: false }
    }

    /// Takes one observation: `marker` changes whenever work is done, `waiting` says work is
    /// left. Sets the condition in `status` and logs on each change.
    pub fn observe(
        &mut self,
        marker: String,
        waiting: bool,
        now: Instant,
        status: &mut MigrationJobStatus,
    ) {
        let since = match &self.since {
            Some((seen, since)) if *seen == marker => *since,
            _ => now,
        };
        // With nothing waiting the clock starts again when work appears.
        self.since = waiting.then(|| (marker.clone(), since));
        let still = now.duration_since(since);
        let stalled = waiting && still >= self.after;
        let stage = self.stage;
        if stalled && !self.stalled {
            tracing::warn!(
                stage, at = %marker, still_secs = still.as_secs(),
                "no progress for {} s while work is waiting", still.as_secs()
            );
        } else if !stalled && self.stalled {
            tracing::info!(stage, at = %marker, "progress resumed");
        }
        self.stalled = stalled;
        let (reason, message) = if stalled {
            (
                "NoProgress",
                format!(
                    "the {stage} stage made no progress for {} s (at {marker}) while work is \
                     waiting, more than {} s: the servers or the network between them may be \
                     stuck; the log says what failed last",
                    still.as_secs(),
                    self.after.as_secs()
                ),
            )
        } else {
            (
                "Progressing",
                format!("the {stage} stage progressed within {} s", self.after.as_secs()),
            )
        };
        set_condition(&mut status.conditions, STALLED, stalled, reason, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stalled(status: &MigrationJobStatus) -> bool {
        status.conditions.iter().any(|c| c.type_ == STALLED && c.status == "True")
    }

    #[test]
    fn the_condition_follows_progress_and_waiting_work() {
        let mut watch = StallWatch { after: Duration::from_secs(10), ..StallWatch::new("Full") };
        let mut status = MigrationJobStatus::default();
        let t0 = Instant::now();
        watch.observe("1".into(), true, t0, &mut status);
        watch.observe("1".into(), true, t0 + Duration::from_secs(9), &mut status);
        assert!(!stalled(&status));
        watch.observe("1".into(), true, t0 + Duration::from_secs(10), &mut status);
        assert!(stalled(&status));
        watch.observe("2".into(), true, t0 + Duration::from_secs(11), &mut status);
        assert!(!stalled(&status), "progress clears it");
        watch.observe("2".into(), false, t0 + Duration::from_secs(30), &mut status);
        assert!(!stalled(&status), "nothing waiting is no stall");
        watch.observe("2".into(), true, t0 + Duration::from_secs(31), &mut status);
        watch.observe("2".into(), true, t0 + Duration::from_secs(40), &mut status);
        assert!(!stalled(&status), "the wait counts from when work appeared");
    }
}
