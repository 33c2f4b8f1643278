//! Binlog replication: stream, decode, apply, checkpoint with the data.
//!
//! A reader task streams the source's binlog and assembles whole transactions ([`stream`],
//! [`event`]); the applier takes them in order, groups consecutive transactions into one target
//! transaction with the checkpoint row ([`apply`], [`checkpoint`]), and applies DDL alone, after
//! everything before it, dropping cached table schemas ([`schema`]).

pub mod apply;
pub mod checkpoint;
pub mod event;
pub mod file;
pub mod filter;
pub mod schema;
pub mod stream;

use std::time::{Duration, Instant};

use chrono::Utc;
use ferry_crds::job::{BinlogPosition, IncrementalStatus};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;

use self::apply::{Applier, Mode};
use self::checkpoint::Position;
use self::stream::{Reader, Unit};
use crate::engine::JobContext;
use crate::error::SqlContext;

/// Why replication stopped.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    #[error("binlog replication is not implemented yet")]
    NotImplemented,
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
        "table {table} has {binlog} columns in the binlog but {target} on the target: the target \
         table must have the source's columns in the same order"
    )]
    SchemaMismatch { table: String, binlog: usize, target: usize },
    #[error("a row event for {table} lacks the row image it needs: set binlog_row_image=FULL")]
    BadRowImage { table: String },
    #[error("applying DDL from the binlog failed: {sql}: {source}")]
    Ddl { sql: String, source: mysql_async::Error },
    #[error("the binlog reader stopped unexpectedly: {0}")]
    Reader(String),
}

impl IncrementalError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Stream { .. } | Self::StreamEnded { .. } | Self::Reader(_))
    }
}

/// Row changes per target transaction, at most (whole source transactions are never split).
const BATCH_ROWS: usize = 2000;
/// Source transactions read ahead of the applier.
const READ_AHEAD: usize = 1024;
/// How often the source head is read for lag.
const HEAD_INTERVAL: Duration = Duration::from_secs(2);

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
    let safe_until = (abrupt && !ctx.config.safe_mode_duration.is_zero())
        .then(|| Instant::now() + ctx.config.safe_mode_duration);
    let copy_safe_until = crate::full::safe_until(&mut target, &job).await?;
    let copied_at = crate::full::table_positions(&mut target, &job).await?;
    tracing::info!(
        job = %job, start = ?start, safe_mode = safe_until.is_some(), copy_safe_until = ?copy_safe_until,
        "starting binlog replication"
    );
    let mut applier = Applier::new(target).await?;
    checkpoint::save(&mut applier.conn, &job, &start, true).await?;

    let (stream, checksums) = stream::open(&ctx.config.source, &start, server_id(&job)).await?;
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let filter = filter::Filter::new(ctx.config.objects.clone()).with_copy_positions(copied_at);
    let reader = Reader::new(filter, start.clone(), checksums);
    let reader_task = tokio::spawn(reader.run(stream, tx));
    let mut state = Loop::new(ctx, applier, source, start, safe_until);
    state.copy_safe_until = copy_safe_until;
    let result = state.run(rx).await;
    reader_task.abort();
    if let Ok(Err(panic)) = tokio::time::timeout(Duration::from_secs(5), reader_task).await
        && panic.is_panic()
    {
        return Err(IncrementalError::Reader(format!("{panic}")).into());
    }
    result?;
    checkpoint::save(&mut state.applier.conn, &job, &state.applied, false).await?;
    state.report(true).await;
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

/// The apply loop's state.
struct Loop<'a> {
    ctx: &'a JobContext,
    job: String,
    applier: Applier,
    source: Conn,
    applied: Position,
    applied_timestamp: u32,
    safe_until: Option<Instant>,
    /// Until this source position, rows the copy may already hold are replayed idempotently:
    /// the copy's tables were not all read at the start position.
    copy_safe_until: Option<(String, u64)>,
    head: Option<Position>,
    head_files: Vec<(String, u64)>,
    head_read: Option<Instant>,
    rows_total: u64,
    rate_mark: (Instant, u64),
    rows_per_second: i64,
}

impl<'a> Loop<'a> {
    fn new(
        ctx: &'a JobContext,
        applier: Applier,
        source: Conn,
        start: Position,
        safe_until: Option<Instant>,
    ) -> Self {
        Self {
            ctx,
            job: ctx.config.id.to_string(),
            applier,
            source,
            applied: start,
            applied_timestamp: 0,
            safe_until,
            copy_safe_until: None,
            head: None,
            head_files: Vec::new(),
            head_read: None,
            rows_total: 0,
            rate_mark: (Instant::now(), 0),
            rows_per_second: 0,
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<crate::Result<Unit>>) -> crate::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let first = tokio::select! {
                _ = self.ctx.cancel.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    self.report(false).await;
                    continue;
                }
                unit = rx.recv() => unit,
            };
            let Some(first) = first else {
                return Err(IncrementalError::Reader("the reader task ended".into()).into());
            };
            let first = first?;
            if let Unit::Ddl(ddl) = first {
                self.apply_ddl(ddl).await?;
                continue;
            }
            let mut batch = vec![first];
            let mut rows = batch[0].rows();
            let mut pending_ddl = None;
            while rows < BATCH_ROWS {
                match rx.try_recv() {
                    Ok(Ok(Unit::Ddl(ddl))) => {
                        pending_ddl = Some(ddl);
                        break;
                    }
                    Ok(Ok(unit)) => {
                        rows += unit.rows();
                        batch.push(unit);
                    }
                    Ok(Err(e)) => {
                        self.apply_batch(batch).await?;
                        return Err(e);
                    }
                    Err(_) => break,
                }
            }
            self.apply_batch(batch).await?;
            if let Some(ddl) = pending_ddl {
                self.apply_ddl(ddl).await?;
            }
            self.report(false).await;
        }
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
        (self.applied.file.as_str(), self.applied.pos) < (file.as_str(), *pos)
    }

    /// Applies whole source transactions and the checkpoint in one target transaction.
    async fn apply_batch(&mut self, batch: Vec<Unit>) -> crate::Result<()> {
        let Some(last) = batch.last() else { return Ok(()) };
        let end = last.end().clone();
        let timestamp = match last {
            Unit::Txn(t) => t.timestamp,
            Unit::Ddl(d) => d.timestamp,
        };
        let mode = self.mode();
        let conn = &mut self.applier.conn;
        conn.query_drop("BEGIN").await.sql("begin a target transaction")?;
        let result = async {
            let mut rows = 0;
            for unit in &batch {
                if let Unit::Txn(txn) = unit {
                    for change in &txn.changes {
                        rows += self.applier.apply(change, mode).await?;
                    }
                }
            }
            checkpoint::save(&mut self.applier.conn, &self.job, &end, true).await?;
            self.applier.conn.query_drop("COMMIT").await.sql("commit a target transaction")?;
            Ok::<u64, crate::Error>(rows)
        }
        .await;
        match result {
            Ok(rows) => {
                self.rows_total += rows;
                self.applied = end;
                self.applied_timestamp = timestamp;
                Ok(())
            }
            Err(e) => {
                let _ = self.applier.conn.query_drop("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// DDL runs alone after everything before it; the checkpoint follows it at once. After an
    /// abrupt stop between the two, the statement runs again in safe mode, where errors saying
    /// it already took effect are ignored.
    async fn apply_ddl(&mut self, ddl: stream::Ddl) -> crate::Result<()> {
        let mode = self.mode();
        let conn = &mut self.applier.conn;
        if !ddl.schema.is_empty() {
            let use_db = format!("USE {}", crate::sql::quote_ident(&ddl.schema));
            if let Err(e) = conn.query_drop(&use_db).await {
                tracing::debug!(schema = %ddl.schema, error = %e, "default schema not on the target");
            }
        }
        tracing::info!(sql = %ddl.sql, "applying DDL");
        if let Err(e) = conn.query_drop(&ddl.sql).await {
            let already_done = matches!(&e, mysql_async::Error::Server(s)
                if matches!(s.code, 1007 | 1008 | 1050 | 1051 | 1054 | 1060 | 1061 | 1091 | 1146));
            if !(already_done && mode == Mode::Upsert) {
                return Err(IncrementalError::Ddl { sql: ddl.sql, source: e }.into());
            }
            tracing::warn!(sql = %ddl.sql, error = %e, "DDL already applied before the restart");
        }
        self.applier.schema_changed();
        checkpoint::save(&mut self.applier.conn, &self.job, &ddl.end, true).await?;
        self.applied = ddl.end;
        self.applied_timestamp = ddl.timestamp;
        Ok(())
    }

    /// Updates status.incremental and status.position; publishes when due (or now if `force`).
    async fn report(&mut self, force: bool) {
        if self.head_read.is_none_or(|t| t.elapsed() >= HEAD_INTERVAL) {
            self.head_read = Some(Instant::now());
            match stream::source_head(&mut self.source).await {
                Ok(head) => self.head = Some(head),
                Err(e) => tracing::warn!(error = %e, "cannot read the source head position"),
            }
            if let Ok(files) = stream::binary_logs(&mut self.source).await {
                self.head_files = files;
            }
        }
        let elapsed = self.rate_mark.0.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let rows = self.rows_total - self.rate_mark.1;
            self.rows_per_second = (rows as f64 / elapsed.as_secs_f64()).round() as i64;
            self.rate_mark = (Instant::now(), self.rows_total);
        }
        let lag_bytes = self.head.as_ref().map(|h| lag_bytes(&self.applied, h, &self.head_files));
        let caught_up = lag_bytes == Some(0);
        let lag_seconds = if caught_up || self.applied_timestamp == 0 {
            0
        } else {
            (Utc::now().timestamp() - i64::from(self.applied_timestamp)).max(0)
        };
        let safe_mode_until = self.safe_until.map(|until| {
            let left = until.saturating_duration_since(Instant::now());
            (Utc::now() + chrono::Duration::from_std(left).unwrap_or_default()).to_rfc3339()
        });
        let status = IncrementalStatus {
            applied: Some(self.applied.to_api()),
            source_head: self.head.as_ref().map(Position::to_api),
            lag_seconds: Some(lag_seconds),
            lag_bytes,
            rows_per_second: Some(self.rows_per_second),
            safe_mode_until,
        };
        let position = format!("{}:{}", self.applied.file, self.applied.pos);
        self.ctx.reporter.update(|s| {
            s.incremental = Some(status);
            s.position = Some(position);
        });
        if force {
            self.ctx.reporter.publish().await;
        } else {
            self.ctx.reporter.publish_due().await;
        }
    }
}

/// Bytes of binlog between `applied` and `head`, across files.
fn lag_bytes(applied: &Position, head: &Position, files: &[(String, u64)]) -> i64 {
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
