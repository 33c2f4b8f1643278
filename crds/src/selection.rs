//! Which source tables a job covers, where each lands on the target, and which binlog events it
//! drops: `spec.objects`, `spec.routes` and `spec.filters` as one [`Selection`]. The operator, the
//! precheck, the copy, replication and verify all ask it, so they never disagree.
//!
//! The rules follow TiDB DM's block-allow list, table routes and binlog event filters, with
//! wildcards `*` (any run of characters) and `?` (one character):
//! - a table is covered when an include rule matches it (`databases` by its database, `tables`
//!   by both names; no include rule at all means every user database) and no `exclude` rule
//!   does; system schemas are never covered, whatever the rules say;
//! - a table lands where the first matching table route (`from.table` set) sends it, else where
//!   the first matching database route sends its database, else under its own names;
//! - an event is dropped when a filter whose `match` covers its table ignores its type;
//! - the tables online schema-change tools make beside a table `t` (gh-ost's `_t_gho`, `_t_ghc`
//!   and `_t_del`, pt-online-schema-change's `_t_new` and `_t_old`; see [`tool_table`]) are never
//!   covered, as in DM's online-ddl support, unless a `tables` rule names one exactly: replication
//!   applies the tool's change to `t` itself at the tool's swap.
//!
//! Names compare exactly unless `objects.caseSensitive` is false; system schema names always
//! compare without case.

use crate::job::{EventFilter, EventType, MigrationJobSpec, ObjectPattern, ObjectSelection, Route};

/// Schemas never migrated, whatever the selection says (compared without case): the servers'
/// own, TiDB's, and Ferry's checkpoint schema.
pub const SYSTEM_SCHEMAS: [&str; 7] = [
    "mysql",
    "information_schema",
    "performance_schema",
    "sys",
    "metrics_schema",
    "inspection_schema",
    "ferry_meta",
];

/// Whether `database` is a system schema, never migrated.
pub fn is_system_schema(database: &str) -> bool {
    SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(database))
}

/// Whether `name` contains a wildcard, so that it is a pattern rather than one name.
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// What an online schema-change tool's table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolTable {
    /// The copy of the table the tool alters, then swaps in: gh-ost's `_t_gho`,
    /// pt-online-schema-change's `_t_new`.
    Shadow,
    /// Its bookkeeping: gh-ost's changelog `_t_ghc`, the table swapped out (`_t_del`, `_t_old`).
    Other,
}

const TOOL_SUFFIXES: [(&str, ToolTable); 5] = [
    ("_gho", ToolTable::Shadow),
    ("_new", ToolTable::Shadow),
    ("_ghc", ToolTable::Other),
    ("_del", ToolTable::Other),
    ("_old", ToolTable::Other),
];

/// Whether `name` is a table gh-ost or pt-online-schema-change makes for another table, and
/// which: `_t_gho` is `(Shadow, "t")`. The names are the tools' defaults.
pub fn tool_table(name: &str) -> Option<(ToolTable, &str)> {
    let inner = name.strip_prefix('_')?;
    TOOL_SUFFIXES.iter().find_map(|(suffix, kind)| {
        let table = inner.strip_suffix(suffix)?;
        (!table.is_empty()).then_some((*kind, table))
    })
}

/// Whether `name` matches `pattern` (`*` any run of characters, `?` one character).
pub fn matches(pattern: &str, name: &str, case_sensitive: bool) -> bool {
    let fold = |s: &str| -> Vec<char> {
        if case_sensitive { s.chars().collect() } else { s.to_lowercase().chars().collect() }
    };
    let (pattern, name) = (fold(pattern), fold(name));
    // Greedy match with one backtrack point (the last `*`): linear in practice, never exponential.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Where a source table lands on the target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Routed {
    pub database: String,
    pub table: String,
}

/// The job's selection, routes and event filters (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    objects: ObjectSelection,
    routes: Vec<Route>,
    filters: Vec<EventFilter>,
}

impl Selection {
    /// The selection of `objects` (absent: every user database), with routes and filters.
    pub fn new(
        objects: Option<ObjectSelection>,
        routes: Vec<Route>,
        filters: Vec<EventFilter>,
    ) -> Self {
        Self { objects: objects.unwrap_or_default(), routes, filters }
    }

    /// The selection a job's spec describes.
    pub fn of(spec: &MigrationJobSpec) -> Self {
        Self::new(spec.objects.clone(), spec.routes.clone(), spec.filters.clone())
    }

    /// Only the named databases, nothing else (a convenience for tests and tools).
    pub fn databases(names: &[&str]) -> Self {
        let objects = ObjectSelection {
            databases: names.iter().map(|n| n.to_string()).collect(),
            ..ObjectSelection::default()
        };
        Self::new(Some(objects), Vec::new(), Vec::new())
    }

    pub fn objects(&self) -> &ObjectSelection {
        &self.objects
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    fn name_matches(&self, pattern: &str, name: &str) -> bool {
        matches(pattern, name, self.objects.case_sensitive)
    }

    /// `pattern` covers the table (`table` absent: the database as a whole, which only a rule
    /// without a table or with table `*` covers).
    fn pattern_covers(&self, pattern: &ObjectPattern, database: &str, table: Option<&str>) -> bool {
        if !self.name_matches(&pattern.database, database) {
            return false;
        }
        match (&pattern.table, table) {
            (None, _) => true,
            (Some(p), Some(t)) => self.name_matches(p, t),
            (Some(p), None) => p == "*",
        }
    }

    /// No include rule: every user database.
    fn includes_everything(&self) -> bool {
        self.objects.databases.is_empty() && self.objects.tables.is_empty()
    }

    fn excluded(&self, database: &str, table: Option<&str>) -> bool {
        self.objects.exclude.iter().any(|e| self.pattern_covers(e, database, table))
    }

    /// Whether the job covers `database`.`table`.
    pub fn table(&self, database: &str, table: &str) -> bool {
        if is_system_schema(database) || self.excluded(database, Some(table)) {
            return false;
        }
        if tool_table(table).is_some() && !self.names_table_exactly(database, table) {
            return false;
        }
        self.includes_everything()
            || self.objects.databases.iter().any(|d| self.name_matches(d, database))
            || self.objects.tables.iter().any(|t| {
                self.name_matches(&t.database, database) && self.name_matches(&t.table, table)
            })
    }

    /// Whether a `tables` rule names `database`.`table` without wildcards.
    fn names_table_exactly(&self, database: &str, table: &str) -> bool {
        self.exact_tables()
            .iter()
            .any(|(d, t)| self.same_name(d, database) && self.same_name(t, table))
    }

    /// Whether the job covers `database` as a whole: tables created in it later included, and
    /// its CREATE and DROP DATABASE statements replicated.
    pub fn database(&self, database: &str) -> bool {
        if is_system_schema(database) || self.excluded(database, None) {
            return false;
        }
        self.includes_everything()
            || self.objects.databases.iter().any(|d| self.name_matches(d, database))
    }

    /// Whether some table of `database` may be covered: the databases whose tables the job
    /// reads, and creates on the target.
    pub fn may_cover_database(&self, database: &str) -> bool {
        self.database(database)
            || (!is_system_schema(database)
                && !self.excluded(database, None)
                && self.objects.tables.iter().any(|t| self.name_matches(&t.database, database)))
    }

    /// Databases the rules name exactly (no wildcard): a missing one is a mistake in the spec,
    /// where a pattern matching nothing is not.
    pub fn exact_databases(&self) -> Vec<&str> {
        let named = self.objects.databases.iter().filter(|d| !is_pattern(d));
        named.map(String::as_str).collect()
    }

    /// Tables the rules name exactly (no wildcard in either name).
    pub fn exact_tables(&self) -> Vec<(&str, &str)> {
        let exact = |t: &&crate::job::TableRef| !is_pattern(&t.database) && !is_pattern(&t.table);
        let named = self.objects.tables.iter().filter(exact);
        named.map(|t| (t.database.as_str(), t.table.as_str())).collect()
    }

    /// Whether `a` and `b` name the same object under the job's case rule.
    pub fn same_name(&self, a: &str, b: &str) -> bool {
        if self.objects.case_sensitive { a == b } else { a.to_lowercase() == b.to_lowercase() }
    }

    /// The route `database`.`table` takes, if any: table routes first, then database routes,
    /// each in the order written.
    fn route_of(&self, database: &str, table: &str) -> Option<&Route> {
        let table_routes = self.routes.iter().filter(|r| r.from.table.is_some());
        let database_routes = self.routes.iter().filter(|r| r.from.table.is_none());
        table_routes
            .chain(database_routes)
            .find(|r| self.pattern_covers(&r.from, database, Some(table)))
    }

    /// Where `database`.`table` lands on the target.
    pub fn route(&self, database: &str, table: &str) -> Routed {
        match self.route_of(database, table) {
            Some(r) => Routed {
                database: r.to.database.clone(),
                table: r.to.table.clone().unwrap_or_else(|| table.to_string()),
            },
            None => Routed { database: database.to_string(), table: table.to_string() },
        }
    }

    /// The target database of `database` as a whole (its database route, if any).
    pub fn route_database(&self, database: &str) -> String {
        self.routes
            .iter()
            .filter(|r| r.from.table.is_none())
            .find(|r| self.name_matches(&r.from.database, database))
            .map_or_else(|| database.to_string(), |r| r.to.database.clone())
    }

    /// Whether some route changes a name of `database`.`table`.
    pub fn is_routed(&self, database: &str, table: &str) -> bool {
        self.route(database, table) != Routed { database: database.into(), table: table.into() }
    }

    /// Whether `database`.`table` goes through a route whose source is a pattern: tables of
    /// several sources (shards) may be merged into its target table.
    pub fn is_merged(&self, database: &str, table: &str) -> bool {
        self.route_of(database, table).is_some_and(|r| {
            is_pattern(&r.from.database) || r.from.table.as_deref().is_some_and(is_pattern)
        })
    }

    /// Whether a filter drops events of `kind` on `database`.`table` (`table` absent: an event
    /// on the database as a whole, such as DROP DATABASE).
    pub fn ignores(&self, kind: EventType, database: &str, table: Option<&str>) -> bool {
        self.filters
            .iter()
            .any(|f| f.ignore.contains(&kind) && self.pattern_covers(&f.matches, database, table))
    }

    /// Whether the job has event filters at all.
    pub fn has_filters(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Whether the job has routes at all.
    pub fn has_routes(&self) -> bool {
        !self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{RouteTarget, TableRef};

    fn pattern(database: &str, table: Option<&str>) -> ObjectPattern {
        ObjectPattern { database: database.into(), table: table.map(String::from) }
    }

    fn tables(list: &[(&str, &str)]) -> Vec<TableRef> {
        list.iter()
            .map(|(d, t)| TableRef { database: d.to_string(), table: t.to_string() })
            .collect()
    }

    fn objects(
        databases: &[&str],
        tables_: &[(&str, &str)],
        exclude: &[(&str, Option<&str>)],
    ) -> ObjectSelection {
        ObjectSelection {
            databases: databases.iter().map(|d| d.to_string()).collect(),
            tables: tables(tables_),
            exclude: exclude.iter().map(|(d, t)| pattern(d, *t)).collect(),
            case_sensitive: true,
            routines: false,
        }
    }

    #[test]
    fn wildcards_match_as_documented() {
        let cases = [
            ("app", "app", true, true),
            ("app", "App", true, false),
            ("app", "App", false, true),
            ("app_?", "app_1", true, true),
            ("app_?", "app_12", true, false),
            ("app_?", "app_", true, false),
            ("*", "", true, true),
            ("*", "anything", true, true),
            ("*_bak", "orders_bak", true, true),
            ("*_bak", "orders_bak2", true, false),
            ("a*b*c", "aXbYbZc", true, true),
            ("a*b*c", "aXbYbZ", true, false),
            ("shard_*", "shard_", true, true),
            ("SHARD_*", "shard_7", false, true),
            ("", "", true, true),
            ("", "x", true, false),
        ];
        for (pattern, name, case_sensitive, expected) in cases {
            assert_eq!(
                matches(pattern, name, case_sensitive),
                expected,
                "{pattern:?} vs {name:?} (case sensitive: {case_sensitive})"
            );
        }
    }

    /// The matcher agrees with a plain recursive definition of the wildcards on random patterns
    /// and names over a small alphabet (so that matches are frequent). Fixed seed: a failure
    /// reproduces.
    #[test]
    fn the_matcher_agrees_with_the_recursive_definition() {
        fn reference(p: &[char], n: &[char]) -> bool {
            match (p.first(), n.first()) {
                (None, _) => n.is_empty(),
                (Some('*'), _) => reference(&p[1..], n) || (!n.is_empty() && reference(p, &n[1..])),
                (Some('?'), Some(_)) => reference(&p[1..], &n[1..]),
                (Some(c), Some(d)) => c == d && reference(&p[1..], &n[1..]),
                (Some(_), None) => false,
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..20_000 {
            let mut word = |alphabet: &[char]| -> String {
                (0..next(7)).map(|_| alphabet[next(alphabet.len() as u64) as usize]).collect()
            };
            let p = word(&['a', 'b', '*', '?']);
            let n = word(&['a', 'b']);
            let expected =
                reference(&p.chars().collect::<Vec<_>>(), &n.chars().collect::<Vec<_>>());
            assert_eq!(matches(&p, &n, true), expected, "{p:?} vs {n:?}");
        }
    }

    #[test]
    fn tables_covered_by_include_and_exclude_rules() {
        // (objects, database, table, covered as a table, covered as a whole database)
        let issue_example = objects(
            &["app_?", "shop"],
            &[("crm", "acct_*")],
            &[("*", Some("*_bak")), ("app_tmp", None)],
        );
        let everything = objects(&[], &[], &[]);
        let exclusions_only = objects(&[], &[], &[("logs", None), ("*", Some("tmp_*"))]);
        let cases: Vec<(&ObjectSelection, &str, &str, bool, bool)> = vec![
            (&issue_example, "app_1", "orders", true, true),
            (&issue_example, "app_1", "orders_bak", false, true),
            (&issue_example, "app_10", "orders", false, false),
            (&issue_example, "shop", "items", true, true),
            (&issue_example, "crm", "acct_eu", true, false),
            (&issue_example, "crm", "leads", false, false),
            (&issue_example, "crm", "acct_bak", false, false),
            (&issue_example, "other", "t", false, false),
            (&everything, "anything", "t", true, true),
            (&everything, "mysql", "user", false, false),
            (&everything, "MySQL", "user", false, false),
            (&everything, "ferry_meta", "checkpoint", false, false),
            (&everything, "INFORMATION_SCHEMA", "TABLES", false, false),
            (&exclusions_only, "logs", "t", false, false),
            (&exclusions_only, "app", "tmp_1", false, true),
            (&exclusions_only, "app", "t", true, true),
        ];
        for (objects, database, table, as_table, as_database) in cases {
            let selection = Selection::new(Some(objects.clone()), vec![], vec![]);
            assert_eq!(
                selection.table(database, table),
                as_table,
                "{database}.{table}: {objects:?}"
            );
            assert_eq!(selection.database(database), as_database, "{database}: {objects:?}");
        }
    }

    #[test]
    fn tool_tables_are_covered_only_when_named_exactly() {
        let selection = Selection::new(
            Some(objects(&["app"], &[("crm", "_keep_old"), ("crm", "_t*")], &[])),
            vec![],
            vec![],
        );
        for name in ["_t_gho", "_t_ghc", "_t_del", "_t_new", "_t_old", "_a_b_gho"] {
            assert!(!selection.table("app", name), "{name}");
        }
        for name in ["t_gho", "__gho", "_t_gh", "_new_t", "_t"] {
            assert!(selection.table("app", name), "{name}");
        }
        assert!(selection.table("crm", "_keep_old"), "named exactly");
        assert!(!selection.table("crm", "_t_new"), "matched by a pattern only");
        assert_eq!(tool_table("_a_b_gho"), Some((ToolTable::Shadow, "a_b")));
        assert_eq!(tool_table("_t_del"), Some((ToolTable::Other, "t")));
        assert_eq!(tool_table("__gho"), None);
    }

    #[test]
    fn system_schemas_are_never_covered_even_when_named() {
        let named = Selection::new(
            Some(objects(&["mysql", "SYS", "*"], &[("performance_schema", "*")], &[])),
            vec![],
            vec![],
        );
        for system in SYSTEM_SCHEMAS {
            assert!(!named.table(system, "t"));
            assert!(!named.table(&system.to_uppercase(), "t"));
            assert!(!named.may_cover_database(system));
        }
        assert!(named.table("app", "t"));
    }

    #[test]
    fn case_insensitive_selections_fold_names() {
        let mut objects = objects(&["App"], &[("Crm", "Acct_*")], &[("*", Some("*_BAK"))]);
        objects.case_sensitive = false;
        let selection = Selection::new(Some(objects), vec![], vec![]);
        assert!(selection.table("app", "orders"));
        assert!(selection.table("APP", "orders"));
        assert!(!selection.table("app", "orders_bak"));
        assert!(selection.table("crm", "ACCT_1"));
        assert!(selection.same_name("App", "aPP"));
    }

    #[test]
    fn databases_read_include_those_of_table_rules() {
        let selection =
            Selection::new(Some(objects(&["a"], &[("b*", "t")], &[("bx", None)])), vec![], vec![]);
        assert!(selection.may_cover_database("a"));
        assert!(selection.may_cover_database("b1"));
        assert!(!selection.database("b1"));
        assert!(!selection.may_cover_database("bx"));
        assert!(!selection.may_cover_database("c"));
        assert_eq!(selection.exact_databases(), vec!["a"]);
        assert!(selection.exact_tables().is_empty());
    }

    fn route(from: (&str, Option<&str>), to: (&str, Option<&str>)) -> Route {
        Route {
            from: pattern(from.0, from.1),
            to: RouteTarget { database: to.0.into(), table: to.1.map(String::from) },
        }
    }

    #[test]
    fn routes_pick_table_rules_before_database_rules() {
        let routes = vec![
            route(("app_1", None), ("shop1", None)),
            route(("shard_*", None), ("shop", None)),
            route(("shard_*", Some("orders")), ("shop", Some("all_orders"))),
        ];
        let selection = Selection::new(None, routes, vec![]);
        let cases = [
            ("app_1", "t", "shop1", "t", false),
            ("shard_1", "orders", "shop", "all_orders", true),
            ("shard_2", "items", "shop", "items", true),
            ("other", "t", "other", "t", false),
        ];
        for (db, table, to_db, to_table, merged) in cases {
            let routed = selection.route(db, table);
            assert_eq!((routed.database.as_str(), routed.table.as_str()), (to_db, to_table));
            assert_eq!(selection.is_merged(db, table), merged, "{db}.{table}");
            assert_eq!(selection.is_routed(db, table), db != "other");
        }
        assert_eq!(selection.route_database("app_1"), "shop1");
        assert_eq!(selection.route_database("shard_9"), "shop");
        assert_eq!(selection.route_database("other"), "other");
    }

    #[test]
    fn filters_drop_the_chosen_events_of_matching_tables() {
        let filters = vec![
            EventFilter {
                matches: pattern("*", Some("audit_*")),
                ignore: vec![EventType::Delete, EventType::Truncate, EventType::DropTable],
            },
            EventFilter { matches: pattern("app", None), ignore: vec![EventType::DropDatabase] },
        ];
        let selection = Selection::new(None, vec![], filters);
        assert!(selection.ignores(EventType::Delete, "app", Some("audit_log")));
        assert!(!selection.ignores(EventType::Insert, "app", Some("audit_log")));
        assert!(!selection.ignores(EventType::Delete, "app", Some("orders")));
        assert!(selection.ignores(EventType::DropDatabase, "app", None));
        assert!(!selection.ignores(EventType::DropDatabase, "other", None));
        // A rule naming tables does not cover a database as a whole.
        assert!(!selection.ignores(EventType::Truncate, "other", None));
    }
}
