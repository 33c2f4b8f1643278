//! Every row of a table or view, every column named (INVISIBLE ones too: `SELECT *` skips them),
//! read over the binary protocol so each value arrives exactly: FLOAT as its 4 bytes (the text
//! protocol rounds it to 6 digits), temporal values with their full fraction, DECIMAL as its
//! exact text. TIMESTAMPs are read in UTC, so two servers in different time zones compare the
//! instant.

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::{literal, quote};
use crate::{HarnessError, Result};

/// How a column's values are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    /// As text (hex when it is not UTF-8).
    Text,
    /// As hex: BIT and binary strings, whose bytes are the value.
    Hex,
    /// As canonical JSON (keys sorted, no spaces): the target stores JSON in its own normal
    /// form (MySQL and TiDB reorder keys and drop spaces), so JSON is compared as JSON.
    Json,
}

/// The columns of a table in ordinal order, with how to render each.
async fn columns(
    conn: &mut Conn,
    database: &str,
    table: &str,
    json: &BTreeSet<String>,
) -> Result<Vec<(String, Render)>> {
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
            literal(database),
            literal(table)
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(name, data_type)| {
            let render = match data_type.to_ascii_lowercase().as_str() {
                _ if json.contains(&name) => Render::Json,
                "json" => Render::Json,
                "bit" | "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob"
                | "longblob" => Render::Hex,
                _ => Render::Text,
            };
            (name, render)
        })
        .collect())
}

/// The names of the columns of `table` whose type is JSON on this server.
pub async fn json_columns(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<BTreeSet<String>> {
    let names: Vec<String> = conn
        .query(format!(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} \
             AND TABLE_NAME = {} AND DATA_TYPE = 'json'",
            literal(database),
            literal(table)
        ))
        .await?;
    Ok(names.into_iter().collect())
}

/// Every row of `database.table` as one line, sorted. Columns named in `json` are compared as
/// JSON (pass the JSON columns of the other side, so a text column holding JSON is read as JSON
/// when the other side stores it as JSON).
pub async fn rows(
    conn: &mut Conn,
    database: &str,
    table: &str,
    json: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let columns = columns(conn, database, table, json).await?;
    if columns.is_empty() {
        return Err(HarnessError::Mismatch(format!(
            "{database}.{table} has no columns (is it there?)"
        )));
    }
    let list: Vec<String> = columns.iter().map(|(name, _)| quote(name)).collect();
    let sql = format!("SELECT {} FROM {}.{}", list.join(", "), quote(database), quote(table));
    let zone: Option<String> = conn.query_first("SELECT @@session.time_zone").await?;
    conn.query_drop("SET time_zone = '+00:00'").await?;
    // `exec` prepares the statement: the binary protocol.
    let read: Result<Vec<Row>> = conn.exec(sql, ()).await.map_err(Into::into);
    if let Some(zone) = zone {
        conn.query_drop(format!("SET time_zone = {}", literal(&zone))).await?;
    }
    let mut lines: Vec<String> = read?
        .into_iter()
        .map(|row| {
            let values = row.unwrap().into_iter().zip(&columns);
            values.map(|(value, (_, render))| render_value(value, *render)).collect::<Vec<_>>()
        })
        .map(|values| values.join("\t"))
        .collect();
    lines.sort();
    Ok(lines)
}

fn render_value(value: Value, render: Render) -> String {
    match (value, render) {
        (Value::NULL, _) => "NULL".into(),
        (Value::Bytes(bytes), Render::Hex) => format!("0x{}", hex(&bytes)),
        (Value::Bytes(bytes), Render::Json) => canonical_json(bytes),
        (Value::Bytes(bytes), Render::Text) => match String::from_utf8(bytes) {
            Ok(text) => format!("{text:?}"),
            Err(e) => format!("0x{}", hex(e.as_bytes())),
        },
        // Float(f32) and Double(f64) print the shortest text that reads back to the same bits.
        (other, _) => format!("{other:?}"),
    }
}

fn canonical_json(bytes: Vec<u8>) -> String {
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(json) => format!("json {json}"),
        Err(_) => format!("not JSON: {:?}", String::from_utf8_lossy(&bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines of `left` not in `right`, counting duplicates (a keyless table may hold the same
/// row twice), at most `limit` of them.
pub fn only_in<'a>(left: &'a [String], right: &[String], limit: usize) -> Vec<&'a str> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < left.len() && out.len() < limit {
        match right.get(j).map(|r| left[i].cmp(r)) {
            Some(std::cmp::Ordering::Equal) => (i, j) = (i + 1, j + 1),
            Some(std::cmp::Ordering::Greater) => j += 1,
            _ => {
                out.push(left[i].as_str());
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_count_duplicates() {
        let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (left, right) = (lines(&["a", "b", "b", "c"]), lines(&["b", "c", "d"]));
        assert_eq!(only_in(&left, &right, 10), ["a", "b"]);
        assert_eq!(only_in(&right, &left, 10), ["d"]);
        assert_eq!(only_in(&left, &right, 1), ["a"]);
    }

    #[test]
    fn floats_are_exact_and_json_canonical() {
        assert_ne!(
            render_value(Value::Float(16777216.0), Render::Text),
            render_value(Value::Float(16777200.0), Render::Text)
        );
        assert_eq!(
            render_value(Value::Bytes(br#"{"b": 1, "a": [1, 2]}"#.to_vec()), Render::Json),
            render_value(Value::Bytes(br#"{"a":[1,2],"b":1}"#.to_vec()), Render::Json)
        );
        assert_eq!(render_value(Value::Bytes(vec![0x41]), Render::Hex), "0x41");
    }
}
