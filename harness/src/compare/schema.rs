//! The schema of a database as sorted lines of facts (one per table, column, index part, foreign
//! key part, check and view), read from information_schema and put in the form the target must
//! show (see [`super::rewrites`]), so two schemas compare as two sorted lists.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::rewrites as rw;
use super::{Flavour, literal};
use crate::Result;

/// Which side a schema is read from, and the pair of server kinds being compared.
#[derive(Debug, Clone, Copy)]
pub struct Sides {
    pub source: Flavour,
    pub target: Flavour,
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Sides {
    fn flavour(&self, side: Side) -> Flavour {
        match side {
            Side::Source => self.source,
            Side::Target => self.target,
        }
    }
}

/// Every schema fact of `database` on one side, sorted.
pub async fn facts(
    conn: &mut Conn,
    database: &str,
    sides: Sides,
    side: Side,
) -> Result<Vec<String>> {
    let mut lines = tables(conn, database, sides).await?;
    lines.extend(columns(conn, database, sides, side).await?);
    lines.extend(indexes(conn, database).await?);
    lines.extend(foreign_keys(conn, database, sides).await?);
    if rw::compares_checks(sides.source, sides.target) {
        lines.extend(checks(conn, database).await?);
    }
    lines.extend(views(conn, database, sides).await?);
    lines.sort();
    Ok(lines)
}

type Text = Option<String>;

fn show(value: &Text) -> &str {
    value.as_deref().unwrap_or("NULL")
}

async fn tables(conn: &mut Conn, database: &str, sides: Sides) -> Result<Vec<String>> {
    let rows: Vec<(String, String, Text)> = conn
        .query(format!(
            "SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, kind, engine)| {
            let engine = if rw::compares_engine(sides.target) { show(&engine) } else { "-" };
            format!("table {name}: {kind}, engine {engine}")
        })
        .collect())
}

/// One column's definition as information_schema.COLUMNS shows it.
struct Column {
    table: String,
    ordinal: String,
    name: String,
    column_type: String,
    charset: Text,
    collation: Text,
    nullable: String,
    default: Text,
    extra: String,
    generation: Text,
}

async fn columns(conn: &mut Conn, database: &str, sides: Sides, side: Side) -> Result<Vec<String>> {
    let rows: Vec<mysql_async::Row> = conn
        .query(format!(
            "SELECT TABLE_NAME, CAST(ORDINAL_POSITION AS CHAR), COLUMN_NAME, COLUMN_TYPE, \
             CHARACTER_SET_NAME, COLLATION_NAME, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
             GENERATION_EXPRESSION FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    let views: Vec<String> = conn
        .query(format!(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    let mut lines = Vec::new();
    for mut row in rows {
        let mut text = |i: usize| -> Text { row.take::<Option<String>, _>(i).flatten() };
        let column = Column {
            table: text(0).unwrap_or_default(),
            ordinal: text(1).unwrap_or_default(),
            name: text(2).unwrap_or_default(),
            column_type: text(3).unwrap_or_default(),
            charset: text(4),
            collation: text(5),
            nullable: text(6).unwrap_or_default(),
            default: text(7),
            extra: text(8).unwrap_or_default(),
            // MariaDB shows NULL, MySQL and TiDB an empty text, for a column that is not generated.
            generation: text(9).filter(|g| !g.is_empty()),
        };
        lines.push(if views.contains(&column.table) && !rw::compares_view_column_details(sides) {
            view_column_line(column, sides)
        } else {
            column_line(column, database, sides, side)
        });
    }
    Ok(lines)
}

/// A column as the target must show it: the source's definition after the copy's rewrites, both
/// sides in canonical print form.
fn column_line(c: Column, database: &str, sides: Sides, side: Side) -> String {
    let flavour = sides.flavour(side);
    let (charset, collation) = match side {
        Side::Source if rw::mariadb_json(&c.column_type, sides.source, sides.target) => {
            let (charset, collation) = rw::MARIADB_JSON_CHARSET;
            (Some(charset.to_string()), Some(collation.to_string()))
        }
        Side::Source => (
            c.charset.map(|s| rw::expected_charset(&s, sides.target)),
            c.collation.map(|s| rw::expected_collation(&s, sides.target)),
        ),
        Side::Target => (c.charset, c.collation),
    };
    let column_type = rw::expected_column_type(&c.column_type, sides.source, sides.target);
    let default = rw::canonical_default(c.default.as_deref(), flavour);
    let extra = if sides.source == sides.target { c.extra } else { rw::canonical_extra(&c.extra) };
    let generation =
        c.generation.map(|g| rw::canonical_text(&g, database, sides.source, sides.target));
    format!(
        "column {}.{} #{}: {column_type}, charset {}, collation {}, nullable {}, default {}, \
         extra {extra:?}, generated as {}",
        c.table,
        c.name,
        c.ordinal,
        show(&charset),
        show(&collation),
        c.nullable,
        default.map_or("none".into(), |d| format!("{d:?}")),
        show(&generation),
    )
}

/// A view's column where only its name, position and type are compared (see
/// [`rw::compares_view_column_details`]).
fn view_column_line(c: Column, sides: Sides) -> String {
    let column_type = rw::expected_column_type(&c.column_type, sides.source, sides.target);
    let column_type = if sides.source == sides.target {
        column_type
    } else {
        rw::canonical_view_column_type(&column_type)
    };
    format!("column {}.{} #{}: {column_type} (a view's)", c.table, c.name, c.ordinal)
}

async fn indexes(conn: &mut Conn, database: &str) -> Result<Vec<String>> {
    let rows: Vec<(String, String, String, String, Text, Text)> = conn
        .query(format!(
            "SELECT TABLE_NAME, INDEX_NAME, CAST(NON_UNIQUE AS CHAR), CAST(SEQ_IN_INDEX AS CHAR), \
             COLUMN_NAME, CAST(SUB_PART AS CHAR) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(table, index, non_unique, seq, column, sub_part)| {
            let unique = if non_unique == "0" { "unique" } else { "non-unique" };
            format!(
                "index {table}.{index} ({unique}) part {seq}: {} prefix {}",
                show(&column),
                show(&sub_part)
            )
        })
        .collect())
}

/// Table, constraint, position, column, referenced database, table and column, update and
/// delete rules.
type ForeignKeyPart = (String, String, String, String, Text, Text, Text, String, String);

async fn foreign_keys(conn: &mut Conn, database: &str, sides: Sides) -> Result<Vec<String>> {
    let rows: Vec<ForeignKeyPart> = conn
        .query(format!(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, CAST(k.ORDINAL_POSITION AS CHAR), \
             k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, \
             k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME \
              AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
             WHERE k.TABLE_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(table, name, seq, column, ref_db, ref_table, ref_column, on_update, on_delete)| {
            let on_update = rw::canonical_fk_rule(on_update, sides.source, sides.target);
            let on_delete = rw::canonical_fk_rule(on_delete, sides.source, sides.target);
            format!(
                "foreign key {table}.{name} part {seq}: {column} references {}.{}.{} \
                 on update {on_update} on delete {on_delete}",
                show(&ref_db),
                show(&ref_table),
                show(&ref_column)
            )
        })
        .collect())
}

async fn checks(conn: &mut Conn, database: &str) -> Result<Vec<String>> {
    let rows: Vec<(String, String, String)> = conn
        .query(format!(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(table, name, clause)| format!("check {table}.{name}: {clause}"))
        .collect())
}

async fn views(conn: &mut Conn, database: &str, sides: Sides) -> Result<Vec<String>> {
    let options = rw::compares_view_options(sides.source, sides.target);
    let extra = if options && sides.source == Flavour::MariaDb { "ALGORITHM" } else { "''" };
    // The definer is not compared: the copy defines views as its own target user on purpose (the
    // source's account may not exist there). Nor is the client character set: it is the session's
    // of whoever created the view, not part of the definition.
    let rows: Vec<(String, String, String, String, String)> = conn
        .query(format!(
            "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, {extra} \
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {}",
            literal(database)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, definition, check, security, algorithm)| {
            let definition = rw::canonical_view(&definition, database, sides.source, sides.target);
            let check = if options { check } else { "-".into() };
            format!(
                "view {name}: {definition}; check option {check}, security {security}, \
                 algorithm {algorithm:?}"
            )
        })
        .collect())
}
