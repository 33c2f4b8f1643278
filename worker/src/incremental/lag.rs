//! The replication status: what is applied, where the source is, and how far behind.
//!
//! The apply loop shares its [`Progress`]; a [`Monitor`] running beside it reads the source head
//! on its own connection and publishes the status, so a target that stalls the loop still shows
//! growing lag. The applied position is read before the head, so `applied` is never above
//! `sourceHead`. Lag in seconds is the age of the oldest source transaction read and not yet
//! applied; with none read while behind, the time the applied position has not moved. Past
//! [`lag_warning`] the `Lagging` condition turns true. Once the lag has stayed under
//! `spec.cutover.caughtUpLag` for `caughtUpFor`, the `CaughtUp` condition turns true
//! ([`CaughtUpTracker`]): the moment a cutover can be planned.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use ferry_crds::cutover::CAUGHT_UP;
use ferry_crds::job::IncrementalStatus;
use mysql_async::Conn;

use super::stream;
use crate::engine::JobContext;
use crate::meta::incremental::Position;
use crate::report::set_condition;

/// How often the source head is read and the status refreshed.
const INTERVAL: Duration = Duration::from_millis(500);
/// How long reading the source head may take before its connection is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Lag above which the `Lagging` condition is set, unless `FERRY_LAG_WARNING_SECONDS` says.
const LAG_WARNING: Duration = Duration::from_secs(60);

/// The lag bound of the `Lagging` condition.
pub fn lag_warning() -> Duration {
    std::env::var("FERRY_LAG_WARNING_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(LAG_WARNING, Duration::from_secs)
}

/// What the apply loop has done, as the status shows it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub applied: Position,
    /// Source commit time of the oldest transaction read and not yet applied.
    pub oldest_pending: Option<u32>,
    pub rows_total: u64,
    /// Conflicting target rows overwritten (see `spec.overwriteConflictsAt`).
    pub overwritten: u64,
    pub safe_until: Option<Instant>,
}

/// Shared between the apply loop and the monitor.
pub type SharedProgress = Arc<Mutex<Progress>>;

fn snapshot(progress: &SharedProgress) -> Progress {
    progress.lock().map(|p| p.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

/// Reads the source head and publishes the replication status.
pub struct Monitor<'a> {
    ctx: &'a JobContext,
    progress: SharedProgress,
    source: Option<Conn>,
    head: Option<Position>,
    head_files: Vec<(String, u64)>,
    /// The applied position while behind, and since when it has not moved.
    stuck: Option<(Position, Instant)>,
    rate_mark: (Instant, u64),
    rows_per_second: i64,
    warning: Duration,
    /// Events dropped by `spec.filters`.
    skipped: Option<Arc<super::filter::SkipCounts>>,
    caught_up: CaughtUpTracker,
    stall: crate::stall::StallWatch,
}

impl<'a> Monitor<'a> {
    pub fn new(ctx: &'a JobContext, progress: SharedProgress) -> Self {
        Self {
            ctx,
            progress,
            source: None,
            head: None,
            head_files: Vec::new(),
            stuck: None,
            rate_mark: (Instant::now(), 0),
            rows_per_second: 0,
            warning: lag_warning(),
            skipped: None,
            caught_up: CaughtUpTracker::new(
                ctx.config.cutover.caught_up_lag,
                ctx.config.cutover.caught_up_for,
            ),
            stall: crate::stall::StallWatch::new("Incremental"),
        }
    }

    /// Shows `counts` in the status as the events `spec.filters` dropped.
    pub fn count_skipped(&mut self, counts: Arc<super::filter::SkipCounts>) {
        self.skipped = Some(counts);
    }

    /// Refreshes the status every [`INTERVAL`]; never returns.
    pub async fn run(&mut self) {
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            self.report(false).await;
        }
    }

    /// Updates status.incremental, status.position and the `Lagging` condition; publishes when
    /// due (now if `force`).
    pub async fn report(&mut self, force: bool) {
        let progress = snapshot(&self.progress);
        self.read_head().await;
        self.update_rate(progress.rows_total);
        let applied = progress.applied.clone();
        // The head was read after the applied position: when it is not past it, it is stale.
        let head = self.head.clone().filter(|h| !before(h, &applied));
        let lag_bytes = head.as_ref().map(|h| lag_bytes(&applied, h, &self.head_files));
        let lag_seconds = self.lag_seconds(&progress, lag_bytes);
        let safe_mode_until = progress.safe_until.map(|until| {
            let left = until.saturating_duration_since(Instant::now());
            (Utc::now() + chrono::Duration::from_std(left).unwrap_or_default()).to_rfc3339()
        });
        let status = IncrementalStatus {
            applied: Some(applied.to_api()),
            source_head: head.as_ref().map(Position::to_api),
            lag_seconds: Some(lag_seconds),
            lag_bytes,
            rows_per_second: Some(self.rows_per_second),
            safe_mode_until,
            skipped_events: self.skipped.as_ref().and_then(|s| s.status()),
            conflicts_overwritten: (progress.overwritten > 0)
                .then(|| i64::try_from(progress.overwritten).unwrap_or(i64::MAX)),
        };
        let position = format!("{}:{}", applied.file, applied.pos);
        let lagging = lag_seconds >= self.warning.as_secs() as i64;
        let message = if lagging {
            format!(
                "replication is {lag_seconds} s behind the source ({} bytes of binlog), more \
                 than {} s: the target may be slow or stalled",
                lag_bytes.unwrap_or(0),
                self.warning.as_secs()
            )
        } else {
            format!("replication is within {} s of the source", self.warning.as_secs())
        };
        if lagging {
            tracing::warn!(lag_seconds, lag_bytes, "replication lags behind the source");
        }
        // Without the source head the lag is unknown, never taken as caught up.
        let known_lag = head.is_some().then(|| Duration::from_secs(lag_seconds.max(0) as u64));
        let caught_up = self.caught_up.observe(known_lag, Instant::now());
        if caught_up.status && !self.caught_up.announced {
            tracing::info!(message = %caught_up.message, "replication caught up with the source");
        }
        self.caught_up.announced = caught_up.status;
        // Behind the source, or unable to tell: the applied position should move.
        let waiting = lag_bytes != Some(0);
        let stall = &mut self.stall;
        self.ctx.reporter.update(|s| {
            stall.observe(position.clone(), waiting, Instant::now(), s);
            s.incremental = Some(status);
            s.position = Some(position);
            let reason = if lagging { "LagAboveBound" } else { "LagWithinBound" };
            set_condition(&mut s.conditions, "Lagging", lagging, reason, message);
            let CaughtUp { status, reason, message } = caught_up;
            set_condition(&mut s.conditions, CAUGHT_UP, status, reason, message);
        });
        if force {
            self.ctx.reporter.publish().await;
        } else {
            self.ctx.reporter.publish_due().await;
        }
    }

    /// Reads the source head; on failure the last one stays and the connection is reopened.
    /// The connection is taken out while in use: when replication stops during a read (this
    /// future is dropped), it goes with it rather than stay with an unread result.
    async fn read_head(&mut self) {
        let mut conn = match self.source.take() {
            Some(conn) => conn,
            None => match crate::connect::connect(&self.ctx.config.source, "source").await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to the source to read its head");
                    return;
                }
            },
        };
        let read = async {
            let head = stream::source_head(&mut conn).await;
            (head, stream::binary_logs(&mut conn).await)
        };
        // A connection that answers nothing (half-open) is dropped, not waited on forever.
        let Ok((head, files)) = tokio::time::timeout(HEAD_TIMEOUT, read).await else {
            tracing::warn!(
                timeout_secs = HEAD_TIMEOUT.as_secs(),
                "the source did not answer for its head position in time; reconnecting"
            );
            return;
        };
        match head {
            Ok(head) => self.head = Some(head),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the source head position");
                return;
            }
        }
        if let Ok(files) = files {
            self.head_files = files;
        }
        self.source = Some(conn);
    }

    fn update_rate(&mut self, rows_total: u64) {
        let elapsed = self.rate_mark.0.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let rows = rows_total.saturating_sub(self.rate_mark.1);
            self.rows_per_second = (rows as f64 / elapsed.as_secs_f64()).round() as i64;
            self.rate_mark = (Instant::now(), rows_total);
        }
    }

    fn lag_seconds(&mut self, progress: &Progress, lag_bytes: Option<i64>) -> i64 {
        if lag_bytes.is_none_or(|b| b == 0) {
            self.stuck = None;
            return 0;
        }
        let since = match &self.stuck {
            Some((at, since)) if *at == progress.applied => *since,
            _ => {
                self.stuck = Some((progress.applied.clone(), Instant::now()));
                Instant::now()
            }
        };
        match progress.oldest_pending {
            Some(timestamp) => (Utc::now().timestamp() - i64::from(timestamp)).max(0),
            None => since.elapsed().as_secs() as i64,
        }
    }
}

/// The `CaughtUp` condition: true once the lag has stayed under a threshold for a while.
#[derive(Debug)]
pub struct CaughtUpTracker {
    threshold: Duration,
    hold: Duration,
    /// Since when the lag has been under the threshold without a break.
    under_since: Option<Instant>,
    /// Whether the last report said caught up (to log the change once).
    announced: bool,
}

/// The condition's state, reason and message.
#[derive(Debug, PartialEq, Eq)]
pub struct CaughtUp {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl CaughtUpTracker {
    pub fn new(threshold: Duration, hold: Duration) -> Self {
        Self { threshold, hold, under_since: None, announced: false }
    }

    /// Takes the lag seen `now` (`None` when unknown) and says whether the job is caught up.
    pub fn observe(&mut self, lag: Option<Duration>, now: Instant) -> CaughtUp {
        let (threshold, hold) = (self.threshold, self.hold);
        let Some(lag) = lag else {
            self.under_since = None;
            return CaughtUp {
                status: false,
                reason: "LagUnknown",
                message: "the source's binlog position cannot be read, so the lag is unknown"
                    .into(),
            };
        };
        if lag >= threshold {
            self.under_since = None;
            return CaughtUp {
                status: false,
                reason: "LagAboveThreshold",
                message: format!(
                    "replication lag is {} s, not under spec.cutover.caughtUpLag ({threshold:?})",
                    lag.as_secs()
                ),
            };
        }
        let since = *self.under_since.get_or_insert(now);
        let under_for = now.saturating_duration_since(since);
        if under_for < hold {
            return CaughtUp {
                status: false,
                reason: "LagUnderThresholdBriefly",
                message: format!(
                    "replication lag has been under {threshold:?} for {} s of the {hold:?} \
                     spec.cutover.caughtUpFor asks",
                    under_for.as_secs()
                ),
            };
        }
        CaughtUp {
            status: true,
            reason: "LagUnderThreshold",
            message: format!(
                "replication lag has stayed under {threshold:?} for at least {hold:?}: the job \
                 can be cut over"
            ),
        }
    }
}

/// Whether `a` is before `b` in the binlog. File names share a prefix and a zero-padded
/// sequence number, so they order as text.
fn before(a: &Position, b: &Position) -> bool {
    (a.file.as_str(), a.pos) < (b.file.as_str(), b.pos)
}

/// Bytes of binlog between `applied` and `head`, across files.
pub fn lag_bytes(applied: &Position, head: &Position, files: &[(String, u64)]) -> i64 {
    if applied.file == head.file {
        return head.pos.saturating_sub(applied.pos) as i64;
    }
    let mut total: u64 = 0;
    let mut counting = false;
    for (file, size) in files {
        if *file == applied.file {
            counting = true;
            total += size.saturating_sub(applied.pos);
        } else if *file == head.file {
            total += head.pos;
            break;
        } else if counting {
            total += size;
        }
    }
    total as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file: &str, pos: u64) -> Position {
        Position { file: file.into(), pos, ..Default::default() }
    }

    #[test]
    fn lag_bytes_span_files() {
        let files = vec![("b.000001".to_string(), 1000), ("b.000002".to_string(), 500)];
        assert_eq!(lag_bytes(&at("b.000001", 900), &at("b.000002", 300), &files), 400);
        assert_eq!(lag_bytes(&at("b.000002", 300), &at("b.000002", 300), &files), 0);
        assert!(before(&at("b.000001", 900), &at("b.000002", 4)));
        assert!(!before(&at("b.000002", 4), &at("b.000002", 4)));
    }

    #[test]
    fn caught_up_needs_the_lag_under_the_threshold_for_the_whole_hold() {
        let mut tracker = CaughtUpTracker::new(Duration::from_secs(5), Duration::from_secs(30));
        let t0 = Instant::now();
        let secs = |s| Some(Duration::from_secs(s));
        let at = |s| t0 + Duration::from_secs(s);
        assert!(!tracker.observe(secs(2), at(0)).status);
        assert!(!tracker.observe(secs(4), at(29)).status);
        assert!(tracker.observe(secs(0), at(30)).status);
        // A spike resets the clock; an unknown lag is never caught up.
        assert_eq!(tracker.observe(secs(5), at(31)).reason, "LagAboveThreshold");
        assert!(!tracker.observe(secs(1), at(40)).status);
        assert!(tracker.observe(secs(1), at(70)).status);
        assert_eq!(tracker.observe(None, at(71)).reason, "LagUnknown");
        assert!(!tracker.observe(secs(0), at(72)).status);
    }
}
