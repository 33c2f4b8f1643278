//! Online schema-change tools (gh-ost, pt-online-schema-change), as TiDB DM's online-ddl support
//! handles them. Such a tool alters a table `t` by making a shadow table (`_t_gho`, `_t_new`),
//! altering it, filling it with `t`'s rows (and keeping it up to date through the binlog or
//! triggers), then swapping it in with one rename (`RENAME TABLE t TO _t_del, _t_gho TO t`, or
//! `t TO _t_old, _t_new TO t`).
//!
//! The selection never covers the tools' tables ([`ferry_crds::selection::tool_table`]), so their
//! rows are neither copied nor replicated; rows written to `t` during the run replicate as usual.
//! The ALTERs run on the shadow table are recorded in `ferry_meta.online_ddl` (so that they
//! survive a restart between the ALTER and the swap), rewritten for `t`; at the swap they run on
//! the target's `t`, which then has the source's new schema. A swap with nothing recorded (the
//! tool's ALTER ran before the job's start position) stops the job: `spec.ddlErrorPolicy` can
//! skip or replace it once the target table is changed by hand.

use ferry_crds::selection::{ToolTable, tool_table};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::ddl::QuerySession;
use super::filter::{Filter, Object, ddl_objects};
use super::stream::Ddl;
use crate::error::SqlContext;
use crate::meta::incremental::Position;

/// The table of `ferry_meta` schema version 6 (`meta::schema`): the shadow-table ALTERs recorded
/// for each table, each under its own binlog position; `swapped_*` is the position of the swap
/// that applied it (its rows are kept until the tool runs again, so that a swap read again after
/// a restart knows it was applied).
pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.online_ddl (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    binlog_file VARCHAR(255) NOT NULL, binlog_pos BIGINT UNSIGNED NOT NULL, \
    default_db VARCHAR(64) NOT NULL, statement LONGTEXT NOT NULL, refused TEXT NULL, \
    sql_mode BIGINT UNSIGNED NULL, charsets VARCHAR(32) NULL, time_zone VARCHAR(64) NULL, \
    logged_at INT UNSIGNED NOT NULL, \
    swapped_file VARCHAR(255) NULL, swapped_pos BIGINT UNSIGNED NULL, \
    PRIMARY KEY (job, db, tbl, binlog_file, binlog_pos))";

/// A table of the source, by database and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub database: String,
    pub table: String,
}

/// What a tool's statement means for the job.
#[derive(Debug)]
pub enum Step {
    /// The shadow tables of these tables were made or dropped: a new run of the tool, whose
    /// earlier records are forgotten.
    Reset(Vec<TableName>),
    /// An ALTER of the shadow table of `table`, rewritten to run on `table` at the swap.
    Record { table: TableName, alter: Ddl },
    /// The rename that swaps the shadow table in place of `table`.
    Swap { table: TableName, rename: Ddl },
}

/// How the reader treats a statement.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not a tool's statement on a selected table: the ordinary DDL rules apply.
    NotTool,
    /// The tool's bookkeeping (changelog, the old table, its copy rows): nothing to do.
    Ignore,
    Reset(Vec<TableName>),
    Record {
        table: TableName,
        alter: String,
    },
    Swap(TableName),
}

/// What `sql` (run in `default_schema`) is for a tool altering a table the job covers.
pub fn classify(filter: &Filter, default_schema: &str, sql: &str) -> Kind {
    let Some(objects) = ddl_objects(default_schema, sql) else { return Kind::NotTool };
    let tables: Vec<(&str, &str)> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Table(d, t) => Some((d.as_str(), t.as_str())),
            Object::Database(_) => None,
        })
        .collect();
    // The tool tables of covered tables; others follow the ordinary rules.
    let of_selected = |table| tool_of_selected(filter, table);
    let Some(&first) = tables.first() else { return Kind::NotTool };
    let verb = sql_verb(sql);
    // gh-ost's two-step cut-over swaps with `ALTER TABLE t RENAME _t_del` and `ALTER TABLE
    // _t_gho RENAME t`.
    if verb == "RENAME" || (verb == "ALTER" && tables.len() == 2) {
        return classify_rename(filter, &tables);
    }
    let Some((kind, database, real)) = of_selected(first) else { return Kind::NotTool };
    let table = TableName { database: database.to_string(), table: real.to_string() };
    match (verb.as_str(), kind) {
        ("ALTER", ToolTable::Shadow) => match alter_for(sql, real) {
            Some(alter) => Kind::Record { table, alter },
            None => Kind::NotTool,
        },
        ("CREATE", ToolTable::Shadow) => Kind::Reset(vec![table]),
        ("DROP", _) => {
            let tools: Vec<_> = tables.iter().map(|t| of_selected(*t)).collect();
            if tools.iter().any(Option::is_none) {
                return Kind::NotTool;
            }
            let shadows: Vec<TableName> = tools
                .into_iter()
                .flatten()
                .filter(|(kind, ..)| *kind == ToolTable::Shadow)
                .map(|(_, d, t)| TableName { database: d.to_string(), table: t.to_string() })
                .collect();
            if shadows.is_empty() { Kind::Ignore } else { Kind::Reset(shadows) }
        }
        _ => Kind::Ignore,
    }
}

/// The kind of tool table `database`.`table` is and the table it is for, when the job covers
/// that table.
fn tool_of_selected<'a>(
    filter: &Filter,
    (database, table): (&'a str, &'a str),
) -> Option<(ToolTable, &'a str, &'a str)> {
    let (kind, real) = tool_table(table)?;
    filter.table(database, real).then_some((kind, database, real))
}

/// A RENAME naming a tool table of a covered table: the swap when it renames a shadow table to
/// its own table; the tool's bookkeeping when each pair renames a tool table, or a table to one
/// of its own tool tables (the first half of gh-ost's two-step cut-over).
fn classify_rename(filter: &Filter, tables: &[(&str, &str)]) -> Kind {
    let mut all_tool = true;
    for pair in tables.chunks(2) {
        let [(from_db, from), (to_db, to)] = pair else { return Kind::NotTool };
        if let Some((ToolTable::Shadow, real)) = tool_table(from)
            && real == *to
            && from_db == to_db
            && filter.table(to_db, to)
        {
            return Kind::Swap(TableName { database: to_db.to_string(), table: to.to_string() });
        }
        let tool_of = |(d, t): (&str, &str), of: &str| {
            tool_table(t).is_some_and(|(_, real)| real == of && filter.table(d, real))
        };
        let swapped_out = from_db == to_db && tool_of((to_db, to), from);
        let between_tools =
            tool_of((from_db, from), tool_name(from)) && tool_of((to_db, to), tool_name(to));
        all_tool &= swapped_out || between_tools;
    }
    if all_tool { Kind::Ignore } else { Kind::NotTool }
}

/// The table a tool table is for (`t` for `_t_gho`); the name itself for other tables.
fn tool_name(name: &str) -> &str {
    tool_table(name).map_or(name, |(_, real)| real)
}

/// The first word of a statement, upper-cased, past leading comments.
fn sql_verb(sql: &str) -> String {
    let mut scan = Scan { sql, at: 0 };
    scan.skip_space();
    scan.word().unwrap_or_default().to_ascii_uppercase()
}

/// `ALTER TABLE ... <shadow> <changes>` as `ALTER TABLE `table` <changes>` (the table unqualified:
/// it runs in the statement's database, or the one spec.routes sends that to); `None` when the
/// statement is not read.
pub fn alter_for(sql: &str, table: &str) -> Option<String> {
    let mut scan = Scan { sql, at: 0 };
    loop {
        scan.skip_space();
        let word = scan.word()?.to_ascii_uppercase();
        match word.as_str() {
            "ALTER" | "ONLINE" | "IGNORE" => continue,
            "TABLE" => break,
            _ => return None,
        }
    }
    scan.skip_space();
    scan.name()?;
    scan.skip_space();
    if scan.rest().starts_with('.') {
        scan.at += 1;
        scan.skip_space();
        scan.name()?;
    }
    let changes = scan.rest().trim();
    (!changes.is_empty())
        .then(|| format!("ALTER TABLE {} {changes}", crate::sql::quote_ident(table)))
}

/// A cursor over a statement's text, for the few tokens [`alter_for`] reads.
struct Scan<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn rest(&self) -> &'a str {
        &self.sql[self.at..]
    }

    /// Past whitespace and `/* ... */` comments (gh-ost writes `alter /* gh-ost */ table`).
    fn skip_space(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if !trimmed.starts_with("/*") {
                return;
            }
            match trimmed[2..].find("*/") {
                Some(end) => self.at += 2 + end + 2,
                None => self.at = self.sql.len(),
            }
        }
    }

    fn word(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        (len > 0).then(|| {
            self.at += len;
            &rest[..len]
        })
    }

    /// A bare or backquoted name.
    fn name(&mut self) -> Option<()> {
        let rest = self.rest();
        if !rest.starts_with('`') {
            return self.word().map(|_| ());
        }
        let mut chars = rest.char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if chars.peek().is_some_and(|(_, n)| *n == '`') {
                    chars.next();
                    continue;
                }
                self.at += i + 1;
                return Some(());
            }
        }
        None
    }
}

/// Loads and saves the records of `ferry_meta.online_ddl` for one job.
pub struct Records<'a> {
    pub conn: &'a mut Conn,
    pub job: &'a str,
}

impl Records<'_> {
    /// Forgets what was recorded for the tables (a new run of the tool).
    pub async fn reset(&mut self, tables: &[TableName]) -> crate::Result<()> {
        for t in tables {
            tracing::info!(database = %t.database, table = %t.table, "online schema change started: recorded ALTERs forgotten");
            self.conn
                .exec_drop(
                    "DELETE FROM ferry_meta.online_ddl WHERE job = ? AND db = ? AND tbl = ?",
                    (self.job, &t.database, &t.table),
                )
                .await
                .sql("forget the online schema change recorded in ferry_meta.online_ddl")?;
        }
        Ok(())
    }

    /// Records the ALTER of `table`'s shadow table (again after a restart: its position is
    /// its key).
    pub async fn record(&mut self, table: &TableName, alter: &Ddl) -> crate::Result<()> {
        tracing::info!(database = %table.database, table = %table.table, sql = %alter.sql, position = %format!("{}:{}", alter.end.file, alter.end.pos), "recorded the ALTER of an online schema change; it runs at the tool's swap");
        let charsets = alter.session.charset.map(|c| format!("{},{},{}", c[0], c[1], c[2]));
        let row = (
            self.job,
            &table.database,
            &table.table,
            &alter.end.file,
            alter.end.pos,
            &alter.schema,
            &alter.sql,
            &alter.refused,
            alter.session.sql_mode,
            charsets,
            &alter.session.time_zone,
            alter.timestamp,
        );
        self.conn
            .exec_drop(
                "INSERT IGNORE INTO ferry_meta.online_ddl (job, db, tbl, binlog_file, \
                 binlog_pos, default_db, statement, refused, sql_mode, charsets, time_zone, \
                 logged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            .await
            .sql("record an online schema change in ferry_meta.online_ddl")
    }

    /// What the swap at `at` runs on `table`, in source order: the recorded ALTERs not applied
    /// by an earlier swap. `None` when nothing is recorded for it at all.
    pub async fn pending(
        &mut self,
        table: &TableName,
        at: &Position,
    ) -> crate::Result<Option<Vec<Ddl>>> {
        type Row = (
            String,
            u64,
            String,
            String,
            Option<String>,
            Option<u64>,
            Option<String>,
            Option<String>,
            u32,
            Option<String>,
            Option<u64>,
        );
        let rows: Vec<Row> = self
            .conn
            .exec(
                "SELECT binlog_file, binlog_pos, default_db, statement, refused, sql_mode, \
                 charsets, time_zone, logged_at, swapped_file, swapped_pos \
                 FROM ferry_meta.online_ddl WHERE job = ? AND db = ? AND tbl = ? \
                 ORDER BY binlog_file, binlog_pos",
                (self.job, &table.database, &table.table),
            )
            .await
            .sql("read the online schema change recorded in ferry_meta.online_ddl")?;
        let this_swap = |file: &Option<String>, pos: Option<u64>| {
            file.as_deref() == Some(at.file.as_str()) && pos == Some(at.pos)
        };
        if rows.iter().any(|r| this_swap(&r.9, r.10)) {
            // Read again after a restart: applied already.
            return Ok(Some(Vec::new()));
        }
        let pending: Vec<Ddl> = rows
            .into_iter()
            .filter(|r| r.9.is_none())
            .map(|(file, pos, schema, sql, refused, sql_mode, charsets, time_zone, at, ..)| Ddl {
                schema,
                sql,
                session: QuerySession { sql_mode, charset: parse_charsets(charsets), time_zone },
                end: Position { file, pos, gtid_set: None, gtid: None },
                timestamp: at,
                refused,
            })
            .collect();
        Ok((!pending.is_empty()).then_some(pending))
    }

    /// Marks the records of `table` applied by the swap at `at`.
    pub async fn swapped(&mut self, table: &TableName, at: &Position) -> crate::Result<()> {
        self.conn
            .exec_drop(
                "UPDATE ferry_meta.online_ddl SET swapped_file = ?, swapped_pos = ? \
                 WHERE job = ? AND db = ? AND tbl = ? AND swapped_file IS NULL",
                (&at.file, at.pos, self.job, &table.database, &table.table),
            )
            .await
            .sql("mark an online schema change applied in ferry_meta.online_ddl")
    }
}

fn parse_charsets(text: Option<String>) -> Option<[u16; 3]> {
    let text = text?;
    let ids: Vec<u16> = text.split(',').filter_map(|id| id.parse().ok()).collect();
    ids.try_into().ok()
}

/// Why a swap with nothing recorded stops the job.
pub fn unrecorded_swap(table: &TableName) -> String {
    format!(
        "it swaps in an online schema change of `{}`.`{}` whose ALTER of the shadow table Ferry \
         did not see (the tool ran it before the job's start position, for example during the \
         copy), so the target table would keep its former schema: make the target table match \
         the source's `SHOW CREATE TABLE`, then skip this statement",
        table.database, table.table
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::Selection;
    use ferry_crds::job::{ObjectSelection, TableRef};

    fn filter(databases: &[&str], tables: &[(&str, &str)]) -> Filter {
        let objects = ObjectSelection {
            databases: databases.iter().map(|d| d.to_string()).collect(),
            tables: tables
                .iter()
                .map(|(d, t)| TableRef { database: d.to_string(), table: t.to_string() })
                .collect(),
            exclude: vec![],
            case_sensitive: true,
            routines: false,
        };
        Filter::new(Selection::new(Some(objects), vec![], vec![]))
    }

    fn table(t: &str) -> TableName {
        TableName { database: "app".into(), table: t.into() }
    }

    /// The statements gh-ost and pt-online-schema-change log (as MariaDB 10.11 wrote them), under
    /// a database rule and a table rule.
    #[test]
    fn the_tools_statements_are_recognised() {
        let cases: &[(&str, Kind)] = &[
            (
                "DROP TABLE IF EXISTS `_t_gho` /* generated by server */",
                Kind::Reset(vec![table("t")]),
            ),
            ("DROP TABLE IF EXISTS `_t_del` /* generated by server */", Kind::Ignore),
            ("create /* gh-ost */ table `app`.`_t_ghc` (id bigint)", Kind::Ignore),
            (
                "create /* gh-ost */ table `app`.`_t_gho` like `app`.`t`",
                Kind::Reset(vec![table("t")]),
            ),
            (
                "alter /* gh-ost */ table `app`.`_t_gho` ADD COLUMN d INT, ADD INDEX id2 (d)",
                Kind::Record {
                    table: table("t"),
                    alter: "ALTER TABLE `t` ADD COLUMN d INT, ADD INDEX id2 (d)".into(),
                },
            ),
            (
                "rename /* gh-ost */ table `app`.`t` to `app`.`_t_del`, `app`.`_t_gho` to `app`.`t`",
                Kind::Swap(table("t")),
            ),
            (
                "CREATE TABLE `app`.`_t_new` (\n `id` int(11) NOT NULL)",
                Kind::Reset(vec![table("t")]),
            ),
            (
                "ALTER TABLE `app`.`_t_new` ADD COLUMN c INT",
                Kind::Record {
                    table: table("t"),
                    alter: "ALTER TABLE `t` ADD COLUMN c INT".into(),
                },
            ),
            ("ANALYZE TABLE `app`.`_t_new` /* pt-online-schema-change */", Kind::NotTool),
            (
                "RENAME TABLE `app`.`t` TO `app`.`_t_old`, `app`.`_t_new` TO `app`.`t`",
                Kind::Swap(table("t")),
            ),
            ("DROP TABLE IF EXISTS `_t_old` /* generated by server */", Kind::Ignore),
            // gh-ost's two-step cut-over.
            ("alter /* gh-ost */ table `app`.`t` rename `app`.`_t_del`", Kind::Ignore),
            ("RENAME TABLE `app`.`_t_gho` TO `app`.`_t_gho2`", Kind::NotTool),
            ("alter /* gh-ost */ table `app`.`_t_gho` rename `app`.`t`", Kind::Swap(table("t"))),
            // Another table's tool tables, and ordinary statements.
            ("ALTER TABLE `elsewhere`.`_other_gho` ADD c INT", Kind::NotTool),
            ("ALTER TABLE `app`.`t` ADD c INT", Kind::NotTool),
            ("RENAME TABLE `app`.`t` TO `app`.`t2`", Kind::NotTool),
        ];
        for f in [filter(&["app"], &[]), filter(&[], &[("app", "t")])] {
            for (sql, expected) in cases {
                assert_eq!(classify(&f, "app", sql), *expected, "{sql}");
            }
        }
    }

    #[test]
    fn alters_are_rewritten_for_the_real_table() {
        let cases = [
            ("ALTER TABLE _t_gho ADD c INT", Some("ALTER TABLE `t` ADD c INT")),
            ("alter online ignore table `a`.`_t_gho` drop x", Some("ALTER TABLE `t` drop x")),
            (
                "ALTER TABLE `we``ird` . `_t_new`  ENGINE=InnoDB ",
                Some("ALTER TABLE `t` ENGINE=InnoDB"),
            ),
            ("ALTER TABLE _t_gho", None),
            ("ALTER VIEW v AS SELECT 1", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(alter_for(sql, "t").as_deref(), expected, "{sql}");
        }
    }

    #[test]
    fn charsets_round_trip() {
        assert_eq!(parse_charsets(Some("33,45,8".into())), Some([33, 45, 8]));
        assert_eq!(parse_charsets(Some("33,45".into())), None);
        assert_eq!(parse_charsets(None), None);
    }
}
