//! What a verify found, for people (a table) and programs (JSON), and the statements that would
//! make the target equal.

use std::collections::BTreeMap;

use mysql_async::Conn;
use serde::Serialize;

use super::{Difference, Key, Settled, Side, Subject, keys_condition, scan};
use crate::full::objects::Table;
use crate::sql::quote_ident;

/// The whole comparison.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// True when every table agrees.
    pub equal: bool,
    pub tables: Vec<TableReport>,
    pub notes: Vec<String>,
    /// The source's binlog position (`file:pos`) when the comparison started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// One table's comparison.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    pub database: String,
    pub table: String,
    /// The columns a row is named by: the key, or every compared column when there is none.
    pub key_columns: Vec<String>,
    pub rows_compared: u64,
    pub chunks: usize,
    pub chunks_differing: usize,
    /// Rows the source has and the target lacks.
    pub missing: Vec<RowDiff>,
    /// Rows the target has and the source lacks.
    pub extra: Vec<RowDiff>,
    /// Rows on both sides whose values differ.
    pub different: Vec<RowDiff>,
    /// Rows that differed and kept changing on the source for as long as the verify waited:
    /// neither proven equal nor different (verify again when the writes calm down).
    pub unsettled: Vec<RowDiff>,
    /// Why the table could not be compared at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Statements that make the target's rows the source's.
    #[serde(skip)]
    pub fix_sql: Vec<String>,
}

/// A row, by its key's values (SQL literals); `count` > 1 for repeated rows of keyless tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowDiff {
    pub key: Vec<String>,
    pub count: u64,
}

impl TableReport {
    pub fn is_equal(&self) -> bool {
        self.problem.is_none()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.different.is_empty()
            && self.unsettled.is_empty()
    }

    pub(super) fn problem(table: &Table, problem: String) -> Self {
        TableReport {
            database: table.db.clone(),
            table: table.name.clone(),
            problem: Some(problem),
            ..Default::default()
        }
    }

    fn qualified(&self) -> String {
        crate::sql::qualified(&self.database, &self.table)
    }
}

/// How much of a table was compared.
pub(super) struct Counts {
    pub rows_compared: u64,
    pub chunks: usize,
    pub chunks_differing: usize,
}

/// Builds a table's report from its settled differences, reading the rows the fix needs.
pub(super) async fn table_report(
    subject: &Subject,
    source: &mut Conn,
    target: &mut Conn,
    counts: Counts,
    settled: Settled,
) -> crate::Result<TableReport> {
    let Counts { rows_compared, chunks, chunks_differing } = counts;
    let diffs = settled.differences;
    let table = &subject.table;
    let mut report = TableReport {
        database: table.db.clone(),
        table: table.name.clone(),
        key_columns: if subject.keyless() {
            table.columns.iter().map(|c| c.name.clone()).collect()
        } else {
            table.key.clone()
        },
        rows_compared,
        chunks,
        chunks_differing,
        ..Default::default()
    };
    report.unsettled = settled
        .unsettled
        .into_iter()
        .map(|d| RowDiff { key: shown_key(subject, &d), count: 1 })
        .collect();
    if diffs.is_empty() {
        return Ok(report);
    }
    let source_keys: Vec<Key> =
        diffs.iter().filter(|d| d.source.is_some()).map(|d| d.key.clone()).collect();
    let target_keys: Vec<Key> =
        diffs.iter().filter(|d| d.target.is_some()).map(|d| d.key.clone()).collect();
    let source_rows = values(source, subject, &source_keys, Side::Source).await?;
    let target_rows = values(target, subject, &target_keys, Side::Target).await?;
    for diff in diffs {
        let (s, t) = (
            diff.source.as_ref().map_or(0, |s| s.count),
            diff.target.as_ref().map_or(0, |t| t.count),
        );
        if subject.keyless() {
            let (missing, count) = if s > t { (true, s - t) } else { (false, t - s) };
            let rows = if missing { &source_rows } else { &target_rows };
            let (key, statements) = match rows.get(&diff.key) {
                Some(values) if missing => {
                    (values.clone(), vec![insert(table, values); count as usize])
                }
                Some(values) => {
                    (values.clone(), vec![delete_keyless(subject, values, &diff, count)])
                }
                // Changed again since it was settled: still reported, by its hash.
                None => (
                    shown_key(subject, &diff),
                    vec![format!(
                        "-- {}: the row with hash {} changed before it could be read; verify again",
                        table.qualified(),
                        diff.key[0]
                    )],
                ),
            };
            let list = if missing { &mut report.missing } else { &mut report.extra };
            list.push(RowDiff { key, count });
            report.fix_sql.extend(statements);
            continue;
        }
        let row = RowDiff { key: diff.key.clone(), count: 1 };
        match (&diff.source, &diff.target) {
            (Some(_), None) => report.missing.push(row),
            (None, _) => report.extra.push(row),
            (Some(_), Some(_)) => report.different.push(row),
        }
        // The source's row as it is now, or its absence.
        report.fix_sql.push(match source_rows.get(&diff.key) {
            Some(values) => replace(table, values),
            None => delete_keyed(table, &diff.key),
        });
    }
    Ok(report)
}

/// A row's key as reported; keyless rows are only known by their hash until read again.
fn shown_key(subject: &Subject, difference: &Difference) -> Vec<String> {
    if subject.keyless() {
        vec![format!("row hash {}", difference.key[0])]
    } else {
        difference.key.clone()
    }
}

fn report_columns(table: &Table) -> String {
    table.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ")
}

/// The compared columns' literals of the rows with `keys`.
async fn values(
    conn: &mut Conn,
    subject: &Subject,
    keys: &[Key],
    side: Side,
) -> crate::Result<BTreeMap<Key, Vec<String>>> {
    let mut found = BTreeMap::new();
    let wanted: std::collections::BTreeSet<&Key> = keys.iter().collect();
    // Keyless rows with JSON are known by a hash made here: the whole table is read for them.
    let by_server_hash = !subject.keyless() || subject.shape.json.is_empty();
    let batches: Vec<&[Key]> = if by_server_hash { keys.chunks(500).collect() } else { vec![keys] };
    for batch in batches {
        if batch.is_empty() {
            continue;
        }
        let cond = if by_server_hash { keys_condition(subject, batch) } else { "TRUE".into() };
        scan(conn, subject, &cond, true, side, |key, _, values| {
            if let Some(values) = values
                && wanted.contains(&key)
            {
                found.entry(key).or_insert(values);
            }
        })
        .await?;
    }
    Ok(found)
}

fn replace(table: &Table, values: &[String]) -> String {
    format!(
        "REPLACE INTO {} ({}) VALUES ({});",
        table.target_qualified(),
        report_columns(table),
        values.join(", ")
    )
}

fn insert(table: &Table, values: &[String]) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({});",
        table.target_qualified(),
        report_columns(table),
        values.join(", ")
    )
}

fn delete_keyed(table: &Table, key: &[String]) -> String {
    let conds: Vec<String> =
        table.key.iter().zip(key).map(|(c, v)| format!("{} = {v}", quote_ident(c))).collect();
    format!("DELETE FROM {} WHERE {};", table.target_qualified(), conds.join(" AND "))
}

/// Deletes `count` copies of a keyless row: by the servers' row hash, exact for every type, or
/// by its values where JSON columns keep the hash out of the servers' reach.
fn delete_keyless(subject: &Subject, values: &[String], diff: &Difference, count: u64) -> String {
    let table = &subject.table;
    let cond = if subject.shape.json.is_empty() {
        format!("{} = {}", subject.shape.row_hash(), crate::sql::quote_str(&diff.key[0]))
    } else {
        let conds: Vec<String> = table
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| format!("{} <=> {v}", quote_ident(&c.name)))
            .collect();
        conds.join(" AND ")
    };
    format!("DELETE FROM {} WHERE {cond} LIMIT {count};", table.target_qualified())
}

/// The report for people: one line per table, then the rows that differ.
pub fn render_text(report: &Report) -> String {
    let width = report.tables.iter().map(|t| t.qualified().len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<8} {:<width$} {:>12} {:>8} {:>8} {:>9}\n",
        "RESULT", "TABLE", "ROWS", "MISSING", "EXTRA", "DIFFERENT"
    );
    for t in &report.tables {
        let result = if t.problem.is_some() {
            "Error"
        } else if t.is_equal() {
            "Equal"
        } else {
            "Differs"
        };
        let count = |rows: &[RowDiff]| rows.iter().map(|r| r.count).sum::<u64>();
        out.push_str(&format!(
            "{result:<8} {:<width$} {:>12} {:>8} {:>8} {:>9}\n",
            t.qualified(),
            t.rows_compared,
            count(&t.missing),
            count(&t.extra),
            count(&t.different)
        ));
    }
    for t in report.tables.iter().filter(|t| !t.is_equal()) {
        out.push_str(&format!("\n{}\n", t.qualified()));
        if let Some(problem) = &t.problem {
            out.push_str(&format!("  error: {problem}\n"));
        }
        for (what, rows) in [
            ("missing", &t.missing),
            ("extra", &t.extra),
            ("different", &t.different),
            ("unsettled", &t.unsettled),
        ] {
            for row in rows {
                let key: Vec<String> =
                    t.key_columns.iter().zip(&row.key).map(|(c, v)| format!("{c}={v}")).collect();
                let times =
                    if row.count > 1 { format!(" (x{})", row.count) } else { String::new() };
                out.push_str(&format!("  {what:<9} {}{times}\n", key.join(", ")));
            }
        }
    }
    for note in &report.notes {
        out.push_str(&format!("\nnote: {note}\n"));
    }
    let verdict = if report.equal {
        "the target equals the source"
    } else {
        "the target differs from the source"
    };
    out.push_str(&format!("\n{} tables: {verdict}\n", report.tables.len()));
    out
}

/// Every table's fix statements, in one script.
pub fn fix_script(report: &Report) -> String {
    let mut out = String::from(
        "-- Written by `ferry verify`: run on the target to make its rows the source's.\n",
    );
    for t in report.tables.iter().filter(|t| !t.fix_sql.is_empty()) {
        out.push_str(&format!("-- {}\n", t.qualified()));
        for statement in &t.fix_sql {
            out.push_str(statement);
            out.push('\n');
        }
    }
    out
}
