//! Applies row changes to the target, one row per statement: the path of tables whose changes
//! cannot be batched (no key, foreign keys, partial row images; see [`super::batch`]).
//!
//! Rows go by primary key, else by a unique key over NOT NULL columns, else by the full row image
//! with `LIMIT 1` (so a duplicate row is changed once). In safe mode, INSERT becomes an upsert and an UPDATE that moves a key is tried as it is, then as an upsert
//! of the after image; upserts rather than REPLACE or DELETE + INSERT keep ON DELETE CASCADE
//! foreign keys from deleting child rows.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::IncrementalError;
use super::batch::Op;
use super::event::{Cell, RowKind};
use super::schema::{ColumnInfo, TableSchema};
use crate::error::SqlContext;
use crate::sql::literal::{self, latin1_text};
use crate::sql::{MAX_STATEMENT, quote_ident};

/// How INSERT and UPDATE are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain statements: a duplicate key is a conflict that stops the job.
    Exact,
    /// Upserts: safe mode.
    Upsert,
    /// Each row as in `Exact`, and when it conflicts (a duplicate key, or no row to change) as in
    /// `Upsert`, counted: `spec.overwriteConflictsAt`.
    Overwrite,
}

/// A target connection that applies changes.
pub struct Applier {
    pub conn: Conn,
    /// Rows written over in `Overwrite` mode since the caller last reset it.
    pub overwritten: u64,
    /// The session's `foreign_key_checks`, as last set (it outlives transactions).
    foreign_key_checks: bool,
}

impl Applier {
    /// Prepares the session: UTC (TIMESTAMP values arrive as UTC instants) and the strict SQL
    /// mode that stores what the source stored or fails (see `connect::TARGET_SQL_MODE`).
    /// Foreign key checks are on, as the source's sessions usually have them.
    /// On MariaDB and MySQL, READ COMMITTED takes no gap locks, so workers changing disjoint rows
    /// do not block each other on the gaps between them.
    pub async fn new(mut conn: Conn) -> crate::Result<Self> {
        conn.query_drop(format!(
            "SET SESSION time_zone = '+00:00', SESSION sql_mode = '{}', \
             SESSION foreign_key_checks = 1",
            crate::connect::TARGET_SQL_MODE
        ))
        .await
        .sql("prepare the target session for replication")?;
        let version: Option<String> =
            conn.query_first("SELECT VERSION()").await.sql("read the target version")?;
        // TiDB takes no gap locks; its READ COMMITTED mode would only change how its foreign key
        // checks read.
        if !version.is_some_and(|v| v.contains("TiDB"))
            && let Err(e) =
                conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await
        {
            tracing::debug!(error = %e, "the target keeps its default isolation level");
        }
        Ok(Self { conn, overwritten: 0, foreign_key_checks: true })
    }

    /// Applies one row change, with foreign key checks as the source had them.
    pub async fn apply_row(&mut self, op: &Op, mode: Mode) -> crate::Result<()> {
        if mode != Mode::Overwrite {
            return self.apply_change(op, mode).await;
        }
        // A failed statement is rolled back alone; the transaction goes on.
        match self.apply_change(op, Mode::Exact).await {
            Err(crate::Error::Incremental(
                IncrementalError::Conflict { .. } | IncrementalError::RowMissing { .. },
            )) => {
                self.apply_change(op, Mode::Upsert).await?;
                self.overwritten += 1;
                tracing::info!(table = %op.schema.name(), "overwrote a conflicting target row");
                Ok(())
            }
            result => result,
        }
    }

    async fn apply_change(&mut self, op: &Op, mode: Mode) -> crate::Result<()> {
        self.set_foreign_key_checks(!op.no_foreign_key_checks).await?;
        let schema = &op.schema;
        match (op.kind, &op.before, &op.after) {
            (RowKind::Insert, _, Some(after)) => self.insert(schema, after, mode).await,
            (RowKind::Delete, Some(before), _) => {
                self.delete(schema, before).await?;
                self.require_found(mode, schema, "deleted", before)
            }
            (RowKind::Update, Some(before), Some(after)) => {
                self.update(schema, before, after, mode).await
            }
            _ => Err(IncrementalError::BadRowImage { table: schema.name() }.into()),
        }
    }

    /// Turns the session's foreign key checks on or off for the next statements. Off, the target
    /// neither checks nor cascades (InnoDB and TiDB alike), which is what rows the source changed
    /// with checks off need: a cascade the source logged must not run a second time.
    async fn set_foreign_key_checks(&mut self, on: bool) -> crate::Result<()> {
        if self.foreign_key_checks != on {
            let sql = format!("SET SESSION foreign_key_checks = {}", u8::from(on));
            self.conn.query_drop(sql).await.sql("set foreign_key_checks on the target")?;
            self.foreign_key_checks = on;
        }
        Ok(())
    }

    async fn insert(
        &mut self,
        schema: &TableSchema,
        row: &[Cell],
        mode: Mode,
    ) -> crate::Result<()> {
        let columns = writable(schema, row);
        let names: Vec<String> =
            columns.iter().map(|&i| quote_ident(&schema.columns[i].name)).collect();
        let (marks, mut params) = bind(schema, &columns, row);
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            schema.name(),
            names.join(", "),
            marks.join(", ")
        );
        if mode == Mode::Upsert && !names.is_empty() {
            // The values again rather than VALUES(col): TiDB's VALUES() of a BIT column wider
            // than 56 bits gives its bytes shifted (1 becomes 0x0100000000000000).
            let set: Vec<String> =
                names.iter().zip(&marks).map(|(n, mark)| format!("{n} = {mark}")).collect();
            sql.push_str(" ON DUPLICATE KEY UPDATE ");
            sql.push_str(&set.join(", "));
            params.extend_from_within(..);
        }
        self.exec(schema, &sql, params).await
    }

    async fn delete(&mut self, schema: &TableSchema, before: &[Cell]) -> crate::Result<()> {
        let (condition, params) = row_condition(schema, before);
        let sql = format!("DELETE FROM {} WHERE {condition}", schema.name());
        self.exec(schema, &sql, params).await
    }

    async fn update(
        &mut self,
        schema: &TableSchema,
        before: &[Cell],
        after: &[Cell],
        mode: Mode,
    ) -> crate::Result<()> {
        if mode == Mode::Upsert && schema.key.is_some() {
            if key_values(schema, before) != key_values(schema, after) {
                return self.move_row(schema, before, after).await;
            }
            return self.insert(schema, after, Mode::Upsert).await;
        }
        self.plain_update(schema, before, after).await?;
        self.require_found(mode, schema, "updated", before)
    }

    /// In exact mode the row a source change found must be on the target too: none found means
    /// the target diverged, and going on would hide it. (Safe mode replays changes the target
    /// may already hold, so a missing row is expected there.)
    fn require_found(
        &self,
        mode: Mode,
        schema: &TableSchema,
        change: &'static str,
        before: &[Cell],
    ) -> crate::Result<()> {
        if mode == Mode::Upsert || self.conn.affected_rows() > 0 {
            return Ok(());
        }
        let row = describe_row(schema, before);
        Err(IncrementalError::RowMissing { table: schema.name(), change, row }.into())
    }

    /// Runs `statements` in as few round trips as the packet size allows: several statements
    /// per `COM_QUERY` (multi-statement packets), each packet at most about [`MAX_STATEMENT`]
    /// bytes. A failing statement stops its packet on the server and is reported with its table
    /// (a duplicate key is a conflict); so is a DELETE in exact mode that found fewer rows than
    /// it names, after its packet ran (a packet with such a DELETE must not hold the COMMIT).
    pub async fn exec_packets(&mut self, statements: &[Statement<'_>]) -> crate::Result<()> {
        self.set_foreign_key_checks(true).await?;
        let mut rest = statements;
        while !rest.is_empty() {
            let mut size = 0;
            let count = rest
                .iter()
                .take_while(|s| {
                    size += s.sql.len() + 1;
                    size <= MAX_STATEMENT
                })
                .count()
                .max(1);
            let (packet, after) = rest.split_at(count);
            self.exec_packet(packet).await?;
            rest = after;
        }
        Ok(())
    }

    async fn exec_packet(&mut self, statements: &[Statement<'_>]) -> crate::Result<()> {
        let mut packet = Vec::with_capacity(statements.iter().map(|s| s.sql.len() + 1).sum());
        for (n, statement) in statements.iter().enumerate() {
            if n > 0 {
                packet.push(b';');
            }
            packet.extend_from_slice(statement.sql);
        }
        let mut result = match self.conn.query_iter(packet).await {
            Ok(result) => result,
            Err(e) => return Err(statements[0].error(e)),
        };
        // The server answers each statement in turn. Reading past a statement's OK fetches the
        // next answer, whose error surfaces on the read after it; so a statement's affected
        // rows are taken first and its error is the one that reading past it meets.
        let mut missing = None;
        for statement in statements {
            let affected = result.affected_rows();
            if let Err(e) = result.collect::<mysql_async::Row>().await {
                return Err(statement.error(e));
            }
            if missing.is_none() {
                missing = statement.missing_rows(affected);
            }
        }
        missing.map_or(Ok(()), Err)
    }

    /// A key-changing update in safe mode. The UPDATE itself moves the row and cascades to
    /// child rows as on the source; when the before row is missing (replayed) the after image is
    /// upserted, and when the after key is taken the old row is deleted first.
    async fn move_row(
        &mut self,
        schema: &TableSchema,
        before: &[Cell],
        after: &[Cell],
    ) -> crate::Result<()> {
        match self.plain_update(schema, before, after).await {
            Ok(()) if self.conn.affected_rows() > 0 => return Ok(()),
            Ok(()) => {}
            Err(crate::Error::Incremental(IncrementalError::Conflict { .. })) => {
                self.delete(schema, before).await?;
            }
            Err(e) => return Err(e),
        }
        self.insert(schema, after, Mode::Upsert).await
    }

    async fn plain_update(
        &mut self,
        schema: &TableSchema,
        before: &[Cell],
        after: &[Cell],
    ) -> crate::Result<()> {
        let columns = writable(schema, after);
        let (marks, mut params) = bind(schema, &columns, after);
        let set: Vec<String> = columns
            .iter()
            .zip(marks)
            .map(|(&i, mark)| format!("{} = {mark}", quote_ident(&schema.columns[i].name)))
            .collect();
        let (condition, where_params) = row_condition(schema, before);
        let sql = format!("UPDATE {} SET {} WHERE {condition}", schema.name(), set.join(", "));
        params.extend(where_params);
        self.exec(schema, &sql, params).await
    }

    async fn exec(
        &mut self,
        schema: &TableSchema,
        sql: &str,
        params: Vec<Value>,
    ) -> crate::Result<()> {
        let result = self.conn.exec_drop(sql, Params::Positional(params)).await;
        self.result(schema, result)
    }

    fn result(
        &self,
        schema: &TableSchema,
        result: Result<(), mysql_async::Error>,
    ) -> crate::Result<()> {
        result.map_err(|e| change_error(schema, e))
    }
}

/// A row change's failure: a duplicate key is a conflict.
fn change_error(schema: &TableSchema, error: mysql_async::Error) -> crate::Error {
    match error {
        mysql_async::Error::Server(e) if e.code == 1062 => {
            IncrementalError::Conflict { table: schema.name(), message: e.message }.into()
        }
        source => crate::Error::Sql {
            context: format!("apply a row change to {}", schema.name()),
            source,
        },
    }
}

/// One statement of a multi-statement packet ([`Applier::exec_packets`]).
pub struct Statement<'a> {
    pub sql: &'a [u8],
    /// The table whose rows it changes (none for transaction control and checkpoints).
    pub schema: Option<&'a TableSchema>,
    /// A DELETE in exact mode must find this many rows.
    pub expect_rows: Option<usize>,
    /// What it does, for errors of statements without a table.
    pub what: &'static str,
}

impl<'a> Statement<'a> {
    /// A statement that changes no table's rows: `what` it does names its errors.
    pub fn control(sql: &'a [u8], what: &'static str) -> Self {
        Self { sql, schema: None, expect_rows: None, what }
    }

    fn error(&self, error: mysql_async::Error) -> crate::Error {
        match self.schema {
            Some(schema) => change_error(schema, error),
            None => crate::Error::Sql { context: self.what.into(), source: error },
        }
    }

    fn missing_rows(&self, affected: u64) -> Option<crate::Error> {
        let (Some(rows), Some(schema)) = (self.expect_rows, self.schema) else { return None };
        (affected < rows as u64).then(|| {
            IncrementalError::RowMissing {
                table: schema.name(),
                change: "deleted",
                row: format!("one of {rows} rows ({affected} found)"),
            }
            .into()
        })
    }
}

/// Columns the statement writes: present in the image and not generated.
pub fn writable(schema: &TableSchema, row: &[Cell]) -> Vec<usize> {
    (0..schema.columns.len())
        .filter(|&i| !schema.columns[i].generated && row.get(i).is_some_and(|c| c.is_some()))
        .collect()
}

/// The placeholders and parameters of `columns`' values in `row` (all present).
fn bind(schema: &TableSchema, columns: &[usize], row: &[Cell]) -> (Vec<String>, Vec<Value>) {
    columns
        .iter()
        .filter_map(|&i| Some(bind_value(&schema.columns[i], row.get(i)?.as_ref()?)))
        .unzip()
}

/// A value's placeholder and parameter. Strings of a column in another charset are bytes in that
/// charset: latin1 goes as its UTF-8 text (see [`latin1_text`]), others as hex decoded on the
/// target, since a string parameter is taken as text in
/// the session's charset (utf8mb4) and bytes that are not valid there would become `?`. A JSON
/// column's text is cast to JSON: TiDB and MySQL compare a JSON column with a string as
/// unequal, so the row of a keyless table would not be found by its image.
fn bind_value(column: &ColumnInfo, value: &Value) -> (String, Value) {
    if column.data_type == "json" {
        return ("CAST(? AS JSON)".to_string(), value.clone());
    }
    match (&column.convert_charset, value) {
        (Some(_), Value::Bytes(bytes))
            if let Some(text) = latin1_text(column.convert_charset.as_deref(), bytes) =>
        {
            ("?".to_string(), Value::Bytes(text.into_bytes()))
        }
        (Some(charset), Value::Bytes(bytes)) => {
            let mut hex = Vec::with_capacity(bytes.len() * 2);
            hex.extend(bytes.iter().flat_map(|b| format!("{b:02X}").into_bytes()));
            (format!("CONVERT(UNHEX(?) USING {charset})"), Value::Bytes(hex))
        }
        _ => ("?".to_string(), value.clone()),
    }
}

fn key_values<'a>(schema: &TableSchema, row: &'a [Cell]) -> Vec<&'a Cell> {
    schema.key.iter().flatten().map(|&i| &row[i]).collect()
}

/// The columns that find `row` on the target: its key when the image holds it (true), else
/// every writable column of the image (false).
fn locating_columns(schema: &TableSchema, row: &[Cell]) -> (Vec<usize>, bool) {
    match &schema.key {
        Some(key) if key.iter().all(|&i| row.get(i).is_some_and(|c| c.is_some())) => {
            (key.clone(), true)
        }
        _ => (writable(schema, row), false),
    }
}

/// `id=42` by the row's key, else every value of the image, for error messages.
fn describe_row(schema: &TableSchema, row: &[Cell]) -> String {
    let (columns, _) = locating_columns(schema, row);
    let pairs: Vec<String> = columns
        .iter()
        .filter_map(|&i| {
            let mut text = Vec::new();
            let column = &schema.columns[i];
            literal::push_binlog(
                &mut text,
                row.get(i)?.as_ref()?,
                column.convert_charset.as_deref(),
            );
            Some(format!("{}={}", column.name, String::from_utf8_lossy(&text)))
        })
        .collect();
    pairs.join(", ")
}

/// WHERE condition that finds the row: by key, else by the whole image (`<=>`, `LIMIT 1`).
fn row_condition(schema: &TableSchema, row: &[Cell]) -> (String, Vec<Value>) {
    let (columns, by_key) = locating_columns(schema, row);
    let op = if by_key { "=" } else { "<=>" };
    let (marks, params) = bind(schema, &columns, row);
    let parts: Vec<String> = columns
        .iter()
        .zip(marks)
        .map(|(&i, mark)| format!("{} {op} {mark}", quote_ident(&schema.columns[i].name)))
        .collect();
    let mut condition = if parts.is_empty() { "FALSE".to_string() } else { parts.join(" AND ") };
    if op == "<=>" {
        condition.push_str(" LIMIT 1");
    }
    (condition, params)
}
