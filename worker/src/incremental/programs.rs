//! Views and stored programs (procedures, functions, triggers, events) in the binlog and in the
//! copy: which of their statements Ferry replays, how their DEFINER clause is dropped, and when
//! `spec.routes` makes a view or routine impossible to create as written.
//!
//! Procedures and functions are replayed when `spec.objects.routines` asks for them. Triggers and
//! events never are: the row events of the binlog already carry what a trigger did, and Ferry
//! applies them as SQL statements, so a trigger created on the target would fire a second time
//! on Ferry's writes; an event would run on both servers. Both are for after cutover.

use ferry_crds::Selection;

use super::filter::{DdlDecision, Token, Tokens, tokenize};

/// A kind of stored program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    Procedure,
    Function,
    Trigger,
    Event,
}

impl ProgramKind {
    fn of(word: &str) -> Option<Self> {
        Some(match word {
            "PROCEDURE" => Self::Procedure,
            "FUNCTION" => Self::Function,
            "TRIGGER" => Self::Trigger,
            "EVENT" => Self::Event,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Procedure => "procedure",
            Self::Function => "function",
            Self::Trigger => "trigger",
            Self::Event => "event",
        }
    }

    /// Procedures and functions: created on request, never acting by themselves.
    pub fn is_routine(self) -> bool {
        matches!(self, Self::Procedure | Self::Function)
    }
}

/// A CREATE, ALTER or DROP of a stored program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramDdl {
    pub kind: ProgramKind,
    pub database: String,
    pub name: String,
}

impl ProgramDdl {
    /// Replayed when it is a routine of a covered database and `spec.objects.routines` is set;
    /// otherwise skipped, with a log line saying why.
    pub fn decision(&self, rules: &Selection) -> DdlDecision {
        if !rules.may_cover_database(&self.database) {
            return DdlDecision::Ignore;
        }
        let why = match self.kind {
            _ if self.kind.is_routine() && rules.objects().routines => return DdlDecision::Apply,
            ProgramKind::Procedure | ProgramKind::Function => "spec.objects.routines is not set",
            ProgramKind::Trigger => {
                "a trigger on the target would fire again on the rows Ferry writes; create it \
                 after cutover"
            }
            ProgramKind::Event => "an event would run on both servers; create it after cutover",
        };
        tracing::info!(
            kind = self.kind.name(),
            object = %crate::sql::qualified(&self.database, &self.name),
            why,
            "stored program statement not replicated"
        );
        DdlDecision::Ignore
    }
}

/// The stored program a statement creates, alters or drops; `None` for any other statement.
pub fn program_ddl(default_schema: &str, sql: &str) -> Option<ProgramDdl> {
    let tokens = tokenize(sql);
    let mut t = Tokens { tokens: &tokens, at: 0 };
    let verb = t.word()?;
    match verb.as_str() {
        "CREATE" | "ALTER" => {
            t.skip_words(&["OR", "REPLACE"]);
            skip_view_options(&mut t);
            t.skip_words(&["AGGREGATE"]);
        }
        "DROP" => {}
        _ => return None,
    }
    let kind = ProgramKind::of(&t.word()?)?;
    t.skip_words(&["IF", "NOT", "EXISTS"]);
    match t.name(default_schema)? {
        super::filter::Object::Table(database, name) => Some(ProgramDdl { kind, database, name }),
        super::filter::Object::Database(_) => None,
    }
}

/// Skips `ALGORITHM = x`, `DEFINER = user` and `SQL SECURITY x`, which come between CREATE (or
/// ALTER) and the kind of a view or stored program.
pub(super) fn skip_view_options(t: &mut Tokens<'_>) {
    loop {
        match t.peek_word().as_deref() {
            Some("ALGORITHM") => {
                t.at += 1;
                t.eat("=");
                t.at += 1;
            }
            Some("DEFINER") => {
                t.at += 1;
                t.eat("=");
                // `user`@`host`, 'user'@'host', CURRENT_USER or CURRENT_USER().
                t.at += 1;
                if t.eat("@") {
                    t.at += 1;
                }
                if t.eat("(") {
                    t.eat(")");
                }
            }
            Some("SQL") => t.at += 3,
            _ => return,
        }
    }
}

/// Why `spec.routes` keeps a view or routine statement from running as written: a routine in a
/// database that is renamed (Ferry does not rewrite its body), or a view reading a table that
/// lands under another name. `None` for other statements and when nothing is in the way.
pub fn route_refusal(rules: &Selection, default_schema: &str, sql: &str) -> Option<String> {
    if !rules.has_routes() {
        return None;
    }
    if let Some(program) = program_ddl(default_schema, sql) {
        let db = &program.database;
        let to = rules.route_database(db);
        return (program.kind.is_routine() && to != *db).then(|| {
            format!(
                "{} `{db}`.`{}` is in database `{db}`, which spec.routes renames to `{to}`, and \
                 Ferry does not rewrite the bodies of routines: create it on the target yourself",
                program.kind.name(),
                program.name
            )
        });
    }
    view_refusal(rules, default_schema, sql)
}

/// For a CREATE or ALTER VIEW (a statement of the binlog or SHOW CREATE VIEW's output), why its
/// definition would read the wrong objects on the target: it names a table that `spec.routes`
/// lands elsewhere. Unqualified names resolve in the database the view is created in (the
/// routed one). Conservative: a column that shares its name with a routed table counts too.
pub fn view_refusal(rules: &Selection, default_schema: &str, sql: &str) -> Option<String> {
    let tokens = tokenize(sql);
    let mut t = Tokens { tokens: &tokens, at: 0 };
    if !matches!(t.word()?.as_str(), "CREATE" | "ALTER") {
        return None;
    }
    t.skip_words(&["OR", "REPLACE"]);
    skip_view_options(&mut t);
    if t.word()? != "VIEW" {
        return None;
    }
    let super::filter::Object::Table(view_db, view) = t.name(default_schema)? else {
        return None;
    };
    let body = &tokens[t.find_word("AS")? + 1..];
    let wrong = wrongly_resolved(rules, &view_db, body)?;
    Some(format!(
        "view `{view_db}`.`{view}` reads {wrong}, which spec.routes lands under another name, \
         and Ferry does not rewrite view definitions: add {{database: {view_db}, table: {view}}} \
         to spec.objects.exclude and create the view on the target yourself"
    ))
}

/// The first name in a view body that would not resolve to the same object on the target.
fn wrongly_resolved(rules: &Selection, view_db: &str, body: &[Token]) -> Option<String> {
    let ident = |i: usize| match body.get(i) {
        Some(Token::Word(w) | Token::Quoted(w)) => Some(w.as_str()),
        _ => None,
    };
    let dot = |i: usize| body.get(i) == Some(&Token::Punct('.'));
    let home = rules.route_database(view_db);
    let mut i = 0;
    while i < body.len() {
        let Some(first) = ident(i) else {
            i += 1;
            continue;
        };
        if dot(i + 1)
            && let Some(second) = ident(i + 2)
        {
            if rules.is_routed(first, second) {
                return Some(format!("`{first}`.`{second}`"));
            }
            // `db`.`table`.`column`: the column is no table.
            i += if dot(i + 3) { 5 } else { 3 };
            continue;
        }
        let to = rules.route(view_db, first);
        if to.database != home || to.table != first {
            return Some(format!("`{first}`"));
        }
        i += 1;
    }
    None
}

/// The statement without its `DEFINER = user` clause, for a view or stored program: the account
/// may not exist on the target (and naming another account needs SUPER or SET USER there), so
/// the target's own user becomes the definer. Other statements are returned as they are.
pub fn without_definer(sql: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let Some(start) = word_at(&upper, "DEFINER") else { return sql.to_string() };
    let header_ends = ["VIEW", "PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"]
        .iter()
        .filter_map(|kind| word_at(&upper, kind))
        .min();
    let head = upper.trim_start();
    let is_header = (head.starts_with("CREATE") || head.starts_with("ALTER"))
        && header_ends.is_some_and(|end| start < end);
    if !is_header {
        return sql.to_string();
    }
    let bytes = sql.as_bytes();
    let mut at = start + "DEFINER".len();
    while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b'=') {
        at += 1;
    }
    let mut quote = None;
    while at < bytes.len() {
        let b = bytes[at];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if matches!(b, b'`' | b'\'' | b'"') => quote = Some(b),
            None if b.is_ascii_whitespace() => break,
            None => {}
        }
        at += 1;
    }
    format!("{}{}", &sql[..start], sql[at..].trim_start())
}

/// `ALTER ... VIEW` as `CREATE OR REPLACE ... VIEW`, for TiDB, which has no ALTER VIEW (the
/// same options follow both); `None` for other statements.
pub fn alter_view_as_create(sql: &str) -> Option<String> {
    let tokens = tokenize(sql);
    let mut t = Tokens { tokens: &tokens, at: 0 };
    if t.word()? != "ALTER" {
        return None;
    }
    skip_view_options(&mut t);
    if t.word()? != "VIEW" {
        return None;
    }
    let start = sql.len() - sql.trim_start().len();
    Some(format!("CREATE OR REPLACE{}", &sql[start + "ALTER".len()..]))
}

/// Where `word` first stands as a whole word in `upper` (already upper-cased).
fn word_at(upper: &str, word: &str) -> Option<usize> {
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let bytes = upper.as_bytes();
    upper.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + word.len()).copied();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::job::{ObjectPattern, ObjectSelection, Route, RouteTarget};

    fn routed(routes: &[(&str, Option<&str>, &str, Option<&str>)], routines: bool) -> Selection {
        let routes = routes
            .iter()
            .map(|(db, table, to_db, to_table)| Route {
                from: ObjectPattern { database: db.to_string(), table: table.map(String::from) },
                to: RouteTarget { database: to_db.to_string(), table: to_table.map(String::from) },
            })
            .collect();
        let objects = ObjectSelection { routines, ..Default::default() };
        Selection::new(Some(objects), routes, vec![])
    }

    #[test]
    fn program_statements_name_their_object() {
        let p = |kind, db: &str, name: &str| {
            Some(ProgramDdl { kind, database: db.into(), name: name.into() })
        };
        assert_eq!(
            program_ddl("app", "CREATE DEFINER=`root`@`localhost` PROCEDURE `p`() SELECT 1"),
            p(ProgramKind::Procedure, "app", "p")
        );
        assert_eq!(
            program_ddl(
                "x",
                "create or replace definer='a b'@'%' function o.f() returns int return 1"
            ),
            p(ProgramKind::Function, "o", "f")
        );
        assert_eq!(
            program_ddl("app", "DROP TRIGGER IF EXISTS t_bi"),
            p(ProgramKind::Trigger, "app", "t_bi")
        );
        assert_eq!(
            program_ddl("app", "ALTER DEFINER=CURRENT_USER() EVENT e DISABLE"),
            p(ProgramKind::Event, "app", "e")
        );
        assert_eq!(program_ddl("app", "CREATE VIEW v AS SELECT 1"), None);
        assert_eq!(program_ddl("app", "DROP TABLE t"), None);
    }

    #[test]
    fn only_routines_are_replayed_and_only_on_request() {
        let create = |sql| program_ddl("app", sql).expect("a program").decision(&routed(&[], true));
        assert_eq!(create("CREATE PROCEDURE p() SELECT 1"), DdlDecision::Apply);
        assert_eq!(create("DROP FUNCTION f"), DdlDecision::Apply);
        assert_eq!(
            create("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1"),
            DdlDecision::Ignore
        );
        assert_eq!(
            create("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1"),
            DdlDecision::Ignore
        );
        assert_eq!(create("DROP PROCEDURE mysql.p"), DdlDecision::Ignore);
        let off = program_ddl("app", "DROP FUNCTION f").expect("a program");
        assert_eq!(off.decision(&routed(&[], false)), DdlDecision::Ignore);
    }

    #[test]
    fn definers_are_dropped_from_views_and_programs_only() {
        assert_eq!(
            without_definer(
                "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1"
            ),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
        assert_eq!(
            without_definer("CREATE DEFINER = 'my user'@'%' PROCEDURE p() SELECT 'DEFINER=x'"),
            "CREATE PROCEDURE p() SELECT 'DEFINER=x'"
        );
        assert_eq!(
            without_definer("ALTER DEFINER=CURRENT_USER() VIEW v AS SELECT 1"),
            "ALTER VIEW v AS SELECT 1"
        );
        let table = "CREATE TABLE t (definer INT, v INT)";
        assert_eq!(without_definer(table), table);
        let view = "CREATE VIEW v AS SELECT definer FROM t";
        assert_eq!(without_definer(view), view);
    }

    #[test]
    fn alter_view_becomes_create_or_replace() {
        assert_eq!(
            alter_view_as_create(" alter ALGORITHM=MERGE view v AS SELECT 1").as_deref(),
            Some("CREATE OR REPLACE ALGORITHM=MERGE view v AS SELECT 1")
        );
        assert_eq!(alter_view_as_create("ALTER TABLE v ADD c INT"), None);
        assert_eq!(alter_view_as_create("CREATE VIEW v AS SELECT 1"), None);
    }

    #[test]
    fn views_reading_routed_tables_are_refused() {
        let rules = routed(
            &[("app", None, "shop", None), ("crm", Some("leads"), "crm", Some("all_leads"))],
            false,
        );
        let none = |db, sql| view_refusal(&rules, db, sql);
        // In a database routed whole, unqualified names resolve in the routed database.
        assert_eq!(none("app", "CREATE VIEW v AS SELECT t.id FROM t"), None);
        assert_eq!(none("crm", "CREATE VIEW v AS SELECT `o`.`id` FROM `crm`.`orders` o"), None);
        let why = none("x", "CREATE OR REPLACE VIEW v AS SELECT * FROM app.t").expect("refused");
        assert!(why.starts_with("view `x`.`v` reads `app`.`t`"), "{why}");
        let why = none("crm", "ALTER ALGORITHM=MERGE VIEW v AS SELECT id FROM leads");
        assert!(why.expect("refused").contains("reads `leads`"));
        let unrouted = routed(&[], false);
        assert_eq!(view_refusal(&unrouted, "x", "CREATE VIEW v AS SELECT * FROM app.t"), None);
    }

    #[test]
    fn routines_of_renamed_databases_are_refused() {
        let rules = routed(&[("app", None, "shop", None)], true);
        let why = route_refusal(&rules, "app", "CREATE PROCEDURE p() SELECT 1").expect("refused");
        assert!(why.starts_with("procedure `app`.`p` is in database `app`"), "{why}");
        assert_eq!(route_refusal(&rules, "other", "DROP FUNCTION f"), None);
        assert_eq!(route_refusal(&rules, "app", "DROP TRIGGER t"), None);
    }
}
