//! Compares the content of tables on two servers: a digest of every row and column per table.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use sha2::{Digest, Sha256};

use crate::{HarnessError, Result};

/// Row count and content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub rows: u64,
    pub sha256: String,
}

/// Digest of every base table of `database`, by table name. Rows are read in the order of all
/// their columns, so the digest does not depend on physical order or on the presence of a key.
pub async fn database_digests(
    conn: &mut Conn,
    database: &str,
) -> Result<BTreeMap<String, TableDigest>> {
    let tables: Vec<String> = conn
        .exec(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
            (database,),
        )
        .await?;
    let mut digests = BTreeMap::new();
    for table in tables {
        let digest = table_digest(conn, database, &table).await?;
        digests.insert(table, digest);
    }
    Ok(digests)
}

/// Digest of one table, read with the text protocol so every server renders values the same way.
pub async fn table_digest(conn: &mut Conn, database: &str, table: &str) -> Result<TableDigest> {
    let rows = table_rows(conn, database, table).await?;
    let mut hasher = Sha256::new();
    for row in &rows {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    Ok(TableDigest { rows: rows.len() as u64, sha256: format!("{:x}", hasher.finalize()) })
}

/// Every row of a table rendered as one line, sorted; for digests and for readable diffs.
pub async fn table_rows(conn: &mut Conn, database: &str, table: &str) -> Result<Vec<String>> {
    let sql = format!("SELECT * FROM {}.{}", quote(database), quote(table));
    let rows: Vec<Row> = conn.query(sql).await?;
    let mut lines: Vec<String> = rows.into_iter().map(render_row).collect();
    lines.sort();
    Ok(lines)
}

fn render_row(row: Row) -> String {
    row.unwrap().into_iter().map(render_value).collect::<Vec<_>>().join("\t")
}

fn render_value(value: Value) -> String {
    match value {
        Value::NULL => "NULL".into(),
        Value::Bytes(bytes) => match String::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(e) => format!("0x{}", hex(e.as_bytes())),
        },
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Backquotes an identifier.
pub fn quote(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

/// Fails with a readable diff unless `database` has the same tables with the same rows on both
/// connections. Only the first differing rows of each table are shown.
pub async fn assert_same_tables(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
) -> Result<()> {
    let left = database_digests(source, database).await?;
    let right = database_digests(target, database).await?;
    let mut report = Vec::new();
    for (table, digest) in &left {
        match right.get(table) {
            None => report.push(format!("{database}.{table}: missing on the target")),
            Some(other) if other != digest => {
                let diff = first_differences(source, target, database, table).await?;
                report.push(format!(
                    "{database}.{table}: {} rows on the source, {} on the target\n{diff}",
                    digest.rows, other.rows
                ));
            }
            Some(_) => {}
        }
    }
    for table in right.keys().filter(|t| !left.contains_key(*t)) {
        report.push(format!("{database}.{table}: only on the target"));
    }
    if report.is_empty() {
        Ok(())
    } else {
        Err(HarnessError::Mismatch(format!("tables differ:\n{}", report.join("\n"))))
    }
}

async fn first_differences(
    source: &mut Conn,
    target: &mut Conn,
    database: &str,
    table: &str,
) -> Result<String> {
    const SHOWN: usize = 5;
    let left = table_rows(source, database, table).await?;
    let right = table_rows(target, database, table).await?;
    let right_set: std::collections::BTreeSet<_> = right.iter().collect();
    let left_set: std::collections::BTreeSet<_> = left.iter().collect();
    let mut lines: Vec<String> = left
        .iter()
        .filter(|r| !right_set.contains(r))
        .take(SHOWN)
        .map(|r| format!("  - source only: {r}"))
        .collect();
    lines.extend(
        right
            .iter()
            .filter(|r| !left_set.contains(r))
            .take(SHOWN)
            .map(|r| format!("  + target only: {r}")),
    );
    Ok(lines.join("\n"))
}
