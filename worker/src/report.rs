//! Status reporting. The engine edits one [`MigrationJobStatus`] through a [`StatusReporter`];
//! sinks publish it: a JSON file (`--status-file`), log lines, or the MigrationJob status
//! subresource in a worker pod. Publishing is rate-bounded unless forced.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_crds::job::{MigrationJobStatus, Phase, Stage};
use futures::future::BoxFuture;

/// A place the status goes.
pub trait StatusSink: Send + Sync {
    fn publish<'a>(&'a self, status: &'a MigrationJobStatus) -> BoxFuture<'a, Result<(), String>>;
}

/// Holds the job's status and publishes it to every sink, at most once per interval unless a
/// publish is forced (stage and phase changes, errors, the end).
pub struct StatusReporter {
    status: Mutex<MigrationJobStatus>,
    sinks: Vec<Box<dyn StatusSink>>,
    min_interval: Duration,
    last_publish: Mutex<Option<Instant>>,
}

impl StatusReporter {
    pub fn new(sinks: Vec<Box<dyn StatusSink>>, min_interval: Duration) -> Self {
        Self {
            status: Mutex::new(MigrationJobStatus::default()),
            sinks,
            min_interval,
            last_publish: Mutex::new(None),
        }
    }

    /// Starts from a status reported earlier (a resumed worker keeps the history).
    pub fn with_status(self, status: MigrationJobStatus) -> Self {
        *self.status.lock().expect("status lock") = status;
        self
    }

    /// Changes the status without publishing.
    pub fn update(&self, change: impl FnOnce(&mut MigrationJobStatus)) {
        change(&mut self.status.lock().expect("status lock"));
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> MigrationJobStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Moves to a stage and phase and publishes at once.
    pub async fn set_stage(&self, stage: Stage, phase: Phase) {
        self.update(|s| {
            s.stage = Some(stage);
            s.phase = Some(phase);
        });
        self.publish().await;
    }

    /// Publishes if the interval has passed since the last publish.
    pub async fn publish_due(&self) {
        let due = self
            .last_publish
            .lock()
            .expect("publish lock")
            .is_none_or(|last| last.elapsed() >= self.min_interval);
        if due {
            self.publish().await;
        }
    }

    /// Publishes now. A sink that fails is logged, not fatal: reporting must not stop a copy.
    pub async fn publish(&self) {
        *self.last_publish.lock().expect("publish lock") = Some(Instant::now());
        let status = self.snapshot();
        for sink in &self.sinks {
            if let Err(e) = sink.publish(&status).await {
                tracing::warn!(error = %e, "could not publish the job status");
            }
        }
    }
}

/// Shared with the operator: the conditions both sides write follow one rule.
pub use ferry_crds::contract::set_condition;

/// Writes the status as pretty JSON to a file, replacing it atomically.
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl StatusSink for FileSink {
    fn publish<'a>(&'a self, status: &'a MigrationJobStatus) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let json = serde_json::to_vec_pretty(status).map_err(|e| e.to_string())?;
            let tmp = self.path.with_extension("tmp");
            tokio::fs::write(&tmp, json).await.map_err(|e| format!("{}: {e}", tmp.display()))?;
            tokio::fs::rename(&tmp, &self.path)
                .await
                .map_err(|e| format!("{}: {e}", self.path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_sink_holds_the_latest_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        let reporter = StatusReporter::new(vec![Box::new(FileSink::new(&path))], Duration::ZERO);
        reporter.set_stage(Stage::Full, Phase::Running).await;
        reporter.update(|s| s.position = Some("mysql-bin.000001:4".into()));
        reporter.publish().await;
        let written: MigrationJobStatus =
            serde_json::from_slice(&std::fs::read(&path).expect("status file")).expect("json");
        assert_eq!(written.stage, Some(Stage::Full));
        assert_eq!(written.position.as_deref(), Some("mysql-bin.000001:4"));
    }

    #[tokio::test]
    async fn publishing_is_rate_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        let reporter =
            StatusReporter::new(vec![Box::new(FileSink::new(&path))], Duration::from_secs(3600));
        reporter.publish().await;
        reporter.update(|s| s.position = Some("changed".into()));
        reporter.publish_due().await;
        let written = std::fs::read_to_string(&path).expect("status file");
        assert!(!written.contains("changed"), "published before the interval: {written}");
    }

    #[test]
    fn conditions_keep_their_transition_time_when_unchanged() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, "Ready", true, "Running", "copying");
        let first = conditions[0].last_transition_time.clone();
        set_condition(&mut conditions, "Ready", true, "Running", "still copying");
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, first);
        assert_eq!(conditions[0].message, "still copying");
    }
}
