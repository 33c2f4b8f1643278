//! Binlog replication: stream, decode, apply in parallel, checkpoint with the data.
//!
//! A reader task streams the source's binlog and assembles whole transactions ([`stream`],
//! [`event`]). The loop here resolves each transaction's table schemas ([`schema`]) and conflict
//! keys ([`causality`]) and hands it to the [`parallel`] scheduler: `concurrency` workers, each
//! grouping the transactions it gets into one target transaction of multi-row statements
//! ([`batch`]) together with the record of what it applied ([`checkpoint`]). The checkpoint
//! follows the low watermark ([`watermark`]). DDL waits until every worker is idle, runs alone,
//! and drops cached table schemas.

pub mod apply;
pub mod batch;
pub mod causality;
pub mod checkpoint;
pub mod ddl;
pub mod event;
pub mod file;
pub mod filter;
pub mod gtid;
pub mod json;
pub mod lag;
pub mod literal;
pub mod mapping;
pub mod parallel;
pub mod schema;
pub mod stream;
pub mod watermark;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_crds::job::BinlogPosition;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use self::apply::{Applier, Mode};
use self::checkpoint::Position;
use self::gtid::GtidState;
use self::mapping::Mappings;
use self::parallel::{Scheduler, Work};
use self::schema::{SchemaCache, TableSchema};
use self::stream::{Reader, Txn, Unit};
use crate::engine::JobContext;

/// Why replication stopped.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    #[error("incremental.start.gtidSet: {0}")]
    BadGtidSet(String),
    #[error(
        "duplicate key on the target in {table} ({message}): the target holds a row the source \
         does not; fix the target row, or send the restart request to replace conflicting target \
         rows with the source's"
    )]
    Conflict { table: String, message: String },
    #[error(
        "binlog {file} is no longer on the source (oldest kept: {oldest}): it was purged while the \
         job was stopped, so changes are lost; start a new full migration (mode FullAndIncremental)"
    )]
    BinlogPurged { file: String, oldest: String },
    #[error(
        "the source refused to send its binlog from {at}: {message}; if the binlog was purged, \
         start a new full migration (mode FullAndIncremental)"
    )]
    SourceRefused { at: String, message: String },
    #[error("the binlog stream from the source broke at {at}: {source}")]
    Stream { at: String, source: mysql_async::Error },
    #[error("the source closed the binlog stream at {at}")]
    StreamEnded { at: String },
    #[error("the transaction payload ending at {at} holds more than one transaction")]
    PayloadWithManyTransactions { at: String },
    #[error("the source has no binary log (SHOW MASTER STATUS is empty): enable log_bin")]
    BinlogOff,
    #[error(transparent)]
    Decode(#[from] event::DecodeError),
    #[error(
        "table {table} is not on the target: create it there (same columns as on the source), or \
         leave it out of the job's objects"
    )]
    MissingTable { table: String },
    #[error(
        "column `{column}` of {table} on the source is not in the target table: add it to the \
         target table (or recreate the table from the source's definition)"
    )]
    MissingColumn { table: String, column: String },
    #[error(
        "column `{column}` of {table} holds {source_type} values on the source but is {target_type} \
         on the target, which would turn them into something else: give the target column a \
         type of the same kind"
    )]
    IncompatibleColumn { table: String, column: String, source_type: String, target_type: String },
    #[error(
        "the binlog's columns of {table} ({binlog}) are not the source's columns now ({current}) \
         nor the target's: the table changed on the source after these changes were logged, so \
         which value belongs to which column is unknown; set binlog_row_metadata=FULL on the \
         source (the binlog then names its columns) and start a new full migration"
    )]
    UnknownSourceColumns { table: String, binlog: String, current: String },
    #[error("a row event for {table} lacks the row image it needs: set binlog_row_image=FULL")]
    BadRowImage { table: String },
    #[error(
        "the source logged row changes to a selected table as a statement, which Ferry cannot \
         replay exactly (at {at}: `{statement}`): set binlog_format=ROW on the source, globally \
         and in every session (a session may have run SET SESSION binlog_format=STATEMENT or \
         MIXED), then start a new full migration (mode FullAndIncremental); or, if the target \
         may miss this statement's changes, start again from the position after it"
    )]
    StatementFormat { at: String, statement: String },
    #[error(
        "the target refused the DDL statement at {position} (`{statement}`): {message}. Choose: \
         skip it (`ferry migrate --ddl-skip {position}`, or a spec.ddlErrorPolicy entry \
         {{position: \"{position}\", action: Skip}}); replace it with statements written for the \
         target (`ferry migrate --ddl-replace {position} --ddl-replace-sql FILE`, or {{position: \
         \"{position}\", action: Replace, statements: [...]}}); or change the target by hand so \
         it matches the source and skip it. With the operator, then set a new spec.restartRequest"
    )]
    DdlRejected { position: String, statement: String, message: String },
    #[error("the binlog reader stopped unexpectedly: {0}")]
    Reader(String),
}

impl IncrementalError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Stream { .. } | Self::StreamEnded { .. } | Self::Reader(_))
    }
}

/// Source transactions read ahead of the scheduler.
const READ_AHEAD: usize = 1024;
/// How often the checkpoint follows the watermark.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// Replays the binlog from the checkpoint, else from `start`, else from the source's current
/// position, until `ctx.cancel` fires.
pub async fn run(ctx: &JobContext, start: Option<BinlogPosition>) -> crate::Result<()> {
    let job = ctx.config.id.to_string();
    let mut target = crate::connect::connect(&ctx.config.target, "target").await?;
    checkpoint::ensure_table(&mut target).await?;
    let saved = checkpoint::load(&mut target, &job).await?;
    let mut source = crate::connect::connect(&ctx.config.source, "source").await?;
    let (start, abrupt) = match saved {
        Some(c) => (c.position, !c.clean),
        None => (start_position(&mut source, start).await?, false),
    };
    let gtids = GtidState::parse(start.gtid_set.as_deref().unwrap_or(""))
        .map_err(IncrementalError::BadGtidSet)?;
    let applied_above = checkpoint::load_applied(&mut target, &job, &start).await?;
    let safe_until = (abrupt && !ctx.config.safe_mode_duration.is_zero())
        .then(|| Instant::now() + ctx.config.safe_mode_duration);
    let copy_safe_until = crate::full::safe_until(&mut target, &job).await?;
    let copied_at = crate::full::table_positions(&mut target, &job).await?;
    let workers = ctx.config.concurrency.max(1);
    tracing::info!(
        job = %job, start = ?start, workers, applied_above = applied_above.len(),
        safe_mode = safe_until.is_some(), copy_safe_until = ?copy_safe_until,
        "starting binlog replication"
    );
    let control = Applier::new(target).await?;
    let scheduler = Scheduler::start(&ctx.config.target, &job, workers, start.clone()).await?;
    let mut state = Loop::new(ctx, control, scheduler, source, start.clone(), safe_until);
    state.copy_safe_until = copy_safe_until;
    state.applied_above = applied_above;
    state.share_progress();
    let mut monitor = lag::Monitor::new(ctx, state.progress.clone());
    checkpoint::advance(&mut state.control.conn, &job, &start, true).await?;

    let (stream, checksums) = stream::open(&ctx.config.source, &start, server_id(&job)).await?;
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let filter = filter::Filter::new(ctx.config.objects.clone()).with_copy_positions(copied_at);
    let reader = Reader::new(filter, start, gtids, checksums);
    let reader_task = tokio::spawn(reader.run(stream, tx));
    let result = tokio::select! {
        result = state.run(rx) => result,
        () = monitor.run() => unreachable!("the monitor runs until replication stops"),
    };
    reader_task.abort();
    if let Ok(Err(panic)) = tokio::time::timeout(Duration::from_secs(5), reader_task).await
        && panic.is_panic()
    {
        return Err(IncrementalError::Reader(format!("{panic}")).into());
    }
    result?;
    state.scheduler.drain().await?;
    let applied = state.scheduler.watermark().low().clone();
    checkpoint::advance(&mut state.control.conn, &job, &applied, false).await?;
    state.share_progress();
    monitor.report(true).await;
    Ok(())
}

/// Where to start without a checkpoint: the given position, else the source's current one.
async fn start_position(
    source: &mut Conn,
    start: Option<BinlogPosition>,
) -> crate::Result<Position> {
    if let Some(start) = start
        && (start.file.is_some() || start.gtid_set.is_some())
    {
        return Ok(Position {
            file: start.file.unwrap_or_default(),
            pos: start.pos.unwrap_or(4).max(4) as u64,
            gtid_set: start.gtid_set,
        });
    }
    stream::source_head(source).await
}

/// A replica server id for the job, stable across restarts (the source then drops a dead
/// connection of an earlier run), away from the small ids servers usually have.
fn server_id(job: &str) -> u32 {
    let hash =
        job.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    (1 << 30) | (hash & 0x3fff_ffff)
}

/// What the loop waits for.
enum Event {
    Stop,
    Tick,
    Applied(crate::Result<()>),
    Unit(Option<crate::Result<Unit>>),
}

/// The apply loop's state.
struct Loop<'a> {
    ctx: &'a JobContext,
    job: String,
    /// The target connection for schemas, DDL and the checkpoint.
    control: Applier,
    schemas: SchemaCache,
    /// Runs DDL statements.
    ddl: ddl::DdlApplier,
    /// Binlog columns to target columns, by name.
    mappings: Mappings,
    scheduler: Scheduler,
    source: Conn,
    /// End of the last unit read: where the next one starts.
    read: Position,
    /// The checkpoint as last saved.
    saved: Position,
    saved_at: Instant,
    /// Transactions above the checkpoint that workers applied before a restart.
    applied_above: HashSet<(String, u64)>,
    safe_until: Option<Instant>,
    /// Until this source position, rows the copy may already hold are replayed idempotently:
    /// the copy's tables were not all read at the start position.
    copy_safe_until: Option<(String, u64)>,
    /// What the status shows, for the [`lag::Monitor`].
    progress: lag::SharedProgress,
}

impl<'a> Loop<'a> {
    fn new(
        ctx: &'a JobContext,
        control: Applier,
        scheduler: Scheduler,
        source: Conn,
        start: Position,
        safe_until: Option<Instant>,
    ) -> Self {
        Self {
            ctx,
            job: ctx.config.id.to_string(),
            control,
            schemas: SchemaCache::default(),
            ddl: ddl::DdlApplier::default(),
            mappings: Mappings::default(),
            scheduler,
            source,
            read: start.clone(),
            saved: start,
            saved_at: Instant::now(),
            applied_above: HashSet::new(),
            safe_until,
            copy_safe_until: None,
            progress: Default::default(),
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<crate::Result<Unit>>) -> crate::Result<()> {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        loop {
            let event = tokio::select! {
                _ = self.ctx.cancel.cancelled() => Event::Stop,
                _ = tick.tick() => Event::Tick,
                applied = self.scheduler.recv(), if self.scheduler.busy() => Event::Applied(applied),
                unit = rx.recv() => Event::Unit(unit),
            };
            match event {
                Event::Stop => return Ok(()),
                Event::Tick => {
                    self.share_progress();
                    self.save_checkpoint().await?;
                }
                Event::Applied(applied) => {
                    applied?;
                    self.share_progress();
                    if !self.scheduler.busy() {
                        self.save_checkpoint().await?;
                    }
                }
                Event::Unit(None) => {
                    return Err(IncrementalError::Reader("the reader task ended".into()).into());
                }
                Event::Unit(Some(unit)) => self.take(unit?).await?,
            }
        }
    }

    /// Saves the watermark as the checkpoint when it moved, at most every
    /// [`CHECKPOINT_INTERVAL`] unless the workers are idle.
    async fn save_checkpoint(&mut self) -> crate::Result<()> {
        let low = self.scheduler.watermark().low();
        if *low == self.saved
            || (self.scheduler.busy() && self.saved_at.elapsed() < CHECKPOINT_INTERVAL)
        {
            return Ok(());
        }
        let low = low.clone();
        checkpoint::advance(&mut self.control.conn, &self.job, &low, true).await?;
        self.saved = low;
        self.saved_at = Instant::now();
        Ok(())
    }

    /// Takes one unit from the reader.
    async fn take(&mut self, unit: Unit) -> crate::Result<()> {
        let mut txn = match unit {
            Unit::Ddl(ddl) => return self.apply_ddl(ddl).await,
            Unit::Txn(txn) => txn,
        };
        if let Some(ddl) = txn.ddl.take() {
            self.run_ddl(&ddl).await?;
        }
        let mode = self.mode();
        self.read = txn.end.clone();
        let seq = self.scheduler.register(txn.end.clone(), txn.timestamp);
        let done_before = self.applied_above.remove(&(txn.end.file.clone(), txn.end.pos));
        if txn.changes.is_empty() || done_before {
            self.scheduler.skip(seq);
            return Ok(());
        }
        let changes = self.resolve(txn).await?;
        let keys = causality::txn_keys(changes.iter().map(|(s, c)| (s, c)));
        let end = self.read.clone();
        self.scheduler.dispatch(Work { seq, end, changes, mode }, keys).await
    }

    /// The target schema of each row change's table, and the change with its values in the
    /// target's column order.
    async fn resolve(
        &mut self,
        txn: Txn,
    ) -> crate::Result<Vec<(Arc<TableSchema>, event::RowChange)>> {
        let mut resolved = Vec::with_capacity(txn.changes.len());
        let logged_at = txn.timestamp;
        for change in txn.changes {
            let schema = self
                .schemas
                .get(&mut self.control.conn, &change.database, &change.table)
                .await?
                .ok_or_else(|| IncrementalError::MissingTable {
                    table: crate::sql::qualified(&change.database, &change.table),
                })?;
            let mapping = self.mappings.get(&mut self.source, &change, logged_at, &schema).await?;
            resolved.push((schema, mapping.apply(change)));
        }
        Ok(resolved)
    }

    fn mode(&mut self) -> Mode {
        if self.ctx.config.replace_conflicts || self.before_copy_safe_until() {
            return Mode::Upsert;
        }
        match self.safe_until {
            Some(until) if Instant::now() < until => Mode::Upsert,
            Some(_) => {
                tracing::info!("safe mode ends");
                self.safe_until = None;
                Mode::Exact
            }
            None => Mode::Exact,
        }
    }

    fn before_copy_safe_until(&self) -> bool {
        let Some((file, pos)) = &self.copy_safe_until else { return false };
        // Binlog file names share a prefix and a zero-padded sequence number, so they order as text.
        (self.read.file.as_str(), self.read.pos) < (file.as_str(), *pos)
    }

    /// DDL runs alone once every worker is idle (a barrier); the checkpoint follows it at once.
    /// After an abrupt stop between the two, the statement runs again in safe mode, where errors
    /// saying it already took effect are ignored.
    async fn apply_ddl(&mut self, ddl: stream::Ddl) -> crate::Result<()> {
        self.run_ddl(&ddl).await?;
        self.read = ddl.end.clone();
        let seq = self.scheduler.register(ddl.end, ddl.timestamp);
        self.scheduler.skip(seq);
        self.save_checkpoint().await
    }

    /// Runs one DDL statement alone, once every worker is idle (see [`ddl`]), and forgets the
    /// table schemas it may have changed.
    async fn run_ddl(&mut self, ddl: &stream::Ddl) -> crate::Result<()> {
        self.scheduler.drain().await?;
        let mode = self.mode();
        let conn = &mut self.control.conn;
        if !ddl.schema.is_empty() {
            let use_db = format!("USE {}", crate::sql::quote_ident(&ddl.schema));
            if let Err(e) = conn.query_drop(&use_db).await {
                tracing::debug!(schema = %ddl.schema, error = %e, "default schema not on the target");
            }
        }
        self.ddl.apply(self.ctx, conn, &mut self.source, ddl, mode).await?;
        self.schemas.clear();
        self.mappings.clear();
        Ok(())
    }

    /// Publishes what is applied and what is waiting to the monitor.
    fn share_progress(&self) {
        let watermark = self.scheduler.watermark();
        let progress = lag::Progress {
            applied: watermark.low().clone(),
            oldest_pending: watermark.oldest_pending_timestamp(),
            rows_total: self.scheduler.rows_total,
            safe_until: self.safe_until,
        };
        if let Ok(mut shared) = self.progress.lock() {
            *shared = progress;
        }
    }
}
