//! Progress on the console for `ferry migrate`: a progress bar on a terminal, plain lines at
//! most every [`LINE_INTERVAL`] otherwise (logs, CI, `nohup`). Both read the same status the
//! other sinks publish, so the console shows exactly what the MigrationJob would.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_crds::job::{FullProgress, MigrationJobStatus, Phase, Stage};
use futures::future::BoxFuture;
use indicatif::{ProgressBar, ProgressStyle};

use crate::report::StatusSink;

/// Plain lines are printed at most this often (and on every stage or phase change).
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

type StagePhase = (Stage, Phase);

/// Shows the job's progress on standard error.
pub struct ConsoleSink {
    bar: Option<ProgressBar>,
    started: Instant,
    /// When the last plain line was printed, and at which stage and phase.
    last: Mutex<(Option<Instant>, Option<StagePhase>)>,
}

impl ConsoleSink {
    /// A bar when standard error is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(1000);
            let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Self { bar, started: Instant::now(), last: Mutex::new((None, None)) }
    }

    fn show(&self, status: &MigrationJobStatus) {
        let stage = status.stage.unwrap_or(Stage::Precheck);
        let phase = status.phase.unwrap_or(Phase::Pending);
        let line = describe(status, self.started.elapsed());
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!("{stage:?}"));
            if let Some(full) = status.full.as_ref().filter(|_| stage == Stage::Full) {
                bar.set_position((percent(full) * 10.0) as u64);
            }
            if stage == Stage::Completed {
                bar.set_position(1000);
            }
            bar.set_message(line);
            if matches!(phase, Phase::Completed | Phase::Failed) {
                bar.abandon();
            }
            return;
        }
        let Ok(mut last) = self.last.lock() else { return };
        let changed = last.1 != Some((stage, phase));
        let due = last.0.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
        if changed || due {
            eprintln!("[{stage:?}/{phase:?}] {line}");
            *last = (Some(Instant::now()), Some((stage, phase)));
        }
    }
}

impl Default for ConsoleSink {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusSink for ConsoleSink {
    fn publish<'a>(&'a self, status: &'a MigrationJobStatus) -> BoxFuture<'a, Result<(), String>> {
        self.show(status);
        Box::pin(async { Ok(()) })
    }
}

fn percent(full: &FullProgress) -> f64 {
    full.percent.as_deref().and_then(|p| p.trim_end_matches('%').parse().ok()).unwrap_or(0.0)
}

/// One line in gh-ost's style (`Copy: ...; Rate: ...; Time: ...; ETA: ...`, ASCII only, so
/// it greps and reads the same in any log): what the job is doing, how far it is, and for how
/// long this process has run it.
pub fn describe(status: &MigrationJobStatus, elapsed: Duration) -> String {
    let time = format!("Time: {}", duration(elapsed.as_secs() as i64));
    match (status.stage, &status.full, &status.incremental) {
        (Some(Stage::Incremental), _, Some(inc)) => {
            let applied = status.position.as_deref().unwrap_or("-");
            let behind =
                inc.lag_bytes.map(|b| format!(", {} behind", bytes(b))).unwrap_or_default();
            let dropped = inc.skipped_events.as_ref().map(|s| s.total()).filter(|n| *n > 0);
            let dropped = dropped.map(|n| format!("; Filtered: {n} events")).unwrap_or_default();
            let validated = status.validation.as_ref().map_or(String::new(), |v| {
                format!("; Validated: {} rows, {} mismatched", v.rows_checked, v.mismatched)
            });
            format!(
                "Applied: {applied}; Lag: {}s{behind}; Rate: {} rows/s{dropped}{validated}; {time}",
                inc.lag_seconds.unwrap_or(0),
                inc.rows_per_second.unwrap_or(0),
            )
        }
        (Some(Stage::Full | Stage::Completed), Some(full), _) => describe_full(full, &time),
        (Some(Stage::Precheck), ..) => format!("Precheck: checking source and target; {time}"),
        _ => time,
    }
}

fn describe_full(full: &FullProgress, time: &str) -> String {
    let snapshot = full.snapshot.as_ref().and_then(|s| s.file_pos().or(s.gtid_set.clone()));
    let snapshot = snapshot.map(|s| format!("; Snapshot: {s}")).unwrap_or_default();
    let eta = full.eta_seconds.map(|s| format!("; ETA: {}", duration(s))).unwrap_or_default();
    format!(
        "Copy: {} rows, {}, tables {}/{} ({}); Rate: {}/s; {time}{snapshot}{eta}",
        full.rows,
        bytes(full.bytes),
        full.tables_done,
        full.tables_total,
        full.percent.as_deref().unwrap_or("0.0%"),
        bytes(full.bytes_per_second),
    )
}

fn bytes(n: i64) -> String {
    let n = n as f64;
    if n >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", n / (1u64 << 30) as f64)
    } else if n >= (1 << 20) as f64 {
        format!("{:.1} MiB", n / (1 << 20) as f64)
    } else {
        format!("{:.0} KiB", n / 1024.0)
    }
}

fn duration(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_progress_reads_well() {
        let status = MigrationJobStatus {
            stage: Some(Stage::Full),
            full: Some(FullProgress {
                tables_done: 2,
                tables_total: 9,
                rows: 1500,
                bytes: 3 << 20,
                bytes_per_second: 1 << 20,
                percent: Some("42.0%".into()),
                eta_seconds: Some(75),
                snapshot: Some(ferry_crds::job::BinlogPosition {
                    file: Some("mysql-bin.000003".into()),
                    pos: Some(1234),
                    gtid_set: None,
                }),
            }),
            ..Default::default()
        };
        assert_eq!(
            describe(&status, Duration::from_secs(62)),
            "Copy: 1500 rows, 3.0 MiB, tables 2/9 (42.0%); Rate: 1.0 MiB/s; Time: 1m02s; \
             Snapshot: mysql-bin.000003:1234; ETA: 1m15s"
        );
    }

    #[test]
    fn replication_progress_reads_well() {
        let status = MigrationJobStatus {
            stage: Some(Stage::Incremental),
            position: Some("mysql-bin.000004:5678".into()),
            incremental: Some(ferry_crds::job::IncrementalStatus {
                lag_seconds: Some(3),
                lag_bytes: Some(12 << 10),
                rows_per_second: Some(350),
                ..Default::default()
            }),
            ..Default::default()
        };
        let line = describe(&status, Duration::from_secs(3725));
        assert_eq!(
            line,
            "Applied: mysql-bin.000004:5678; Lag: 3s, 12 KiB behind; Rate: 350 rows/s; Time: 1h02m"
        );
        assert!(line.is_ascii());
    }
}
