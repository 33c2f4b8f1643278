//! The existing-data copy: consistent snapshot, schema, parallel chunked copy, checkpoints.
//!
//! One run: read the selected objects, create what the target lacks, open `concurrency`
//! connections on one consistent snapshot (see [`snapshot`]), split every table into key
//! ranges (saved in `ferry_meta` the first time, see [`chunk`]), and let as many workers copy
//! the ranges not done yet (see [`copy`]), each range committed with its checkpoint.
//!
//! Resume: a new run cannot read the old snapshot again. Chunks done before are kept, the
//! others are copied from a new snapshot, and the recorded start position stays the original
//! one while the new snapshot's position is recorded as where safe mode may end: replaying the
//! binlog from the original position in safe mode (REPLACE, DELETE + REPLACE) brings the
//! chunks copied at either snapshot to the same state. Tables linked by foreign keys are
//! copied again whole when they straddle the two snapshots (see [`fk_groups`]). A Full-only job that was resumed holds
//! each chunk as of one of the snapshots (see docs/full-copy.md).

pub(crate) mod backfill;
pub(crate) mod chunk;
mod copy;
mod fk_groups;
mod indexes;
mod load_data;
pub(crate) mod objects;
mod progress;
mod routines;
mod schema;
mod snapshot;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use ferry_crds::job::BinlogPosition;
use mysql_async::Conn;

use crate::connect::connect;
use crate::engine::JobContext;
use crate::error::SqlContext;
use crate::flavor::{Flavor, Version};
use crate::meta::full::{self as checkpoint, Chunk, Snapshot};
pub use crate::rewrite::tidb_collation;
use objects::Objects;
use progress::Progress;

/// Why the copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum FullError {
    #[error("object selection: {0}")]
    Selection(String),
    #[error("a copy worker stopped unexpectedly: {0}")]
    Worker(String),
    #[error(
        "the target cannot hold the value of {table} column `{column}` in the row {row}: \
         {message}. Make the target column as wide as the source's (or drop the target table \
         and let Ferry create it), then run the job again"
    )]
    Value { table: String, column: String, row: String, message: String },
    #[error(transparent)]
    Load(#[from] load_data::LoadError),
    #[error(transparent)]
    Backfill(backfill::BackfillError),
}

impl FullError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Worker(_))
    }
}

/// Copies the selected objects and returns the binlog position of the snapshot they were read
/// at. Resumes from the checkpoint in the target's `ferry_meta`; returns at once if done.
pub async fn run(ctx: &JobContext) -> crate::Result<BinlogPosition> {
    let job = ctx.config.key.clone();
    let mut target = connect(&ctx.config.target, "target").await?;
    crate::meta::ensure(&mut target).await?;
    let saved = checkpoint::load_snapshot(&mut target, &job).await?;
    if let Some((snapshot, state)) = &saved
        && state == "done"
    {
        tracing::info!(job = %job, "existing data already copied");
        return Ok(snapshot.to_api());
    }
    let mut control = connect(&ctx.config.source, "source").await?;
    let objects = objects::read(&mut control, &ctx.config.selection).await?;
    schema::copy(&job, &mut control, &mut target, &objects).await?;
    if saved.is_some() {
        fk_groups::recopy_split_groups(&job, &objects, &mut control, &mut target).await?;
    }
    drop(control);

    let workers = ctx.config.concurrency.max(1);
    let tables: Vec<(String, String)> =
        objects.tables.iter().map(|t| (t.db.clone(), t.name.clone())).collect();
    let (current, mut sources) =
        snapshot::open(&ctx.config.source, workers, &tables, ctx.config.mode.replicates()).await?;
    let snapshot = match saved {
        Some((first, _)) => resumed(first, &current),
        None => current,
    };
    tracing::info!(job = %job, snapshot = ?snapshot, "reading the source at a consistent snapshot");
    checkpoint::save_snapshot(&mut target, &job, &snapshot, "copying").await?;
    ctx.reporter.update(|s| s.full.get_or_insert_default().snapshot = Some(snapshot.to_api()));

    let (chunks, progress) = plan(&job, &objects, &mut sources[0].conn, &mut target).await?;
    let complete = copy_all(ctx, &job, &objects, chunks, progress.clone(), sources).await?;
    if complete {
        indexes::build_remaining(&mut target, &job).await?;
        checkpoint::save_table_positions(&mut target, &job).await?;
        crate::meta::backfill::record(&mut target, &job, &ctx.config.selection, &[], &[]).await?;
        checkpoint::save_snapshot(&mut target, &job, &snapshot, "done").await?;
        checkpoint::clear_chunks(&mut target, &job).await?;
    }
    report(ctx, &progress, complete, &snapshot).await;
    ctx.reporter.publish().await;
    Ok(snapshot.to_api())
}

/// The first snapshot's position stays the start; the data read now may be as late as the new
/// snapshot, so safe mode must last until at least there.
fn resumed(first: Snapshot, current: &Snapshot) -> Snapshot {
    let now = current.safe_until.clone().or_else(|| current.file.clone().zip(current.pos));
    let safe_until = [first.safe_until.clone(), now].into_iter().flatten().max();
    tracing::warn!(
        start = ?first.file.clone().zip(first.pos),
        safe_until = ?safe_until,
        "resuming the copy at a new snapshot: chunks not done yet are read at the new one"
    );
    Snapshot {
        safe_until,
        method: format!("{}+resumed", first.method.trim_end_matches("+resumed")),
        ..first
    }
}

type Plan = (VecDeque<Chunk>, Arc<Progress>);

/// Every table's chunks not done yet (planning tables seen for the first time), and the
/// progress counters with what earlier runs copied.
async fn plan(
    job: &str,
    objects: &Objects,
    source: &mut Conn,
    target: &mut Conn,
) -> crate::Result<Plan> {
    let mut per_table = Vec::new();
    let (mut tables_done, mut rows, mut bytes, mut estimated) = (0, 0, 0, 0);
    for table in &objects.tables {
        let mut saved = checkpoint::load_plan(target, job, &table.db, &table.name).await?;
        if saved.is_empty() {
            let chunks = chunk::plan(source, table).await?;
            checkpoint::save_plan(target, job, &chunks).await?;
            saved = checkpoint::load_plan(target, job, &table.db, &table.name).await?;
        }
        let done_rows: u64 = saved.iter().filter(|c| c.done).map(|c| c.rows).sum();
        rows += done_rows;
        bytes += saved.iter().filter(|c| c.done).map(|c| c.bytes).sum::<u64>();
        estimated += table.estimated_rows.max(done_rows);
        if saved.iter().all(|c| c.done) {
            tables_done += 1;
        }
        per_table.push(saved.into_iter().filter(|c| !c.done).map(|c| Chunk {
            db: table.db.clone(),
            table: table.name.clone(),
            seq: c.seq,
            cond: c.cond,
        }));
    }
    let progress = Progress::new(objects.tables.len() as u64, tables_done, estimated, rows, bytes);
    Ok((interleave(per_table), Arc::new(progress)))
}

/// One chunk of each table in turn, so that concurrent workers fill different tables: each
/// target B-tree then takes one ascending insert stream instead of several interleaved ones.
fn interleave(tables: Vec<impl Iterator<Item = Chunk>>) -> VecDeque<Chunk> {
    let mut tables: Vec<_> = tables.into_iter().map(Iterator::peekable).collect();
    let mut queue = VecDeque::new();
    while tables.iter_mut().any(|t| t.peek().is_some()) {
        queue.extend(tables.iter_mut().filter_map(Iterator::next));
    }
    queue
}

/// Runs the workers to the end of the queue or a stop; true when every chunk is done.
async fn copy_all(
    ctx: &JobContext,
    job: &str,
    objects: &Objects,
    queue: VecDeque<Chunk>,
    progress: Arc<Progress>,
    sources: Vec<snapshot::SnapshotConn>,
) -> crate::Result<bool> {
    let mut remaining = HashMap::new();
    for c in &queue {
        remaining
            .entry((c.db.clone(), c.table.clone()))
            .or_insert_with(|| AtomicUsize::new(0))
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let tables = objects
        .tables
        .iter()
        .map(|t| ((t.db.clone(), t.name.clone()), Arc::new(t.clone())))
        .collect();
    let mut targets = Vec::new();
    for _ in &sources {
        targets.push(connect(&ctx.config.target, "target").await?);
    }
    let flavor = match targets.first_mut() {
        Some(target) => Version::read(target).await.sql("read the target's version")?.flavor,
        None => Flavor::MySql,
    };
    let writer =
        load_data::Writer::new(load_data::Method::from_env().map_err(FullError::from)?, flavor);
    let cancel = ctx.cancel.child_token();
    let shared = Arc::new(copy::Shared {
        job: job.to_string(),
        queue: Mutex::new(queue),
        tables,
        remaining,
        progress: progress.clone(),
        cancel: cancel.clone(),
        writer,
    });
    let mut handles = Vec::new();
    for (source, target) in sources.into_iter().zip(targets) {
        let shared = shared.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let result = copy::worker(shared, source, target).await;
            if result.is_err() {
                cancel.cancel();
            }
            result
        }));
    }
    let mut joined = Box::pin(futures::future::join_all(handles));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stall = crate::stall::StallWatch::new("Full");
    let results = loop {
        tokio::select! {
            results = &mut joined => break results,
            _ = tick.tick() => {
                let marker = progress.marker();
                ctx.reporter.update(|s| {
                    merge(s, progress.report(false));
                    stall.observe(marker, true, std::time::Instant::now(), s);
                });
                ctx.reporter.publish_due().await;
            }
        }
    };
    ctx.reporter.update(|s| stall.observe(String::new(), false, std::time::Instant::now(), s));
    for result in results {
        result.map_err(|e| FullError::Worker(e.to_string()))??;
    }
    let empty = shared.queue.lock().map(|q| q.is_empty()).unwrap_or(false);
    Ok(empty && !ctx.cancel.is_cancelled())
}

fn merge(
    status: &mut ferry_crds::job::MigrationJobStatus,
    mut progress: ferry_crds::job::FullProgress,
) {
    let full = status.full.get_or_insert_default();
    progress.snapshot = full.snapshot.take();
    *full = progress;
}

async fn report(ctx: &JobContext, progress: &Progress, complete: bool, snapshot: &Snapshot) {
    ctx.reporter.update(|s| {
        merge(s, progress.report(complete));
        if let Some(pos) = snapshot.to_api().file_pos() {
            s.position = Some(pos);
        }
    });
}
