//! Edits of a replicating job's selection. `selection` holds the `spec.objects` and
//! `spec.routes` that replication last ran under; a run whose manifest differs compares the two
//! and copies the tables the edit added in the background ([`crate::incremental::backfill`]).
//! Each such table has a row in `backfill_tables` until its copy is done, with the source
//! position its target table was created at (its changes and DDL up to there are in the copy);
//! its chunks are planned and checkpointed in `full_chunks`, as the first copy's are.

use ferry_crds::Selection;
use ferry_crds::job::{ObjectSelection, Route};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, TxOpts};

use super::full::TablePositions;
use crate::error::SqlContext;
use crate::full::backfill::BackfillError;

const CREATE_SELECTION: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.selection (\
    job VARCHAR(320) NOT NULL PRIMARY KEY, objects LONGTEXT NOT NULL, routes LONGTEXT NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CREATE_BACKFILL: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.backfill_tables (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    created_file VARCHAR(255) NOT NULL, created_pos BIGINT UNSIGNED NOT NULL, \
    PRIMARY KEY (job, db, tbl))";

/// The tables of schema version 5.
pub const TABLES: &[(&str, &str)] =
    &[("selection", CREATE_SELECTION), ("backfill_tables", CREATE_BACKFILL)];

/// The selection replication last ran under (its objects and routes; event filters do not
/// change which tables are copied); `None` before the job recorded one.
pub async fn recorded_selection(conn: &mut Conn, job: &str) -> crate::Result<Option<Selection>> {
    let row: Option<(String, String)> = conn
        .exec_first("SELECT objects, routes FROM ferry_meta.selection WHERE job = ?", (job,))
        .await
        .sql("read the job's recorded selection from ferry_meta.selection on the target")?;
    let Some((objects, routes)) = row else { return Ok(None) };
    let objects: ObjectSelection = serde_json::from_str(&objects)
        .map_err(|e| BackfillError::UnreadableSelection(e.to_string()))?;
    let routes: Vec<Route> = serde_json::from_str(&routes)
        .map_err(|e| BackfillError::UnreadableSelection(e.to_string()))?;
    Ok(Some(Selection::new(Some(objects), routes, Vec::new())))
}

/// A table added to the selection whose copy is not done, and where its target table was
/// created in the source's binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub db: String,
    pub table: String,
    pub created_at: (String, u64),
}

/// The tables whose background copy is not done.
pub async fn pending(conn: &mut Conn, job: &str) -> crate::Result<Vec<Added>> {
    let rows: Vec<(String, String, String, u64)> = conn
        .exec(
            "SELECT db, tbl, created_file, created_pos FROM ferry_meta.backfill_tables \
             WHERE job = ? ORDER BY db, tbl",
            (job,),
        )
        .await
        .sql("read the tables being copied from ferry_meta.backfill_tables on the target")?;
    Ok(rows
        .into_iter()
        .map(|(db, table, file, pos)| Added { db, table, created_at: (file, pos) })
        .collect())
}

/// The pending tables' creation positions, as the binlog filter takes them.
pub fn positions(added: &[Added]) -> TablePositions {
    let mut positions = TablePositions::new();
    for a in added {
        positions.entry(a.db.clone()).or_default().insert(a.table.clone(), a.created_at.clone());
    }
    positions
}

/// Records `selection` as the one replication runs under, with the tables it added (to copy)
/// and those it removed (their copy abandoned, chunks forgotten), in one transaction.
pub async fn record(
    conn: &mut Conn,
    job: &str,
    selection: &Selection,
    added: &[Added],
    removed: &[(String, String)],
) -> crate::Result<()> {
    let objects = serde_json::to_string(selection.objects()).unwrap_or_default();
    let routes = serde_json::to_string(selection.routes()).unwrap_or_default();
    let mut tx =
        conn.start_transaction(TxOpts::default()).await.sql("begin recording a selection")?;
    for (db, table) in removed {
        for sql in [
            "DELETE FROM ferry_meta.backfill_tables WHERE job = ? AND db = ? AND tbl = ?",
            "DELETE FROM ferry_meta.full_chunks WHERE job = ? AND db = ? AND tbl = ?",
        ] {
            tx.exec_drop(sql, (job, db, table))
                .await
                .sql("forget a table removed from the selection in ferry_meta")?;
        }
    }
    for a in added {
        tx.exec_drop(
            "REPLACE INTO ferry_meta.backfill_tables (job, db, tbl, created_file, created_pos) \
             VALUES (?, ?, ?, ?, ?)",
            (job, &a.db, &a.table, &a.created_at.0, a.created_at.1),
        )
        .await
        .sql("record a table to copy in ferry_meta.backfill_tables")?;
    }
    tx.exec_drop(
        "REPLACE INTO ferry_meta.selection (job, objects, routes) VALUES (?, ?, ?)",
        (job, objects, routes),
    )
    .await
    .sql("record the job's selection in ferry_meta.selection")?;
    tx.commit().await.sql("commit the job's selection to ferry_meta")
}

/// The statements, run in the transaction of a table's last chunk, that end its background copy.
pub fn done_sql(job: &str, db: &str, table: &str) -> [String; 2] {
    use crate::sql::quote_str;
    let (job, db, table) = (quote_str(job), quote_str(db), quote_str(table));
    [
        format!(
            "DELETE FROM ferry_meta.backfill_tables WHERE job = {job} AND db = {db} AND tbl = {table}"
        ),
        format!(
            "DELETE FROM ferry_meta.full_chunks WHERE job = {job} AND db = {db} AND tbl = {table}"
        ),
    ]
}
