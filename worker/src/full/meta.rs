//! The copy's checkpoint in the target's `ferry_meta`: the snapshot position, and every chunk
//! of every table with its key range and whether it is done. A chunk is marked done in the same
//! target transaction as its rows, so a crash at any instant neither loses nor doubles rows.
//! Each chunk also records the binlog position its snapshot stood at; when the copy ends, every
//! table's earliest such position is kept in `full_tables` for replication.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};

use super::chunk::Chunk;
use super::snapshot::{ReadAt, Snapshot};
use crate::error::SqlContext;

/// Ferry's own schema on the target.
pub const META_SCHEMA: &str = "ferry_meta";

/// Characters of the `job` column of every `ferry_meta` table: a job id is `namespace/name`,
/// at most 63 + 1 + 253 characters in Kubernetes, so a whole id always fits and two jobs never
/// share a checkpoint (the CREATE statements spell this number out).
pub const JOB_KEY_CHARS: u64 = 320;

const CREATE_SNAPSHOT: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_snapshot (\
    job VARCHAR(320) NOT NULL PRIMARY KEY, \
    binlog_file VARCHAR(255) NULL, binlog_pos BIGINT UNSIGNED NULL, gtid_set TEXT NULL, \
    safe_until_file VARCHAR(255) NULL, safe_until_pos BIGINT UNSIGNED NULL, \
    method VARCHAR(32) NOT NULL, state VARCHAR(16) NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CREATE_CHUNKS: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_chunks (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    seq INT NOT NULL, cond LONGTEXT NOT NULL, done TINYINT NOT NULL DEFAULT 0, \
    rows_copied BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0, \
    read_file VARCHAR(255) NULL, read_pos BIGINT UNSIGNED NULL, \
    PRIMARY KEY (job, db, tbl, seq))";

/// Columns added to `full_chunks` after its first release, created on tables that lack them.
const CHUNK_COLUMNS_ADDED: &[(&str, &str)] =
    &[("read_file", "VARCHAR(255) NULL"), ("read_pos", "BIGINT UNSIGNED NULL")];

const CREATE_TABLES: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_tables (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    read_file VARCHAR(255) NOT NULL, read_pos BIGINT UNSIGNED NOT NULL, \
    PRIMARY KEY (job, db, tbl))";

/// Per database and table, the binlog position its rows were all read at or after.
pub type TablePositions = HashMap<String, HashMap<String, (String, u64)>>;

/// Creates the checkpoint tables if needed.
pub async fn ensure_tables(conn: &mut Conn) -> crate::Result<()> {
    conn.query_drop("CREATE DATABASE IF NOT EXISTS ferry_meta")
        .await
        .sql("create database ferry_meta on the target")?;
    widen_job_keys(conn).await?;
    conn.query_drop(CREATE_SNAPSHOT).await.sql("create ferry_meta.full_snapshot on the target")?;
    conn.query_drop(CREATE_CHUNKS).await.sql("create ferry_meta.full_chunks on the target")?;
    add_missing_chunk_columns(conn).await?;
    conn.query_drop(CREATE_TABLES).await.sql("create ferry_meta.full_tables on the target")?;
    conn.query_drop(super::indexes::CREATE_TABLE)
        .await
        .sql("create ferry_meta.full_indexes on the target")
}

/// Upgrades `ferry_meta` tables created by versions whose `job` column held 255 characters,
/// which cut longer job ids (and so mixed up or lost checkpoints).
pub async fn widen_job_keys(conn: &mut Conn) -> crate::Result<()> {
    let narrow: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'ferry_meta' \
             AND COLUMN_NAME = 'job' AND CHARACTER_MAXIMUM_LENGTH < ?",
            (JOB_KEY_CHARS,),
        )
        .await
        .sql("read the job columns of ferry_meta on the target")?;
    for table in narrow {
        tracing::info!(table = %table, "widening ferry_meta's job column");
        conn.query_drop(format!(
            "ALTER TABLE ferry_meta.{} MODIFY job VARCHAR({JOB_KEY_CHARS}) NOT NULL",
            crate::sql::quote_ident(&table)
        ))
        .await
        .sql(format!("widen the job column of ferry_meta.{table} on the target"))?;
    }
    Ok(())
}

/// Upgrades a `full_chunks` table created by an earlier version (portable: MySQL has no
/// `ADD COLUMN IF NOT EXISTS`).
async fn add_missing_chunk_columns(conn: &mut Conn) -> crate::Result<()> {
    let present: Vec<String> = conn
        .query(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'ferry_meta' AND TABLE_NAME = 'full_chunks'",
        )
        .await
        .sql("read the columns of ferry_meta.full_chunks on the target")?;
    for (name, definition) in CHUNK_COLUMNS_ADDED {
        if !present.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            conn.query_drop(format!(
                "ALTER TABLE ferry_meta.full_chunks ADD COLUMN {name} {definition}"
            ))
            .await
            .sql("add a column to ferry_meta.full_chunks on the target")?;
        }
    }
    Ok(())
}

/// Keeps, per table, the earliest position its chunks were read at; tables with a chunk whose
/// position is unknown (a lock-free snapshot outside MariaDB) get none.
pub async fn save_table_positions(conn: &mut Conn, job: &str) -> crate::Result<()> {
    type Row = (String, String, Option<String>, Option<u64>);
    let chunks: Vec<Row> = conn
        .exec(
            "SELECT db, tbl, read_file, read_pos FROM ferry_meta.full_chunks WHERE job = ?",
            (job,),
        )
        .await
        .sql("read the chunks' positions from ferry_meta.full_chunks on the target")?;
    let mut earliest: HashMap<(String, String), Option<(String, u64)>> = HashMap::new();
    for (db, tbl, file, pos) in chunks {
        let read_at = file.zip(pos);
        earliest
            .entry((db, tbl))
            .and_modify(|e| *e = e.clone().zip(read_at.clone()).map(|(a, b)| a.min(b)))
            .or_insert(read_at);
    }
    let rows = earliest
        .into_iter()
        .filter_map(|((db, tbl), at)| at.map(|(file, pos)| (job.to_string(), db, tbl, file, pos)));
    conn.exec_batch(
        "REPLACE INTO ferry_meta.full_tables (job, db, tbl, read_file, read_pos) \
         VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    .await
    .sql("save the tables' copy positions to ferry_meta.full_tables on the target")
}

/// Forgets the binlog positions the copy read its tables at (and its safe-mode end): after a
/// failover they are offsets of a former source server, which must not be compared with the
/// new one's (replication is past them, or the resume was refused).
pub async fn forget_copy_positions(conn: &mut Conn, job: &str) -> crate::Result<()> {
    conn.exec_drop("DELETE FROM ferry_meta.full_tables WHERE job = ?", (job,))
        .await
        .sql("delete the tables' copy positions from ferry_meta.full_tables on the target")?;
    conn.exec_drop(
        "UPDATE ferry_meta.full_snapshot SET safe_until_file = NULL, safe_until_pos = NULL \
         WHERE job = ?",
        (job,),
    )
    .await
    .sql("clear the safe-mode end of ferry_meta.full_snapshot on the target")
}

/// The positions [`save_table_positions`] kept for the job.
pub async fn load_table_positions(conn: &mut Conn, job: &str) -> crate::Result<TablePositions> {
    let rows: Vec<(String, String, String, u64)> = conn
        .exec(
            "SELECT db, tbl, read_file, read_pos FROM ferry_meta.full_tables WHERE job = ?",
            (job,),
        )
        .await
        .sql("read the tables' copy positions from ferry_meta.full_tables on the target")?;
    let mut positions = TablePositions::new();
    for (db, tbl, file, pos) in rows {
        positions.entry(db).or_default().insert(tbl, (file, pos));
    }
    Ok(positions)
}

/// Whether a copy ever recorded its snapshot on this target.
pub async fn exists(conn: &mut Conn) -> crate::Result<bool> {
    let found: Option<u8> = conn
        .query_first(
            "SELECT 1 FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = 'ferry_meta' AND TABLE_NAME = 'full_snapshot'",
        )
        .await
        .sql("look for ferry_meta.full_snapshot on the target")?;
    Ok(found.is_some())
}

/// The snapshot recorded by an earlier run, and its state (`copying` or `done`).
pub async fn load_snapshot(
    conn: &mut Conn,
    job: &str,
) -> crate::Result<Option<(Snapshot, String)>> {
    type Row =
        (Option<String>, Option<u64>, Option<String>, Option<String>, Option<u64>, String, String);
    let row: Option<Row> = conn
        .exec_first(
            "SELECT binlog_file, binlog_pos, gtid_set, safe_until_file, safe_until_pos, method, state \
             FROM ferry_meta.full_snapshot WHERE job = ?",
            (job,),
        )
        .await
        .sql("read the copy's checkpoint from ferry_meta.full_snapshot on the target")?;
    Ok(row.map(|(file, pos, gtid, safe_file, safe_pos, method, state)| {
        let snapshot =
            Snapshot { file, pos, gtid_set: gtid, safe_until: safe_file.zip(safe_pos), method };
        (snapshot, state)
    }))
}

/// Records the snapshot and the copy's state.
pub async fn save_snapshot(
    conn: &mut Conn,
    job: &str,
    snapshot: &Snapshot,
    state: &str,
) -> crate::Result<()> {
    let (safe_file, safe_pos) = snapshot.safe_until.clone().unzip();
    conn.exec_drop(
        "INSERT INTO ferry_meta.full_snapshot \
         (job, binlog_file, binlog_pos, gtid_set, safe_until_file, safe_until_pos, method, state) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE binlog_file = VALUES(binlog_file), \
         binlog_pos = VALUES(binlog_pos), gtid_set = VALUES(gtid_set), \
         safe_until_file = VALUES(safe_until_file), safe_until_pos = VALUES(safe_until_pos), \
         method = VALUES(method), state = VALUES(state)",
        (
            job,
            &snapshot.file,
            snapshot.pos,
            &snapshot.gtid_set,
            safe_file,
            safe_pos,
            &snapshot.method,
            state,
        ),
    )
    .await
    .sql("write the copy's checkpoint to ferry_meta.full_snapshot on the target")
}

/// Forgets a finished copy's chunk plan (the snapshot row stays, marked done).
pub async fn clear_chunks(conn: &mut Conn, job: &str) -> crate::Result<()> {
    conn.exec_drop("DELETE FROM ferry_meta.full_chunks WHERE job = ?", (job,))
        .await
        .sql("clear ferry_meta.full_chunks on the target")
}

/// A chunk as planned earlier, and whether it is done.
pub struct SavedChunk {
    pub seq: u32,
    pub cond: String,
    pub done: bool,
    pub rows: u64,
    pub bytes: u64,
}

/// The saved plan of a table, in order; empty when it was not planned yet.
pub async fn load_plan(
    conn: &mut Conn,
    job: &str,
    db: &str,
    table: &str,
) -> crate::Result<Vec<SavedChunk>> {
    let rows: Vec<(u32, String, u8, u64, u64)> = conn
        .exec(
            "SELECT seq, cond, done, rows_copied, bytes FROM ferry_meta.full_chunks \
             WHERE job = ? AND db = ? AND tbl = ? ORDER BY seq",
            (job, db, table),
        )
        .await
        .sql(format!("read the chunk plan of `{db}`.`{table}` from ferry_meta"))?;
    Ok(rows
        .into_iter()
        .map(|(seq, cond, done, rows, bytes)| SavedChunk {
            seq,
            cond,
            done: done != 0,
            rows,
            bytes,
        })
        .collect())
}

/// Saves a table's plan in one transaction, so a table is planned completely or not at all.
pub async fn save_plan(conn: &mut Conn, job: &str, chunks: &[Chunk]) -> crate::Result<()> {
    let mut tx =
        conn.start_transaction(TxOpts::default()).await.sql("begin saving a chunk plan")?;
    for chunk in chunks {
        tx.exec_drop(
            "INSERT INTO ferry_meta.full_chunks (job, db, tbl, seq, cond) VALUES (?, ?, ?, ?, ?)",
            (job, &chunk.db, &chunk.table, chunk.seq, &chunk.cond),
        )
        .await
        .sql("save a chunk plan to ferry_meta.full_chunks")?;
    }
    tx.commit().await.sql("commit a chunk plan to ferry_meta.full_chunks")
}

/// The statement that marks a chunk done; run inside the chunk's own transaction.
pub fn mark_done_sql(job: &str, chunk: &Chunk, rows: u64, bytes: u64, read_at: &ReadAt) -> String {
    use crate::sql::quote_str;
    let (file, pos) = match read_at {
        Some((file, pos)) => (quote_str(file), pos.to_string()),
        None => ("NULL".into(), "NULL".into()),
    };
    format!(
        "UPDATE ferry_meta.full_chunks SET done = 1, rows_copied = {rows}, bytes = {bytes}, \
         read_file = {file}, read_pos = {pos} \
         WHERE job = {} AND db = {} AND tbl = {} AND seq = {}",
        quote_str(job),
        quote_str(&chunk.db),
        quote_str(&chunk.table),
        chunk.seq
    )
}
