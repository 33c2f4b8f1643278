//! The replication checkpoint in the target's `ferry_meta`: the source position whose changes the
//! target holds. It is written in the same target transaction as those changes, so a crash at any
//! instant resumes with nothing lost and nothing applied twice. `state` tells a clean stop
//! (`stopped`) from an abrupt one (`running` left behind), which turns safe mode on.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::SqlContext;

/// A source position: the next event to read, and the GTID state up to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    /// MariaDB `domain-server-seq,...` (or MySQL GTID set) when known.
    pub gtid_set: Option<String>,
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
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.incremental_checkpoint (\
    job VARCHAR(255) NOT NULL PRIMARY KEY, \
    binlog_file VARCHAR(255) NOT NULL, \
    binlog_pos BIGINT UNSIGNED NOT NULL, \
    gtid_set TEXT NULL, \
    state VARCHAR(16) NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const SAVE: &str = "INSERT INTO ferry_meta.incremental_checkpoint \
    (job, binlog_file, binlog_pos, gtid_set, state) VALUES (?, ?, ?, ?, ?) \
    ON DUPLICATE KEY UPDATE binlog_file = VALUES(binlog_file), binlog_pos = VALUES(binlog_pos), \
    gtid_set = VALUES(gtid_set), state = VALUES(state)";

/// Creates the checkpoint table if needed.
pub async fn ensure_table(conn: &mut Conn) -> crate::Result<()> {
    conn.query_drop("CREATE DATABASE IF NOT EXISTS ferry_meta")
        .await
        .sql("create database ferry_meta on the target")?;
    conn.query_drop(CREATE)
        .await
        .sql("create table ferry_meta.incremental_checkpoint on the target")
}

/// The job's checkpoint, if it has one.
pub async fn load(conn: &mut Conn, job: &str) -> crate::Result<Option<Checkpoint>> {
    let row: Option<(String, u64, Option<String>, String)> = conn
        .exec_first(
            "SELECT binlog_file, binlog_pos, gtid_set, state FROM ferry_meta.incremental_checkpoint \
             WHERE job = ?",
            (job,),
        )
        .await
        .sql("read the replication checkpoint from ferry_meta on the target")?;
    Ok(row.map(|(file, pos, gtid_set, state)| Checkpoint {
        position: Position { file, pos, gtid_set },
        clean: state != "running",
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
