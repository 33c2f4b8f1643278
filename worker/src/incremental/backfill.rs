//! Tables added to a replicating job's selection, copied without stopping replication.
//!
//! When a run starts with `spec.objects` or `spec.routes` other than the selection it last
//! recorded ([`crate::meta::backfill`]), the tables the edit added are created on the target at
//! source position C (their row changes and DDL up to C are skipped from then on) and recorded;
//! tables it removed are simply no longer replicated (their target rows stay as they are). Then,
//! beside replication, each added table is copied chunk by chunk:
//!
//! 1. a snapshot of the source is opened at an exact binlog position P (on MariaDB without a
//!    lock; see [`crate::full::backfill::open`]); P is at or after every transaction the stream
//!    has read, so the loop goes on taking transactions up to P and holds the first one after P;
//! 2. the chunk is read at the snapshot, in the background;
//! 3. once every transaction up to P is applied, the chunk's rows are written over the target's
//!    (REPLACE) in one target transaction that also marks the chunk done and moves the
//!    replication checkpoint to the applied position, so a crash at any instant neither loses
//!    nor repeats a chunk, and replays nothing from before it.
//!
//! Why it merges: while a table is being copied its row changes after C are applied in safe
//! mode (an UPDATE of a row not copied yet writes its after image, a DELETE of one finds
//! nothing), and every change carries the whole row (binlog_row_image=FULL). At the moment a
//! chunk is written, each of its keys holds on the target either the image of the key's last
//! change up to P, which is the source's row at P, or nothing when no change touched it since C;
//! the chunk holds the source's rows at P, so writing it over them gives exactly the source at P
//! for the chunk's keys, and the changes after P follow in order. A table without a key is one
//! chunk, and its target rows are replaced as a whole.

use std::collections::{HashMap, VecDeque};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;

use super::stream::Unit;
use crate::engine::JobContext;
use crate::error::SqlContext;
use crate::full::backfill::{self as copy, ReadChunk};
use crate::full::objects::Table;
use crate::meta::backfill::{self as meta, Added};
use crate::meta::full::{Chunk, TablePositions};
use crate::meta::incremental::{self as checkpoint, Position};

/// Where the copy of the next chunk stands.
enum Step {
    /// No chunk in flight.
    Idle,
    /// Reading a chunk at a snapshot at `limit`.
    Reading { limit: Position, task: JoinHandle<crate::Result<ReadChunk>> },
    /// A chunk read at `limit`, to write once the stream reached it.
    Ready { limit: Position, read: Box<ReadChunk> },
}

/// The background copy of the tables added to the selection.
pub struct Backfill {
    job: String,
    source: crate::config::Endpoint,
    /// Writes chunks; `None` when nothing is to copy.
    target: Option<Conn>,
    /// Tables being copied, by source `(database, table)`, with their chunks not done.
    tables: HashMap<(String, String), usize>,
    definitions: HashMap<(String, String), Table>,
    queue: VecDeque<Chunk>,
    step: Step,
    /// The first transaction after the snapshot, taken once the chunk is written.
    held: Option<Unit>,
}

impl Backfill {
    /// Compares the job's selection with the one recorded, records the tables the edit added
    /// (creating them on the target) and forgets those it removed. Returns the copy to run and
    /// where each table being copied was created (changes up to there are skipped).
    pub async fn start(
        ctx: &JobContext,
        target: &mut Conn,
    ) -> crate::Result<(Self, TablePositions)> {
        let job = ctx.config.key.clone();
        let mut this = Self {
            job: job.clone(),
            source: ctx.config.source.clone(),
            target: None,
            tables: HashMap::new(),
            definitions: HashMap::new(),
            queue: VecDeque::new(),
            step: Step::Idle,
            held: None,
        };
        let selection = &ctx.config.selection;
        let Some(recorded) = meta::recorded_selection(target, &job).await? else {
            meta::record(target, &job, selection, &[], &[]).await?;
            return Ok((this, TablePositions::new()));
        };
        let mut pending = meta::pending(target, &job).await?;
        let same =
            recorded.objects() == selection.objects() && recorded.routes() == selection.routes();
        if same && pending.is_empty() {
            return Ok((this, TablePositions::new()));
        }
        let mut source = crate::connect::connect(&ctx.config.source, "source").await?;
        let tables = copy::selected_tables(&mut source, selection).await?;
        if !same {
            pending =
                this.record_edit(ctx, &mut source, target, &recorded, &tables, pending).await?;
        }
        let on_source = |a: &Added| tables.iter().any(|t| (&t.db, &t.name) == (&a.db, &a.table));
        let (pending, gone): (Vec<Added>, Vec<Added>) = pending.into_iter().partition(on_source);
        if !gone.is_empty() {
            // Dropped on the source before their copy ended: nothing left to copy.
            let gone: Vec<(String, String)> = gone.into_iter().map(|a| (a.db, a.table)).collect();
            meta::record(target, &job, selection, &[], &gone).await?;
        }
        if pending.is_empty() {
            return Ok((this, TablePositions::new()));
        }
        for added in &pending {
            let key = (added.db.clone(), added.table.clone());
            let Some(table) = tables.iter().find(|t| (&t.db, &t.name) == (&key.0, &key.1)) else {
                continue;
            };
            let chunks = copy::chunks_to_copy(&mut source, target, &job, table).await?;
            tracing::info!(
                table = %table.qualified(), chunks = chunks.len(),
                "copying a table added to the selection while replicating"
            );
            this.tables.insert(key.clone(), chunks.len());
            this.definitions.insert(key, table.clone());
            this.queue.extend(chunks);
        }
        let mut conn = crate::connect::connect(&ctx.config.target, "target").await?;
        conn.query_drop(copy::target_session()).await.sql("set up a target session")?;
        this.target = Some(conn);
        Ok((this, meta::positions(&pending)))
    }

    /// Records the edited selection: the tables it adds (created on the target now), and the
    /// pending copies of tables it removed (dropped). Returns the tables to copy.
    async fn record_edit(
        &self,
        ctx: &JobContext,
        source: &mut Conn,
        target: &mut Conn,
        recorded: &ferry_crds::Selection,
        tables: &[Table],
        pending: Vec<Added>,
    ) -> crate::Result<Vec<Added>> {
        let selection = &ctx.config.selection;
        let (kept, removed): (Vec<Added>, Vec<Added>) =
            pending.into_iter().partition(|a| selection.table(&a.db, &a.table));
        let removed: Vec<(String, String)> = removed.into_iter().map(|a| (a.db, a.table)).collect();
        let is_pending = |t: &Table| kept.iter().any(|a| (&a.db, &a.table) == (&t.db, &t.name));
        let new: Vec<Table> = if ctx.config.mode.copies_existing_data() {
            tables
                .iter()
                .filter(|t| {
                    !recorded.table(&t.db, &t.name) || recorded.route(&t.db, &t.name) != t.target
                })
                .filter(|t| !is_pending(t))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        for (db, table) in &removed {
            tracing::info!(table = %crate::sql::qualified(db, table), "a table removed from the selection is no longer copied nor replicated");
        }
        let created_at = super::stream::source_head(source).await?;
        copy::create_targets(&self.job, source, target, &new).await?;
        let added: Vec<Added> = new
            .iter()
            .map(|t| Added {
                db: t.db.clone(),
                table: t.name.clone(),
                created_at: (created_at.file.clone(), created_at.pos),
            })
            .collect();
        meta::record(target, &self.job, selection, &added, &removed).await?;
        Ok(kept.into_iter().chain(added).collect())
    }

    /// Whether row changes of this source table are applied in safe mode (its copy runs).
    pub fn copies(&self, database: &str, table: &str) -> bool {
        !self.tables.is_empty()
            && self.tables.contains_key(&(database.to_string(), table.to_string()))
    }

    /// Whether the loop may take the next unit (none is held for a chunk).
    pub fn accepts_units(&self) -> bool {
        self.held.is_none()
    }

    /// The unit, unless it comes after the snapshot of the chunk being read: then it waits.
    pub fn pass(&mut self, unit: Unit) -> Option<Unit> {
        let limit = match &self.step {
            Step::Reading { limit, .. } | Step::Ready { limit, .. } => limit,
            Step::Idle => return Some(unit),
        };
        if checkpoint::after(unit.end(), limit) {
            self.held = Some(unit);
            return None;
        }
        Some(unit)
    }

    pub fn reading(&self) -> bool {
        matches!(self.step, Step::Reading { .. })
    }

    /// Waits for the chunk being read.
    pub async fn read_done(&mut self) -> crate::Result<()> {
        let Step::Reading { task, .. } = &mut self.step else {
            return std::future::pending().await;
        };
        let read = task.await.map_err(|e| crate::full::FullError::Worker(e.to_string()))??;
        let Step::Reading { limit, .. } = std::mem::replace(&mut self.step, Step::Idle) else {
            unreachable!("matched above");
        };
        self.step = Step::Ready { limit, read: Box::new(read) };
        Ok(())
    }

    /// Whether a chunk waits to be written and every unit up to its snapshot is taken (`read`
    /// is the end of the last one taken).
    pub fn due(&self, read: &Position) -> bool {
        match &self.step {
            Step::Ready { limit, .. } => self.held.is_some() || !checkpoint::after(limit, read),
            _ => false,
        }
    }

    /// Writes the due chunk with the replication checkpoint `applied` (every unit up to the
    /// snapshot is applied) in one target transaction; returns the held unit to take next.
    pub async fn write(&mut self, applied: &Position) -> crate::Result<Option<Unit>> {
        let Step::Ready { read, .. } = std::mem::replace(&mut self.step, Step::Idle) else {
            return Ok(None);
        };
        let key = (read.table.db.clone(), read.table.name.clone());
        let left = self.tables.get(&key).copied().unwrap_or(1).saturating_sub(1);
        let job = self.job.clone();
        let target = self.target.as_mut().ok_or_else(|| {
            crate::full::FullError::Worker("no target connection for the background copy".into())
        })?;
        target.query_drop("BEGIN").await.sql("begin a copied chunk on the target")?;
        let written = async {
            read.write(target, &job).await?;
            if left == 0 {
                for sql in meta::done_sql(&job, &key.0, &key.1) {
                    target.query_drop(sql).await.sql("end a background copy in ferry_meta")?;
                }
            }
            checkpoint::save(target, &job, applied, true).await?;
            target.query_drop("COMMIT").await.sql("commit a copied chunk on the target")
        }
        .await;
        if written.is_err() {
            let _ = target.query_drop("ROLLBACK").await;
        }
        written?;
        tracing::debug!(table = %read.table.qualified(), chunk = read.chunk.seq, rows = read.rows(), at = ?read.at, "chunk copied");
        if left == 0 {
            self.tables.remove(&key);
            tracing::info!(table = %read.table.qualified(), "table added to the selection is copied; it is replicated from now on");
        } else {
            self.tables.insert(key, left);
        }
        Ok(self.held.take())
    }

    /// Starts reading the next chunk, if any and none is in flight: opens its snapshot (whose
    /// position is at or after everything the stream read) and reads it in the background.
    pub async fn start_next(&mut self) -> crate::Result<()> {
        if !matches!(self.step, Step::Idle) {
            return Ok(());
        }
        let Some(chunk) = self.queue.pop_front() else { return Ok(()) };
        let key = (chunk.db.clone(), chunk.table.clone());
        let Some(table) = self.definitions.get(&key).cloned() else { return Ok(()) };
        let (conn, at) = copy::open(&self.source, &table).await?;
        let limit = Position { file: at.0.clone(), pos: at.1, ..Default::default() };
        let task = tokio::spawn(copy::read(conn, table, chunk, at));
        self.step = Step::Reading { limit, task };
        Ok(())
    }
}

impl Drop for Backfill {
    fn drop(&mut self) {
        if let Step::Reading { task, .. } = &self.step {
            task.abort();
        }
    }
}
