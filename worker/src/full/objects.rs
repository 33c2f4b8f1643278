//! Which tables and views the job copies, read from the source's information_schema.

use ferry_crds::SYSTEM_SCHEMAS;
use ferry_crds::job::ObjectSelection;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::FullError;
use crate::error::SqlContext;
use crate::meta::META_SCHEMA;
use crate::sql::literal::Render;
use crate::sql::quote_str;

/// A column the copy writes (generated columns are left to the target to compute).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub render: Render,
}

/// A base table of the source.
#[derive(Debug, Clone)]
pub struct Table {
    pub db: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// Primary key, else a unique key whose columns are all NOT NULL; empty if neither.
    pub key: Vec<String>,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
}

impl Table {
    pub fn qualified(&self) -> String {
        crate::sql::qualified(&self.db, &self.name)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// What the job copies: databases, base tables and views (`db`, `name`).
#[derive(Debug, Default)]
pub struct Objects {
    pub databases: Vec<String>,
    pub tables: Vec<Table>,
    pub views: Vec<(String, String)>,
}

/// Schema, name, type, estimated rows and bytes, from information_schema.TABLES.
type TableRow = (String, String, String, Option<u64>, Option<u64>);

/// Reads the selected objects; a selected database or table that does not exist is an error.
pub async fn read(conn: &mut Conn, selection: Option<&ObjectSelection>) -> crate::Result<Objects> {
    let condition = schema_condition(selection);
    let rows: Vec<TableRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, DATA_LENGTH \
             FROM information_schema.TABLES WHERE {condition} ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))
        .await
        .sql("list the source's tables")?;
    let databases: Vec<String> = conn
        .query(format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE {} ORDER BY SCHEMA_NAME",
            schema_condition(selection).replace("TABLE_SCHEMA", "SCHEMA_NAME")
        ))
        .await
        .sql("list the source's databases")?;
    check_selection_exists(selection, &databases, &rows)?;
    let mut objects = Objects { databases, ..Objects::default() };
    for (db, name, kind, table_rows, data_length) in rows {
        if !selected(selection, &db, &name) {
            continue;
        }
        if kind == "VIEW" {
            objects.views.push((db, name));
        } else if kind == "BASE TABLE" || kind == "SYSTEM VERSIONED" {
            let (columns, not_null) = columns(conn, &db, &name).await?;
            let key = key(conn, &db, &name, &not_null).await?;
            objects.tables.push(Table {
                db,
                name,
                columns,
                key,
                estimated_rows: table_rows.unwrap_or(0),
                estimated_bytes: data_length.unwrap_or(0),
            });
        }
    }
    Ok(objects)
}

fn everything(selection: Option<&ObjectSelection>) -> bool {
    selection.is_none_or(|s| s.databases.is_empty() && s.tables.is_empty())
}

fn schema_condition(selection: Option<&ObjectSelection>) -> String {
    let excluded = || SYSTEM_SCHEMAS.iter().copied().chain([META_SCHEMA]).map(quote_str);
    let names: Vec<String> = match selection {
        Some(s) if !everything(selection) => s
            .databases
            .iter()
            .chain(s.tables.iter().map(|t| &t.database))
            .filter(|d| !SYSTEM_SCHEMAS.contains(&d.as_str()))
            .map(|d| quote_str(d))
            .collect(),
        _ => return format!("TABLE_SCHEMA NOT IN ({})", excluded().collect::<Vec<_>>().join(", ")),
    };
    if names.is_empty() {
        return "FALSE".into();
    }
    format!("TABLE_SCHEMA IN ({})", names.join(", "))
}

fn selected(selection: Option<&ObjectSelection>, db: &str, table: &str) -> bool {
    match selection {
        Some(s) if !everything(selection) => {
            s.databases.iter().any(|d| d == db)
                || s.tables.iter().any(|t| t.database == db && t.table == table)
        }
        _ => true,
    }
}

fn check_selection_exists(
    selection: Option<&ObjectSelection>,
    databases: &[String],
    rows: &[TableRow],
) -> Result<(), FullError> {
    let Some(s) = selection else { return Ok(()) };
    for db in s.databases.iter().chain(s.tables.iter().map(|t| &t.database)) {
        if SYSTEM_SCHEMAS.contains(&db.as_str()) {
            return Err(FullError::Selection(format!(
                "database `{db}` is a system schema, which is never migrated: remove it from spec.objects"
            )));
        }
        if !databases.contains(db) {
            return Err(FullError::Selection(format!(
                "database `{db}` does not exist on the source: fix spec.objects"
            )));
        }
    }
    for t in &s.tables {
        if !rows.iter().any(|(db, name, ..)| *db == t.database && *name == t.table) {
            return Err(FullError::Selection(format!(
                "table `{}`.`{}` does not exist on the source: fix spec.objects",
                t.database, t.table
            )));
        }
    }
    Ok(())
}

/// The copied columns, and the names of the NOT NULL ones (generated columns included).
async fn columns(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> crate::Result<(Vec<Column>, Vec<String>)> {
    let rows: Vec<(String, String, Option<String>, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, EXTRA, IS_NULLABLE \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .sql(format!("read the columns of `{db}`.`{table}` on the source"))?;
    let not_null = rows.iter().filter(|r| r.4 == "NO").map(|r| r.0.clone()).collect();
    let copied = rows
        .into_iter()
        .filter(|(.., extra, _)| !crate::flavor::is_generated_column(extra))
        .map(|(name, data_type, charset, ..)| {
            let data_type = data_type.to_ascii_lowercase();
            let render = render_for(&data_type, charset.as_deref());
            Column { name, data_type, render }
        })
        .collect();
    Ok((copied, not_null))
}

/// How values of a type are written; `charset` is NULL for non-text types.
pub fn render_for(data_type: &str, charset: Option<&str>) -> Render {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
        | "numeric" | "double" | "float" | "real" | "year" => Render::Raw,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit"
        | "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => Render::Hex,
        _ if charset == Some("binary") => Render::Hex,
        _ => Render::Quoted,
    }
}

/// The primary key, else the first unique key whose columns are all NOT NULL and whole.
async fn key(
    conn: &mut Conn,
    db: &str,
    table: &str,
    not_null: &[String],
) -> crate::Result<Vec<String>> {
    let rows: Vec<(String, String, Option<u64>)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .sql(format!("read the keys of `{db}`.`{table}` on the source"))?;
    let mut keys: Vec<(String, Vec<String>, bool)> = Vec::new();
    for (index, column, sub_part) in rows {
        let usable = sub_part.is_none() && not_null.contains(&column);
        match keys.last_mut() {
            Some((name, cols, ok)) if *name == index => {
                cols.push(column);
                *ok &= usable;
            }
            _ => keys.push((index, vec![column], usable)),
        }
    }
    Ok(keys.into_iter().find(|(_, _, ok)| *ok).map(|(_, cols, _)| cols).unwrap_or_default())
}
