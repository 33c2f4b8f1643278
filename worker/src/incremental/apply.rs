//! Applies row changes to the target, one row per statement: the path of tables whose changes
//! cannot be batched (no key, foreign keys, partial row images; see [`super::batch`]).
//!
//! Rows go by primary key, else by a unique key over NOT NULL columns, else by the full row image
//! with `LIMIT 1` (so a duplicate row is changed once). In safe mode and when replacing conflicts,
//! INSERT becomes an upsert and an UPDATE that moves a key is tried as it is, then as an upsert
//! of the after image; upserts rather than REPLACE or DELETE + INSERT keep ON DELETE CASCADE
//! foreign keys from deleting child rows.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};

use super::IncrementalError;
use super::batch::Op;
use super::event::{Cell, RowKind};
use super::schema::{ColumnInfo, TableSchema};
use crate::error::SqlContext;
use crate::sql::quote_ident;

/// How INSERT and UPDATE are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain statements: a duplicate key is a conflict that stops the job.
    Exact,
    /// Upserts: safe mode, or the restart request that replaces conflicting rows.
    Upsert,
}

/// A target connection that applies changes.
pub struct Applier {
    pub conn: Conn,
}

impl Applier {
    /// Prepares the session: UTC (TIMESTAMP values arrive as UTC instants) and the strict SQL
    /// mode that stores what the source stored or fails (see `connect::TARGET_SQL_MODE`).
    /// On MariaDB and MySQL, READ COMMITTED takes no gap locks, so workers changing disjoint rows
    /// do not block each other on the gaps between them.
    pub async fn new(mut conn: Conn) -> crate::Result<Self> {
        conn.query_drop(format!(
            "SET SESSION time_zone = '+00:00', SESSION sql_mode = '{}'",
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
        Ok(Self { conn })
    }

    /// Applies one row change.
    pub async fn apply_row(&mut self, op: &Op, mode: Mode) -> crate::Result<()> {
        let schema = &op.schema;
        match (op.kind, &op.before, &op.after) {
            (RowKind::Insert, _, Some(after)) => self.insert(schema, after, mode).await,
            (RowKind::Delete, Some(before), _) => self.delete(schema, before).await,
            (RowKind::Update, Some(before), Some(after)) => {
                self.update(schema, before, after, mode).await
            }
            _ => Err(IncrementalError::BadRowImage { table: schema.name() }.into()),
        }
    }

    /// Runs one multi-row statement of [`super::batch`].
    pub async fn exec_text(&mut self, schema: &TableSchema, sql: &[u8]) -> crate::Result<()> {
        let result = self.conn.query_drop(sql).await;
        self.result(schema, result)
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
        let marks: Vec<String> = columns.iter().map(|&i| placeholder(&schema.columns[i])).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            schema.name(),
            names.join(", "),
            marks.join(", ")
        );
        if mode == Mode::Upsert && !names.is_empty() {
            let set: Vec<String> = names.iter().map(|n| format!("{n} = VALUES({n})")).collect();
            sql.push_str(" ON DUPLICATE KEY UPDATE ");
            sql.push_str(&set.join(", "));
        }
        let params = columns.iter().filter_map(|&i| row[i].clone()).collect();
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
        self.plain_update(schema, before, after).await
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
        let set: Vec<String> = columns
            .iter()
            .map(|&i| {
                format!(
                    "{} = {}",
                    quote_ident(&schema.columns[i].name),
                    placeholder(&schema.columns[i])
                )
            })
            .collect();
        let (condition, where_params) = row_condition(schema, before);
        let sql = format!("UPDATE {} SET {} WHERE {condition}", schema.name(), set.join(", "));
        let mut params: Vec<Value> = columns.iter().filter_map(|&i| after[i].clone()).collect();
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
        match result {
            Ok(()) => Ok(()),
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
                Err(IncrementalError::Conflict { table: schema.name(), message: e.message }.into())
            }
            Err(e) => Err(e).sql(format!("apply a row change to {}", schema.name())),
        }
    }
}

/// Columns the statement writes: present in the image and not generated.
pub fn writable(schema: &TableSchema, row: &[Cell]) -> Vec<usize> {
    (0..schema.columns.len())
        .filter(|&i| !schema.columns[i].generated && row.get(i).is_some_and(|c| c.is_some()))
        .collect()
}

fn placeholder(column: &ColumnInfo) -> String {
    match &column.convert_charset {
        // Bytes in the column's own charset: pass them through unconverted.
        Some(charset) => format!("CONVERT(CAST(? AS BINARY) USING {charset})"),
        None => "?".to_string(),
    }
}

fn key_values<'a>(schema: &TableSchema, row: &'a [Cell]) -> Vec<&'a Cell> {
    schema.key.iter().flatten().map(|&i| &row[i]).collect()
}

/// WHERE condition that finds the row: by key, else by the whole image (`<=>`, `LIMIT 1`).
fn row_condition(schema: &TableSchema, row: &[Cell]) -> (String, Vec<Value>) {
    let (columns, op): (Vec<usize>, &str) = match &schema.key {
        Some(key) if key.iter().all(|&i| row.get(i).is_some_and(|c| c.is_some())) => {
            (key.clone(), "=")
        }
        _ => (writable(schema, row), "<=>"),
    };
    let parts: Vec<String> = columns
        .iter()
        .map(|&i| {
            format!(
                "{} {op} {}",
                quote_ident(&schema.columns[i].name),
                placeholder(&schema.columns[i])
            )
        })
        .collect();
    let params = columns.iter().filter_map(|&i| row[i].clone()).collect();
    let mut condition = if parts.is_empty() { "FALSE".to_string() } else { parts.join(" AND ") };
    if op == "<=>" {
        condition.push_str(" LIMIT 1");
    }
    (condition, params)
}

/// Values as the target must get them: unsigned integers the binlog gave as negative numbers
/// (no signedness in the table map) are reinterpreted at the column's width.
pub fn target_values(schema: &Arc<TableSchema>, row: Vec<Cell>) -> Vec<Cell> {
    row.into_iter()
        .zip(&schema.columns)
        .map(|(cell, column)| cell.map(|v| unsigned_fix(column, v)))
        .collect()
}

fn unsigned_fix(column: &ColumnInfo, value: Value) -> Value {
    let Value::Int(n) = value else { return value };
    if !column.unsigned || n >= 0 {
        return value;
    }
    let bits = match column.data_type.as_str() {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        _ => 64,
    };
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    Value::UInt((n as u64) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(data_type: &str, unsigned: bool) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            data_type: data_type.into(),
            unsigned,
            generated: false,
            convert_charset: None,
            fold: Default::default(),
        }
    }

    #[test]
    fn unsigned_values_get_their_width_back() {
        assert_eq!(unsigned_fix(&column("bigint", true), Value::Int(-1)), Value::UInt(u64::MAX));
        assert_eq!(unsigned_fix(&column("tinyint", true), Value::Int(-1)), Value::UInt(255));
        assert_eq!(
            unsigned_fix(&column("mediumint", true), Value::Int(-2)),
            Value::UInt(16_777_214)
        );
        assert_eq!(unsigned_fix(&column("int", false), Value::Int(-1)), Value::Int(-1));
    }
}
