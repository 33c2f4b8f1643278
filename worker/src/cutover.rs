//! Cutover: completes a replicating job once the target provably holds everything the source
//! holds, at the source's final binlog position.
//!
//! [`run`] checks that the source is no longer written (read_only on, or its binlog still for a
//! grace time), reads the source's final position, waits until the job's checkpoint on the
//! target has applied it, verifies the selected tables changed since an earlier verify found
//! them equal (all of them without one: [`crate::verify::changed`]), checks that the source did
//! not move meanwhile, and only then records the final position in
//! `ferry_meta.cutover`. The replicating process (`ferry migrate` or the worker pod) looks for
//! that row next to its checkpoint ([`requested`]); once its checkpoint is at the position it
//! stops, completes the job at that position and marks the row done ([`acknowledge`]). The
//! row is the only handshake, so the two sides may run on different machines and either may
//! restart: a job whose row exists completes as soon as it runs again.
//!
//! The table is created on first use rather than by a `ferry_meta` schema version: it is only
//! read where it exists ([`requested`] treats a missing table as no request).

use std::time::{Duration, Instant};

use ferry_crds::cutover::CutoverState;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::config::JobConfig;
use crate::connect::connect;
use crate::error::SqlContext;
use crate::flavor::{Flavor, Version};
use crate::incremental::stream;
use crate::meta::incremental::{self as checkpoint, Position};
use crate::verify::{self, Report};

/// The table of `ferry_meta` schema version 4 (`meta::schema`).
pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.cutover (\
    job VARCHAR(320) NOT NULL PRIMARY KEY, \
    binlog_file VARCHAR(255) NOT NULL, binlog_pos BIGINT UNSIGNED NOT NULL, gtid_set TEXT NULL, \
    requested_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
    completed_at TIMESTAMP(6) NULL)";

/// How long the source's binlog is watched between two reads while waiting for it to go quiet.
const POLL: Duration = Duration::from_millis(200);

/// How a cutover runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Without read_only on the source: how long its binlog must stay still.
    pub quiet_for: Option<Duration>,
    /// How long to wait for the source to go quiet and for the target to apply its position.
    pub timeout: Duration,
    /// How the final verify runs.
    pub verify: verify::Options,
}

/// A cutover that went through: the target equals the source at `position`.
#[derive(Debug)]
pub struct Done {
    pub position: Position,
    /// How the source was found no longer written.
    pub quiet: String,
    pub report: Report,
}

/// Why a cutover did not go through. Replication goes on untouched.
#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error(
        "the source is still writable (read_only is OFF): stop the application's writes and run \
         `SET GLOBAL read_only = ON`{super_read_only} on the source, or give a grace time \
         (--quiet-for 30s, spec.cutover.quietFor) to accept a source whose binlog has not moved \
         for that long"
    )]
    SourceWritable { super_read_only: &'static str },
    #[error(
        "the source's binlog kept moving for {timeout:?} (now at {position}): something still \
         writes to it; stop every writer (read_only = ON), then cut over again"
    )]
    NotQuiet { position: String, timeout: Duration },
    #[error(
        "job {job} has no replication checkpoint on the target: it has not replicated yet. \
         Cutover applies to a job of mode Incremental or FullAndIncremental once its copy is done"
    )]
    NoCheckpoint { job: String },
    #[error(
        "the target did not apply the source's final position {position} within {timeout:?} \
         (the job's checkpoint is at {applied}): check that `ferry migrate` (or the job's worker) \
         runs and is not failing, then cut over again, or give it longer (--timeout, \
         spec.cutover.timeout)"
    )]
    NotApplied { position: String, applied: String, timeout: Duration },
    #[error(
        "the source was written during the cutover (its binlog moved from {from} to {to} while \
         the tables were compared): stop every writer (read_only = ON), then cut over again"
    )]
    WrittenDuring { from: String, to: String },
    #[error(
        "the target differs from the source at {position} ({summary}): the job is not completed. \
         See the differing rows with `ferry verify -f FILE` (its --fix-sql writes the statements \
         that repair the target), repair the target, then cut over again"
    )]
    Differs { position: String, summary: String },
}

/// Checks, waits, verifies and records the cutover of `config`'s job (see the module
/// documentation). `progress` hears each step (Waiting, Verifying) with what it does.
pub async fn run(
    config: &JobConfig,
    options: &Options,
    progress: impl Fn(CutoverState, &str),
) -> crate::Result<Done> {
    let job = job_key(config);
    let deadline = Instant::now() + options.timeout;
    let mut source = connect(&config.source, "source").await?;
    let mut target = connect(&config.target, "target").await?;
    if checkpoint::load(&mut target, &job).await?.is_none() {
        return Err(crate::Error::Cutover(CutoverError::NoCheckpoint { job }));
    }
    progress(CutoverState::Waiting, "waiting for the source to be no longer written");
    let (position, quiet) = final_position(&mut source, options.quiet_for, deadline).await?;
    let at = describe(&position);
    tracing::info!(job = %job, position = %at, quiet = %quiet, "source no longer written");
    progress(CutoverState::Waiting, &format!("waiting for the target to apply {at}"));
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(applied) = verify::wait_applied(&mut target, &job, &position, left).await? {
        let applied = applied.as_ref().map_or("nowhere yet".into(), describe);
        let timeout = options.timeout;
        return Err(CutoverError::NotApplied { position: at, applied, timeout }.into());
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let scope = verify::changed::scope(config, &mut source, &mut target, &position, left).await?;
    let what = match &scope.tables {
        None => format!("every selected table ({})", scope.reason),
        Some(tables) => format!("{} tables: {}", tables.len(), scope.reason),
    };
    tracing::info!(job = %job, position = %at, scope = %what, "final verify");
    progress(CutoverState::Verifying, &format!("verifying {what} at {at}"));
    let options = verify::Options { only: scope.tables.clone(), ..options.verify.clone() };
    let mut report = verify::run(config, &options).await?;
    report.notes.push(format!("compared {what}"));
    let now = stream::source_head(&mut source).await?;
    if (&now.file, now.pos) != (&position.file, position.pos) {
        return Err(CutoverError::WrittenDuring { from: at, to: describe(&now) }.into());
    }
    if !report.equal {
        return Err(CutoverError::Differs { position: at, summary: summary(&report) }.into());
    }
    record(&mut target, &job, &position).await?;
    tracing::info!(job = %job, position = %at, "cutover recorded; the job completes there");
    Ok(Done { position, quiet, report })
}

/// The key of the job's rows in `ferry_meta`, as its checkpoint has it.
pub fn job_key(config: &JobConfig) -> String {
    config.key.clone()
}

/// `file:pos`.
pub fn describe(position: &Position) -> String {
    format!("{}:{}", position.file, position.pos)
}

/// The source's position once it is no longer written: at once with read_only on, else once
/// its binlog has not moved for `quiet_for`.
async fn final_position(
    source: &mut Conn,
    quiet_for: Option<Duration>,
    deadline: Instant,
) -> crate::Result<(Position, String)> {
    let version = Version::read(source).await.sql("read the source version")?;
    let read_only: Option<bool> = source
        .query_first("SELECT @@global.read_only")
        .await
        .sql("read read_only on the source")?;
    if read_only == Some(true) {
        let mut how = "read_only is ON".to_string();
        if version.flavor == Flavor::MySql && !super_read_only(source).await? {
            how.push_str(" (super_read_only is OFF: accounts with SUPER may still write)");
        }
        return Ok((stream::source_head(source).await?, how));
    }
    let Some(quiet_for) = quiet_for else {
        let super_read_only =
            if version.flavor == Flavor::MySql { " (and super_read_only = ON)" } else { "" };
        return Err(CutoverError::SourceWritable { super_read_only }.into());
    };
    let mut head = stream::source_head(source).await?;
    let mut still_since = Instant::now();
    while still_since.elapsed() < quiet_for {
        if Instant::now() >= deadline {
            let position = describe(&head);
            return Err(CutoverError::NotQuiet { position, timeout: quiet_for }.into());
        }
        tokio::time::sleep(POLL).await;
        let now = stream::source_head(source).await?;
        if (&now.file, now.pos) != (&head.file, head.pos) {
            head = now;
            still_since = Instant::now();
        }
    }
    Ok((head, format!("no transaction reached the binlog for {quiet_for:?}")))
}

async fn super_read_only(source: &mut Conn) -> crate::Result<bool> {
    let value: Option<bool> = source
        .query_first("SELECT @@global.super_read_only")
        .await
        .sql("read super_read_only on the source")?;
    Ok(value == Some(true))
}

/// Tables that differ, for the error.
fn summary(report: &Report) -> String {
    let differing: Vec<String> = report
        .tables
        .iter()
        .filter(|t| !t.is_equal())
        .map(|t| {
            let counts = [
                (t.missing.len(), "missing"),
                (t.extra.len(), "extra"),
                (t.different.len(), "different"),
                (t.unsettled.len(), "unsettled"),
            ];
            let parts: Vec<String> = counts
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, what)| format!("{n} {what}"))
                .chain(t.problem.clone())
                .collect();
            format!("{}.{}: {}", t.database, t.table, parts.join(", "))
        })
        .collect();
    differing.join("; ")
}

/// Records the cutover at `position` for the replicating process to act on.
async fn record(target: &mut Conn, job: &str, position: &Position) -> crate::Result<()> {
    target.query_drop(CREATE).await.sql("create ferry_meta.cutover on the target")?;
    target
        .exec_drop(
            "INSERT INTO ferry_meta.cutover (job, binlog_file, binlog_pos, gtid_set) \
             VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE binlog_file = VALUES(binlog_file), \
             binlog_pos = VALUES(binlog_pos), gtid_set = VALUES(gtid_set), \
             requested_at = CURRENT_TIMESTAMP(6), completed_at = NULL",
            (job, &position.file, position.pos, &position.gtid_set),
        )
        .await
        .sql("record the cutover in ferry_meta.cutover on the target")
}

/// The recorded cutover position of `job`, if one was recorded (none when the table does not
/// exist: no cutover ever ran on this target).
pub async fn requested(target: &mut Conn, job: &str) -> crate::Result<Option<Position>> {
    if !crate::meta::schema::has_table(target, "cutover").await? {
        return Ok(None);
    }
    let row: Option<(String, u64, Option<String>)> = target
        .exec_first(
            "SELECT binlog_file, binlog_pos, gtid_set FROM ferry_meta.cutover WHERE job = ?",
            (job,),
        )
        .await
        .sql("read ferry_meta.cutover on the target")?;
    Ok(row.map(|(file, pos, gtid_set)| Position { file, pos, gtid_set, gtid: None }))
}

/// Forgets a cutover recorded for an earlier job of the same key: a job that starts
/// replicating without a checkpoint is a new one, which no earlier cutover completes.
pub async fn forget(target: &mut Conn, job: &str) -> crate::Result<()> {
    if !crate::meta::schema::has_table(target, "cutover").await? {
        return Ok(());
    }
    target
        .exec_drop("DELETE FROM ferry_meta.cutover WHERE job = ?", (job,))
        .await
        .sql("forget an earlier cutover in ferry_meta.cutover on the target")
}

/// Marks the cutover of `job` done: the job completed at its position.
pub async fn acknowledge(target: &mut Conn, job: &str) -> crate::Result<()> {
    target
        .exec_drop(
            "UPDATE ferry_meta.cutover SET completed_at = CURRENT_TIMESTAMP(6) WHERE job = ?",
            (job,),
        )
        .await
        .sql("mark the cutover done in ferry_meta.cutover on the target")
}

/// Waits up to `timeout` for the replicating process to complete the job; false if none did
/// (none runs: the job completes when it next runs).
pub async fn wait_acknowledged(config: &JobConfig, timeout: Duration) -> crate::Result<bool> {
    let job = job_key(config);
    let mut target = connect(&config.target, "target").await?;
    let deadline = Instant::now() + timeout;
    loop {
        let done: Option<Option<String>> = target
            .exec_first(
                "SELECT CAST(completed_at AS CHAR) FROM ferry_meta.cutover WHERE job = ?",
                (&job,),
            )
            .await
            .sql("read ferry_meta.cutover on the target")?;
        if done.flatten().is_some() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}
