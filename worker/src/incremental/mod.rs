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
pub mod backfill;
pub mod batch;
pub mod causality;
pub mod ddl;
pub mod event;
pub mod file;
pub mod filter;
pub mod gtid;
pub mod json;
pub mod key;
pub mod lag;
pub mod mapping;
pub mod online_ddl;
pub mod parallel;
pub mod programs;
pub mod schema;
pub mod stream;
pub mod validation;
pub mod watermark;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_crds::job::BinlogPosition;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use self::apply::{Applier, Mode};
use self::gtid::GtidState;
use self::mapping::Mappings;
use self::parallel::{Scheduler, Work};
use self::schema::{SchemaCache, TableSchema};
use self::stream::{Reader, Txn, Unit};
use crate::engine::JobContext;
use crate::error::SqlContext;
use crate::flavor::{self, ServerIdentity, Version};
use crate::meta::incremental::{self as checkpoint, Position};

/// Why replication stopped.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    #[error("incremental.start.gtidSet: {0}")]
    BadGtidSet(String),
    #[error(
        "duplicate key on the target in {table} ({message}): the target holds a row the source \
         does not"
    )]
    Conflict { table: String, message: String },
    #[error(
        "{source}, in the source transactions up to {position}. Fix the target rows, or write \
         the source's rows over the conflicting target rows in those transactions only (a later \
         conflict stops the job again): `ferry migrate --overwrite-conflicts-at {position}`, or \
         with the operator spec.overwriteConflictsAt: \"{position}\" and a new \
         spec.restartRequest"
    )]
    Diverged {
        position: String,
        #[source]
        source: Box<IncrementalError>,
    },
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
    #[error(
        "the binlog stream from the source sent nothing for {silent:?} at {at}, not even its \
         heartbeat: the connection is taken as lost"
    )]
    StreamSilent { at: String, silent: std::time::Duration },
    #[error(
        "the source did not answer within {after:?} while replication read {what}: the \
         connection is taken as lost"
    )]
    SourceSilent { what: &'static str, after: std::time::Duration },
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
    #[error(
        "the target has no row of {table} where the source {change} {row}: the target lost rows or \
         was written outside Ferry (`ferry verify` compares every row)"
    )]
    RowMissing { table: String, change: &'static str, row: String },
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
    #[error(
        "the source at this address is not the server the checkpoint was read from (it was \
         {was}, it is {now} now: a failover to a replica, or a replaced server), and the \
         checkpoint {why}, so its binlog file and offset, which belong to the former server, mean \
         nothing here: point the job back at the former server, or start a new migration (mode \
         FullAndIncremental); to survive failovers, run the sources with GTIDs (MySQL: \
         gtid_mode=ON and enforce_gtid_consistency=ON)"
    )]
    ServerChanged { was: String, now: String, why: &'static str },
    #[error(
        "the source server ({server}) lacks transactions that are already applied to the target \
         (GTIDs {missing}): it is not a replica holding everything the former source had (a \
         failover to a replica that had not caught up, or another server); resuming here would \
         leave changes on the target that the source does not have. Point the job at a server \
         whose gtid_executed holds them, or start a new migration (mode FullAndIncremental)"
    )]
    GtidsMissing { server: String, missing: String },
}

/// How long a metadata query on the source (column names, session settings for DDL) may take:
/// such queries answer at once, so a connection that answers nothing (half-open) is lost, and
/// replication restarts from its checkpoint on a new one rather than wait forever.
pub(crate) const SOURCE_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a source metadata query within [`SOURCE_QUERY_TIMEOUT`].
pub(crate) async fn bounded<T>(
    what: &'static str,
    query: impl std::future::Future<Output = crate::Result<T>>,
) -> crate::Result<T> {
    match tokio::time::timeout(SOURCE_QUERY_TIMEOUT, query).await {
        Ok(result) => result,
        Err(_) => Err(IncrementalError::SourceSilent { what, after: SOURCE_QUERY_TIMEOUT }.into()),
    }
}

impl IncrementalError {
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Stream { .. }
                | Self::StreamEnded { .. }
                | Self::StreamSilent { .. }
                | Self::SourceSilent { .. }
                | Self::Reader(_)
        )
    }
}

/// Source transactions read ahead of the scheduler.
const READ_AHEAD: usize = 1024;
/// How often the checkpoint follows the watermark.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// How replication ended without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// `ctx.cancel` fired; the checkpoint is saved and a new run resumes from it.
    Stopped,
    /// A cutover was recorded ([`crate::cutover`]) and the target has applied the source up to
    /// its position: the job is complete there.
    CutOver(Position),
}

/// How often the loop looks for a recorded cutover.
const CUTOVER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Replays the binlog from the checkpoint, else from `start`, else from the source's current
/// position, until `ctx.cancel` fires or a recorded cutover's position is applied.
pub async fn run(ctx: &JobContext, start: Option<BinlogPosition>) -> crate::Result<Ended> {
    let job = ctx.config.key.clone();
    let mut target = crate::connect::connect(&ctx.config.target, "target").await?;
    crate::meta::ensure(&mut target).await?;
    let saved = checkpoint::load(&mut target, &job).await?;
    let mut source = crate::connect::connect(&ctx.config.source, "source").await?;
    let version = Version::read(&mut source).await.sql("read the source version")?;
    let server = flavor::server_identity(&mut source, &version).await?;
    let (start, abrupt, resume) = match saved {
        Some(mut c) => {
            c.position.gtid_set = trusted_gtid_set(&c);
            let executed = flavor::gtid_executed(&mut source, &version).await?;
            let resume = Resume::plan(&c, &server, executed.as_deref())?;
            (c.position, !c.clean, resume)
        }
        None => {
            crate::cutover::forget(&mut target, &job).await?;
            (start_position(&mut source, start).await?, false, Resume::default())
        }
    };
    let gtids = GtidState::parse(start.gtid_set.as_deref().unwrap_or(""))
        .map_err(IncrementalError::BadGtidSet)?;
    let mut applied_above = checkpoint::load_applied(&mut target, &job, &start).await?;
    let safe_until = (abrupt && !ctx.config.safe_mode_duration.is_zero())
        .then(|| Instant::now() + ctx.config.safe_mode_duration);
    let mut copy_safe_until = crate::meta::full::safe_until(&mut target, &job).await?;
    let mut copied_at = crate::meta::full::load_table_positions(&mut target, &job).await?;
    let (backfill, created_at) = backfill::Backfill::start(ctx, &mut target).await?;
    if resume.server_changed {
        let copied = copy_safe_until.iter().chain(copied_at.values().flat_map(|t| t.values()));
        resume.forget_former_offsets(&mut target, &job, &start, copied, &server).await?;
        copy_safe_until = None;
        copied_at.clear();
        // Transactions applied above the checkpoint are known by GTID on the new server.
        applied_above.retain(|key| key.starts_with("gtid "));
    }
    let workers = ctx.config.concurrency.max(1);
    tracing::info!(
        job = %job, start = ?start, workers, applied_above = applied_above.len(),
        safe_mode = safe_until.is_some(), copy_safe_until = ?copy_safe_until,
        "starting binlog replication"
    );
    let control = Applier::new(target).await?;
    let scheduler =
        Scheduler::start(&ctx.config.target, &job, workers, start.clone(), ctx.config.merge)
            .await?;
    let mut state = Loop::new(ctx, control, scheduler, source, start.clone(), safe_until, backfill);
    state.copy_safe_until = copy_safe_until;
    state.applied_above = applied_above;
    state.share_progress();
    let (hook, validator) = validation::start(ctx, state.progress.clone());
    state.validation = hook;
    let mut monitor = lag::Monitor::new(ctx, state.progress.clone());
    checkpoint::advance(&mut state.control.conn, &job, &start, true).await?;
    checkpoint::record_source_server(&mut state.control.conn, &job, &server.id).await?;

    let stream_from = if resume.by_gtid {
        // Offsets differ between servers; the GTID set is the same on all of them.
        Position { file: String::new(), pos: 4, ..start.clone() }
    } else {
        start.clone()
    };
    let (stream, checksums) =
        stream::open(&ctx.config.source, &stream_from, server_id(&job)).await?;
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let filter = filter::Filter::new(ctx.config.selection.clone())
        .with_copy_positions(copied_at)
        .with_created_positions(created_at);
    monitor.count_skipped(filter.skipped());
    let reader = Reader::new(filter, stream_from, gtids, checksums);
    let reader_task = tokio::spawn(reader.run(stream, tx));
    let result = tokio::select! {
        result = state.run(rx) => result,
        () = monitor.run() => unreachable!("the monitor runs until replication stops"),
    };
    reader_task.abort();
    if let Some(validator) = validator {
        validator.abort();
    }
    if let Ok(Err(panic)) = tokio::time::timeout(Duration::from_secs(5), reader_task).await
        && panic.is_panic()
    {
        return Err(IncrementalError::Reader(format!("{panic}")).into());
    }
    if let Err(crate::Error::Incremental(IncrementalError::Diverged { .. })) = &result {
        // The target refused a row change: every change below the watermark is applied, those
        // above it are listed, and no DDL runs while rows are applied, so the stop is as exact as
        // a clean one. Saved as clean, the next run meets the conflict again rather than
        // replacing the row silently in the safe mode of an abrupt stop.
        let low = state.scheduler.watermark().low().clone();
        checkpoint::advance(&mut state.control.conn, &job, &low, false).await?;
    }
    let ended = result?;
    state.scheduler.drain().await?;
    let merged = state.scheduler.merged;
    tracing::info!(
        source_transactions = merged.source_transactions,
        target_transactions = merged.target_transactions,
        "replication stopped; source transactions applied in target transactions"
    );
    let applied = state.scheduler.watermark().low().clone();
    checkpoint::advance(&mut state.control.conn, &job, &applied, false).await?;
    state.share_progress();
    monitor.report(true).await;
    if let Ended::CutOver(_) = &ended {
        crate::cutover::acknowledge(&mut state.control.conn, &job).await?;
    }
    Ok(ended)
}

/// `spec.overwriteConflictsAt`, as a position.
fn overwrite_until(ctx: &JobContext) -> Option<Position> {
    let text = ctx.config.overwrite_conflicts_at.as_deref()?;
    let position = checkpoint::parse_position(text);
    if position.is_none() {
        tracing::warn!(position = text, "overwriteConflictsAt is not a file:pos position; ignored");
    }
    position
}

/// The checkpoint's GTID set, unless an earlier version (which named no source server) may have
/// gathered it from a binlog file and offset start: such a MySQL set lacks every transaction
/// before the start, and resuming from it would replay them. Those jobs go on by file and
/// offset, as they were written, and keep no set (a failover then stops them with a clear error).
fn trusted_gtid_set(saved: &checkpoint::Checkpoint) -> Option<String> {
    let set = saved.position.gtid_set.clone();
    let earlier_version = saved.source_server.is_none() && !saved.position.file.is_empty();
    let mysql_set = set.as_deref().is_some_and(|s| s.contains(':'));
    if earlier_version && mysql_set { None } else { set }
}

/// How a run resumes from its checkpoint on the source server that answers now.
#[derive(Debug, Default, PartialEq)]
struct Resume {
    /// Stream from the checkpoint's GTID set rather than its binlog file and offset.
    by_gtid: bool,
    /// Another server than the checkpoint's answers (a promoted replica): the offsets saved
    /// with the checkpoint belong to the former one.
    server_changed: bool,
    /// The checkpoint's server, when known.
    former_server: String,
}

impl Resume {
    /// Resumes by GTID when the source has GTIDs and the checkpoint a whole GTID set, checking
    /// that the server's `executed` set holds it; by file and offset otherwise, which only the
    /// checkpoint's own server can serve.
    fn plan(
        saved: &checkpoint::Checkpoint,
        server: &ServerIdentity,
        executed: Option<&str>,
    ) -> Result<Self, IncrementalError> {
        let server_changed = saved.source_server.as_ref().is_some_and(|was| *was != server.id);
        let changed = |why| IncrementalError::ServerChanged {
            was: saved.source_server.clone().unwrap_or_default(),
            now: server.id.clone(),
            why,
        };
        let set = saved.position.gtid_set.as_deref().filter(|s| !s.trim().is_empty());
        let Some(set) = set.filter(|_| server.gtids) else {
            if !server_changed {
                return Ok(Self { by_gtid: false, ..Self::default() });
            }
            return Err(changed(if server.gtids {
                "holds no GTID set (its run started from a binlog file and offset alone)"
            } else {
                "can only be resumed by binlog file and offset (the source has no GTIDs: \
                 gtid_mode is not ON)"
            }));
        };
        let parse = |text: &str| GtidState::parse(text).map_err(IncrementalError::BadGtidSet);
        let missing = parse(set)?.missing_from(&parse(executed.unwrap_or(""))?);
        if !missing.is_empty() {
            return Err(IncrementalError::GtidsMissing {
                server: server.id.clone(),
                missing: missing.to_string(),
            });
        }
        let former_server = saved.source_server.clone().unwrap_or_default();
        Ok(Self { by_gtid: true, server_changed, former_server })
    }

    /// After a failover the copy's binlog offsets (where it read each table) are the former
    /// server's. While replication is behind them they are still needed, so the resume is
    /// refused; else they are forgotten for good, before the new server is recorded, so that no
    /// later run compares the new server's offsets with them.
    async fn forget_former_offsets<'a>(
        &self,
        target: &mut Conn,
        job: &str,
        start: &Position,
        mut copied: impl Iterator<Item = &'a (String, u64)>,
        server: &ServerIdentity,
    ) -> crate::Result<()> {
        let ahead = |(file, pos): &(String, u64)| {
            checkpoint::after(
                &Position { file: file.clone(), pos: *pos, ..Default::default() },
                start,
            )
        };
        if copied.any(ahead) {
            return Err(IncrementalError::ServerChanged {
                was: self.former_server.clone(),
                now: server.id.clone(),
                why: "is behind where the copy read its tables (changes up to there are matched \
                      to the copy by binlog offsets of the former server)",
            }
            .into());
        }
        crate::meta::full::forget_copy_positions(target, job).await
    }
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
            gtid: None,
        });
    }
    stream::start_head(source).await
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
    /// The background copy read a chunk.
    ChunkRead(crate::Result<()>),
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
    applied_above: HashSet<String>,
    safe_until: Option<Instant>,
    /// Until this source position, rows the copy may already hold are replayed idempotently:
    /// the copy's tables were not all read at the start position.
    copy_safe_until: Option<(String, u64)>,
    /// Conflicts in the source transactions up to this position are overwritten.
    overwrite_until: Option<Position>,
    /// What the status shows, for the [`lag::Monitor`].
    progress: lag::SharedProgress,
    /// The copy of tables added to the selection while replicating.
    backfill: backfill::Backfill,
    /// Hands changed rows to continuous validation, when on.
    validation: validation::Hook,
}

impl<'a> Loop<'a> {
    fn new(
        ctx: &'a JobContext,
        control: Applier,
        scheduler: Scheduler,
        source: Conn,
        start: Position,
        safe_until: Option<Instant>,
        backfill: backfill::Backfill,
    ) -> Self {
        Self {
            ctx,
            job: ctx.config.key.clone(),
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
            overwrite_until: overwrite_until(ctx),
            progress: Default::default(),
            backfill,
            validation: Default::default(),
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<crate::Result<Unit>>) -> crate::Result<Ended> {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        let mut cutover_checked: Option<Instant> = None;
        self.backfill_step().await?;
        loop {
            let takes_units = self.backfill.accepts_units();
            let reading = self.backfill.reading();
            let event = tokio::select! {
                _ = self.ctx.cancel.cancelled() => Event::Stop,
                _ = tick.tick() => Event::Tick,
                applied = self.scheduler.recv(), if self.scheduler.busy() => Event::Applied(applied),
                unit = rx.recv(), if takes_units => Event::Unit(unit),
                read = self.backfill.read_done(), if reading => Event::ChunkRead(read),
            };
            match event {
                Event::Stop => return Ok(Ended::Stopped),
                Event::Tick => {
                    self.share_progress();
                    self.save_checkpoint().await?;
                    self.backfill_step().await?;
                    if cutover_checked.is_none_or(|t| t.elapsed() >= CUTOVER_CHECK_INTERVAL) {
                        cutover_checked = Some(Instant::now());
                        if let Some(at) = self.cutover_reached().await? {
                            return Ok(Ended::CutOver(at));
                        }
                    }
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
                Event::Unit(Some(unit)) => {
                    if let Some(unit) = self.backfill.pass(unit?) {
                        self.take(unit).await?;
                    }
                    self.backfill_step().await?;
                }
                Event::ChunkRead(read) => {
                    read?;
                    self.backfill_step().await?;
                }
            }
        }
    }

    /// Writes the chunk the background copy read once every unit up to its snapshot is applied
    /// (see [`backfill`]), takes the unit held for it, and starts reading the next chunk.
    async fn backfill_step(&mut self) -> crate::Result<()> {
        if self.backfill.due(&self.read) {
            self.scheduler.drain().await?;
            let applied = self.scheduler.watermark().low().clone();
            let held = self.backfill.write(&applied).await?;
            self.saved = applied;
            self.saved_at = Instant::now();
            if let Some(unit) = held {
                self.take(unit).await?;
            }
        }
        self.backfill.start_next().await
    }

    /// The recorded cutover position, once the saved checkpoint has reached it.
    async fn cutover_reached(&mut self) -> crate::Result<Option<Position>> {
        let Some(at) = crate::cutover::requested(&mut self.control.conn, &self.job).await? else {
            return Ok(None);
        };
        Ok((!checkpoint::after(&at, &self.saved)).then_some(at))
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
            Unit::OnlineDdl(step) => return self.online_ddl(step).await,
            Unit::Txn(txn) => txn,
        };
        if let Some(ddl) = txn.ddl.take() {
            self.run_ddl(&ddl).await?;
        }
        let mut mode = self.txn_mode(&txn.end);
        if mode == Mode::Exact
            && txn.changes.iter().any(|c| self.backfill.copies(&c.database, &c.table))
        {
            // The table's rows are being copied: changes may find them missing (see [`backfill`]).
            mode = Mode::Upsert;
        }
        self.read = txn.end.clone();
        let seq = self.scheduler.register(txn.end.clone(), txn.timestamp);
        let done_before = self.applied_above.remove(&checkpoint::applied_key(&txn.end))
            || self
                .applied_above
                .remove(&checkpoint::applied_key(&Position { gtid: None, ..txn.end.clone() }));
        if txn.changes.is_empty() || done_before {
            self.scheduler.skip(seq);
            return Ok(());
        }
        let changes = self.resolve(txn).await?;
        let keys = causality::txn_keys(changes.iter().map(|(s, c)| (s, c)));
        let end = self.read.clone();
        self.validation.changed(&end, &changes);
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
            // Rows land in the table spec.routes names; the source's own columns still map them.
            let to = self.ctx.config.selection.route(&change.database, &change.table);
            let schema = self
                .schemas
                .get(&mut self.control.conn, &to.database, &to.table)
                .await?
                .ok_or_else(|| IncrementalError::MissingTable {
                table: crate::sql::qualified(&to.database, &to.table),
            })?;
            let mapping = self.mappings.get(&mut self.source, &change, logged_at, &schema);
            let mapping = bounded("the source's columns", mapping).await?;
            resolved.push((schema, mapping.apply(change)));
        }
        Ok(resolved)
    }

    /// How the source transaction ending at `end` is applied: conflicts overwritten (and counted)
    /// up to `spec.overwriteConflictsAt`, else as [`Self::mode`] says.
    fn txn_mode(&mut self, end: &Position) -> Mode {
        if self.overwrite_until.as_ref().is_some_and(|until| !checkpoint::after(end, until)) {
            return Mode::Overwrite;
        }
        self.mode()
    }

    fn mode(&mut self) -> Mode {
        if self.before_copy_safe_until() {
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

    /// A step of an online schema change, alone like DDL (see [`online_ddl`]): records kept in
    /// `ferry_meta`, the recorded ALTERs run at the tool's swap; then the checkpoint.
    async fn online_ddl(&mut self, unit: Box<stream::OnlineDdl>) -> crate::Result<()> {
        use online_ddl::Step;
        self.scheduler.drain().await?;
        let mut records = online_ddl::Records { conn: &mut self.control.conn, job: &self.job };
        match &unit.step {
            Step::Reset(tables) => records.reset(tables).await?,
            Step::Record { table, alter } => records.record(table, alter).await?,
            Step::Swap { table, rename } => {
                let pending = records.pending(table, &unit.end).await?;
                let alters = pending.unwrap_or_else(|| {
                    let why = online_ddl::unrecorded_swap(table);
                    vec![stream::Ddl { refused: Some(why), ..rename.clone() }]
                });
                for alter in &alters {
                    tracing::info!(database = %table.database, table = %table.table, sql = %alter.sql, "online schema change swapped in on the source: applying its ALTER");
                    self.run_ddl(alter).await?;
                }
                let mut records =
                    online_ddl::Records { conn: &mut self.control.conn, job: &self.job };
                records.swapped(table, &unit.end).await?;
            }
        }
        self.read = unit.end.clone();
        let seq = self.scheduler.register(unit.end, unit.timestamp);
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
        self.validation.schema_changed();
        Ok(())
    }

    /// Publishes what is applied and what is waiting to the monitor.
    fn share_progress(&self) {
        let watermark = self.scheduler.watermark();
        let progress = lag::Progress {
            applied: watermark.low().clone(),
            oldest_pending: watermark.oldest_pending_timestamp(),
            rows_total: self.scheduler.rows_total,
            overwritten: self.scheduler.overwritten,
            safe_until: self.safe_until,
        };
        if let Ok(mut shared) = self.progress.lock() {
            *shared = progress;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    fn checkpoint(server: Option<&str>, gtid_set: Option<&str>) -> checkpoint::Checkpoint {
        checkpoint::Checkpoint {
            position: Position {
                file: "mysql-bin.000002".into(),
                pos: 1234,
                gtid_set: gtid_set.map(String::from),
                gtid: None,
            },
            clean: true,
            source_server: server.map(String::from),
        }
    }

    fn server(id: &str, gtids: bool) -> ServerIdentity {
        ServerIdentity { id: id.into(), gtids }
    }

    #[test]
    fn gtid_sources_resume_by_gtid_also_on_another_server() {
        let set = format!("{UUID}:1-10");
        let executed = format!("{UUID}:1-12");
        let same =
            Resume::plan(&checkpoint(Some("a"), Some(&set)), &server("a", true), Some(&executed));
        assert_eq!(
            same.unwrap(),
            Resume { by_gtid: true, server_changed: false, former_server: "a".into() }
        );
        let other =
            Resume::plan(&checkpoint(Some("a"), Some(&set)), &server("b", true), Some(&executed));
        assert!(other.unwrap().server_changed);
    }

    #[test]
    fn a_server_lacking_applied_gtids_is_refused() {
        let set = format!("{UUID}:1-10");
        let behind = format!("{UUID}:1-8");
        let error =
            Resume::plan(&checkpoint(Some("a"), Some(&set)), &server("b", true), Some(&behind))
                .unwrap_err()
                .to_string();
        assert!(error.contains(&format!("{UUID}:9-10")), "{error}");
        assert!(error.contains("lacks transactions"), "{error}");
    }

    #[test]
    fn offsets_of_another_server_are_refused() {
        // No GTIDs on the source, or none in the checkpoint: only the same server can resume.
        for (gtids, set) in [(false, Some(format!("{UUID}:1-10"))), (true, None)] {
            let saved = checkpoint(Some("a"), set.as_deref());
            let plan = Resume::plan(&saved, &server("a", gtids), None).unwrap();
            assert!(!plan.by_gtid && !plan.server_changed);
            let error = Resume::plan(&saved, &server("b", gtids), None).unwrap_err().to_string();
            assert!(error.contains("not the server the checkpoint was read from"), "{error}");
            assert!(error.contains("it was a, it is b now"), "{error}");
        }
        // A checkpoint of an earlier version names no server: nothing to compare.
        let plan = Resume::plan(&checkpoint(None, None), &server("b", false), None).unwrap();
        assert!(!plan.server_changed);
    }

    #[test]
    fn mysql_sets_of_earlier_versions_are_not_trusted() {
        let set = format!("{UUID}:100-200");
        assert_eq!(trusted_gtid_set(&checkpoint(None, Some(&set))), None);
        assert_eq!(trusted_gtid_set(&checkpoint(Some("a"), Some(&set))), Some(set));
        assert_eq!(trusted_gtid_set(&checkpoint(None, Some("0-1-10"))).as_deref(), Some("0-1-10"));
    }
}
