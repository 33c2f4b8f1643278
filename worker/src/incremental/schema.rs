//! Schema tracker: column names, unsignedness, charsets and the row key of each table, read from
//! the target's information_schema at a table's first use and dropped after every applied DDL.
//! The target's schema follows the stream (DDL is applied in order), so each event is decoded
//! with the schema of its own time.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::SqlContext;

/// One column of a target table.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    /// information_schema DATA_TYPE: `int`, `varchar`, ...
    pub data_type: String,
    pub unsigned: bool,
    /// Generated columns are computed by the target, never written.
    pub generated: bool,
    /// Character set of a string column, when not UTF-8 or binary (then it needs converting).
    pub convert_charset: Option<String>,
}

/// A target table as the applier needs it.
#[derive(Debug)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnInfo>,
    /// Column indexes of the primary key, else of a unique key over NOT NULL columns.
    pub key: Option<Vec<usize>>,
}

impl TableSchema {
    /// `db`.`table`.
    pub fn name(&self) -> String {
        crate::sql::qualified(&self.database, &self.table)
    }
}

/// Table schemas by (database, table).
#[derive(Default)]
pub struct SchemaCache {
    tables: HashMap<(String, String), Arc<TableSchema>>,
}

impl SchemaCache {
    /// Forgets everything: called after a DDL statement is applied.
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    /// The schema of a table, read from the target at first use; `None` if the table is missing.
    pub async fn get(
        &mut self,
        conn: &mut Conn,
        database: &str,
        table: &str,
    ) -> crate::Result<Option<Arc<TableSchema>>> {
        let key = (database.to_string(), table.to_string());
        if let Some(schema) = self.tables.get(&key) {
            return Ok(Some(schema.clone()));
        }
        let Some(schema) = load(conn, database, table).await? else { return Ok(None) };
        let schema = Arc::new(schema);
        self.tables.insert(key, schema.clone());
        Ok(Some(schema))
    }
}

type ColumnRow = (String, String, String, String, Option<String>, String);

async fn load(conn: &mut Conn, database: &str, table: &str) -> crate::Result<Option<TableSchema>> {
    let context =
        || format!("read the columns of {} on the target", crate::sql::qualified(database, table));
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA, CHARACTER_SET_NAME, IS_NULLABLE \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .sql(context())?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut nullable = Vec::with_capacity(rows.len());
    let columns: Vec<ColumnInfo> = rows
        .into_iter()
        .map(|(name, data_type, column_type, extra, charset, is_nullable)| {
            nullable.push(is_nullable == "YES");
            let extra = extra.to_ascii_uppercase();
            ColumnInfo {
                name,
                data_type: data_type.to_ascii_lowercase(),
                unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                generated: extra.contains("GENERATED")
                    || extra.contains("VIRTUAL")
                    || extra.contains("PERSISTENT")
                    || extra.contains("STORED"),
                convert_charset: charset.filter(|c| !is_utf8_or_binary(c)),
            }
        })
        .collect();
    let key = load_key(conn, database, table, &columns, &nullable).await?;
    Ok(Some(TableSchema { database: database.into(), table: table.into(), columns, key }))
}

fn is_utf8_or_binary(charset: &str) -> bool {
    matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf8mb4" | "utf8mb3" | "utf8" | "binary" | "ascii"
    )
}

/// The primary key, else the first unique key whose columns are all NOT NULL and whole.
async fn load_key(
    conn: &mut Conn,
    database: &str,
    table: &str,
    columns: &[ColumnInfo],
    nullable: &[bool],
) -> crate::Result<Option<Vec<usize>>> {
    let rows: Vec<(String, String, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
            (database, table),
        )
        .await
        .sql(format!(
            "read the keys of {} on the target",
            crate::sql::qualified(database, table)
        ))?;
    let mut indexes: Vec<(String, Vec<Option<usize>>)> = Vec::new();
    for (index, column, sub_part) in rows {
        let position = columns.iter().position(|c| c.name.eq_ignore_ascii_case(&column));
        let usable = position.filter(|&p| !nullable[p] && sub_part.is_none());
        match indexes.last_mut() {
            Some((name, cols)) if *name == index => cols.push(usable),
            _ => indexes.push((index, vec![usable])),
        }
    }
    Ok(indexes.into_iter().find_map(|(_, cols)| cols.into_iter().collect::<Option<Vec<_>>>()))
}
