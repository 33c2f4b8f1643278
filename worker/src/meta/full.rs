//! The copy's checkpoint: the snapshot position, and every chunk of every table with its key
//! range and whether it is done. A chunk is marked done in the same target transaction as its
//! rows, so a crash at any instant neither loses nor doubles rows. Each chunk also records the
//! binlog position its snapshot stood at; when the copy ends, every table's earliest such
//! position is kept in `full_tables` for replication. The secondary indexes built after a
//! table's rows wait in `full_indexes`, written before the table is created, so a copy stopped
//! at any instant still builds them when it resumes.

use std::collections::HashMap;

use ferry_crds::job::BinlogPosition;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};

use crate::error::SqlContext;

/// Where the copy's data was read, in the source's binlog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub file: Option<String>,
    pub pos: Option<u64>,
    pub gtid_set: Option<String>,
    /// Without the global lock: the latest position any copy connection may have read at.
    pub safe_until: Option<(String, u64)>,
    /// `ftwrl`, `lock-tables` or `lock-free`, `+resumed` when a later run took a new one.
    pub method: String,
}

impl Snapshot {
    pub fn to_api(&self) -> BinlogPosition {
        BinlogPosition {
            file: self.file.clone(),
            pos: self.pos.map(|p| p as i64),
            gtid_set: self.gtid_set.clone(),
        }
    }
}

/// A key range of a table: `cond` is its SQL condition.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub db: String,
    pub table: String,
    pub seq: u32,
    pub cond: String,
}

/// Per database and table, the binlog position its rows were all read at or after.
pub type TablePositions = HashMap<String, HashMap<String, (String, u64)>>;

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

/// The positions [`save_table_positions`] kept for the job: per table, the binlog position every
/// row of it was copied at (or after), when known. The row changes of that table before the
/// position are in the copy already and must be skipped, which keyless tables, where replaying
/// them would double rows, depend on.
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

/// The position until which replication must run in safe mode because the copy's tables were
/// not all read at its start position (a lock-free snapshot, or a resumed copy); `None` when the
/// copy read everything at one instant or never ran.
pub async fn safe_until(conn: &mut Conn, job: &str) -> crate::Result<Option<(String, u64)>> {
    Ok(load_snapshot(conn, job).await?.and_then(|(snapshot, _)| snapshot.safe_until))
}

/// Whether an earlier run recorded its copy as done.
pub async fn copy_done(conn: &mut Conn, job: &str) -> crate::Result<bool> {
    let state: Option<String> = conn
        .exec_first("SELECT state FROM ferry_meta.full_snapshot WHERE job = ?", (job,))
        .await
        .sql("read the copy's state from ferry_meta.full_snapshot on the target")?;
    Ok(state.as_deref() == Some("done"))
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

/// Marks every chunk of a table to copy again (its target rows were deleted).
pub async fn reset_chunks(conn: &mut Conn, job: &str, db: &str, table: &str) -> crate::Result<()> {
    conn.exec_drop(
        "UPDATE ferry_meta.full_chunks SET done = 0, rows_copied = 0, bytes = 0, \
         read_file = NULL, read_pos = NULL WHERE job = ? AND db = ? AND tbl = ?",
        (job, db, table),
    )
    .await
    .sql(format!("mark the chunks of `{db}`.`{table}` to copy again in ferry_meta"))
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
pub fn mark_done_sql(
    job: &str,
    chunk: &Chunk,
    rows: u64,
    bytes: u64,
    read_at: &Option<(String, u64)>,
) -> String {
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

/// Remembers the indexes to build for a table (before the table is created).
pub async fn record_indexes(
    conn: &mut Conn,
    job: &str,
    db: &str,
    table: &str,
    definitions: &[String],
) -> crate::Result<()> {
    conn.exec_drop(
        "REPLACE INTO ferry_meta.full_indexes (job, db, tbl, definitions) VALUES (?, ?, ?, ?)",
        (job, db, table, definitions.join("\n")),
    )
    .await
    .sql(format!("record the deferred indexes of `{db}`.`{table}` in ferry_meta"))
}

/// The index definitions still to build for a table, one a line; `None` when there are none.
pub async fn deferred_indexes(
    conn: &mut Conn,
    job: &str,
    db: &str,
    table: &str,
) -> crate::Result<Option<String>> {
    conn.exec_first(
        "SELECT definitions FROM ferry_meta.full_indexes WHERE job = ? AND db = ? AND tbl = ?",
        (job, db, table),
    )
    .await
    .sql(format!("read the deferred indexes of `{db}`.`{table}` from ferry_meta"))
}

/// Forgets a table's deferred indexes once they are built.
pub async fn clear_indexes(conn: &mut Conn, job: &str, db: &str, table: &str) -> crate::Result<()> {
    conn.exec_drop(
        "DELETE FROM ferry_meta.full_indexes WHERE job = ? AND db = ? AND tbl = ?",
        (job, db, table),
    )
    .await
    .sql("clear a table's deferred indexes in ferry_meta")
}

/// The tables (database, table) whose deferred indexes are still to build.
pub async fn tables_with_deferred_indexes(
    conn: &mut Conn,
    job: &str,
) -> crate::Result<Vec<(String, String)>> {
    conn.exec("SELECT db, tbl FROM ferry_meta.full_indexes WHERE job = ?", (job,))
        .await
        .sql("list the deferred indexes in ferry_meta")
}
