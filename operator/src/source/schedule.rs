//! When a MigrationSource is checked again: not for its own status writes, but when its spec or
//! one of its Secrets changes, or when the interval since the last check has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a check of a source was made with: its spec and the versions of its Secrets.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    pub generation: Option<i64>,
    pub secrets: Vec<(String, Option<String>)>,
}

/// The last check of each source (by namespace and name): its inputs, when, and the interval
/// to the next. A reconcile that finds the same inputs before the next check is due checks
/// nothing; without this, each check's own status write (lastCheckTime) would trigger the next
/// check at once, a hot loop of connections to the source.
#[derive(Default)]
pub struct SourceChecks(Mutex<HashMap<(String, String), LastCheck>>);

struct LastCheck {
    inputs: Inputs,
    at: Instant,
    every: Duration,
}

impl SourceChecks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), LastCheck>> {
        // A poisoned lock only means another reconcile panicked between two plain writes.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long until the next check is due, if the last one was made with `inputs`.
    pub fn wait(&self, key: &(String, String), inputs: &Inputs, now: Instant) -> Option<Duration> {
        let checks = self.lock();
        let last = checks.get(key)?;
        let left = last.every.checked_sub(now.saturating_duration_since(last.at))?;
        (last.inputs == *inputs && !left.is_zero()).then_some(left)
    }

    /// Records a check; forgets sources not checked for twice their interval (deleted ones).
    pub fn record(&self, key: (String, String), inputs: Inputs, now: Instant, every: Duration) {
        let mut checks = self.lock();
        checks.retain(|_, last| now.saturating_duration_since(last.at) < last.every * 2);
        checks.insert(key, LastCheck { inputs, at: now, every });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_checked_again_when_due_or_when_its_spec_or_secrets_change() {
        let checks = SourceChecks::default();
        let key = ("shop".to_string(), "src".to_string());
        let inputs =
            Inputs { generation: Some(1), secrets: vec![("source".into(), Some("41".into()))] };
        let start = Instant::now();
        assert_eq!(checks.wait(&key, &inputs, start), None, "never checked");
        checks.record(key.clone(), inputs.clone(), start, Duration::from_secs(60));
        // The reconcile that the check's own status write triggers.
        let soon = start + Duration::from_secs(1);
        assert_eq!(checks.wait(&key, &inputs, soon), Some(Duration::from_secs(59)));
        let rotated =
            Inputs { secrets: vec![("source".into(), Some("42".into()))], ..inputs.clone() };
        assert_eq!(checks.wait(&key, &rotated, soon), None, "Secret changed");
        let edited = Inputs { generation: Some(2), ..inputs.clone() };
        assert_eq!(checks.wait(&key, &edited, soon), None, "spec changed");
        assert_eq!(checks.wait(&key, &inputs, start + Duration::from_secs(60)), None, "due");
        // A source not checked for twice its interval is forgotten.
        let other = ("shop".to_string(), "other".to_string());
        checks.record(
            other,
            inputs.clone(),
            start + Duration::from_secs(120),
            Duration::from_secs(60),
        );
        assert_eq!(checks.lock().len(), 1);
    }
}
