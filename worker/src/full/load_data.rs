//! The copy's `LOAD DATA LOCAL INFILE` path: a chunk's rows stream from the source cursor as
//! tab-separated text straight into the target's `LOAD DATA` from memory (no files), in the
//! chunk's transaction, as MySQL Shell's loader does. The server parses that text much faster
//! than multi-row statements. Values are written by the same code as the statements': text
//! escaped by [`literal::push_escaped`], bytes without a character set as hex that `UNHEX`
//! turns back, `\N` for NULL.
//!
//! Where the target refuses local files, the copy falls back to multi-row statements (see
//! [`Method`]); a chunk whose load the target rejects or warns about is written again with
//! statements, which either succeed or name the value at fault exactly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::{Mutex, mpsc};

use super::objects::Table;
use super::progress::Progress;
use crate::flavor::Flavor;
use crate::sql::literal::{self, Render};
use crate::sql::quote_ident;

/// The environment variable choosing how the copy writes rows: `auto` (the default), `load` or
/// `insert`; tests force each path with it.
pub const METHOD_VAR: &str = "FERRY_COPY_WRITE";

/// How rows are sent to the target, tried in this order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `LOAD DATA LOCAL` while the target allows it, else multi-row statements.
    Auto,
    /// Only `LOAD DATA LOCAL`: a target refusing it is an error.
    Load,
    /// Only multi-row statements.
    Insert,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{METHOD_VAR}={0:?} is not a way to write rows: use auto, load or insert")]
    UnknownMethod(String),
    #[error(
        "the target refuses LOAD DATA LOCAL INFILE ({0}) and {METHOD_VAR}=load asks for it only: \
         enable local_infile on the target (SET GLOBAL local_infile = 1) or unset {METHOD_VAR}"
    )]
    Refused(String),
}

impl Method {
    pub fn from_env() -> Result<Self, LoadError> {
        match std::env::var(METHOD_VAR).as_deref().map(str::trim) {
            Err(_) | Ok("" | "auto") => Ok(Self::Auto),
            Ok("load") => Ok(Self::Load),
            Ok("insert") => Ok(Self::Insert),
            Ok(other) => Err(LoadError::UnknownMethod(other.to_string())),
        }
    }
}

/// The copy workers' shared choice of path, and the per-target size of one `LOAD DATA`.
#[derive(Debug)]
pub struct Writer {
    method: Method,
    /// Set once the target refused a local file: every later chunk uses statements.
    refused: AtomicBool,
    statement_bytes: usize,
}

impl Writer {
    pub fn new(method: Method, target: Flavor) -> Self {
        Self { method, refused: AtomicBool::new(false), statement_bytes: statement_bytes(target) }
    }

    pub fn uses_load(&self) -> bool {
        match self.method {
            Method::Auto => !self.refused.load(Ordering::Relaxed),
            Method::Load => true,
            Method::Insert => false,
        }
    }

    /// The target refused local files: statements from now on, or an error when only loads
    /// were asked for.
    pub fn refuse(&self, reason: &str) -> Result<(), LoadError> {
        if self.method == Method::Load {
            return Err(LoadError::Refused(reason.to_string()));
        }
        if !self.refused.swap(true, Ordering::Relaxed) {
            tracing::info!(
                reason,
                "the target refuses LOAD DATA LOCAL; rows go as multi-row statements"
            );
        }
        Ok(())
    }
}

/// Bytes of one `LOAD DATA` before the next starts. MariaDB and MySQL take a whole chunk (a few
/// MiB) at once. TiDB holds a statement's rows in memory while it encodes them, on top of the
/// transaction's own buffer (100 MiB by default, `txn-total-size-limit`), so its loads are kept
/// to a few MiB each: a chunk's transaction stays far under the limit however its rows are split.
fn statement_bytes(target: Flavor) -> usize {
    match target {
        Flavor::TiDb => 4 << 20,
        Flavor::MariaDb | Flavor::MySql => 64 << 20,
    }
}

/// Bytes read from the source before they are handed to the writer as one piece.
const PIECE: usize = 256 << 10;

/// `LOAD DATA LOCAL INFILE` of the table's copied columns; columns written as hex go through a
/// user variable and `UNHEX`.
pub fn statement(table: &Table) -> String {
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut unhex = Vec::new();
    for (i, column) in table.columns.iter().enumerate() {
        let name = quote_ident(&column.name);
        if column.render == Render::Hex {
            fields.push(format!("@h{i}"));
            unhex.push(format!("{name} = UNHEX(@h{i})"));
        } else {
            fields.push(name);
        }
    }
    let set = if unhex.is_empty() { String::new() } else { format!(" SET {}", unhex.join(", ")) };
    // Merged shards keep the first row of a key and warn; the warning sends the chunk back to
    // statements, whose INSERT names the key both shards hold.
    let duplicates = if table.merged { "IGNORE" } else { "REPLACE" };
    format!(
        "LOAD DATA LOCAL INFILE 'ferry-chunk' {duplicates} INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' \
         LINES TERMINATED BY '\\n' ({}){set}",
        table.target_qualified(),
        fields.join(", "),
    )
}

/// Appends one row the copy read (text protocol: every value is the server's own text) as a
/// line of tab-separated fields.
pub fn push_row(out: &mut Vec<u8>, row: &mysql_async::Row, table: &Table) {
    for (i, column) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        push_field(out, row.as_ref(i), column.render);
    }
    out.push(b'\n');
}

fn push_field(out: &mut Vec<u8>, value: Option<&mysql_async::Value>, render: Render) {
    use mysql_async::Value;
    match value {
        None | Some(Value::NULL) => out.extend_from_slice(b"\\N"),
        Some(Value::Bytes(bytes)) if render == Render::Hex => literal::push_hex_digits(out, bytes),
        Some(Value::Bytes(bytes)) => literal::push_escaped(out, bytes),
        // The text protocol only gives bytes; anything else goes by its SQL text.
        Some(other) => literal::push_escaped(out, other.as_sql(false).as_bytes()),
    }
}

/// A piece of a chunk's text and the rows it holds.
pub struct Piece {
    pub data: Bytes,
    pub rows: u64,
}

/// Streams the chunk's rows as pieces of text; false when stopped before the end or when the
/// writer went away (its error is reported).
pub async fn read_rows(
    cancelled: impl Fn() -> bool,
    table: &Table,
    select: &str,
    source: &mut Conn,
    tx: mpsc::Sender<Piece>,
) -> crate::Result<bool> {
    use crate::error::SqlContext;
    let context = || format!("read rows of {} from the source", table.qualified());
    let mut result = source.query_iter(select).await.sql(context())?;
    let mut piece = Vec::with_capacity(PIECE + (16 << 10));
    let mut rows = 0;
    while let Some(row) = result.next().await.sql(context())? {
        push_row(&mut piece, &row, table);
        rows += 1;
        if piece.len() >= PIECE {
            let data = Bytes::from(std::mem::replace(&mut piece, Vec::with_capacity(PIECE)));
            if tx.send(Piece { data, rows }).await.is_err() || cancelled() {
                result.drop_result().await.sql(context())?;
                return Ok(false);
            }
            rows = 0;
        }
    }
    if rows > 0 && tx.send(Piece { data: Bytes::from(piece), rows }).await.is_err() {
        return Ok(false);
    }
    Ok(true)
}

/// What writing a chunk's pieces came to.
pub enum Written {
    /// Every piece is in the open transaction: rows and bytes.
    Done(u64, u64),
    /// The target does not take local files at all.
    NotAllowed(String),
    /// The target rejected or warned about a value: the chunk goes again as statements.
    Rejected(String),
}

/// Server errors meaning local files are off: 1148 (not allowed), MySQL's 3948 and 3950 and
/// MariaDB's 4166 (disabled on the server or for the client).
const NOT_ALLOWED: &[u16] = &[1148, 3948, 3950, 4166];

/// Sends the pieces as `LOAD DATA` statements of at most the target's statement size, in the
/// transaction the caller opened.
pub async fn write(
    writer: &Writer,
    target: &mut Conn,
    table: &Table,
    progress: &Progress,
    rx: mpsc::Receiver<Piece>,
) -> crate::Result<Written> {
    let sql = statement(table);
    let rx = Arc::new(Mutex::new(rx));
    let (mut rows, mut bytes) = (0, 0);
    loop {
        // Wait for a first piece, so a chunk without rows sends no statement.
        let Some(first) = rx.lock().await.recv().await else { break };
        let counted = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
        let (feed, tally, limit) = (rx.clone(), counted.clone(), writer.statement_bytes);
        // The handler must be Sync, which a boxed stream is not: it is made when called.
        target.set_infile_handler(async move { Ok(pieces(first, feed, limit, tally)) });
        let loaded = target.query_drop(&sql).await;
        if loaded.is_err() {
            // A server that refuses before asking for the file leaves the handler set, holding
            // the pieces' receiver, which would keep the reader waiting.
            target.set_infile_handler(async { Ok(futures::stream::empty().boxed()) });
        }
        let refused = match loaded {
            Ok(()) if target.get_warnings() > 0 => {
                Ok(Some(Written::Rejected(warnings(target).await)))
            }
            Ok(()) => Ok(None),
            Err(mysql_async::Error::Server(e)) if NOT_ALLOWED.contains(&e.code) => {
                Ok(Some(Written::NotAllowed(e.message)))
            }
            Err(mysql_async::Error::Server(e)) if super::copy::VALUE_ERRORS.contains(&e.code) => {
                Ok(Some(Written::Rejected(e.message)))
            }
            Err(e) => Err(crate::Error::Sql {
                context: format!("load rows of {} into the target", table.qualified()),
                source: e,
            }),
        };
        if !matches!(refused, Ok(None)) {
            // The chunk's transaction is rolled back: what its earlier statements counted goes.
            progress.retract(rows, bytes);
        }
        if let Some(refused) = refused? {
            return Ok(refused);
        }
        let (r, b) = counted.lock().map(|c| *c).unwrap_or_default();
        progress.add(r, b);
        rows += r;
        bytes += b;
    }
    Ok(Written::Done(rows, bytes))
}

/// The pieces of one statement: `first`, then more from `rx` until `limit` bytes or the end,
/// counting rows and bytes as they go.
fn pieces(
    first: Piece,
    rx: Arc<Mutex<mpsc::Receiver<Piece>>>,
    limit: usize,
    counted: Arc<std::sync::Mutex<(u64, u64)>>,
) -> mysql_async::InfileData {
    let count = move |piece: &Piece| {
        if let Ok(mut c) = counted.lock() {
            c.0 += piece.rows;
            c.1 += piece.data.len() as u64;
        }
    };
    count(&first);
    let sent = first.data.len();
    let rest = futures::stream::unfold((rx, sent, count), move |(rx, sent, count)| async move {
        if sent >= limit {
            return None;
        }
        let piece = rx.lock().await.recv().await?;
        count(&piece);
        let sent = sent + piece.data.len();
        Some((Ok(piece.data), (rx, sent, count)))
    });
    futures::stream::once(async move { Ok(first.data) }).chain(rest).boxed()
}

/// The target's warnings about the last statement, for the log.
async fn warnings(target: &mut Conn) -> String {
    let shown: Vec<(String, u16, String)> =
        target.query("SHOW WARNINGS LIMIT 3").await.unwrap_or_default();
    let lines: Vec<String> = shown
        .into_iter()
        .map(|(level, code, message)| format!("{level} {code}: {message}"))
        .collect();
    if lines.is_empty() { "warnings".to_string() } else { lines.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::full::objects::Column;
    use mysql_async::Value;

    fn field(value: Option<Value>, render: Render) -> String {
        let mut out = Vec::new();
        push_field(&mut out, value.as_ref(), render);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn fields_escape_what_ends_them() {
        assert_eq!(field(None, Render::Quoted), r"\N");
        assert_eq!(field(Some(Value::NULL), Render::Hex), r"\N");
        assert_eq!(field(Some(Value::Bytes(b"\\N".to_vec())), Render::Quoted), r"\\N");
        assert_eq!(
            field(Some(Value::Bytes(b"a\tb\nc\rd\0e'".to_vec())), Render::Quoted),
            r"a\tb\nc\rd\0e\'"
        );
        assert_eq!(field(Some(Value::Bytes(vec![])), Render::Quoted), "");
        assert_eq!(field(Some(Value::Bytes(vec![0, 255, 9])), Render::Hex), "00FF09");
        assert_eq!(field(Some(Value::Bytes(vec![])), Render::Hex), "");
        assert_eq!(field(Some(Value::Bytes(b"-1.5e10".to_vec())), Render::Raw), "-1.5e10");
    }

    #[test]
    fn hex_columns_go_through_unhex() {
        let column =
            |name: &str, render| Column { name: name.into(), data_type: "x".into(), render };
        let table = Table {
            db: "app".into(),
            name: "t".into(),
            target: ferry_crds::selection::Routed { database: "app".into(), table: "t".into() },
            merged: false,
            columns: vec![column("id", Render::Raw), column("b`in", Render::Hex)],
            key: vec!["id".into()],
            estimated_rows: 0,
            estimated_bytes: 0,
        };
        let sql = statement(&table);
        assert!(sql.contains("REPLACE INTO TABLE `app`.`t`"), "{sql}");
        assert!(sql.ends_with("(`id`, @h1) SET `b``in` = UNHEX(@h1)"), "{sql}");
    }
}
