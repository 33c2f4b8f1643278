//! The copy workers. Each owns one connection reading the shared snapshot and one writing to the
//! target, and takes chunks from a common queue. A chunk is one target transaction: its rows as
//! multi-row REPLACE statements of at most [`MAX_STATEMENT`] bytes, then the checkpoint row that
//! marks it done. Reading and writing overlap: rows are rendered into the next statement while
//! the previous one executes, and at most two statements wait, so memory stays flat.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chunk::Chunk;
use super::indexes;
use super::meta;
use super::objects::Table;
use super::progress::Progress;
use super::snapshot::SnapshotConn;
use super::value;
use crate::error::SqlContext;
use crate::sql::quote_ident;

/// Largest multi-row statement.
pub const MAX_STATEMENT: usize = 1 << 20;

/// Target session: UTC, utf8mb4, zero dates and explicit zeros in AUTO_INCREMENT columns
/// accepted as they are, foreign keys not checked while tables fill in any order.
pub const TARGET_SESSION: &str = "SET time_zone = '+00:00', NAMES utf8mb4, \
    sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', foreign_key_checks = 0";

/// What the workers share.
pub struct Shared {
    pub job: String,
    pub queue: Mutex<VecDeque<Chunk>>,
    pub tables: HashMap<(String, String), Arc<Table>>,
    /// Chunks still to copy, per table; a table is done when its count reaches zero.
    pub remaining: HashMap<(String, String), AtomicUsize>,
    pub progress: Arc<Progress>,
    pub cancel: CancellationToken,
}

impl Shared {
    fn next(&self) -> Option<Chunk> {
        self.queue.lock().ok()?.pop_front()
    }
}

/// Copies chunks until the queue is empty or a stop is requested.
pub async fn worker(
    shared: Arc<Shared>,
    mut source: SnapshotConn,
    mut target: Conn,
) -> crate::Result<()> {
    target.query_drop(TARGET_SESSION).await.sql("set up a target session")?;
    while !shared.cancel.is_cancelled() {
        let Some(chunk) = shared.next() else { break };
        let key = (chunk.db.clone(), chunk.table.clone());
        let Some(table) = shared.tables.get(&key).cloned() else { continue };
        let copied = copy_chunk(&shared, &table, &chunk, &mut source, &mut target).await;
        match copied {
            Ok(true) => {
                let left = shared.remaining.get(&key).map(|r| r.fetch_sub(1, Ordering::SeqCst) - 1);
                if left == Some(0) {
                    tracing::info!(table = %table.qualified(), "table copied");
                    indexes::build(&mut target, &shared.job, &table.db, &table.name).await?;
                    shared.progress.table_done();
                }
            }
            Ok(false) => {
                target.query_drop("ROLLBACK").await.sql("roll back a stopped chunk")?;
                break;
            }
            Err(error) => {
                let _ = target.query_drop("ROLLBACK").await;
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Copies one chunk in one target transaction; false when stopped before the end.
async fn copy_chunk(
    shared: &Shared,
    table: &Table,
    chunk: &Chunk,
    source: &mut SnapshotConn,
    target: &mut Conn,
) -> crate::Result<bool> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let select_list: Vec<String> = table
        .columns
        .iter()
        .map(|c| match c.data_type.as_str() {
            // FLOAT's text form is rounded; as a DOUBLE it is exact and converts back exactly.
            "float" => format!("CAST({} AS DOUBLE)", quote_ident(&c.name)),
            _ => quote_ident(&c.name),
        })
        .collect();
    let select = format!(
        "SELECT {} FROM {} WHERE {}",
        select_list.join(", "),
        table.qualified(),
        chunk.cond
    );
    let header = format!("REPLACE INTO {} ({}) VALUES ", table.qualified(), columns.join(", "));
    target.query_drop("BEGIN").await.sql("begin a chunk on the target")?;
    let (tx, mut rx) = mpsc::channel::<(Vec<u8>, u64)>(2);
    let read = read_rows(shared, table, &select, header.as_bytes(), &mut source.conn, tx);
    let write = async {
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some((statement, n)) = rx.recv().await {
            target
                .query_drop(&statement)
                .await
                .sql(format!("write rows of {} to the target", table.qualified()))?;
            rows += n;
            bytes += statement.len() as u64;
            shared.progress.add(n, statement.len() as u64);
        }
        Ok::<_, crate::Error>((rows, bytes))
    };
    let (complete, written) = tokio::join!(read, write);
    let (complete, (rows, bytes)) = (complete?, written?);
    if !complete {
        return Ok(false);
    }
    target
        .query_drop(meta::mark_done_sql(&shared.job, chunk, rows, bytes, &source.read_at))
        .await
        .sql("mark a chunk done in ferry_meta.full_chunks")?;
    target.query_drop("COMMIT").await.sql(format!("commit a chunk of {}", table.qualified()))?;
    Ok(true)
}

/// Streams the chunk's rows into statements; false when stopped before the end.
async fn read_rows(
    shared: &Shared,
    table: &Table,
    select: &str,
    header: &[u8],
    source: &mut Conn,
    tx: mpsc::Sender<(Vec<u8>, u64)>,
) -> crate::Result<bool> {
    let context = || format!("read rows of {} from the source", table.qualified());
    let mut result = source.query_iter(select).await.sql(context())?;
    let mut statement = header.to_vec();
    let mut rows = 0u64;
    while let Some(row) = result.next().await.sql(context())? {
        if rows > 0 {
            statement.push(b',');
        }
        statement.push(b'(');
        for (i, column) in table.columns.iter().enumerate() {
            if i > 0 {
                statement.push(b',');
            }
            value::push(&mut statement, row.as_ref(i), column.render);
        }
        statement.push(b')');
        rows += 1;
        if statement.len() >= MAX_STATEMENT {
            let full = std::mem::replace(&mut statement, header.to_vec());
            if tx.send((full, rows)).await.is_err() || shared.cancel.is_cancelled() {
                // The writer failed (its error is reported) or a stop was asked for.
                result.drop_result().await.sql(context())?;
                return Ok(false);
            }
            rows = 0;
        }
    }
    if rows > 0 && tx.send((statement, rows)).await.is_err() {
        return Ok(false);
    }
    Ok(true)
}
