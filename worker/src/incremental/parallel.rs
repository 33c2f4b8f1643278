//! The parallel apply: a scheduler hands source transactions to N workers, each with its own
//! target connection, keeping transactions that share a conflict key ([`super::causality`]) on
//! one worker, in source order. A worker merges the transactions waiting in its queue, up to
//! [`MergeLimits`], into one target transaction (statements planned by [`super::batch`], which
//! collapses the changes of each row into their net effect) and commits with it the list of
//! source transactions it applied ([`checkpoint::record_applied`]). While caught up a queue
//! holds one transaction at a time, so each is committed as soon as it arrives: merging only
//! happens while a backlog waits, and lag stays low. The scheduler tracks
//! the low watermark ([`super::watermark`]); DDL waits until every worker is idle ([`Scheduler::drain`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::IncrementalError;
use super::apply::{Applier, Mode, Statement};
use super::batch::{self, Op, Step};
use super::causality::{Key, Tracker};
use super::event::RowChange;
use super::schema::TableSchema;
use super::watermark::Watermark;
use crate::config::{Endpoint, MergeLimits};
use crate::error::SqlContext;
use crate::meta::incremental::{self as checkpoint, Position};

/// Transactions queued per worker.
const QUEUE: usize = 2048;
/// Attempts of a target transaction that hit a deadlock or a lock wait timeout.
const ATTEMPTS: u32 = 10;

/// A source transaction for a worker.
pub struct Work {
    pub seq: u64,
    pub end: Position,
    pub changes: Vec<(Arc<TableSchema>, RowChange)>,
    pub mode: Mode,
}

impl Work {
    fn rows(&self) -> usize {
        self.changes.iter().map(|(_, c)| c.rows.len()).sum()
    }

    /// About the bytes of the row images (a value's length, 8 for numbers).
    fn bytes(&self) -> usize {
        let cells = self
            .changes
            .iter()
            .flat_map(|(_, c)| &c.rows)
            .flat_map(|(b, a)| [b, a].into_iter().flatten().flat_map(|image| image.iter()));
        cells
            .map(|cell| match cell {
                Some(mysql_async::Value::Bytes(bytes)) => bytes.len() + 2,
                _ => 8,
            })
            .sum()
    }
}

enum Report {
    /// One target transaction committed: the source transactions it applied.
    Applied {
        worker: usize,
        seqs: Vec<u64>,
        rows: u64,
        overwritten: u64,
    },
    Failed(crate::Error),
}

/// Dispatches transactions to workers and follows what they applied.
pub struct Scheduler {
    queues: Vec<mpsc::Sender<Work>>,
    /// Transactions given to each worker and not reported back.
    queued: Vec<usize>,
    reports: mpsc::UnboundedReceiver<Report>,
    tracker: Tracker,
    held: HashMap<u64, Vec<Key>>,
    watermark: Watermark,
    tasks: Vec<JoinHandle<()>>,
    /// Row changes applied since the start.
    pub rows_total: u64,
    /// Conflicting target rows overwritten since the start.
    pub overwritten: u64,
    /// Source transactions applied since the start, and the target transactions that did it.
    pub merged: Merged,
}

/// How many source transactions the target transactions applied: more than one each while a
/// backlog is merged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    pub source_transactions: u64,
    pub target_transactions: u64,
}

impl Scheduler {
    /// Opens `workers` target connections and starts a worker on each.
    pub async fn start(
        target: &Endpoint,
        job: &str,
        workers: usize,
        start: Position,
        limits: MergeLimits,
    ) -> crate::Result<Self> {
        let (report_tx, reports) = mpsc::unbounded_channel();
        let mut queues = Vec::with_capacity(workers);
        let mut tasks = Vec::with_capacity(workers);
        for id in 0..workers.max(1) {
            let conn = crate::connect::connect(target, "target").await?;
            let applier = Applier::new(conn).await?;
            let (tx, rx) = mpsc::channel(QUEUE);
            let worker =
                Worker { id, applier, job: job.to_string(), reports: report_tx.clone(), limits };
            tasks.push(tokio::spawn(worker.run(rx)));
            queues.push(tx);
        }
        Ok(Self {
            queued: vec![0; queues.len()],
            queues,
            reports,
            tracker: Tracker::default(),
            held: HashMap::new(),
            watermark: Watermark::new(start),
            tasks,
            rows_total: 0,
            overwritten: 0,
            merged: Merged::default(),
        })
    }

    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    /// Numbers the next unit in stream order.
    pub fn register(&mut self, end: Position, timestamp: u32) -> u64 {
        self.watermark.register(end, timestamp)
    }

    /// A unit with nothing to apply (or applied before a restart).
    pub fn skip(&mut self, seq: u64) {
        self.watermark.done(seq);
    }

    /// Gives a transaction to the worker that holds its keys, or to the least busy one; waits
    /// while two workers hold its keys.
    pub async fn dispatch(&mut self, work: Work, keys: Vec<Key>) -> crate::Result<()> {
        let worker = loop {
            match self.tracker.holders(&keys)[..] {
                [] => break self.least_busy(),
                [worker] => break worker,
                _ => self.recv().await?,
            }
        };
        self.tracker.acquire(&keys, worker);
        self.held.insert(work.seq, keys);
        self.queued[worker] += 1;
        if self.queues[worker].send(work).await.is_err() {
            // The worker stopped on an error, which is waiting in the reports.
            loop {
                self.recv().await?;
            }
        }
        Ok(())
    }

    fn least_busy(&self) -> usize {
        (0..self.queued.len()).min_by_key(|&w| self.queued[w]).unwrap_or(0)
    }

    /// Waits for one worker report and takes it in (cancel-safe).
    pub async fn recv(&mut self) -> crate::Result<()> {
        let report = self.reports.recv().await;
        match report {
            Some(Report::Applied { worker, seqs, rows, overwritten }) => {
                self.queued[worker] -= seqs.len();
                self.rows_total += rows;
                self.merged.source_transactions += seqs.len() as u64;
                self.merged.target_transactions += 1;
                self.overwritten += overwritten;
                for seq in seqs {
                    if let Some(keys) = self.held.remove(&seq) {
                        self.tracker.release(&keys);
                    }
                    self.watermark.done(seq);
                }
                Ok(())
            }
            Some(Report::Failed(e)) => Err(e),
            None => Err(IncrementalError::Reader("every apply worker ended".into()).into()),
        }
    }

    /// Whether any worker has transactions to apply.
    pub fn busy(&self) -> bool {
        self.queued.iter().any(|&q| q > 0)
    }

    /// Waits until every dispatched transaction is applied.
    pub async fn drain(&mut self) -> crate::Result<()> {
        while self.busy() {
            self.recv().await?;
        }
        Ok(())
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // A worker stopped mid-transaction loses its connection: the target rolls back.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One apply worker and its target connection.
struct Worker {
    id: usize,
    applier: Applier,
    job: String,
    reports: mpsc::UnboundedSender<Report>,
    limits: MergeLimits,
}

impl Worker {
    async fn run(mut self, mut queue: mpsc::Receiver<Work>) {
        // A transaction taken from the queue that starts the next group.
        let mut next: Option<Work> = None;
        loop {
            let first = match next.take() {
                Some(work) => work,
                None => match queue.recv().await {
                    Some(work) => work,
                    None => return,
                },
            };
            let overwrite = first.mode == Mode::Overwrite;
            let (mut rows, mut bytes) = (first.rows(), first.bytes());
            let mut batch = vec![first];
            // Only what already waits joins: a worker that is caught up commits each
            // transaction as it comes.
            while let Ok(work) = queue.try_recv() {
                let (more_rows, more_bytes) = (work.rows(), work.bytes());
                // Overwriting is for its own transactions only: never grouped with others.
                if (work.mode == Mode::Overwrite) != overwrite
                    || rows + more_rows > self.limits.rows
                    || bytes + more_bytes > self.limits.bytes
                {
                    next = Some(work);
                    break;
                }
                rows += more_rows;
                bytes += more_bytes;
                batch.push(work);
            }
            let report = match self.apply(&mut batch).await {
                Ok(rows) => Report::Applied {
                    worker: self.id,
                    seqs: batch.iter().map(|w| w.seq).collect(),
                    rows,
                    overwritten: self.applier.overwritten,
                },
                Err(e) => Report::Failed(e),
            };
            let failed = matches!(report, Report::Failed(_));
            if self.reports.send(report).is_err() || failed {
                return;
            }
        }
    }

    /// Applies a group of source transactions in one target transaction, retrying it after a
    /// deadlock or lock wait timeout (the target rolled it back whole).
    async fn apply(&mut self, batch: &mut [Work]) -> crate::Result<u64> {
        let mode = [Mode::Overwrite, Mode::Upsert]
            .into_iter()
            .find(|m| batch.iter().any(|w| w.mode == *m))
            .unwrap_or(Mode::Exact);
        let mut ops = Vec::new();
        // The changes move into the planned statements; the batch keeps its positions.
        for (schema, change) in batch.iter_mut().flat_map(|w| std::mem::take(&mut w.changes)) {
            ops.extend(Op::from_change(&schema, change)?);
        }
        let rows = ops.len() as u64;
        let steps = batch::plan(ops, mode);
        let ends: Vec<&Position> = batch.iter().map(|w| &w.end).collect();
        let mut attempt = 1;
        loop {
            match self.transaction(&steps, mode, &ends).await {
                Ok(()) => return Ok(rows),
                Err(e) if attempt < ATTEMPTS && transient(&e) => {
                    tracing::warn!(worker = self.id, attempt, error = %e, "retrying a target transaction");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(diverged_at(e, &ends)),
            }
        }
    }

    async fn transaction(
        &mut self,
        steps: &[Step],
        mode: Mode,
        ends: &[&Position],
    ) -> crate::Result<()> {
        self.applier.overwritten = 0;
        let result = self.statements(steps, mode, ends).await;
        if result.is_err() {
            let _ = self.applier.conn.query_drop("ROLLBACK").await;
        }
        result
    }

    /// BEGIN, the steps, the checkpoint and COMMIT, the multi-row statements in multi-statement
    /// packets: one round trip for a transaction of batched tables, unless a DELETE must be
    /// seen to find its rows before the COMMIT goes.
    async fn statements(
        &mut self,
        steps: &[Step],
        mode: Mode,
        ends: &[&Position],
    ) -> crate::Result<()> {
        let checkpoint = checkpoint::applied_statement(&self.job, self.id, ends);
        let mut pending = vec![Statement::control(b"BEGIN", "begin a target transaction")];
        for step in steps {
            match step {
                Step::Text { schema, sql, expect_rows } => pending.push(Statement {
                    sql,
                    schema: Some(schema),
                    expect_rows: *expect_rows,
                    what: "apply rows",
                }),
                Step::Row(op) => {
                    self.applier.exec_packets(&pending).await?;
                    pending.clear();
                    self.applier.apply_row(op, mode).await?;
                }
            }
        }
        if let Some(sql) = &checkpoint {
            let what = "record applied transactions in ferry_meta.incremental_applied";
            pending.push(Statement::control(sql.as_bytes(), what));
        }
        let commit_in_packet = pending.iter().all(|s| s.expect_rows.is_none());
        if commit_in_packet {
            pending.push(Statement::control(b"COMMIT", "commit a target transaction"));
        }
        self.applier.exec_packets(&pending).await?;
        if !commit_in_packet {
            self.applier.conn.query_drop("COMMIT").await.sql("commit a target transaction")?;
        }
        Ok(())
    }
}

/// A conflict or a missing row, with the position of the last source transaction of the target
/// transaction that met it: overwriting conflicts up to there resolves it.
fn diverged_at(error: crate::Error, ends: &[&Position]) -> crate::Error {
    let last = ends.iter().copied().reduce(|a, b| if checkpoint::after(b, a) { b } else { a });
    match (error, last) {
        (
            crate::Error::Incremental(
                source @ (IncrementalError::Conflict { .. } | IncrementalError::RowMissing { .. }),
            ),
            Some(last),
        ) => IncrementalError::Diverged {
            position: format!("{}:{}", last.file, last.pos),
            source: Box::new(source),
        }
        .into(),
        (error, _) => error,
    }
}

/// Errors after which the same transaction may succeed: deadlocks, lock wait timeouts, TiDB
/// write conflicts.
fn transient(error: &crate::Error) -> bool {
    matches!(error, crate::Error::Sql { source: mysql_async::Error::Server(e), .. }
        if matches!(e.code, 1205 | 1213 | 8022 | 8028 | 9007))
}
