//! The copy workers. Each owns one connection reading the shared snapshot and one writing to the
//! target, and takes chunks from a common queue. A chunk is one target transaction: its rows as
//! multi-row REPLACE statements of at most [`MAX_STATEMENT`] bytes, then the checkpoint row that
//! marks it done. Reading and writing overlap: rows are rendered into the next statement while
//! the previous one executes, and at most two statements wait, so memory stays flat.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::FullError;
use super::indexes;
use super::load_data::{self, Written};
use super::objects::Table;
use super::progress::Progress;
use super::snapshot::SnapshotConn;
use crate::connect::TARGET_SQL_MODE;
use crate::error::SqlContext;
use crate::meta::full::{self as checkpoint, Chunk};
use crate::sql::{MAX_STATEMENT, literal, quote_ident};

/// Target session: UTC, utf8mb4, the strict SQL mode of [`TARGET_SQL_MODE`] (a value the target
/// cannot hold is an error; every date the source holds arrives as it is), foreign keys not
/// checked while tables fill in any order.
pub fn target_session() -> String {
    format!(
        "SET time_zone = '+00:00', NAMES utf8mb4, sql_mode = '{TARGET_SQL_MODE}', \
         foreign_key_checks = 0"
    )
}

/// A multi-row statement and, per row, where the values that identify it are in its text (the
/// key's literals, or the whole row for a table without a key), to name a row the target
/// rejects.
struct Batch {
    sql: Vec<u8>,
    rows: u64,
    /// Where each row's `(...)` starts.
    starts: Vec<usize>,
    /// Per row, one byte range per identifying value.
    keys: Vec<Vec<Range<usize>>>,
}

impl Batch {
    fn new(header: &[u8]) -> Self {
        Self { sql: header.to_vec(), rows: 0, starts: Vec::new(), keys: Vec::new() }
    }

    /// The statement that writes only the 0-based row `i`.
    fn single_row(&self, i: usize) -> Option<Vec<u8>> {
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).map_or(self.sql.len(), |next| next - 1);
        let mut sql = self.sql[..*self.starts.first()?].to_vec();
        sql.extend_from_slice(&self.sql[start..end]);
        Some(sql)
    }

    /// `id=42` for the 1-based `row` of the statement, from the literals written for it.
    fn describe_row(&self, table: &Table, row: usize) -> Option<String> {
        let ranges = self.keys.get(row.checked_sub(1)?)?;
        let text = |r: &Range<usize>| String::from_utf8_lossy(&self.sql[r.clone()]).into_owned();
        if table.key.is_empty() {
            return Some(format!(
                "(no key) row ({})",
                ranges.iter().map(text).collect::<Vec<_>>().join(", ")
            ));
        }
        // The ranges follow the columns' order, which may differ from the key's.
        let names = table.columns.iter().filter(|c| table.key.contains(&c.name));
        let values: HashMap<&str, String> =
            names.zip(ranges).map(|(c, r)| (c.name.as_str(), text(r))).collect();
        let pairs: Vec<String> = table
            .key
            .iter()
            .map(|k| format!("{k}={}", values.get(k.as_str()).map_or("?", String::as_str)))
            .collect();
        Some(pairs.join(", "))
    }
}

/// The row number (1-based) a MySQL/MariaDB/TiDB error about a value names (`... at row 3`);
/// None when absent or 0 (an error raised inside a target trigger says row 0).
fn error_row(message: &str) -> Option<usize> {
    let at = message.rfind(" at row ")?;
    let digits: String = message[at + 8..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|n| *n > 0)
}

/// Errors about a value the column cannot take: NULL into NOT NULL, out of range, truncated,
/// incorrect value, too long, invalid JSON, a failed CHECK constraint.
pub(super) const VALUE_ERRORS: &[u16] =
    &[1048, 1264, 1265, 1292, 1366, 1367, 1406, 1690, 3140, 4025];

/// The column an error about a value names: `for column 'c'` or `` for column `db`.`t`.`c` ``.
fn error_column(message: &str) -> Option<String> {
    let start = message.find("column ")? + 7;
    let rest = &message[start..];
    let end = rest.find(" at row").unwrap_or(rest.len());
    let quoted = rest[..end].trim();
    let last = quoted.rsplit('.').next().unwrap_or(quoted);
    Some(last.trim_matches(|c| c == '\'' || c == '`').to_string())
}

/// What the workers share.
pub struct Shared {
    pub job: String,
    pub queue: Mutex<VecDeque<Chunk>>,
    pub tables: HashMap<(String, String), Arc<Table>>,
    /// Chunks still to copy, per table; a table is done when its count reaches zero.
    pub remaining: HashMap<(String, String), AtomicUsize>,
    pub progress: Arc<Progress>,
    pub cancel: CancellationToken,
    /// `LOAD DATA LOCAL` or multi-row statements.
    pub writer: load_data::Writer,
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
    target.query_drop(target_session()).await.sql("set up a target session")?;
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
                    let to = &table.target;
                    indexes::build(&mut target, &shared.job, &to.database, &to.table).await?;
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

/// Copies one chunk in one target transaction; false when stopped before the end. The rows go
/// as `LOAD DATA LOCAL` where the target takes it, else (or when a load of the chunk is
/// rejected, to name the value at fault) as multi-row statements.
async fn copy_chunk(
    shared: &Shared,
    table: &Table,
    chunk: &Chunk,
    source: &mut SnapshotConn,
    target: &mut Conn,
) -> crate::Result<bool> {
    let select = select_sql(table, chunk);
    if shared.writer.uses_load() {
        target.query_drop("BEGIN").await.sql("begin a chunk on the target")?;
        let (tx, rx) = mpsc::channel(2);
        let cancelled = || shared.cancel.is_cancelled();
        let read = load_data::read_rows(cancelled, table, &select, &mut source.conn, tx);
        let write = load_data::write(&shared.writer, target, table, &shared.progress, rx);
        let (complete, written) = tokio::join!(read, write);
        match (complete?, written?) {
            (true, Written::Done(rows, bytes)) => {
                return finish_chunk(shared, table, chunk, source, target, rows, bytes).await;
            }
            (_, Written::NotAllowed(reason)) => {
                target.query_drop("ROLLBACK").await.sql("roll back a refused load")?;
                shared.writer.refuse(&reason).map_err(FullError::from)?;
            }
            (_, Written::Rejected(reason)) => {
                target.query_drop("ROLLBACK").await.sql("roll back a rejected load")?;
                tracing::warn!(
                    table = %table.qualified(), chunk = chunk.seq, %reason,
                    "LOAD DATA rejected rows of a chunk; writing it again as statements"
                );
            }
            (false, Written::Done(rows, bytes)) => {
                // Cancelled: the chunk is not committed, so its rows are not copied yet.
                shared.progress.retract(rows, bytes);
                return Ok(false);
            }
        }
    }
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    // Rows of merged shards must not replace each other's: a key in two shards is an error.
    let verb = if table.merged { "INSERT" } else { "REPLACE" };
    let header =
        format!("{verb} INTO {} ({}) VALUES ", table.target_qualified(), columns.join(", "));
    target.query_drop("BEGIN").await.sql("begin a chunk on the target")?;
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let cancelled = || shared.cancel.is_cancelled();
    let read = read_rows(cancelled, table, &select, header.as_bytes(), &mut source.conn, tx);
    let write = async {
        let (mut rows, mut bytes) = (0u64, 0u64);
        while let Some(batch) = rx.recv().await {
            if let Err(error) = target.query_drop(&batch.sql).await {
                return Err(write_error(target, table, &batch, error).await);
            }
            rows += batch.rows;
            bytes += batch.sql.len() as u64;
            shared.progress.add(batch.rows, batch.sql.len() as u64);
        }
        Ok::<_, crate::Error>((rows, bytes))
    };
    let (complete, written) = tokio::join!(read, write);
    let (complete, (rows, bytes)) = (complete?, written?);
    if !complete {
        return Ok(false);
    }
    finish_chunk(shared, table, chunk, source, target, rows, bytes).await
}

/// A chunk's rows read at `source`'s snapshot, as statements writing them over the target's
/// rows of the same keys (`REPLACE`; `INSERT` for a table without a key, whose target rows of
/// the chunk the caller deletes first).
pub(super) struct ReadChunk {
    pub statements: Vec<Vec<u8>>,
    pub rows: u64,
    pub bytes: u64,
}

/// Reads a whole chunk into memory (a background copy writes it later, at its place in the
/// binlog stream).
pub(super) async fn read_chunk(
    table: &Table,
    chunk: &Chunk,
    source: &mut Conn,
) -> crate::Result<ReadChunk> {
    let columns: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let verb = if table.key.is_empty() { "INSERT" } else { "REPLACE" };
    let header =
        format!("{verb} INTO {} ({}) VALUES ", table.target_qualified(), columns.join(", "));
    let (tx, mut rx) = mpsc::channel::<Batch>(2);
    let select = select_sql(table, chunk);
    let read = read_rows(|| false, table, &select, header.as_bytes(), source, tx);
    let collect = async {
        let mut read = ReadChunk { statements: Vec::new(), rows: 0, bytes: 0 };
        while let Some(batch) = rx.recv().await {
            read.rows += batch.rows;
            read.bytes += batch.sql.len() as u64;
            read.statements.push(batch.sql);
        }
        read
    };
    let (complete, read) = tokio::join!(read, collect);
    complete?;
    Ok(read)
}

/// The chunk's SELECT on the snapshot.
fn select_sql(table: &Table, chunk: &Chunk) -> String {
    let select_list: Vec<String> = table
        .columns
        .iter()
        .map(|c| match c.data_type.as_str() {
            // FLOAT's text form is rounded; as a DOUBLE it is exact and converts back exactly.
            "float" => format!("CAST({} AS DOUBLE)", quote_ident(&c.name)),
            _ => quote_ident(&c.name),
        })
        .collect();
    format!("SELECT {} FROM {} WHERE {}", select_list.join(", "), table.qualified(), chunk.cond)
}

/// Marks the chunk done in its own transaction and commits it.
async fn finish_chunk(
    shared: &Shared,
    table: &Table,
    chunk: &Chunk,
    source: &SnapshotConn,
    target: &mut Conn,
    rows: u64,
    bytes: u64,
) -> crate::Result<bool> {
    target
        .query_drop(checkpoint::mark_done_sql(&shared.job, chunk, rows, bytes, &source.read_at))
        .await
        .sql("mark a chunk done in ferry_meta.full_chunks")?;
    target.query_drop("COMMIT").await.sql(format!("commit a chunk of {}", table.qualified()))?;
    Ok(true)
}

/// A rejected statement: a value the target cannot hold names the table, the column and the
/// row's key; anything else keeps the server's message. The chunk's transaction is rolled back
/// after this, so finding the row by writing rows one at a time leaves nothing behind.
async fn write_error(
    target: &mut Conn,
    table: &Table,
    batch: &Batch,
    error: mysql_async::Error,
) -> crate::Error {
    let value_error = match &error {
        mysql_async::Error::Server(e) if VALUE_ERRORS.contains(&e.code) => Some(e.message.clone()),
        _ => None,
    };
    let Some(message) = value_error else {
        let mut context = format!(
            "write rows of {} to {} on the target",
            table.qualified(),
            table.target_qualified()
        );
        if table.merged {
            context.push_str(
                " (tables merged by spec.routes must not share key values: a duplicate key \
                 means two shards hold the same key)",
            );
        }
        return crate::Error::Sql { context, source: error };
    };
    let row = match error_row(&message) {
        Some(n) => Some(n),
        None => rejected_row(target, batch).await,
    };
    FullError::Value {
        table: table.target_qualified(),
        column: error_column(&message).unwrap_or_else(|| "?".into()),
        row: row.and_then(|n| batch.describe_row(table, n)).unwrap_or_else(|| "?".into()),
        message,
    }
    .into()
}

/// The first row (1-based) the target refuses when written alone.
async fn rejected_row(target: &mut Conn, batch: &Batch) -> Option<usize> {
    for i in 0..batch.starts.len() {
        if target.query_drop(batch.single_row(i)?).await.is_err() {
            return Some(i + 1);
        }
    }
    None
}

/// Streams the chunk's rows into statements; false when stopped before the end.
async fn read_rows(
    cancelled: impl Fn() -> bool,
    table: &Table,
    select: &str,
    header: &[u8],
    source: &mut Conn,
    tx: mpsc::Sender<Batch>,
) -> crate::Result<bool> {
    let context = || format!("read rows of {} from the source", table.qualified());
    let key_columns: Vec<usize> =
        table.key.iter().filter_map(|k| table.columns.iter().position(|c| &c.name == k)).collect();
    let mut result = source.query_iter(select).await.sql(context())?;
    let mut batch = Batch::new(header);
    while let Some(row) = result.next().await.sql(context())? {
        if batch.rows > 0 {
            batch.sql.push(b',');
        }
        batch.starts.push(batch.sql.len());
        batch.sql.push(b'(');
        let mut values = Vec::with_capacity(key_columns.len().max(1));
        for (i, column) in table.columns.iter().enumerate() {
            if i > 0 {
                batch.sql.push(b',');
            }
            let start = batch.sql.len();
            literal::push_read(&mut batch.sql, row.as_ref(i), column.render);
            if key_columns.is_empty() || key_columns.contains(&i) {
                values.push(start..batch.sql.len());
            }
        }
        batch.sql.push(b')');
        batch.keys.push(values);
        batch.rows += 1;
        if batch.sql.len() >= MAX_STATEMENT {
            let full = std::mem::replace(&mut batch, Batch::new(header));
            if tx.send(full).await.is_err() || cancelled() {
                // The writer failed (its error is reported) or a stop was asked for.
                result.drop_result().await.sql(context())?;
                return Ok(false);
            }
        }
    }
    if batch.rows > 0 && tx.send(batch).await.is_err() {
        return Ok(false);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_about_values_name_their_row_and_column() {
        let messages = [
            ("Data too long for column 'name' at row 3", Some(3), "name"),
            (
                "Incorrect datetime value: '2024-02-31' for column `app`.`t`.`d` at row 12",
                Some(12),
                "d",
            ),
            ("Out of range value for column 'n' at row 1", Some(1), "n"),
            ("Data too long for column 'name' at row 0", None, "name"),
        ];
        for (message, row, column) in messages {
            assert_eq!(error_row(message), row, "{message}");
            assert_eq!(error_column(message).as_deref(), Some(column), "{message}");
        }
        assert_eq!(error_row("Duplicate entry '1' for key 'PRIMARY'"), None);
    }

    #[test]
    fn a_batch_names_its_rows_by_key_and_writes_them_alone() {
        use super::super::objects::Column;
        use crate::sql::literal::Render;
        let column =
            |name: &str| Column { name: name.into(), data_type: "int".into(), render: Render::Raw };
        let table = Table {
            db: "app".into(),
            name: "t".into(),
            target: ferry_crds::selection::Routed { database: "app".into(), table: "t".into() },
            merged: false,
            columns: vec![column("v"), column("b"), column("a")],
            key: vec!["a".into(), "b".into()],
            estimated_rows: 0,
            estimated_bytes: 0,
        };
        let mut batch = Batch::new(b"REPLACE INTO t VALUES ");
        for (i, row) in ["(1,2,3)", "(4,5,6)"].iter().enumerate() {
            if i > 0 {
                batch.sql.push(b',');
            }
            let start = batch.sql.len();
            batch.starts.push(start);
            batch.sql.extend_from_slice(row.as_bytes());
            // b and a are the 2nd and 3rd values, at offsets 3 and 5 of the row.
            batch.keys.push(vec![start + 3..start + 4, start + 5..start + 6]);
            batch.rows += 1;
        }
        assert_eq!(batch.describe_row(&table, 2).as_deref(), Some("a=6, b=5"));
        assert_eq!(batch.describe_row(&table, 3), None);
        assert_eq!(batch.single_row(0).as_deref(), Some(&b"REPLACE INTO t VALUES (1,2,3)"[..]));
        assert_eq!(batch.single_row(1).as_deref(), Some(&b"REPLACE INTO t VALUES (4,5,6)"[..]));
    }
}
