//! The copy side of a background copy ([`crate::incremental::backfill`]): tables added to a
//! replicating job's selection are created on the target, planned into chunks as the first copy
//! plans them, and read one chunk at a time, each at a snapshot whose exact binlog position is
//! known, so replication can write the chunk at that place in its stream.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::objects::{self, Database, Objects, Table};
use super::snapshot::{self, SnapshotConn};
use super::{FullError, chunk, copy, indexes, schema};
use crate::config::Endpoint;
use crate::error::SqlContext;
use crate::meta::full::{self as checkpoint, Chunk};

/// Why a table added to the selection cannot be copied in the background.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(
        "ferry_meta.selection holds a selection this Ferry cannot read ({0}): run `ferry reset` \
         for the job and migrate it again, or use the Ferry release that wrote it"
    )]
    UnreadableSelection(String),
    #[error(
        "{table} was added to the job's objects, but its target table {target} already holds \
         rows, which Ferry cannot tell from the source's: empty it on the target (TRUNCATE \
         TABLE {target}) or drop it, then run the job again; or leave {table} out of the objects"
    )]
    TargetNotEmpty { table: String, target: String },
    #[error(
        "{table} was added to the job's objects; it has no primary key or NOT NULL unique key \
         and spec.routes merges it with other tables into {target}, so its copied rows cannot be \
         told from the others': add a primary key to {table}, or route it to a table of its own"
    )]
    KeylessMerged { table: String, target: String },
    #[error(
        "{table} was added to the job's objects, and copying it while replicating needs a \
         snapshot at an exact binlog position, which this MySQL source gives only under FLUSH \
         TABLES WITH READ LOCK or LOCK TABLES: GRANT RELOAD (or LOCK TABLES) to the source \
         user, or migrate {table} in a new job"
    )]
    NoExactPosition { table: String },
}

impl From<BackfillError> for crate::Error {
    fn from(error: BackfillError) -> Self {
        FullError::Backfill(error).into()
    }
}

/// The target session of the copy.
pub fn target_session() -> String {
    copy::target_session()
}

/// The source's base tables the selection covers now.
pub async fn selected_tables(
    source: &mut Conn,
    selection: &ferry_crds::Selection,
) -> crate::Result<Vec<Table>> {
    Ok(objects::read(source, selection).await?.tables)
}

/// Creates the target tables of `tables` (databases too) from the source's definitions, with
/// every index at once (replication writes them from the start); refuses a target table that
/// already holds rows, unless other tables are merged into it.
pub async fn create_targets(
    job: &str,
    source: &mut Conn,
    target: &mut Conn,
    tables: &[Table],
) -> crate::Result<()> {
    if let Some(t) = tables.iter().find(|t| t.merged && t.key.is_empty()) {
        let (table, target) = (t.qualified(), t.target_qualified());
        return Err(BackfillError::KeylessMerged { table, target }.into());
    }
    let mut databases: Vec<Database> = Vec::new();
    for t in tables {
        if !databases.iter().any(|d| d.target == t.target.database) {
            databases.push(Database { source: t.db.clone(), target: t.target.database.clone() });
        }
    }
    let objects =
        Objects { databases, tables: tables.to_vec(), views: Vec::new(), routines: Vec::new() };
    schema::copy(job, source, target, &objects).await?;
    for t in tables {
        indexes::build(target, job, &t.target.database, &t.target.table).await?;
        if t.merged {
            continue;
        }
        let any: Option<u8> = target
            .query_first(format!("SELECT 1 FROM {} LIMIT 1", t.target_qualified()))
            .await
            .sql(format!("look for rows in {} on the target", t.target_qualified()))?;
        if any.is_some() {
            let (table, target) = (t.qualified(), t.target_qualified());
            return Err(BackfillError::TargetNotEmpty { table, target }.into());
        }
    }
    Ok(())
}

/// The table's chunks not copied yet, planning it (once, saved in `ferry_meta`) on first use.
pub async fn chunks_to_copy(
    source: &mut Conn,
    target: &mut Conn,
    job: &str,
    table: &Table,
) -> crate::Result<Vec<Chunk>> {
    let mut saved = checkpoint::load_plan(target, job, &table.db, &table.name).await?;
    if saved.is_empty() {
        let chunks = chunk::plan(source, table).await?;
        checkpoint::save_plan(target, job, &chunks).await?;
        saved = checkpoint::load_plan(target, job, &table.db, &table.name).await?;
    }
    Ok(saved
        .into_iter()
        .filter(|c| !c.done)
        .map(|c| Chunk {
            db: table.db.clone(),
            table: table.name.clone(),
            seq: c.seq,
            cond: c.cond,
        })
        .collect())
}

/// A chunk read at a snapshot, with the position the snapshot stands at.
pub struct ReadChunk {
    pub table: Table,
    pub chunk: Chunk,
    pub at: (String, u64),
    read: copy::ReadChunk,
}

/// Opens a snapshot of `table` for its next chunk; returns it with its exact position.
pub async fn open(
    source: &Endpoint,
    table: &Table,
) -> crate::Result<(SnapshotConn, (String, u64))> {
    let (conn, at) = snapshot::open_exact(source, (&table.db, &table.name)).await?;
    let at = at.ok_or_else(|| BackfillError::NoExactPosition { table: table.qualified() })?;
    Ok((conn, at))
}

/// Reads `chunk` at the snapshot `conn` holds, with the table's columns as they are now.
pub async fn read(
    mut conn: SnapshotConn,
    mut table: Table,
    chunk: Chunk,
    at: (String, u64),
) -> crate::Result<ReadChunk> {
    objects::refresh(&mut conn.conn, &mut table).await?;
    let read = copy::read_chunk(&table, &chunk, &mut conn.conn).await?;
    let _ = conn.conn.query_drop("COMMIT").await;
    Ok(ReadChunk { table, chunk, at, read })
}

impl ReadChunk {
    pub fn rows(&self) -> u64 {
        self.read.rows
    }

    /// Writes the chunk inside the target transaction `target` has open, and marks it done
    /// there. A table without a key is one chunk: its target rows (those replication wrote
    /// since the table was created) are replaced by the snapshot's as a whole.
    pub async fn write(&self, target: &mut Conn, job: &str) -> crate::Result<()> {
        let context = || format!("write copied rows of {} on the target", self.table.qualified());
        if self.table.key.is_empty() {
            let delete = format!("DELETE FROM {}", self.table.target_qualified());
            target.query_drop(delete).await.sql(context())?;
        }
        for statement in &self.read.statements {
            target.query_drop(statement).await.sql(context())?;
        }
        let (rows, bytes, at) = (self.read.rows, self.read.bytes, Some(self.at.clone()));
        let done = checkpoint::mark_done_sql(job, &self.chunk, rows, bytes, &at);
        target.query_drop(done).await.sql("mark a chunk done in ferry_meta.full_chunks")
    }
}
