//! Which tables and views the job copies, read from the source's information_schema.

use std::collections::HashSet;

use ferry_crds::selection::Routed;
use ferry_crds::{SYSTEM_SCHEMAS, Selection, is_system_schema};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::FullError;
use crate::error::SqlContext;
use crate::incremental::programs::{ProgramKind, view_refusal};
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
    /// Where its rows land on the target (`spec.routes`; its own names when not routed).
    pub target: Routed,
    /// Other source tables (shards) land in the same target table.
    pub merged: bool,
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

    /// The target table, quoted.
    pub fn target_qualified(&self) -> String {
        crate::sql::qualified(&self.target.database, &self.target.table)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A selected database and the target database it lands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub source: String,
    pub target: String,
}

/// A view of the source and the target database it is created in (its database's route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub db: String,
    pub name: String,
    pub target_db: String,
}

/// A stored procedure or function, copied when `spec.objects.routines` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routine {
    pub db: String,
    pub name: String,
    pub kind: ProgramKind,
}

/// What the job copies: databases, base tables, views and (on request) routines.
#[derive(Debug, Default)]
pub struct Objects {
    /// Each target database once, with the source database whose definition it takes.
    pub databases: Vec<Database>,
    pub tables: Vec<Table>,
    pub views: Vec<View>,
    pub routines: Vec<Routine>,
}

/// Schema, name, type, estimated rows and bytes, from information_schema.TABLES.
type TableRow = (String, String, String, Option<u64>, Option<u64>);

/// Reads the selected objects; a database or table the selection names exactly that does not
/// exist is an error (a pattern may match nothing).
pub async fn read(conn: &mut Conn, selection: &Selection) -> crate::Result<Objects> {
    let user_schemas = format!(
        "NOT IN ({})",
        SYSTEM_SCHEMAS.iter().map(|s| quote_str(s)).collect::<Vec<_>>().join(", ")
    );
    let rows: Vec<TableRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, DATA_LENGTH \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA {user_schemas} \
             ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))
        .await
        .sql("list the source's tables")?;
    let schemas: Vec<String> = conn
        .query(format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME {user_schemas} ORDER BY SCHEMA_NAME"
        ))
        .await
        .sql("list the source's databases")?;
    check_selection_exists(selection, &schemas, &rows)?;
    let rows: Vec<TableRow> = rows.into_iter().filter(|r| selection.table(&r.0, &r.1)).collect();
    let merged = merged_targets(selection, &rows);
    let mut objects = Objects::default();
    for (db, name, kind, table_rows, data_length) in rows {
        if kind == "VIEW" {
            objects.views.push(view(conn, selection, db, name).await?);
        } else if kind == "BASE TABLE" || kind == "SYSTEM VERSIONED" {
            let (columns, not_null) = columns(conn, &db, &name).await?;
            let key = key(conn, &db, &name, &not_null).await?;
            let target = selection.route(&db, &name);
            objects.tables.push(Table {
                merged: merged.contains(&target),
                target,
                db,
                name,
                columns,
                key,
                estimated_rows: table_rows.unwrap_or(0),
                estimated_bytes: data_length.unwrap_or(0),
            });
        }
    }
    objects.databases = target_databases(selection, &schemas, &objects.tables);
    if selection.objects().routines {
        objects.routines = routines(conn, selection, &user_schemas).await?;
    }
    Ok(objects)
}

/// A selected view, unless `spec.routes` would make it read other objects on the target.
async fn view(
    conn: &mut Conn,
    selection: &Selection,
    db: String,
    name: String,
) -> crate::Result<View> {
    refuse_routed_view(selection, &db, &name)?;
    if selection.has_routes() {
        let create = super::schema::show_create_view(conn, &db, &name).await?;
        if let Some(why) = view_refusal(selection, &db, &create) {
            return Err(FullError::Selection(why).into());
        }
    }
    Ok(View { target_db: selection.route(&db, &name).database, db, name })
}

/// The procedures and functions of the covered databases; one in a database `spec.routes`
/// renames is refused (its body names objects by their source names).
async fn routines(
    conn: &mut Conn,
    selection: &Selection,
    user_schemas: &str,
) -> crate::Result<Vec<Routine>> {
    let rows: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA {user_schemas} AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION') \
             ORDER BY ROUTINE_SCHEMA, ROUTINE_TYPE, ROUTINE_NAME"
        ))
        .await
        .sql("list the source's procedures and functions")?;
    let mut routines = Vec::new();
    for (db, name, kind) in rows {
        if !selection.may_cover_database(&db) {
            continue;
        }
        let kind = if kind == "PROCEDURE" { ProgramKind::Procedure } else { ProgramKind::Function };
        let to = selection.route_database(&db);
        if to != db {
            return Err(FullError::Selection(format!(
                "{} `{db}`.`{name}` is in database `{db}`, which spec.routes renames to `{to}`, \
                 and Ferry does not rewrite the bodies of routines: unset \
                 spec.objects.routines and create the routines on the target yourself",
                kind.name()
            ))
            .into());
        }
        routines.push(Routine { db, name, kind });
    }
    Ok(routines)
}

/// Target tables that more than one selected source table lands in.
/// Reads `table`'s columns and key again, as they are on the source now (a background copy reads
/// each chunk with the columns of its own snapshot's time).
pub async fn refresh(conn: &mut Conn, table: &mut Table) -> crate::Result<()> {
    let (columns, not_null) = columns(conn, &table.db, &table.name).await?;
    table.key = key(conn, &table.db, &table.name, &not_null).await?;
    table.columns = columns;
    Ok(())
}

fn merged_targets(selection: &Selection, rows: &[TableRow]) -> HashSet<Routed> {
    let mut seen = HashSet::new();
    let mut merged = HashSet::new();
    for (db, name, kind, ..) in rows {
        let target = selection.route(db, name);
        if kind != "VIEW" && !seen.insert(target.clone()) {
            merged.insert(target);
        }
    }
    merged
}

/// The databases to create on the target: those of the selected databases and tables, under
/// their routed names, each once (the first source database gives its definition).
fn target_databases(selection: &Selection, schemas: &[String], tables: &[Table]) -> Vec<Database> {
    let whole = schemas
        .iter()
        .filter(|db| selection.database(db))
        .map(|db| Database { source: db.clone(), target: selection.route_database(db) });
    let of_tables =
        tables.iter().map(|t| Database { source: t.db.clone(), target: t.target.database.clone() });
    let mut databases: Vec<Database> = Vec::new();
    for database in whole.chain(of_tables) {
        if !databases.iter().any(|d| d.target == database.target) {
            databases.push(database);
        }
    }
    databases
}

/// A view keeps its name: a route may move it to another database whole, but a route renaming
/// it or merging it with others' (shards) is refused, as Ferry does not rewrite view statements.
fn refuse_routed_view(selection: &Selection, db: &str, name: &str) -> Result<(), FullError> {
    if selection.route(db, name).table == name && !selection.is_merged(db, name) {
        return Ok(());
    }
    Err(FullError::Selection(format!(
        "view `{db}`.`{name}` is renamed or merged by spec.routes, but Ferry does not rewrite \
         view definitions: add {{database: {db}, table: {name}}} to spec.objects.exclude and \
         create the view on the target yourself"
    )))
}

fn check_selection_exists(
    selection: &Selection,
    schemas: &[String],
    rows: &[TableRow],
) -> Result<(), FullError> {
    let exact_tables = selection.exact_tables();
    let databases = selection.exact_databases().into_iter().chain(exact_tables.iter().map(|t| t.0));
    for db in databases {
        if is_system_schema(db) {
            return Err(FullError::Selection(format!(
                "database `{db}` is a system schema, which is never migrated: remove it from spec.objects"
            )));
        }
        if !schemas.iter().any(|s| selection.same_name(s, db)) {
            return Err(FullError::Selection(format!(
                "database `{db}` does not exist on the source: fix spec.objects"
            )));
        }
    }
    for (database, table) in exact_tables {
        let found = |(db, name, ..): &TableRow| {
            selection.same_name(db, database) && selection.same_name(name, table)
        };
        if !rows.iter().any(found) {
            return Err(FullError::Selection(format!(
                "table `{database}`.`{table}` does not exist on the source: fix spec.objects"
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
