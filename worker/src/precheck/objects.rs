//! Items about the selected objects: that they exist, their keys, foreign keys, engines and
//! collations, and what the target already holds.

use std::collections::BTreeSet;

#[cfg(test)]
use ferry_crds::job::CheckResult;
use ferry_crds::job::{MigrationMode, PrecheckItem};

use super::item::{failure, list, pass, warning};
use super::schema::{Selection, SourceSchema, TargetSchema};
use crate::full::tidb_collation;

/// Transactional engines: a consistent snapshot covers their tables.
const TRANSACTIONAL_ENGINES: &[&str] = &["InnoDB", "ROCKSDB", "TokuDB", "ndbcluster"];

pub fn selected_objects(selection: Selection<'_>, schema: &SourceSchema) -> PrecheckItem {
    const NAME: &str = "selected_objects";
    let observed = format!("{} schema(s), {} table(s)", schema.schemas.len(), schema.tables.len());
    let rules = selection.rules();
    let found_schema = |name: &str| schema.schemas.keys().any(|s| rules.same_name(s, name));
    let found_table = |db: &str, name: &str| {
        schema.tables.iter().any(|t| rules.same_name(&t.db, db) && rules.same_name(&t.name, name))
    };
    let mut missing: Vec<String> = rules
        .exact_databases()
        .into_iter()
        .filter(|d| !found_schema(d))
        .map(String::from)
        .collect();
    missing.extend(
        rules
            .exact_tables()
            .into_iter()
            .filter(|(db, t)| !found_table(db, t))
            .map(|(db, t)| format!("{db}.{t}")),
    );
    if !missing.is_empty() {
        return failure(
            NAME,
            format!("{observed}; not found: {}", list(&missing)),
            "The job selects objects the source does not have, or that the user cannot see (a \
             user sees only schemas and tables it holds a privilege on).",
            "Fix the names in spec.objects (they are case-sensitive unless \
             objects.caseSensitive is false), or grant the user SELECT on them.",
        );
    }
    if schema.tables.is_empty() {
        return warning(
            NAME,
            observed,
            "No selected table exists yet: the job copies nothing now.",
            "Check spec.objects (its patterns and exclude rules) and the user's privileges; \
             ignore if the tables come later.",
        );
    }
    pass(NAME, observed)
}

/// Shards that `spec.routes` merges into one target table must have the same columns, or the
/// rows of some cannot be written there. `None` when nothing is merged.
pub fn merged_shards(rules: &ferry_crds::Selection, schema: &SourceSchema) -> Option<PrecheckItem> {
    const NAME: &str = "merged_shards";
    let mut targets: std::collections::BTreeMap<String, Vec<&super::schema::Table>> =
        Default::default();
    for table in &schema.tables {
        let to = rules.route(&table.db, &table.name);
        targets.entry(crate::sql::qualified(&to.database, &to.table)).or_default().push(table);
    }
    targets.retain(|_, shards| shards.len() > 1);
    if targets.is_empty() {
        return None;
    }
    let shape = |t: &super::schema::Table| {
        let columns = schema.columns.get(&(t.db.clone(), t.name.clone()));
        columns.map(|cs| {
            cs.iter().map(|c| (c.name.to_lowercase(), c.column_type.clone())).collect::<Vec<_>>()
        })
    };
    let differing: Vec<String> = targets
        .iter()
        .filter(|(_, shards)| shards.iter().any(|s| shape(s) != shape(shards[0])))
        .map(|(target, shards)| {
            let names: Vec<String> = shards.iter().map(|s| s.qualified()).collect();
            format!("{target} <- {}", names.join(", "))
        })
        .collect();
    let observed = format!(
        "{} target table(s) merge {} source table(s)",
        targets.len(),
        targets.values().map(Vec::len).sum::<usize>()
    );
    if differing.is_empty() {
        return Some(pass(NAME, observed));
    }
    Some(failure(
        NAME,
        format!("{observed}; columns differ: {}", list(&differing)),
        "Tables merged into one target table must have the same columns (names and types in \
         the same order), or the rows of some cannot be written there.",
        "Make the shards' definitions equal on the source, or route the differing ones to \
         tables of their own in spec.routes.",
    ))
}

pub fn primary_keys(mode: MigrationMode, schema: &SourceSchema) -> PrecheckItem {
    const NAME: &str = "primary_keys";
    if schema.keyless.is_empty() {
        return pass(NAME, "every selected table has a primary or NOT NULL unique key");
    }
    let why = if mode.replicates() {
        "Without a primary key or a unique key on NOT NULL columns, a row cannot be identified: \
         updates and deletes must match on every column, the copy cannot be split into key \
         ranges, and after a resume (safe mode) rows can be applied twice."
    } else {
        "Without a primary key or a unique key on NOT NULL columns, the copy cannot be split into \
         key ranges (one connection reads the whole table), and a copy that is resumed or rerun \
         cannot replace rows already copied, so they can appear twice."
    };
    warning(
        NAME,
        format!("{} table(s) without one: {}", schema.keyless.len(), list(&schema.keyless)),
        why,
        "Add a primary key to these tables (for example `ALTER TABLE t ADD COLUMN id BIGINT \
         AUTO_INCREMENT PRIMARY KEY`), or accept the risk.",
    )
}

pub fn foreign_keys(mode: MigrationMode, schema: &SourceSchema) -> PrecheckItem {
    const NAME: &str = "foreign_keys";
    let fks = &schema.foreign_keys;
    if fks.is_empty() {
        return pass(NAME, "none");
    }
    let names = |keep: &dyn Fn(&super::schema::ForeignKey) -> bool| -> Vec<String> {
        fks.iter()
            .filter(|f| keep(f))
            .map(|f| format!("{}.{} -> {}", f.table, f.name, f.referenced))
            .collect()
    };
    let cascading = names(&|f| f.cascades);
    let outside = names(&|f| f.references_unselected);
    let mut observed = format!("{} foreign key(s)", fks.len());
    let mut reason = String::from(
        "Ferry copies tables in parallel with foreign_key_checks = 0 in its own sessions, so \
         child rows may arrive before their parents; the constraints are created on the target \
         but not checked for copied rows. Replication applies changes with the checks on.",
    );
    if !outside.is_empty() {
        observed.push_str(&format!("; referencing tables outside the job: {}", list(&outside)));
        reason.push_str(
            " Keys referencing tables outside the job fail to create on the target unless those \
             tables exist there.",
        );
    }
    if mode.replicates() && !cascading.is_empty() {
        observed.push_str(&format!("; with ON DELETE/UPDATE actions: {}", list(&cascading)));
        reason.push_str(
            " The binary log holds only the parent row's change, not the child rows a CASCADE or \
             SET NULL action changed: the target's own constraint makes those changes when \
             replication applies the parent's, so the child tables must be migrated too and \
             their keys must exist on the target.",
        );
    }
    warning(
        NAME,
        observed,
        reason,
        "Select the referenced tables too, and for cascading actions the child tables.",
    )
}

pub fn non_transactional_tables(schema: &SourceSchema) -> PrecheckItem {
    const NAME: &str = "table_engines";
    let others: Vec<String> = schema
        .tables
        .iter()
        .filter(|t| {
            t.engine
                .as_deref()
                .is_some_and(|e| !TRANSACTIONAL_ENGINES.iter().any(|x| x.eq_ignore_ascii_case(e)))
        })
        .map(|t| format!("{} ({})", t.qualified(), t.engine.as_deref().unwrap_or("?")))
        .collect();
    if others.is_empty() {
        return pass(NAME, "transactional engines only");
    }
    warning(
        NAME,
        format!("non-transactional: {}", list(&others)),
        "A consistent snapshot covers transactional tables only: rows written to these tables \
         while the copy runs may be copied in a state that differs from the snapshot's binlog \
         position.",
        "Convert them with `ALTER TABLE t ENGINE = InnoDB`, or keep writes off them during the \
         copy.",
    )
}

/// Triggers, stored procedures and functions, events and sequences of the selected schemas, each
/// named with what happens to it on this kind of target. Procedures and functions are copied and
/// replicated to MariaDB and MySQL when `spec.objects.routines` asks; TiDB has none of them.
pub fn programs(source: &SourceSchema, tidb: bool, routines: bool) -> PrecheckItem {
    const NAME: &str = "triggers_routines_events";
    let is_routine = |p: &&String| p.starts_with("procedure ") || p.starts_with("function ");
    if tidb && routines {
        return failure(
            NAME,
            "spec.objects.routines is set and the target is TiDB",
            "TiDB has no stored procedures or functions, so Ferry cannot create them there.",
            "Unset spec.objects.routines and move the routines' logic into the application.",
        );
    }
    if source.programs.is_empty() {
        return pass(NAME, "none in the selected schemas (that the source user may see)");
    }
    let (migrated, others): (Vec<&String>, Vec<&String>) =
        source.programs.iter().partition(|p| routines && is_routine(p));
    let mut observed = String::new();
    if !others.is_empty() {
        observed = format!("not migrated: {}", list(&others));
    }
    if !migrated.is_empty() {
        let sep = if observed.is_empty() { "" } else { "; " };
        observed.push_str(&format!("{sep}created and replicated: {}", list(&migrated)));
    }
    if others.is_empty() {
        return pass(NAME, observed);
    }
    if tidb {
        return warning(
            NAME,
            observed,
            "TiDB does not support triggers, stored procedures, stored functions or events, so \
             Ferry does not create them; whatever they do on the source will not happen on the \
             target after cutover, and the application must not rely on them there. Sequences \
             are not created either.",
            "Before cutover, move their logic into the application (events: into a scheduler \
             such as a Kubernetes CronJob); create each sequence on TiDB with `CREATE SEQUENCE` \
             starting above the source's current value.",
        );
    }
    warning(
        NAME,
        observed,
        "Ferry never creates triggers or events on the target: while it replicates, a trigger \
         there would fire again for row changes whose effects the binlog already carries, and an \
         event would run on both servers. Procedures and functions are created (and their \
         changes replicated) only when spec.objects.routines is true. Sequences are not created.",
        "Set spec.objects.routines: true to have procedures and functions migrated. After \
         cutover, create the triggers and events on the target from the source's definitions, \
         for example `mariadb-dump --no-data --no-create-info --skip-routines --triggers \
         --events DB` (mysqldump for MySQL) applied to the target; create each sequence with \
         `CREATE SEQUENCE` starting above the source's current value.",
    )
}

/// Collations (and so character sets) of tables the target does not have yet must exist on
/// the target, or Ferry cannot create them there. On TiDB, the copy's rewrites count (a
/// Warning: comparisons may change).
pub fn collations(source: &SourceSchema, target: &TargetSchema, tidb: bool) -> PrecheckItem {
    const NAME: &str = "charsets_collations";
    let to_create = |table: &str| match table.split_once('.') {
        Some((db, t)) => !target.tables.contains(&(db.to_string(), t.to_string())),
        None => true,
    };
    let mut unsupported: Vec<String> = Vec::new();
    let mut adapted: BTreeSet<String> = BTreeSet::new();
    let mut suggestions: BTreeSet<String> = BTreeSet::new();
    let mut note = |collation: &str, users: Vec<String>| {
        if users.is_empty() || target.supports(collation) {
            return;
        }
        let replacement = tidb_collation(collation);
        if tidb && replacement != collation && target.supports(&replacement) {
            adapted.insert(format!("{collation} -> {replacement}"));
            return;
        }
        unsupported.push(format!("{collation} ({})", list(&users)));
        let charset = collation.split('_').next().unwrap_or(collation).to_ascii_lowercase();
        suggestions.insert(match target.default_collations.get(&charset) {
            Some(default) => format!("{collation} -> {default}"),
            None => format!("{collation} -> utf8mb4_bin (the target lacks {charset})"),
        });
    };
    for (db, collation) in &source.schemas {
        if !target.schemas.contains(db) && !collation.is_empty() {
            note(collation, vec![format!("schema {db}")]);
        }
    }
    let mut by_collation: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for t in &source.tables {
        if let Some(c) = t.collation.as_deref().filter(|_| to_create(&t.qualified())) {
            by_collation.entry(c).or_default().push(t.qualified());
        }
    }
    for (c, tables) in &source.column_collations {
        let tables = tables.iter().filter(|t| to_create(t)).cloned();
        by_collation.entry(c.as_str()).or_default().extend(tables);
    }
    for (collation, mut users) in by_collation {
        users.sort();
        users.dedup();
        note(collation, users);
    }
    let used = source.collations().into_iter().collect::<Vec<_>>();
    let adapted: Vec<String> = adapted.into_iter().collect();
    if unsupported.is_empty() && used.is_empty() {
        return pass(NAME, "no collations in use");
    }
    if unsupported.is_empty() && !adapted.is_empty() {
        return warning(
            NAME,
            format!("created on TiDB with its nearest collation: {}", adapted.join(", ")),
            "TiDB lacks these collations; Ferry creates the objects with the nearest one TiDB \
             has, so comparisons, sorting and unique keys may behave differently (latin1_bin \
             compares bytes, for example).",
            "Nothing to do if that is acceptable; otherwise create these tables on the target \
             yourself before starting, with the collation you want.",
        );
    }
    if unsupported.is_empty() {
        return pass(NAME, format!("all supported by the target: {}", list(&used)));
    }
    failure(
        NAME,
        format!("not supported by the target: {}", unsupported.join("; ")),
        "Ferry creates the schemas and tables on the target with the source's character sets and \
         collations; the target rejects ones it does not know.",
        format!(
            "Convert these objects on the source (`ALTER TABLE t CONVERT TO CHARACTER SET ... \
             COLLATE ...`), or create them on the target yourself with a supported collation \
             before starting. Suggested: {}.",
            suggestions.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

/// Selected tables that already exist on the target: with rows, in modes that copy; missing,
/// in Incremental mode (which creates nothing that existed before its start).
pub fn target_tables(
    mode: MigrationMode,
    source: &SourceSchema,
    target: &TargetSchema,
    non_empty: &[String],
) -> PrecheckItem {
    if mode.copies_existing_data() {
        const NAME: &str = "target_tables_with_rows";
        if non_empty.is_empty() {
            return pass(NAME, "no selected table holds rows on the target");
        }
        return warning(
            NAME,
            format!("{} table(s) with rows: {}", non_empty.len(), list(non_empty)),
            "The copy replaces target rows whose primary or unique key matches a source row; \
             other target rows stay, and rows of tables without a key are added to them.",
            "Empty these tables on the target (TRUNCATE) if they should hold only the source's \
             rows; otherwise nothing to do.",
        );
    }
    const NAME: &str = "target_tables_exist";
    let missing: Vec<String> = source
        .tables
        .iter()
        .filter(|t| !target.tables.contains(&(t.db.clone(), t.name.clone())))
        .map(|t| t.qualified())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if missing.is_empty() {
        return pass(
            NAME,
            format!("all {} selected table(s) exist on the target", source.tables.len()),
        );
    }
    warning(
        NAME,
        format!("{} missing on the target: {}", missing.len(), list(&missing)),
        "Incremental mode replays changes only; tables created before the start position must \
         already exist on the target with their data, or their changes cannot be applied.",
        "Load these tables into the target first (or use mode FullAndIncremental).",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precheck::schema::Table;

    fn target(collations: &[(&str, &str)]) -> TargetSchema {
        TargetSchema {
            collations: collations.iter().map(|(c, s)| (c.to_string(), s.to_string())).collect(),
            default_collations: [("utf8mb4".to_string(), "utf8mb4_bin".to_string())].into(),
            ..Default::default()
        }
    }

    fn source(collation: &str) -> SourceSchema {
        SourceSchema {
            tables: vec![Table {
                db: "app".into(),
                name: "t".into(),
                engine: Some("InnoDB".into()),
                collation: Some(collation.into()),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn routines_are_migrated_on_request_except_into_tidb() {
        let source = SourceSchema {
            programs: vec!["trigger app.t (on app.x)".into(), "procedure app.p".into()],
            ..Default::default()
        };
        let item = programs(&source, false, true);
        assert_eq!(item.result, CheckResult::Warning);
        assert_eq!(
            item.observed.as_deref(),
            Some("not migrated: trigger app.t (on app.x); created and replicated: procedure app.p")
        );
        let only_routines = SourceSchema { programs: vec!["function app.f".into()], ..source };
        assert_eq!(programs(&only_routines, false, true).result, CheckResult::Pass);
        assert_eq!(programs(&only_routines, false, false).result, CheckResult::Warning);
        assert_eq!(programs(&only_routines, true, true).result, CheckResult::Failure);
        let empty = SourceSchema::default();
        assert_eq!(programs(&empty, true, true).result, CheckResult::Failure);
    }

    #[test]
    fn collations_the_target_lacks_fail_unless_tidb_has_a_rewrite() {
        let tidb = target(&[
            ("latin1_bin", "latin1"),
            ("utf8mb4_bin", "utf8mb4"),
            ("utf8_general_ci", "utf8"),
        ]);
        let item = collations(&source("latin1_swedish_ci"), &tidb, true);
        assert_eq!(item.result, CheckResult::Warning);
        assert!(item.observed.unwrap_or_default().contains("latin1_swedish_ci -> latin1_bin"));
        let item = collations(&source("utf8mb3_general_ci"), &tidb, true);
        assert_eq!(item.result, CheckResult::Warning);
        let item = collations(&source("latin1_swedish_ci"), &tidb, false);
        assert_eq!(item.result, CheckResult::Failure);
        let item = collations(&source("utf8mb4_ferry_ci"), &tidb, true);
        assert_eq!(item.result, CheckResult::Failure);
        assert!(item.remedy.unwrap_or_default().contains("utf8mb4_ferry_ci -> utf8mb4_bin"));
        assert_eq!(collations(&source("utf8mb4_bin"), &tidb, true).result, CheckResult::Pass);
    }
}
