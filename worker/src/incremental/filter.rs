//! Which binlog changes belong to the job: the job's [`Selection`] (objects, routes and event
//! filters), and the tables a DDL statement touches (a small parser for the statements Ferry
//! replicates; anything else is ignored).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ferry_crds::Selection;
use ferry_crds::job::{EventType, SkippedEvents};

use crate::meta::full::TablePositions;
use crate::meta::incremental::Position;

/// The job's selection, where the copy read each table, and the count of events its filters
/// dropped (shared by every clone, read by the status monitor).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    selection: Selection,
    copied_at: TablePositions,
    /// Tables added to the selection while replicating: where their target tables were created.
    created_at: TablePositions,
    skipped: Arc<SkipCounts>,
}

impl Filter {
    pub fn new(selection: Selection) -> Self {
        Self {
            selection,
            copied_at: TablePositions::new(),
            created_at: TablePositions::new(),
            skipped: Arc::default(),
        }
    }

    /// Skips a table's row changes that its copy already holds: those in transactions ending at
    /// or before the position its rows were read at.
    pub fn with_copy_positions(mut self, copied_at: TablePositions) -> Self {
        self.copied_at = copied_at;
        self
    }

    /// Skips the row changes and DDL of tables added to the selection while replicating up to
    /// where their target tables were created (the background copy holds them).
    pub fn with_created_positions(mut self, created_at: TablePositions) -> Self {
        self.created_at = created_at;
        self
    }

    /// Whether a DDL statement ending at `at` touches only tables whose target tables were
    /// created at or after it (from the source's definition, which holds it).
    pub fn precedes_creation(&self, default_schema: &str, sql: &str, at: &Position) -> bool {
        let objects = ddl_objects(default_schema, sql).unwrap_or_default();
        !objects.is_empty()
            && objects.iter().all(|o| match o {
                Object::Table(d, t) => before(&self.created_at, d, t, at),
                Object::Database(_) => false,
            })
    }

    /// The counts of events dropped by `spec.filters`.
    pub fn skipped(&self) -> Arc<SkipCounts> {
        self.skipped.clone()
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// Whether a row change to `database`.`table`, in an event ending at `at`, is replicated.
    /// The copy's positions are transaction boundaries, so a transaction's events are all before
    /// or all after one.
    pub fn row(&self, database: &str, table: &str, at: &Position) -> bool {
        let in_copy = before(&self.copied_at, database, table, at)
            || before(&self.created_at, database, table, at);
        !in_copy && self.table(database, table)
    }

    /// Whether `rows` row changes of `kind` to a selected table are dropped by an event filter
    /// (and counted as such).
    pub fn drops_rows(&self, kind: EventType, database: &str, table: &str, rows: usize) -> bool {
        let drop = self.selection.ignores(kind, database, Some(table));
        if drop {
            self.skipped.add(kind, rows as i64);
        }
        drop
    }

    /// Whether changes to `database`.`table` are replicated.
    pub fn table(&self, database: &str, table: &str) -> bool {
        self.selection.table(database, table)
    }

    /// Whether a whole database is replicated (its CREATE/DROP DATABASE statements).
    pub fn database(&self, database: &str) -> bool {
        self.selection.database(database)
    }

    /// What to do with a statement from the binlog.
    pub fn ddl(&self, default_schema: &str, sql: &str) -> DdlDecision {
        if let Some(program) = super::programs::program_ddl(default_schema, sql) {
            return program.decision(&self.selection);
        }
        let Some(objects) = ddl_objects(default_schema, sql) else {
            return DdlDecision::Ignore;
        };
        let selected: Vec<bool> = objects
            .iter()
            .map(|o| match o {
                Object::Database(d) => self.database(d),
                Object::Table(d, t) => self.table(d, t),
            })
            .collect();
        if !selected.iter().all(|s| *s) {
            return if selected.iter().any(|s| *s) {
                DdlDecision::Mixed
            } else {
                DdlDecision::Ignore
            };
        }
        let kind = ddl_kind(sql);
        let ignored = |o: &Object| match o {
            Object::Database(d) => self.selection.ignores(kind, d, None),
            Object::Table(d, t) => self.selection.ignores(kind, d, Some(t)),
        };
        if objects.iter().all(ignored) {
            self.skipped.add(kind, 1);
            return DdlDecision::Filtered;
        }
        if objects.iter().any(ignored) {
            tracing::warn!(sql = %redacted(sql, 160), "applying DDL that spec.filters drops for only some of its tables");
        }
        DdlDecision::Apply
    }

    /// Where a selected DDL statement runs on the target: `Ok(None)` as it is, `Ok(Some(db))`
    /// in default database `db` (a database route, with every name in the statement
    /// unqualified), `Err(why)` when routes make it impossible to replay as written.
    pub fn ddl_route(&self, default_schema: &str, sql: &str) -> Result<Option<String>, String> {
        let rules = &self.selection;
        if let Some(why) = super::programs::route_refusal(rules, default_schema, sql) {
            return Err(why);
        }
        let objects = ddl_objects(default_schema, sql).unwrap_or_default();
        let routed = |o: &Object| match o {
            Object::Database(d) => rules.route_database(d) != *d,
            Object::Table(d, t) => rules.is_routed(d, t),
        };
        if !objects.iter().any(routed) {
            return Ok(None);
        }
        if let Some(Object::Table(d, t)) =
            objects.iter().find(|o| matches!(o, Object::Table(d, t) if rules.is_merged(d, t)))
        {
            let to = rules.route(d, t);
            return Err(format!(
                "`{d}`.`{t}` is merged with other tables into `{}`.`{}` by spec.routes, and Ferry \
                 does not replay DDL on merged tables (each shard would run it again): change the \
                 target table yourself once, then skip this statement on every shard",
                to.database, to.table
            ));
        }
        // Only a statement naming tables unqualified, in a database routed whole and under
        // their own names, runs unchanged in the routed database.
        const UNQUALIFIED: &str = "\u{0}default";
        let unqualified = ddl_objects(UNQUALIFIED, sql)
            .unwrap_or_default()
            .iter()
            .all(|o| matches!(o, Object::Table(d, _) if d == UNQUALIFIED));
        let to_db = rules.route_database(default_schema);
        let same_tables = objects.iter().all(|o| match o {
            Object::Table(d, t) => {
                rules.route(d, t)
                    == ferry_crds::selection::Routed { database: to_db.clone(), table: t.clone() }
            }
            Object::Database(_) => false,
        });
        if unqualified && same_tables {
            return Ok(Some(to_db));
        }
        Err("it touches objects that spec.routes lands under other names, and Ferry replays \
             routed DDL only when it names tables without a database, in a database routed \
             whole: run the change on the target yourself, or replace the statement"
            .into())
    }
}

/// Whether `at` is at or before the position `positions` holds for the table.
fn before(positions: &TablePositions, database: &str, table: &str, at: &Position) -> bool {
    let position = positions.get(database).and_then(|tables| tables.get(table));
    position.is_some_and(|(file, pos)| (at.file.as_str(), at.pos) <= (file.as_str(), *pos))
}

/// Counts of events dropped by `spec.filters`.
#[derive(Debug, Default)]
pub struct SkipCounts([AtomicI64; 7]);

impl SkipCounts {
    fn slot(kind: EventType) -> usize {
        match kind {
            EventType::Insert => 0,
            EventType::Update => 1,
            EventType::Delete => 2,
            EventType::Truncate => 3,
            EventType::DropTable => 4,
            EventType::DropDatabase => 5,
            EventType::OtherDdl => 6,
        }
    }

    pub fn add(&self, kind: EventType, count: i64) {
        self.0[Self::slot(kind)].fetch_add(count, Ordering::Relaxed);
    }

    /// The counts as the status shows them; `None` when nothing was dropped.
    pub fn status(&self) -> Option<SkippedEvents> {
        let get = |kind| self.0[Self::slot(kind)].load(Ordering::Relaxed);
        let counts = SkippedEvents {
            insert: get(EventType::Insert),
            update: get(EventType::Update),
            delete: get(EventType::Delete),
            truncate: get(EventType::Truncate),
            drop_table: get(EventType::DropTable),
            drop_database: get(EventType::DropDatabase),
            other_ddl: get(EventType::OtherDdl),
        };
        (counts.total() > 0).then_some(counts)
    }
}

/// The event type of a replicated DDL statement, for `spec.filters`.
pub fn ddl_kind(sql: &str) -> EventType {
    let tokens = tokenize(sql);
    let mut t = Tokens { tokens: &tokens, at: 0 };
    match (t.word().as_deref(), t.word().as_deref()) {
        (Some("TRUNCATE"), _) => EventType::Truncate,
        (Some("DROP"), Some("TABLE")) => EventType::DropTable,
        (Some("DROP"), Some("DATABASE" | "SCHEMA")) => EventType::DropDatabase,
        _ => EventType::OtherDdl,
    }
}

/// The outcome for one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlDecision {
    /// Replicated DDL on selected objects.
    Apply,
    /// Not DDL Ferry replicates, or only objects outside the selection.
    Ignore,
    /// Touches objects inside and outside the selection (a rename into or out of it): skipped
    /// with a warning.
    Mixed,
    /// Dropped by `spec.filters` (and counted).
    Filtered,
}

/// An object a DDL statement touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Database(String),
    Table(String, String),
}

/// The objects of a replicated DDL statement, or `None` when the statement is not one.
pub fn ddl_objects(default_schema: &str, sql: &str) -> Option<Vec<Object>> {
    let tokens = tokenize(sql);
    let mut t = Tokens { tokens: &tokens, at: 0 };
    let table = |t: &mut Tokens<'_>| t.name(default_schema);
    match t.word()?.as_str() {
        "CREATE" => {
            t.skip_words(&["OR", "REPLACE"]);
            super::programs::skip_view_options(&mut t);
            match t.word()?.as_str() {
                "VIEW" => Some(vec![table(&mut t)?]),
                "TABLE" => {
                    t.skip_words(&["IF", "NOT", "EXISTS"]);
                    let mut objects = vec![table(&mut t)?];
                    // CREATE TABLE a LIKE b: b must be selected too for the copy to make sense.
                    if t.peek_word().as_deref() == Some("LIKE") {
                        t.at += 1;
                        objects.push(table(&mut t)?);
                    }
                    Some(objects)
                }
                "DATABASE" | "SCHEMA" => {
                    t.skip_words(&["IF", "NOT", "EXISTS"]);
                    Some(vec![Object::Database(t.ident()?)])
                }
                "UNIQUE" | "FULLTEXT" | "SPATIAL" | "INDEX" => index_target(&mut t, default_schema),
                _ => None,
            }
        }
        "DROP" => match t.word()?.as_str() {
            "TABLE" | "VIEW" => {
                t.skip_words(&["IF", "EXISTS"]);
                let mut objects = vec![table(&mut t)?];
                while t.eat(",") {
                    objects.push(table(&mut t)?);
                }
                Some(objects)
            }
            "DATABASE" | "SCHEMA" => {
                t.skip_words(&["IF", "EXISTS"]);
                Some(vec![Object::Database(t.ident()?)])
            }
            "INDEX" => index_target(&mut t, default_schema),
            _ => None,
        },
        "ALTER" => {
            t.skip_words(&["ONLINE", "IGNORE"]);
            super::programs::skip_view_options(&mut t);
            match t.word()?.as_str() {
                "VIEW" => return Some(vec![table(&mut t)?]),
                "TABLE" => {}
                _ => return None,
            }
            t.skip_words(&["IF", "EXISTS"]);
            let mut objects = vec![table(&mut t)?];
            while let Some(at) = t.find_word("RENAME") {
                t.at = at + 1;
                match t.peek_word().as_deref() {
                    Some("COLUMN" | "INDEX" | "KEY") => continue,
                    Some("TO" | "AS") => t.at += 1,
                    _ => {}
                }
                objects.push(table(&mut t)?);
            }
            Some(objects)
        }
        "RENAME" => {
            if t.word()? != "TABLE" {
                return None;
            }
            let mut objects = Vec::new();
            loop {
                objects.push(table(&mut t)?);
                if t.word()? != "TO" {
                    return None;
                }
                objects.push(table(&mut t)?);
                if !t.eat(",") {
                    return Some(objects);
                }
            }
        }
        "TRUNCATE" => {
            t.skip_words(&["TABLE"]);
            Some(vec![table(&mut t)?])
        }
        _ => None,
    }
}

/// The tables a data-changing statement (INSERT, REPLACE, UPDATE, DELETE, LOAD DATA) may change,
/// as the source logs it in statement format; `None` when the statement changes no rows.
/// UPDATE and DELETE name every table of their table references (those only read included):
/// a statement is never missed, at worst one is reported that changes only unselected tables.
pub fn dml_tables(default_schema: &str, sql: &str) -> Option<Vec<Object>> {
    let tokens = tokenize(sql);
    let mut t = Tokens { tokens: &tokens, at: 0 };
    let verb = t.word()?;
    const MODIFIERS: &[&str] = &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "QUICK", "IGNORE"];
    match verb.as_str() {
        "INSERT" | "REPLACE" => {
            t.skip_words(MODIFIERS);
            t.skip_words(&["INTO"]);
            Some(t.name(default_schema).into_iter().collect())
        }
        "LOAD" => {
            let at = t.find_word("TABLE")?;
            t.at = at + 1;
            Some(t.name(default_schema).into_iter().collect())
        }
        "UPDATE" | "DELETE" => {
            t.skip_words(MODIFIERS);
            let end: &[&str] =
                if verb == "UPDATE" { &["SET"] } else { &["WHERE", "ORDER", "LIMIT", "RETURNING"] };
            Some(table_references(&mut t, default_schema, end))
        }
        _ => None,
    }
}

/// Table names in a table reference list up to one of the `end` words: the first, and those
/// after FROM, JOIN, USING and commas (aliases, ON conditions and `t.*` are passed over).
fn table_references(t: &mut Tokens<'_>, default_schema: &str, end: &[&str]) -> Vec<Object> {
    let mut objects = Vec::new();
    let mut expect_name = true;
    while t.at < t.tokens.len() {
        if let Some(word) = t.peek_word() {
            if end.contains(&word.as_str()) {
                break;
            }
            if matches!(word.as_str(), "FROM" | "JOIN" | "USING") {
                t.at += 1;
                expect_name = true;
                continue;
            }
        }
        if t.eat(",") {
            expect_name = true;
            continue;
        }
        if expect_name && let Some(object) = t.name(default_schema) {
            objects.push(object);
        } else {
            t.at += 1;
        }
        expect_name = false;
    }
    objects
}

/// A statement as an error may show it: string literals blanked (they may hold secrets),
/// whitespace collapsed, at most `max` characters.
pub fn redacted(sql: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push_str("'…'");
                while let Some(n) = chars.next() {
                    if n == '\\' {
                        chars.next();
                    } else if n == c {
                        if chars.peek() != Some(&c) {
                            break;
                        }
                        chars.next();
                    }
                }
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    let out = out.trim();
    if out.chars().count() > max {
        format!("{}…", out.chars().take(max).collect::<String>())
    } else {
        out.to_string()
    }
}

fn index_target(t: &mut Tokens<'_>, default_schema: &str) -> Option<Vec<Object>> {
    let at = t.find_word("ON")?;
    t.at = at + 1;
    Some(vec![t.name(default_schema)?])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    /// A bare word, upper-cased.
    Word(String),
    /// A backquoted identifier, unquoted.
    Quoted(String),
    Punct(char),
}

pub(super) fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            // Comments, including MariaDB's `/* generated by server */`.
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '`' {
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '`' {
                    if chars.get(i + 1) == Some(&'`') {
                        name.push('`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            tokens.push(Token::Quoted(name));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '"'
            && let Some((name, end)) = double_quoted(&chars, i)
        {
            // A string in the default sql_mode, a name under ANSI_QUOTES: only where a name is
            // expected is it read as one (a string cannot stand there).
            i = end;
            tokens.push(Token::Quoted(name));
        } else if c == '\'' {
            // String literals carry no names; skip them.
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            tokens.push(Token::Punct('\''));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// The text of the `"..."` starting at `at` (doubled quotes as one) and where it ends; `None`
/// when it holds a backslash escape (a string, then).
fn double_quoted(chars: &[char], at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut i = at + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => return None,
            '"' if chars.get(i + 1) == Some(&'"') => {
                name.push('"');
                i += 2;
            }
            '"' => return Some((name, i + 1)),
            c => {
                name.push(c);
                i += 1;
            }
        }
    }
    None
}

pub(super) struct Tokens<'a> {
    pub(super) tokens: &'a [Token],
    pub(super) at: usize,
}

impl Tokens<'_> {
    pub(super) fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.at)? {
            Token::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    pub(super) fn word(&mut self) -> Option<String> {
        let w = self.peek_word()?;
        self.at += 1;
        Some(w)
    }

    pub(super) fn skip_words(&mut self, words: &[&str]) {
        while let Some(w) = self.peek_word() {
            if !words.contains(&w.as_str()) {
                return;
            }
            self.at += 1;
        }
    }

    pub(super) fn eat(&mut self, punct: &str) -> bool {
        let matches =
            matches!(self.tokens.get(self.at), Some(Token::Punct(c)) if punct.starts_with(*c));
        if matches {
            self.at += 1;
        }
        matches
    }

    pub(super) fn find_word(&self, word: &str) -> Option<usize> {
        (self.at..self.tokens.len())
            .find(|&i| matches!(&self.tokens[i], Token::Word(w) if w.eq_ignore_ascii_case(word)))
    }

    pub(super) fn ident(&mut self) -> Option<String> {
        let name = match self.tokens.get(self.at)? {
            Token::Word(w) | Token::Quoted(w) => w.clone(),
            Token::Punct(_) => return None,
        };
        self.at += 1;
        Some(name)
    }

    /// `db.table` or `table` (in the default schema).
    pub(super) fn name(&mut self, default_schema: &str) -> Option<Object> {
        let first = self.ident()?;
        if self.eat(".") {
            let table = self.ident()?;
            return Some(Object::Table(first, table));
        }
        Some(Object::Table(default_schema.to_string(), first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::job::{
        EventFilter, ObjectPattern, ObjectSelection, Route, RouteTarget, TableRef,
    };

    fn table(d: &str, t: &str) -> Object {
        Object::Table(d.into(), t.into())
    }

    #[test]
    fn changes_up_to_a_backfilled_tables_creation_are_skipped() {
        let at = |pos| Position { file: "bin.000002".into(), pos, ..Default::default() };
        let mut created = TablePositions::new();
        created.entry("app".into()).or_default().insert("added".into(), ("bin.000002".into(), 500));
        let filter = Filter::new(Selection::databases(&["app"])).with_created_positions(created);
        assert!(!filter.row("app", "added", &at(500)), "a change the copy holds");
        assert!(filter.row("app", "added", &at(501)));
        assert!(filter.row("app", "kept", &at(100)), "other tables are not affected");
        let alter = "ALTER TABLE added ADD c INT";
        assert!(filter.precedes_creation("app", alter, &at(400)));
        assert!(!filter.precedes_creation("app", alter, &at(600)));
        // A statement also naming another table runs as usual.
        assert!(!filter.precedes_creation("app", "RENAME TABLE added TO a2, kept TO k2", &at(400)));
        assert!(!filter.precedes_creation("app", "CREATE DATABASE x", &at(400)));
    }

    #[test]
    fn ddl_statements_name_their_tables() {
        assert_eq!(ddl_objects("app", "CREATE TABLE t (id int)"), Some(vec![table("app", "t")]));
        assert_eq!(
            ddl_objects("app", "DROP TABLE IF EXISTS `a`,`other`.`b` /* generated by server */"),
            Some(vec![table("app", "a"), table("other", "b")])
        );
        assert_eq!(
            ddl_objects("", "RENAME TABLE app.a TO app.b, x TO y"),
            Some(vec![table("app", "a"), table("app", "b"), table("", "x"), table("", "y")])
        );
        assert_eq!(
            ddl_objects("app", "alter table t rename column a to b, rename to u"),
            Some(vec![table("app", "t"), table("app", "u")])
        );
        assert_eq!(ddl_objects("app", "create index i on t (a)"), Some(vec![table("app", "t")]));
        assert_eq!(ddl_objects("app", "TRUNCATE t"), Some(vec![table("app", "t")]));
        // Under ANSI_QUOTES.
        assert_eq!(
            ddl_objects("app", "ALTER TABLE \"mo\"\"des\" ADD \"q\" INT"),
            Some(vec![table("app", "mo\"des")])
        );
        assert_eq!(
            ddl_objects("", "CREATE DATABASE IF NOT EXISTS `x`"),
            Some(vec![Object::Database("x".into())])
        );
        assert_eq!(ddl_objects("app", "GRANT ALL ON *.* TO x"), None);
        assert_eq!(ddl_objects("app", "CREATE USER x"), None);
    }

    #[test]
    fn dml_statements_name_the_tables_they_may_change() {
        assert_eq!(
            dml_tables("app", "INSERT IGNORE INTO t (a) VALUES (1)"),
            Some(vec![table("app", "t")])
        );
        assert_eq!(dml_tables("app", "replace `o`.`t` set a=1"), Some(vec![table("o", "t")]));
        assert_eq!(
            dml_tables("app", "UPDATE a AS x JOIN o.b y ON x.id = y.id, c SET x.v = 1"),
            Some(vec![table("app", "a"), table("o", "b"), table("app", "c")])
        );
        assert_eq!(
            dml_tables("app", "DELETE FROM t WHERE id IN (SELECT id FROM u)"),
            Some(vec![table("app", "t")])
        );
        assert_eq!(
            dml_tables("app", "DELETE t1.*, t2 FROM t1 JOIN t2 USING (id) WHERE 1"),
            Some(vec![table("app", "t2"), table("app", "t1"), table("app", "t2")])
        );
        assert_eq!(
            dml_tables("", "LOAD DATA INFILE '/x' INTO TABLE `app`.`t`"),
            Some(vec![table("app", "t")])
        );
        assert_eq!(dml_tables("app", "SAVEPOINT a"), None);
        assert_eq!(dml_tables("app", "ALTER TABLE t ADD c INT"), None);
    }

    #[test]
    fn statements_in_errors_hide_their_strings() {
        assert_eq!(
            redacted("INSERT INTO t VALUES (1, 'hunter2', \"x\\\"y\", 'it''s')\n  -- end", 200),
            "INSERT INTO t VALUES (1, '…', '…', '…') -- end"
        );
        assert_eq!(redacted("UPDATE t SET a = 1", 10), "UPDATE t S…");
    }

    #[test]
    fn renames_out_of_the_selection_are_mixed() {
        let objects = ObjectSelection {
            tables: vec![TableRef { database: "app".into(), table: "a".into() }],
            ..Default::default()
        };
        let filter = Filter::new(Selection::new(Some(objects), vec![], vec![]));
        assert_eq!(filter.ddl("app", "RENAME TABLE a TO z"), DdlDecision::Mixed);
        assert_eq!(filter.ddl("app", "ALTER TABLE a ADD c INT"), DdlDecision::Apply);
        assert_eq!(filter.ddl("app", "ALTER TABLE q ADD c INT"), DdlDecision::Ignore);
        assert_eq!(filter.ddl("mysql", "CREATE TABLE t (a int)"), DdlDecision::Ignore);
    }

    fn pattern(database: &str, table: Option<&str>) -> ObjectPattern {
        ObjectPattern { database: database.into(), table: table.map(String::from) }
    }

    #[test]
    fn the_checkpoint_schema_is_never_replicated() {
        let filter = Filter::new(Selection::default());
        assert!(!filter.table(crate::meta::META_SCHEMA, "incremental_checkpoint"));
        assert!(!filter.database(crate::meta::META_SCHEMA));
    }

    #[test]
    fn filtered_ddl_is_dropped_and_counted() {
        let filters = vec![EventFilter {
            matches: pattern("app", Some("audit_*")),
            ignore: vec![EventType::DropTable, EventType::Truncate],
        }];
        let filter = Filter::new(Selection::new(None, vec![], filters));
        assert_eq!(filter.ddl("app", "DROP TABLE audit_1"), DdlDecision::Filtered);
        assert_eq!(filter.ddl("app", "TRUNCATE TABLE `audit_2`"), DdlDecision::Filtered);
        assert_eq!(filter.ddl("app", "DROP TABLE audit_1, orders"), DdlDecision::Apply);
        assert_eq!(filter.ddl("app", "ALTER TABLE audit_1 ADD c INT"), DdlDecision::Apply);
        assert_eq!(filter.ddl("app", "DROP TABLE orders"), DdlDecision::Apply);
        let counts = filter.skipped().status().expect("counted");
        assert_eq!((counts.drop_table, counts.truncate, counts.total()), (1, 1, 2));
        assert_eq!(ddl_kind("drop schema x"), EventType::DropDatabase);
        assert_eq!(ddl_kind("CREATE DATABASE x"), EventType::OtherDdl);
    }

    #[test]
    fn routed_ddl_runs_in_the_routed_database_or_is_refused() {
        let routes = vec![
            Route {
                from: pattern("app_1", None),
                to: RouteTarget { database: "shop1".into(), table: None },
            },
            Route {
                from: pattern("shard_*", Some("orders")),
                to: RouteTarget { database: "shop".into(), table: Some("orders".into()) },
            },
        ];
        let filter = Filter::new(Selection::new(None, routes, vec![]));
        assert_eq!(filter.ddl_route("other", "ALTER TABLE t ADD c INT"), Ok(None));
        assert_eq!(
            filter.ddl_route("app_1", "ALTER TABLE t ADD c INT"),
            Ok(Some("shop1".to_string()))
        );
        assert_eq!(filter.ddl_route("app_1", "RENAME TABLE a TO b"), Ok(Some("shop1".to_string())));
        let qualified = filter.ddl_route("x", "ALTER TABLE app_1.t ADD c INT").unwrap_err();
        assert!(qualified.contains("without a database"), "{qualified}");
        let merged = filter.ddl_route("shard_2", "ALTER TABLE orders ADD c INT").unwrap_err();
        assert!(merged.contains("merged with other tables into `shop`.`orders`"), "{merged}");
        assert!(filter.ddl_route("x", "CREATE DATABASE app_1").is_err());
    }
}
