//! The replication checkpoint.
//!
//! `incremental_checkpoint` holds the low watermark: the source position up to which every change
//! is on the target. Workers apply transactions above it out of order; each worker commits, in the
//! same target transaction as the changes, a row of `incremental_applied` listing the source
//! transactions (by end position) that transaction applied. A resume reads the stream from the
//! watermark and skips the transactions listed above it, so a crash at any instant loses nothing
//! and applies nothing twice, also in tables without keys. Rows at or below the watermark are
//! deleted when it is saved. `state` tells a clean stop (`stopped`) from an abrupt one (`running`
//! left behind), which turns safe mode on (for DDL, which is not transactional).
//!
//! On a source with GTIDs, the applied transactions are known by GTID, and the checkpoint names
//! the source server (`source_server`): binlog files and offsets belong to one server, GTIDs to
//! the whole replication topology, so a resume on a promoted replica goes by GTID.

use std::collections::HashSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::SqlContext;
use crate::sql::literal::quote_str;

/// A source position: the next event to read, and the GTID state up to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    /// MariaDB `domain-server-seq,...` (or MySQL GTID set) when known.
    pub gtid_set: Option<String>,
    /// The GTID of the transaction ending here, when the source logs GTIDs.
    pub gtid: Option<String>,
}

impl Position {
    pub fn to_api(&self) -> ferry_crds::job::BinlogPosition {
        ferry_crds::job::BinlogPosition {
            file: Some(self.file.clone()),
            pos: Some(self.pos as i64),
            gtid_set: self.gtid_set.clone(),
        }
    }
}

/// A checkpoint row.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub position: Position,
    /// False when the last run did not stop cleanly.
    pub clean: bool,
    /// The server the position was read from ([`crate::flavor::ServerIdentity::id`]); None
    /// when an earlier version saved it.
    pub source_server: Option<String>,
}

const SAVE: &str = "INSERT INTO ferry_meta.incremental_checkpoint \
    (job, binlog_file, binlog_pos, gtid_set, state) VALUES (?, ?, ?, ?, ?) \
    ON DUPLICATE KEY UPDATE binlog_file = VALUES(binlog_file), binlog_pos = VALUES(binlog_pos), \
    gtid_set = VALUES(gtid_set), state = VALUES(state)";

const PURGE_APPLIED: &str = "DELETE FROM ferry_meta.incremental_applied WHERE job = ? \
    AND (last_file < ? OR (last_file = ? AND last_pos <= ?))";

/// Records which source server the job reads (see [`Checkpoint::source_server`]).
pub async fn record_source_server(conn: &mut Conn, job: &str, server: &str) -> crate::Result<()> {
    conn.exec_drop(
        "UPDATE ferry_meta.incremental_checkpoint SET source_server = ? WHERE job = ?",
        (server, job),
    )
    .await
    .sql("record the source server in ferry_meta.incremental_checkpoint on the target")
}

/// How an applied transaction is known: by its GTID when it has one (the same on every server
/// of the topology, so also after a failover), else by its end position.
pub fn applied_key(position: &Position) -> String {
    match &position.gtid {
        Some(gtid) => format!("gtid {gtid}"),
        None => format!("{}:{}", position.file, position.pos),
    }
}

/// Whether `a` comes after `b` in the binlog. File names share a prefix and a zero-padded
/// sequence number, so they order as text.
pub fn after(a: &Position, b: &Position) -> bool {
    (a.file.as_str(), a.pos) > (b.file.as_str(), b.pos)
}

/// Records, inside the worker's open transaction, the source transactions it applies (their end
/// positions, in stream order).
pub async fn record_applied(
    conn: &mut Conn,
    job: &str,
    worker: usize,
    ends: &[&Position],
) -> crate::Result<()> {
    let Some(sql) = applied_statement(job, worker, ends) else { return Ok(()) };
    conn.query_drop(sql)
        .await
        .sql("record applied transactions in ferry_meta.incremental_applied on the target")
}

/// The statement of [`record_applied`], as text (it may travel in one packet with the rows it
/// covers); `None` without transactions.
pub fn applied_statement(job: &str, worker: usize, ends: &[&Position]) -> Option<String> {
    let last = ends.iter().copied().reduce(|a, b| if after(b, a) { b } else { a })?;
    // `file:pos`, then `#gtid` when the transaction has one.
    let positions: Vec<String> = ends
        .iter()
        .map(|p| match &p.gtid {
            Some(gtid) => format!("{}:{}#{gtid}", p.file, p.pos),
            None => format!("{}:{}", p.file, p.pos),
        })
        .collect();
    Some(format!(
        "INSERT INTO ferry_meta.incremental_applied (job, last_file, last_pos, worker, positions) \
         VALUES ({}, {}, {}, {worker}, {})",
        quote_str(job),
        quote_str(&last.file),
        last.pos,
        quote_str(&positions.join(",")),
    ))
}

/// The transactions above `watermark` that a worker already applied, by [`applied_key`].
pub async fn load_applied(
    conn: &mut Conn,
    job: &str,
    watermark: &Position,
) -> crate::Result<HashSet<String>> {
    let lists: Vec<String> = conn
        .exec("SELECT positions FROM ferry_meta.incremental_applied WHERE job = ?", (job,))
        .await
        .sql("read ferry_meta.incremental_applied on the target")?;
    Ok(lists
        .iter()
        .flat_map(|list| list.split(','))
        .filter_map(|item| {
            let (place, gtid) = match item.split_once('#') {
                Some((place, gtid)) => (place, Some(gtid.to_string())),
                None => (item, None),
            };
            let (file, pos) = place.rsplit_once(':')?;
            let position =
                Position { file: file.to_string(), pos: pos.parse().ok()?, gtid_set: None, gtid };
            after(&position, watermark).then(|| applied_key(&position))
        })
        .collect())
}

/// Moves the checkpoint to `position` and forgets the applied records at or below it, in one
/// target transaction.
pub async fn advance(
    conn: &mut Conn,
    job: &str,
    position: &Position,
    running: bool,
) -> crate::Result<()> {
    conn.query_drop("BEGIN").await.sql("begin a checkpoint transaction on the target")?;
    let result = async {
        save(conn, job, position, running).await?;
        conn.exec_drop(PURGE_APPLIED, (job, &position.file, &position.file, position.pos))
            .await
            .sql("delete old rows of ferry_meta.incremental_applied on the target")?;
        conn.query_drop("COMMIT").await.sql("commit the checkpoint on the target")
    }
    .await;
    if result.is_err() {
        let _ = conn.query_drop("ROLLBACK").await;
    }
    result
}

/// file, pos, gtid_set, state, source_server.
type CheckpointRow = (String, u64, Option<String>, String, Option<String>);

/// The job's checkpoint, if it has one.
pub async fn load(conn: &mut Conn, job: &str) -> crate::Result<Option<Checkpoint>> {
    let row: Option<CheckpointRow> = conn
        .exec_first(
            "SELECT binlog_file, binlog_pos, gtid_set, state, source_server \
             FROM ferry_meta.incremental_checkpoint WHERE job = ?",
            (job,),
        )
        .await
        .sql("read the replication checkpoint from ferry_meta on the target")?;
    Ok(row.map(|(file, pos, gtid_set, state, source_server)| Checkpoint {
        position: Position { file, pos, gtid_set, gtid: None },
        clean: state != "running",
        source_server,
    }))
}

/// Writes the checkpoint on `conn`, inside whatever transaction it has open.
pub async fn save(
    conn: &mut Conn,
    job: &str,
    position: &Position,
    running: bool,
) -> crate::Result<()> {
    let state = if running { "running" } else { "stopped" };
    conn.exec_drop(SAVE, (job, &position.file, position.pos, position.gtid_set.as_deref(), state))
        .await
        .sql("write the replication checkpoint to ferry_meta on the target")
}

/// A `file:pos` binlog position, as errors and `spec.overwriteConflictsAt` write it.
pub fn parse_position(text: &str) -> Option<Position> {
    let (file, pos) = text.trim().rsplit_once(':')?;
    let pos = pos.parse().ok()?;
    (!file.is_empty()).then(|| Position { file: file.to_string(), pos, ..Default::default() })
}
