//! Counters the copy workers bump, turned into the status's `full` progress once a second:
//! rows, bytes, throughput over the last seconds, and the share done and time left, estimated
//! from the table statistics and corrected by what has been copied.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_crds::job::FullProgress;

/// Throughput is measured over this window.
const WINDOW: Duration = Duration::from_secs(10);

pub struct Progress {
    rows: AtomicU64,
    bytes: AtomicU64,
    tables_done: AtomicU64,
    tables_total: u64,
    estimated_rows: u64,
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
}

impl Progress {
    /// `rows`, `bytes` and `tables_done` start from what earlier runs copied.
    pub fn new(
        tables_total: u64,
        tables_done: u64,
        estimated_rows: u64,
        rows: u64,
        bytes: u64,
    ) -> Self {
        Self {
            rows: AtomicU64::new(rows),
            bytes: AtomicU64::new(bytes),
            tables_done: AtomicU64::new(tables_done),
            tables_total,
            estimated_rows,
            samples: Mutex::new(VecDeque::from([(Instant::now(), rows, bytes)])),
        }
    }

    pub fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes back rows counted for a chunk whose transaction was rolled back.
    pub fn retract(&self, rows: u64, bytes: u64) {
        self.rows.fetch_sub(rows, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// What has been copied, as it changes with every write (see [`crate::stall`]).
    pub fn marker(&self) -> String {
        let rows = self.rows.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        format!("{rows} rows, {bytes} bytes copied")
    }

    pub fn table_done(&self) {
        self.tables_done.fetch_add(1, Ordering::Relaxed);
    }

    /// The progress now; `done` when every chunk is copied.
    pub fn report(&self, done: bool) -> FullProgress {
        let rows = self.rows.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let now = Instant::now();
        let (rows_rate, bytes_rate) = self.rates(now, rows, bytes);
        // Statistics are estimates: never claim 100% before the end.
        let total = self.estimated_rows.max(rows).max(1);
        let share = if done { 1.0 } else { (rows as f64 / total as f64).min(0.999) };
        let eta = (!done && rows_rate > 0.0)
            .then(|| ((total.saturating_sub(rows)) as f64 / rows_rate).ceil() as i64);
        FullProgress {
            tables_done: self.tables_done.load(Ordering::Relaxed) as i64,
            tables_total: self.tables_total as i64,
            rows: rows as i64,
            bytes: bytes as i64,
            bytes_per_second: bytes_rate as i64,
            percent: Some(format!("{:.1}%", share * 100.0)),
            eta_seconds: if done { Some(0) } else { eta },
            snapshot: None,
        }
    }

    fn rates(&self, now: Instant, rows: u64, bytes: u64) -> (f64, f64) {
        let Ok(mut samples) = self.samples.lock() else { return (0.0, 0.0) };
        samples.push_back((now, rows, bytes));
        while samples.len() > 2 && samples.front().is_some_and(|(t, ..)| now - *t > WINDOW) {
            samples.pop_front();
        }
        let Some(&(t0, r0, b0)) = samples.front() else { return (0.0, 0.0) };
        let seconds = (now - t0).as_secs_f64();
        if seconds < 0.5 {
            return (0.0, 0.0);
        }
        ((rows - r0) as f64 / seconds, (bytes - b0) as f64 / seconds)
    }
}
