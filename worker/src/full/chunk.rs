//! Splitting a table into key ranges that several connections copy at once. A single integer
//! key is split arithmetically between its MIN and MAX; other keys (composite, string) by one
//! ordered scan of the key alone, keeping every Nth key as a boundary. The first range has no
//! lower bound and the last none upper, so rows added later are covered too. Ranges are saved
//! in `ferry_meta` so a resumed run copies exactly the ranges that were not done.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::objects::Table;
use crate::error::SqlContext;
use crate::meta::full::Chunk;
use crate::sql::literal::{self, Render};
use crate::sql::quote_ident;

/// Rows per chunk aimed at: a chunk is one target transaction.
const CHUNK_BYTES: u64 = 8 << 20;
const MIN_CHUNK_ROWS: u64 = 1_000;
const MAX_CHUNK_ROWS: u64 = 100_000;

/// Plans a table's chunks at the snapshot `conn` reads.
pub async fn plan(conn: &mut Conn, table: &Table) -> crate::Result<Vec<Chunk>> {
    let per_chunk = rows_per_chunk(table);
    let conds = if table.key.is_empty() {
        tracing::warn!(
            table = %table.qualified(),
            "no primary key or NOT NULL unique key: the table is copied whole by one connection"
        );
        vec!["TRUE".to_string()]
    } else if table.estimated_rows <= per_chunk {
        vec!["TRUE".to_string()]
    } else if let Some(column) = integer_key(table) {
        integer_ranges(conn, table, column, per_chunk).await?
    } else {
        scanned_ranges(conn, table, per_chunk).await?
    };
    Ok(conds
        .into_iter()
        .enumerate()
        .map(|(seq, cond)| Chunk {
            db: table.db.clone(),
            table: table.name.clone(),
            seq: seq as u32,
            cond,
        })
        .collect())
}

fn rows_per_chunk(table: &Table) -> u64 {
    // Tests and tuning: a fixed chunk size.
    if let Some(rows) = std::env::var("FERRY_CHUNK_ROWS").ok().and_then(|v| v.parse::<u64>().ok()) {
        return rows.max(1);
    }
    let row_bytes = (table.estimated_bytes / table.estimated_rows.max(1)).max(1);
    (CHUNK_BYTES / row_bytes).clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS)
}

fn integer_key(table: &Table) -> Option<&str> {
    let [column] = table.key.as_slice() else { return None };
    let data_type = &table.column(column)?.data_type;
    matches!(
        data_type.as_str(),
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
    .then_some(column.as_str())
}

async fn integer_ranges(
    conn: &mut Conn,
    table: &Table,
    column: &str,
    per_chunk: u64,
) -> crate::Result<Vec<String>> {
    let col = quote_ident(column);
    let bounds: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!("SELECT MIN({col}), MAX({col}) FROM {}", table.qualified()))
        .await
        .sql(format!("read the key range of {}", table.qualified()))?;
    let parse = |v: Option<String>| v.and_then(|v| v.parse::<i128>().ok());
    let Some((Some(min), Some(max))) = bounds.map(|(a, b)| (parse(a), parse(b))) else {
        return Ok(vec!["TRUE".into()]);
    };
    let chunks = table.estimated_rows.div_ceil(per_chunk).max(1) as i128;
    let step = ((max - min + 1) / chunks).max(1);
    let boundaries: Vec<String> =
        (1..chunks).map(|i| min + i * step).filter(|b| *b <= max).map(|b| b.to_string()).collect();
    Ok(ranges(&boundaries, |b, lower| format!("{col} {} {b}", if lower { ">=" } else { "<" })))
}

async fn scanned_ranges(
    conn: &mut Conn,
    table: &Table,
    per_chunk: u64,
) -> crate::Result<Vec<String>> {
    let cols: Vec<String> = table.key.iter().map(|c| quote_ident(c)).collect();
    let renders: Vec<Render> =
        table.key.iter().map(|c| table.column(c).map_or(Render::Quoted, |c| c.render)).collect();
    let sql = format!("SELECT {0} FROM {1} ORDER BY {0}", cols.join(", "), table.qualified());
    let context = || format!("scan the key of {} to plan chunks", table.qualified());
    let mut boundaries: Vec<Vec<String>> = Vec::new();
    let mut result = conn.query_iter(sql).await.sql(context())?;
    let mut n: u64 = 0;
    while let Some(row) = result.next().await.sql(context())? {
        n += 1;
        if n.is_multiple_of(per_chunk) {
            let values = (0..cols.len())
                .map(|i| {
                    let mut out = Vec::new();
                    literal::push_read(&mut out, row.as_ref(i), renders[i]);
                    String::from_utf8_lossy(&out).into_owned()
                })
                .collect();
            boundaries.push(values);
        }
    }
    Ok(ranges(&boundaries, |b, lower| tuple_compare(&cols, b, lower)))
}

/// Conditions for the ranges between boundaries: `< b1`, `>= b1 AND < b2`, ..., `>= bn`.
fn ranges<B>(boundaries: &[B], compare: impl Fn(&B, bool) -> String) -> Vec<String> {
    if boundaries.is_empty() {
        return vec!["TRUE".into()];
    }
    let mut conds = vec![compare(&boundaries[0], false)];
    for pair in boundaries.windows(2) {
        conds.push(format!("({}) AND ({})", compare(&pair[0], true), compare(&pair[1], false)));
    }
    conds.push(compare(&boundaries[boundaries.len() - 1], true));
    conds
}

/// `(a, b) >= (x, y)` (lower) or `(a, b) < (x, y)`, spelled out so that range scans are used.
fn tuple_compare(cols: &[String], values: &[String], lower: bool) -> String {
    let last_op = if lower { ">=" } else { "<" };
    let strict = if lower { ">" } else { "<" };
    let mut terms = Vec::new();
    for i in 0..cols.len() {
        let mut parts: Vec<String> =
            (0..i).map(|j| format!("{} = {}", cols[j], values[j])).collect();
        let op = if i + 1 == cols.len() { last_op } else { strict };
        parts.push(format!("{} {op} {}", cols[i], values[i]));
        terms.push(format!("({})", parts.join(" AND ")));
    }
    terms.join(" OR ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_bounds_are_spelled_out() {
        let cols = vec!["`a`".to_string(), "`b`".to_string()];
        let values = vec!["1".to_string(), "'x'".to_string()];
        assert_eq!(tuple_compare(&cols, &values, true), "(`a` > 1) OR (`a` = 1 AND `b` >= 'x')");
        assert_eq!(tuple_compare(&cols, &values, false), "(`a` < 1) OR (`a` = 1 AND `b` < 'x')");
    }

    #[test]
    fn ranges_cover_everything() {
        let conds =
            ranges(&[10, 20], |b, lower| format!("k {} {b}", if lower { ">=" } else { "<" }));
        assert_eq!(conds, vec!["k < 10", "(k >= 10) AND (k < 20)", "k >= 20"]);
    }
}
