//! What a precheck reads about the selected objects: a few information_schema queries that
//! cover every table at once (no per-table round trips), so thousands of tables stay fast.

use std::collections::{BTreeMap, BTreeSet};

use ferry_crds::SYSTEM_SCHEMAS;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::PrecheckError;
use super::columns::Columns;
use crate::sql::{qualified, quote_str};

/// The job's selection as one end of a precheck reads it. The source is read by the job's
/// rules. The target is read under the same names when the job has no routes; with routes, its
/// whole user schema is read, as any of its tables may receive routed ones.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    rules: &'a ferry_crds::Selection,
    every_user_table: bool,
}

impl<'a> Selection<'a> {
    /// The source's side of `rules`.
    pub fn source(rules: &'a ferry_crds::Selection) -> Self {
        Self { rules, every_user_table: false }
    }

    /// The target's side of `rules`.
    pub fn target(rules: &'a ferry_crds::Selection) -> Self {
        Self { rules, every_user_table: rules.has_routes() }
    }

    pub fn rules(&self) -> &'a ferry_crds::Selection {
        self.rules
    }

    /// The databases the include rules name when none is a pattern (the queries are then
    /// narrowed to them on the server); `None` when every user schema must be read.
    fn named_databases(&self) -> Option<BTreeSet<String>> {
        let objects = self.rules.objects();
        let named = objects.databases.iter().chain(objects.tables.iter().map(|t| &t.database));
        let names: BTreeSet<String> = named.cloned().collect();
        let exact = names.iter().all(|n| !ferry_crds::selection::is_pattern(n));
        let narrow = !self.every_user_table && !names.is_empty() && exact;
        // Without case, the server's comparison of names may differ from the job's: read all.
        (narrow && objects.case_sensitive).then_some(names)
    }

    /// A WHERE condition on a schema-name column that keeps the schemas the job may cover
    /// (more when patterns are involved: [`Selection::schema`] and [`Selection::table`] decide).
    pub fn schema_condition(&self, column: &str) -> String {
        let (op, names): (&str, Vec<String>) = match self.named_databases() {
            Some(names) => ("IN", names.into_iter().collect()),
            None => ("NOT IN", SYSTEM_SCHEMAS.iter().map(|s| s.to_string()).collect()),
        };
        let quoted: Vec<String> = names.iter().map(|n| quote_str(n)).collect();
        format!("{column} {op} ({})", quoted.join(", "))
    }

    /// Whether some table of schema `db` may be covered.
    pub fn schema(&self, db: &str) -> bool {
        if self.every_user_table {
            return !ferry_crds::is_system_schema(db);
        }
        self.rules.may_cover_database(db)
    }

    /// Whether the table is covered.
    pub fn table(&self, db: &str, table: &str) -> bool {
        if self.every_user_table {
            return !ferry_crds::is_system_schema(db);
        }
        self.rules.table(db, table)
    }
}

/// A base table of the source.
#[derive(Debug, Clone)]
pub struct Table {
    pub db: String,
    pub name: String,
    pub engine: Option<String>,
    pub collation: Option<String>,
}

impl Table {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }
}

/// (is a view, schema, name, engine, collation) of information_schema.TABLES.
type TableRow = (bool, String, String, Option<String>, Option<String>);

/// A foreign key of a selected table.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub table: String,
    pub name: String,
    pub referenced: String,
    /// Whether the referenced table is outside the selection.
    pub references_unselected: bool,
    /// ON DELETE / ON UPDATE actions other than RESTRICT / NO ACTION.
    pub cascades: bool,
}

/// The selected objects of the source.
#[derive(Debug, Clone, Default)]
pub struct SourceSchema {
    /// Selected schemas the user can see, with their default collation.
    pub schemas: BTreeMap<String, String>,
    pub tables: Vec<Table>,
    /// Selected views (their engine and collation are None): the copy reads their definitions.
    pub views: Vec<Table>,
    /// `db.table` of selected tables without a primary key or a unique key on NOT NULL columns.
    pub keyless: Vec<String>,
    /// Collation -> `db.table` of the tables with columns in it.
    pub column_collations: BTreeMap<String, BTreeSet<String>>,
    pub foreign_keys: Vec<ForeignKey>,
    /// The columns of the selected tables.
    pub columns: Columns,
    /// Schemas selected whole (every table, later ones too): all of them with no selection.
    pub whole_databases: BTreeSet<String>,
    /// `db.table` of InnoDB tables of whole schemas that information_schema hides from the
    /// user (no privilege on them); None when the server would not list them (no PROCESS).
    pub hidden_tables: Option<Vec<Table>>,
    /// Triggers, stored procedures and functions, and events of the selected schemas, as
    /// `kind db.name`; the copy does not create them.
    pub programs: Vec<String>,
}

impl SourceSchema {
    pub async fn read(conn: &mut Conn, selection: Selection<'_>) -> Result<Self, PrecheckError> {
        let mut schema = Self::default();
        let cond = selection.schema_condition("SCHEMA_NAME");
        let sql = format!(
            "SELECT SCHEMA_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
             WHERE {cond}"
        );
        let rows: Vec<(String, Option<String>)> =
            conn.query(sql).await.map_err(PrecheckError::sql("list the source's schemas"))?;
        schema.schemas = rows
            .into_iter()
            .filter(|(name, _)| selection.schema(name))
            .map(|(name, c)| (name, c.unwrap_or_default()))
            .collect();
        schema.read_tables(conn, selection).await?;
        schema.read_keys(conn, selection).await?;
        schema.read_column_collations(conn, selection).await?;
        schema.read_foreign_keys(conn, selection).await?;
        schema.columns = super::columns::read(conn, selection).await?;
        let rules = selection.rules();
        schema.whole_databases =
            schema.schemas.keys().filter(|db| rules.database(db)).cloned().collect();
        schema.hidden_tables = schema.read_hidden_tables(conn, selection).await;
        schema.read_programs(conn, selection).await?;
        Ok(schema)
    }

    /// The tables and columns under the names they land under on the target (`spec.routes`);
    /// of shards merged into one table, the first one's columns stand for all.
    pub fn routed(&self, rules: &ferry_crds::Selection) -> SourceSchema {
        let mut routed = SourceSchema::default();
        for table in &self.tables {
            let to = rules.route(&table.db, &table.name);
            routed.tables.push(Table { db: to.database, name: to.table, ..table.clone() });
        }
        for ((db, table), columns) in &self.columns {
            let to = rules.route(db, table);
            routed.columns.entry((to.database, to.table)).or_insert_with(|| columns.clone());
        }
        routed
    }

    /// Tables the storage engine has that information_schema.TABLES does not show this user
    /// (InnoDB's own list needs PROCESS: MariaDB's INNODB_SYS_TABLES, MySQL 8's INNODB_TABLES).
    /// InnoDB's list is read before and after information_schema.TABLES, and only names in both
    /// count: a table created, dropped or renamed while the lists are read is not hidden, just
    /// changing.
    async fn read_hidden_tables(
        &self,
        conn: &mut Conn,
        selection: Selection<'_>,
    ) -> Option<Vec<Table>> {
        let before = innodb_table_names(conn).await?;
        // Every kind the user sees counts (sequences and system-versioned tables are InnoDB
        // tables too).
        let sql = format!(
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES WHERE {}",
            selection.schema_condition("TABLE_SCHEMA")
        );
        let visible: BTreeSet<String> =
            conn.query::<String, _>(sql).await.ok()?.into_iter().collect();
        let after = innodb_table_names(conn).await?;
        let whole = |db: &str| self.whole_databases.contains(db) && self.schemas.contains_key(db);
        let mut hidden = hidden_tables(&before, &visible, &after, whole);
        hidden.retain(|t| selection.table(&t.db, &t.name));
        Some(hidden)
    }

    /// Triggers, routines and events: the copy creates none of them.
    async fn read_programs(
        &mut self,
        conn: &mut Conn,
        selection: Selection<'_>,
    ) -> Result<(), PrecheckError> {
        // (view, kind, schema column, name column, table column, further condition)
        let queries = [
            ("TRIGGERS", "'trigger'", "TRIGGER_SCHEMA", "TRIGGER_NAME", "EVENT_OBJECT_TABLE", ""),
            ("ROUTINES", "LOWER(ROUTINE_TYPE)", "ROUTINE_SCHEMA", "ROUTINE_NAME", "NULL", ""),
            ("EVENTS", "'event'", "EVENT_SCHEMA", "EVENT_NAME", "NULL", ""),
            // MariaDB's sequences are tables of their own kind that the copy does not create.
            (
                "TABLES",
                "'sequence'",
                "TABLE_SCHEMA",
                "TABLE_NAME",
                "NULL",
                "TABLE_TYPE = 'SEQUENCE' AND ",
            ),
        ];
        for (view, kind, schema, name, table, only) in queries {
            let sql = format!(
                "SELECT {kind}, {schema}, {name}, {table} FROM information_schema.{view} \
                 WHERE {only}{} ORDER BY 2, 3",
                selection.schema_condition(schema)
            );
            let rows: Vec<(String, String, String, Option<String>)> =
                conn.query(sql).await.map_err(PrecheckError::sql(
                    "list the source's triggers, routines, events and sequences",
                ))?;
            for (kind, db, name, table) in rows {
                if !selection.schema(&db)
                    || table.as_ref().is_some_and(|t| !selection.table(&db, t))
                {
                    continue;
                }
                let on = table.map(|t| format!(" (on {db}.{t})")).unwrap_or_default();
                self.programs.push(format!("{kind} {db}.{name}{on}"));
            }
        }
        Ok(())
    }

    async fn read_tables(
        &mut self,
        conn: &mut Conn,
        selection: Selection<'_>,
    ) -> Result<(), PrecheckError> {
        let sql = format!(
            "SELECT TABLE_TYPE = 'VIEW', TABLE_SCHEMA, TABLE_NAME, ENGINE, TABLE_COLLATION \
             FROM information_schema.TABLES WHERE TABLE_TYPE IN ('BASE TABLE', 'VIEW') AND {}",
            selection.schema_condition("TABLE_SCHEMA")
        );
        let rows: Vec<TableRow> =
            conn.query(sql).await.map_err(PrecheckError::sql("list the source's tables"))?;
        for (view, db, name, engine, collation) in rows {
            if selection.table(&db, &name) {
                let table = Table { db, name, engine, collation };
                if view { self.views.push(table) } else { self.tables.push(table) }
            }
        }
        Ok(())
    }

    /// Tables with no primary key and no unique index whose columns are all NOT NULL.
    async fn read_keys(
        &mut self,
        conn: &mut Conn,
        selection: Selection<'_>,
    ) -> Result<(), PrecheckError> {
        let sql = format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NULLABLE FROM information_schema.STATISTICS \
             WHERE NON_UNIQUE = 0 AND {}",
            selection.schema_condition("TABLE_SCHEMA")
        );
        let rows: Vec<(String, String, String, Option<String>)> =
            conn.query(sql).await.map_err(PrecheckError::sql("read the source's unique keys"))?;
        // An index is usable when none of its columns is nullable.
        let mut usable: BTreeMap<(String, String, String), bool> = BTreeMap::new();
        for (db, table, index, nullable) in rows {
            let not_null = !nullable.is_some_and(|n| n.eq_ignore_ascii_case("YES"));
            *usable.entry((db, table, index)).or_insert(true) &= not_null;
        }
        let keyed: BTreeSet<(String, String)> =
            usable.into_iter().filter(|(_, ok)| *ok).map(|((db, t, _), _)| (db, t)).collect();
        self.keyless = self
            .tables
            .iter()
            .filter(|t| !keyed.contains(&(t.db.clone(), t.name.clone())))
            .map(Table::qualified)
            .collect();
        Ok(())
    }

    async fn read_column_collations(
        &mut self,
        conn: &mut Conn,
        selection: Selection<'_>,
    ) -> Result<(), PrecheckError> {
        let sql = format!(
            "SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME, COLLATION_NAME FROM information_schema.COLUMNS \
             WHERE COLLATION_NAME IS NOT NULL AND {}",
            selection.schema_condition("TABLE_SCHEMA")
        );
        let rows: Vec<(String, String, String)> = conn
            .query(sql)
            .await
            .map_err(PrecheckError::sql("read the source's column collations"))?;
        for (db, table, collation) in rows {
            if selection.table(&db, &table) {
                self.column_collations
                    .entry(collation)
                    .or_default()
                    .insert(format!("{db}.{table}"));
            }
        }
        Ok(())
    }

    async fn read_foreign_keys(
        &mut self,
        conn: &mut Conn,
        selection: Selection<'_>,
    ) -> Result<(), PrecheckError> {
        let sql = format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, \
             REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE \
             FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE {}",
            selection.schema_condition("CONSTRAINT_SCHEMA")
        );
        // Every column is NOT NULL in information_schema; Options keep a surprise from panicking.
        type Row = (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> =
            conn.query(sql).await.map_err(PrecheckError::sql("read the source's foreign keys"))?;
        let passive = |rule: &str| matches!(rule, "RESTRICT" | "NO ACTION");
        for (db, table, name, ref_db, ref_table, on_update, on_delete) in rows {
            if !selection.table(&db, &table) {
                continue;
            }
            let (ref_db, ref_table) = (ref_db.unwrap_or_default(), ref_table.unwrap_or_default());
            let (on_update, on_delete) =
                (on_update.unwrap_or_default(), on_delete.unwrap_or_default());
            let references_unselected = !selection.table(&ref_db, &ref_table);
            self.foreign_keys.push(ForeignKey {
                table: format!("{db}.{table}"),
                name,
                referenced: format!("{ref_db}.{ref_table}"),
                references_unselected,
                cascades: !passive(&on_update) || !passive(&on_delete),
            });
        }
        Ok(())
    }

    /// Every collation the selected objects use (schema defaults, tables, columns).
    pub fn collations(&self) -> BTreeSet<&str> {
        self.schemas
            .values()
            .map(String::as_str)
            .filter(|c| !c.is_empty())
            .chain(self.tables.iter().filter_map(|t| t.collation.as_deref()))
            .chain(self.column_collations.keys().map(String::as_str))
            .collect()
    }
}

/// The names in InnoDB's own table list (`db/table`, as on disk); None when the user may not
/// read it.
async fn innodb_table_names(conn: &mut Conn) -> Option<BTreeSet<String>> {
    for list in ["INNODB_SYS_TABLES", "INNODB_TABLES"] {
        let sql = format!("SELECT NAME FROM information_schema.{list}");
        if let Ok(found) = conn.query::<String, _>(sql).await {
            return Some(found.into_iter().collect());
        }
    }
    None
}

/// The user tables of schemas selected whole (`whole`) that both InnoDB lists (`before` and
/// `after`) name and information_schema (`visible`, `db.table`) does not.
fn hidden_tables(
    before: &BTreeSet<String>,
    visible: &BTreeSet<String>,
    after: &BTreeSet<String>,
    whole: impl Fn(&str) -> bool,
) -> Vec<Table> {
    let tables: BTreeSet<(String, String)> = before
        .intersection(after)
        .filter_map(|name| innodb_user_table(name))
        .filter(|(db, table)| whole(db) && !visible.contains(&format!("{db}.{table}")))
        .collect();
    let table = |(db, name)| Table { db, name, engine: None, collation: None };
    tables.into_iter().map(table).collect()
}

/// The user table an InnoDB list name (`db/table`) belongs to: partitions (`t#P#p0`) belong to
/// their table; the temporary tables of ALTER TABLE (`#sql...`) and InnoDB's full-text index
/// tables (`FTS_<16 hex>_...` on MariaDB, `fts_<16 hex>_...` on MySQL) to none.
fn innodb_user_table(name: &str) -> Option<(String, String)> {
    let (db, table) = name.split_once('/')?;
    let (db, table) = (decode_file_name(db), decode_file_name(table));
    let table = table.split('#').next().unwrap_or_default();
    let full_text = table.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("fts_"))
        && table.get(4..20).is_some_and(is_hex);
    (!table.is_empty() && !full_text).then(|| (db, table.to_string()))
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A name as the server spells it on disk (`my@002dtable`) back to the SQL name (`my-table`).
fn decode_file_name(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 5).filter(|c| is_hex(c));
        match code.and_then(|c| u32::from_str_radix(c, 16).ok()).and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 5..];
            }
            None => {
                out.push('@');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// What the target holds that the checks compare against.
#[derive(Debug, Clone, Default)]
pub struct TargetSchema {
    /// Collation (lower case) -> its character set.
    pub collations: BTreeMap<String, String>,
    /// Character set -> its default collation.
    pub default_collations: BTreeMap<String, String>,
    pub schemas: BTreeSet<String>,
    pub tables: BTreeSet<(String, String)>,
    /// The columns of the tables of the selected schemas that exist on the target.
    pub columns: Columns,
}

impl TargetSchema {
    pub async fn read(conn: &mut Conn, selection: Selection<'_>) -> Result<Self, PrecheckError> {
        // MariaDB 10.10+ lists charset-less `uca1400_*` collations with a NULL character set.
        let rows: Vec<(String, Option<String>, Option<String>)> = conn
            .query(
                "SELECT COLLATION_NAME, CHARACTER_SET_NAME, IS_DEFAULT \
                 FROM information_schema.COLLATIONS",
            )
            .await
            .map_err(PrecheckError::sql("list the target's collations"))?;
        let mut schema = Self::default();
        for (collation, charset, is_default) in rows {
            let charset = charset.unwrap_or_default();
            if is_default.is_some_and(|d| d.eq_ignore_ascii_case("Yes")) {
                schema.default_collations.insert(charset.to_ascii_lowercase(), collation.clone());
            }
            schema.collations.insert(collation.to_ascii_lowercase(), charset);
        }
        let sql = format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE {}",
            selection.schema_condition("SCHEMA_NAME")
        );
        let names: Vec<String> =
            conn.query(sql).await.map_err(PrecheckError::sql("list the target's schemas"))?;
        schema.schemas = names.into_iter().filter(|n| selection.schema(n)).collect();
        let sql = format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_TYPE = 'BASE TABLE' AND {}",
            selection.schema_condition("TABLE_SCHEMA")
        );
        let tables: Vec<(String, String)> =
            conn.query(sql).await.map_err(PrecheckError::sql("list the target's tables"))?;
        schema.tables = tables.into_iter().filter(|(db, t)| selection.table(db, t)).collect();
        schema.columns = super::columns::read(conn, selection).await?;
        Ok(schema)
    }

    pub fn supports(&self, collation: &str) -> bool {
        self.collations.contains_key(&collation.to_ascii_lowercase())
    }
}

/// Of the given tables, those that hold at least one row, checked in batches of one query
/// each (`SELECT EXISTS(...), EXISTS(...), ...`).
pub async fn tables_with_rows(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<Vec<String>, PrecheckError> {
    const BATCH: usize = 200;
    let mut non_empty = Vec::new();
    for batch in tables.chunks(BATCH) {
        let probes: Vec<String> = batch
            .iter()
            .map(|(db, t)| format!("EXISTS(SELECT 1 FROM {})", qualified(db, t)))
            .collect();
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SELECT {}", probes.join(", ")))
            .await
            .map_err(PrecheckError::sql("look for rows in the target's tables"))?;
        let Some(row) = row else { continue };
        for (i, (db, t)) in batch.iter().enumerate() {
            if row.get::<i64, _>(i).unwrap_or(0) != 0 {
                non_empty.push(format!("{db}.{t}"));
            }
        }
    }
    Ok(non_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::job::TableRef;

    #[test]
    fn file_names_decode_to_sql_names() {
        assert_eq!(decode_file_name("my@002dtable"), "my-table");
        assert_eq!(decode_file_name("plain"), "plain");
        assert_eq!(decode_file_name("odd@"), "odd@");
    }

    #[test]
    fn innodb_internal_tables_belong_to_no_user_table() {
        let user = |name| innodb_user_table(name).map(|(db, t)| format!("{db}.{t}"));
        assert_eq!(user("app/t#P#p0").as_deref(), Some("app.t"));
        assert_eq!(user("my@002ddb/plain").as_deref(), Some("my-db.plain"));
        assert_eq!(user("app/fts_users").as_deref(), Some("app.fts_users"), "a user's name");
        for internal in [
            "app/FTS_000000000000042a_BEING_DELETED",
            "app/FTS_000000000000042a_00000000000000a6_INDEX_1",
            "app/fts_000000000000042a_being_deleted_cache",
            "app/fts_000000000000042a_00000000000000a6_index_6",
            "app/#sql-ib1234-567",
            "app/#sql2-1a2b-3",
            "SYS_FOREIGN",
        ] {
            assert_eq!(user(internal), None, "{internal}");
        }
    }

    #[test]
    fn tables_changing_while_the_lists_are_read_are_not_hidden() {
        let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
        // `secret` is hidden throughout; `made` appears after the first InnoDB read, `gone`
        // disappears before the second.
        let before = set(&["app/t", "app/secret", "app/gone", "other/x"]);
        let visible = set(&["app.t", "app.made"]);
        let after = set(&["app/t", "app/secret", "app/made", "other/x"]);
        let hidden = hidden_tables(&before, &visible, &after, |db| db == "app");
        let names: Vec<String> = hidden.iter().map(Table::qualified).collect();
        assert_eq!(names, ["app.secret"]);
    }

    #[test]
    fn selections_become_schema_conditions() {
        let everything = ferry_crds::Selection::default();
        let condition = Selection::source(&everything).schema_condition("S");
        assert!(condition.starts_with("S NOT IN ('mysql'"), "{condition}");
        let picked = ferry_crds::job::ObjectSelection {
            databases: vec!["app".into()],
            tables: vec![TableRef { database: "crm".into(), table: "leads".into() }],
            ..Default::default()
        };
        let rules = ferry_crds::Selection::new(Some(picked.clone()), vec![], vec![]);
        let selection = Selection::source(&rules);
        assert_eq!(selection.schema_condition("S"), "S IN ('app', 'crm')");
        assert!(selection.table("app", "anything"));
        assert!(selection.table("crm", "leads"));
        assert!(!selection.table("crm", "other"));
        // Patterns are decided by the rules, not on the server.
        let mut patterns = picked;
        patterns.databases = vec!["app_*".into()];
        let rules = ferry_crds::Selection::new(Some(patterns), vec![], vec![]);
        let selection = Selection::source(&rules);
        assert!(selection.schema_condition("S").starts_with("S NOT IN ("));
        assert!(selection.schema("app_1") && selection.schema("crm") && !selection.schema("x"));
    }
}
