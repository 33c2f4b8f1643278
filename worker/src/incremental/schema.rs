//! Schema tracker: column names, unsignedness, charsets, the row key, the unique keys and the
//! foreign keys of each table, read from the target's information_schema at a table's first use
//! and dropped after every applied DDL.
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
    /// How values compare in keys: text columns ignore trailing spaces (PAD SPACE) and, unless
    /// the collation is binary or case-sensitive, case and Latin accents.
    pub fold: Fold,
}

#[cfg(test)]
impl ColumnInfo {
    /// A plain VARCHAR column comparing as `fold` says, for unit tests.
    pub fn varchar(name: &str, fold: Fold) -> Self {
        Self {
            name: name.into(),
            data_type: "varchar".into(),
            unsigned: false,
            generated: false,
            convert_charset: None,
            fold,
        }
    }
}

/// How a column's values are normalized before they are compared as keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fold {
    /// Bytes as they are: numbers, dates, binary strings.
    #[default]
    Exact,
    /// Trailing spaces ignored.
    Trim,
    /// Trailing spaces, case and Latin accents ignored (see docs/incremental.md).
    TrimLower,
}

impl Fold {
    fn of(collation: Option<&str>) -> Fold {
        let Some(collation) = collation.map(str::to_ascii_lowercase) else { return Fold::Exact };
        if collation == "binary" {
            Fold::Exact
        } else if collation.ends_with("_bin") || collation.ends_with("_cs") {
            Fold::Trim
        } else {
            Fold::TrimLower
        }
    }
}

/// A target table as the applier needs it.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnInfo>,
    /// Column indexes of the primary key, else of a unique key over NOT NULL columns.
    pub key: Option<Vec<usize>>,
    /// Column indexes of every unique key (primary included), whole columns only.
    pub unique_keys: Vec<Vec<usize>>,
    /// The table has foreign keys or is referenced by one: its changes keep their order with
    /// those of every other such table (cascades must end the same).
    pub foreign: bool,
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

type ColumnRow = (String, String, String, String, Option<String>, String, Option<String>);

async fn load(conn: &mut Conn, database: &str, table: &str) -> crate::Result<Option<TableSchema>> {
    let context =
        || format!("read the columns of {} on the target", crate::sql::qualified(database, table));
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA, CHARACTER_SET_NAME, IS_NULLABLE, \
             COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
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
        .map(|(name, data_type, column_type, extra, charset, is_nullable, collation)| {
            nullable.push(is_nullable == "YES");
            ColumnInfo {
                name,
                data_type: data_type.to_ascii_lowercase(),
                unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                generated: crate::flavor::is_generated_column(&extra),
                convert_charset: charset.filter(|c| !is_utf8_or_binary(c)),
                fold: Fold::of(collation.as_deref()),
            }
        })
        .collect();
    let indexes = load_unique_keys(conn, database, table, &columns).await?;
    let key = row_key(&indexes, &nullable);
    let unique_keys = indexes.into_iter().filter_map(|cols| cols.into_iter().collect()).collect();
    let foreign = has_foreign_keys(conn, database, table).await?;
    Ok(Some(TableSchema {
        database: database.into(),
        table: table.into(),
        columns,
        key,
        unique_keys,
        foreign,
    }))
}

fn is_utf8_or_binary(charset: &str) -> bool {
    matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf8mb4" | "utf8mb3" | "utf8" | "binary" | "ascii"
    )
}

/// Every unique index, primary first: per column its index in `columns`, `None` when the index
/// covers only a prefix of the column (then it cannot serve as a whole-value key).
async fn load_unique_keys(
    conn: &mut Conn,
    database: &str,
    table: &str,
    columns: &[ColumnInfo],
) -> crate::Result<Vec<Vec<Option<usize>>>> {
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
        let whole = position.filter(|_| sub_part.is_none());
        match indexes.last_mut() {
            Some((name, cols)) if *name == index => cols.push(whole),
            _ => indexes.push((index, vec![whole])),
        }
    }
    Ok(indexes.into_iter().map(|(_, cols)| cols).collect())
}

/// The primary key, else the first unique key whose columns are all NOT NULL and whole.
fn row_key(indexes: &[Vec<Option<usize>>], nullable: &[bool]) -> Option<Vec<usize>> {
    indexes.iter().find_map(|cols| {
        cols.iter().map(|c| c.filter(|&p| !nullable[p])).collect::<Option<Vec<_>>>()
    })
}

/// Whether the table has a foreign key or is referenced by one.
async fn has_foreign_keys(conn: &mut Conn, database: &str, table: &str) -> crate::Result<bool> {
    let count: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) \
             OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)",
            (database, table, database, table),
        )
        .await
        .sql(format!(
            "read the foreign keys of {} on the target",
            crate::sql::qualified(database, table)
        ))?;
    Ok(count.unwrap_or(0) > 0)
}
