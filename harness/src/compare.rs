//! Compares a database on two servers: its schema (tables, every column's definition, indexes,
//! foreign keys, checks, views) and the exact content of every table and view.
//!
//! What may legitimately differ between a source and the target Ferry copied it into (how each
//! kind of server prints a definition, and what the copy rewrites for TiDB on purpose) is listed
//! in [`rewrites`]; everything else is a difference. The kind of each server is read from
//! `SELECT VERSION()`.

mod data;
pub mod rewrites;
mod schema;

use std::collections::BTreeMap;
use std::fmt;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use sha2::{Digest, Sha256};

use crate::{HarnessError, Result};
use schema::{Side, Sides};

/// The kind of a MySQL-compatible server, which decides how it prints definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    MariaDb,
    MySql,
    TiDb,
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavour::MariaDb => "MariaDB",
            Flavour::MySql => "MySQL",
            Flavour::TiDb => "TiDB",
        })
    }
}

impl Flavour {
    /// The kind of the server behind `conn`, from its version text.
    pub async fn of(conn: &mut Conn) -> Result<Flavour> {
        let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
        Ok(Self::from_version(&version.unwrap_or_default()))
    }

    /// `8.0.11-TiDB-v8.5.0` is TiDB, `10.11.6-MariaDB-...` MariaDB, anything else MySQL.
    pub fn from_version(version: &str) -> Flavour {
        if version.contains("TiDB") {
            Flavour::TiDb
        } else if version.contains("MariaDB") {
            Flavour::MariaDb
        } else {
            Flavour::MySql
        }
    }
}

/// What a comparison expects beyond "the same".
#[derive(Debug, Clone, Copy, Default)]
pub struct CompareOptions {
    /// The database is expected to hold no table or view. Without it, an empty source database
    /// is an error: two empty databases prove nothing (a misspelled filter, a wrong name).
    pub allow_empty: bool,
    /// Compare the rows only, not the definitions. For tables that replicated DDL created on a
    /// TiDB target: the DDL is sent as the source wrote it, so TiDB applies its own defaults
    /// (collation, a real JSON type) where the copy would have rewritten the definition.
    pub data_only: bool,
}

/// Row count and content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub rows: u64,
    pub sha256: String,
}

/// Table types whose rows are compared: MariaDB lists a table `WITH SYSTEM VERSIONING` as
/// `SYSTEM VERSIONED` (its current rows are compared; the history is not copied).
const TABLE_TYPES: &str = "'BASE TABLE', 'SYSTEM VERSIONED'";

/// Digest of every table of `database`, by table name. Rows are sorted, so the digest does not
/// depend on physical order or on the presence of a key.
pub async fn database_digests(
    conn: &mut Conn,
    database: &str,
) -> Result<BTreeMap<String, TableDigest>> {
    let mut digests = BTreeMap::new();
    for table in objects(conn, database, TABLE_TYPES).await? {
        let digest = table_digest(conn, database, &table).await?;
        digests.insert(table, digest);
    }
    Ok(digests)
}

/// Digest of one table (see [`table_rows`]).
pub async fn table_digest(conn: &mut Conn, database: &str, table: &str) -> Result<TableDigest> {
    let rows = table_rows(conn, database, table).await?;
    let mut hasher = Sha256::new();
    for row in &rows {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    Ok(TableDigest { rows: rows.len() as u64, sha256: format!("{:x}", hasher.finalize()) })
}

/// Every row of a table or view rendered as one line, sorted, with every column (INVISIBLE ones
/// too) read exactly; for digests and for readable diffs.
pub async fn table_rows(conn: &mut Conn, database: &str, table: &str) -> Result<Vec<String>> {
    data::rows(conn, database, table, &Default::default()).await
}

/// Backquotes an identifier.
pub fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

/// A string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Fails with a readable diff unless `database` has the same schema (as far as the target may
/// legitimately differ, see [`rewrites`]) and the same rows on both connections. A database that
/// is missing on either side, or has no table or view on the source, is an error too.
pub async fn assert_same_tables(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
) -> Result<()> {
    compare_databases(source, target, database, CompareOptions::default()).await
}

/// [`assert_same_tables`] with options.
pub async fn compare_databases(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
    options: CompareOptions,
) -> Result<()> {
    let sides = Sides { source: Flavour::of(source).await?, target: Flavour::of(target).await? };
    check_present(source, target, database, options).await?;
    let mut report = if options.data_only {
        Vec::new()
    } else {
        schema_differences(source, target, database, sides).await?
    };
    report.extend(data_differences(source, target, database).await?);
    if report.is_empty() {
        Ok(())
    } else {
        Err(HarnessError::Mismatch(format!(
            "`{database}` differs between the source ({}) and the target ({}):\n{}",
            sides.source,
            sides.target,
            report.join("\n")
        )))
    }
}

async fn check_present(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
    options: CompareOptions,
) -> Result<()> {
    for (side, conn) in [("source", &mut *source), ("target", &mut *target)] {
        let found: Option<String> = conn
            .query_first(format!(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
                literal(database)
            ))
            .await?;
        if found.is_none() {
            return Err(HarnessError::Mismatch(format!(
                "database `{database}` does not exist on the {side}; nothing to compare"
            )));
        }
    }
    let objects = objects(source, database, "'BASE TABLE', 'SYSTEM VERSIONED', 'VIEW'").await?;
    if objects.is_empty() && !options.allow_empty {
        return Err(HarnessError::Mismatch(format!(
            "database `{database}` has no table or view on the source; two empty databases \
             prove nothing (pass allow_empty in CompareOptions if that is expected)"
        )));
    }
    Ok(())
}

/// Names of the objects of `database` whose TABLE_TYPE is one of `types` (an SQL list).
async fn objects(conn: &mut Conn, database: &str, types: &str) -> Result<Vec<String>> {
    Ok(conn
        .query(format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {} AND TABLE_TYPE IN ({types}) ORDER BY TABLE_NAME",
            literal(database)
        ))
        .await?)
}

async fn schema_differences(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
    sides: Sides,
) -> Result<Vec<String>> {
    const SHOWN: usize = 20;
    let left = schema::facts(source, database, sides, Side::Source).await?;
    let right = schema::facts(target, database, sides, Side::Target).await?;
    let mut lines: Vec<String> = data::only_in(&left, &right, SHOWN)
        .into_iter()
        .map(|fact| format!("  schema - source: {fact}"))
        .collect();
    lines.extend(
        data::only_in(&right, &left, SHOWN)
            .into_iter()
            .map(|fact| format!("  schema + target: {fact}")),
    );
    if !lines.is_empty() {
        lines.insert(0, format!("{database}: schemas differ"));
    }
    Ok(lines)
}

async fn data_differences(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
) -> Result<Vec<String>> {
    const ROWS_OF: &str = "'BASE TABLE', 'SYSTEM VERSIONED', 'VIEW'";
    let left = objects(source, database, ROWS_OF).await?;
    let right = objects(target, database, ROWS_OF).await?;
    let mut report = Vec::new();
    for table in &left {
        if !right.contains(table) {
            report.push(format!("{database}.{table}: missing on the target"));
            continue;
        }
        if let Some(diff) = table_difference(source, target, database, table).await? {
            report.push(diff);
        }
    }
    for table in right.iter().filter(|t| !left.contains(t)) {
        report.push(format!("{database}.{table}: only on the target"));
    }
    Ok(report)
}

/// The rows of one table or view that differ, or `None`.
async fn table_difference(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<String>> {
    const SHOWN: usize = 5;
    // A column is JSON on both sides if it is on either (MariaDB's JSON is text).
    let mut json = data::json_columns(source, database, table).await?;
    json.extend(data::json_columns(target, database, table).await?);
    let left = data::rows(source, database, table, &json).await?;
    let right = match data::rows(target, database, table, &json).await {
        Ok(rows) => rows,
        Err(e) => {
            return Ok(Some(format!("{database}.{table}: cannot be read on the target: {e}")));
        }
    };
    if left == right {
        return Ok(None);
    }
    let mut lines = vec![format!(
        "{database}.{table}: {} rows on the source, {} on the target",
        left.len(),
        right.len()
    )];
    lines.extend(
        data::only_in(&left, &right, SHOWN).iter().map(|r| format!("  - source only: {r}")),
    );
    lines.extend(
        data::only_in(&right, &left, SHOWN).iter().map(|r| format!("  + target only: {r}")),
    );
    Ok(Some(lines.join("\n")))
}
