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
        Self { bar, last: Mutex::new((None, None)) }
    }

    fn show(&self, status: &MigrationJobStatus) {
        let stage = status.stage.unwrap_or(Stage::Precheck);
        let phase = status.phase.unwrap_or(Phase::Pending);
        let line = describe(status);
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

/// One line: what the job is doing and how far it is.
pub fn describe(status: &MigrationJobStatus) -> String {
    match (status.stage, &status.full, &status.incremental) {
        (Some(Stage::Incremental), _, Some(inc)) => format!(
            "replicating: lag {}s, {} rows/s{}{}",
            inc.lag_seconds.unwrap_or(0),
            inc.rows_per_second.unwrap_or(0),
            status.position.as_deref().map(|p| format!(", at {p}")).unwrap_or_default(),
            inc.skipped_events
                .as_ref()
                .map(|s| format!(", {} events dropped by filters", s.total()))
                .unwrap_or_default()
        ),
        (Some(Stage::Full | Stage::Completed), Some(full), _) => describe_full(full),
        (Some(Stage::Precheck), ..) => "checking source and target".into(),
        _ => String::new(),
    }
}

fn describe_full(full: &FullProgress) -> String {
    let eta = full.eta_seconds.map(|s| format!(", ETA {}", duration(s))).unwrap_or_default();
    format!(
        "{} · tables {}/{} · {} rows · {} · {}/s{eta}",
        full.percent.as_deref().unwrap_or("0.0%"),
        full.tables_done,
        full.tables_total,
        full.rows,
        bytes(full.bytes),
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
                snapshot: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            describe(&status),
            "42.0% · tables 2/9 · 1500 rows · 3.0 MiB · 1.0 MiB/s, ETA 1m15s"
        );
    }
}
