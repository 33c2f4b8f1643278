//! Privilege items: what the source user needs to copy and to replicate, and what the target
//! user needs to write, each checked against the objects the job touches.

use ferry_crds::job::{MigrationMode, PrecheckItem};
use ferry_crds::source::SourceType;

use super::item::{failure, list, pass, warning};
use super::remedy;
use super::schema::SourceSchema;
use super::server::{Flavor, Server};

/// What the target user needs, as the reference product lists it.
pub const TARGET_PRIVILEGES: &[&str] =
    &["CREATE", "SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP", "INDEX", "CREATE VIEW"];

/// Selected tables the user cannot SELECT from. Tables without any privilege are invisible in
/// information_schema: InnoDB's own list names them when the user may read it; otherwise a
/// schema selected whole without SELECT on the schema counts as `db.*`, since tables it cannot
/// see would be left out.
fn unreadable_tables(server: &Server, schema: &SourceSchema) -> Vec<String> {
    let grants = &server.grants;
    let mut unreadable: Vec<String> = schema
        .schemas
        .keys()
        .filter(|db| {
            !grants.on_database("SELECT", db)
                && schema.whole_databases.contains(*db)
                && schema.hidden_tables.is_none()
        })
        .map(|db| format!("{db}.*"))
        .collect();
    // A table the grants let the user read cannot be hidden from it: it is one made or dropped
    // while the precheck read the lists.
    let hidden = schema.hidden_tables.iter().flatten();
    let hidden = hidden.filter(|t| !grants.on_table("SELECT", &t.db, &t.name));
    unreadable.extend(hidden.map(|t| t.qualified()));
    unreadable.extend(
        schema
            .tables
            .iter()
            .filter(|t| !grants.on_table("SELECT", &t.db, &t.name))
            .map(|t| t.qualified()),
    );
    unreadable
}

/// Selected views whose definition the user cannot read: SHOW CREATE VIEW needs SHOW VIEW and
/// SELECT on the view.
fn unreadable_views(server: &Server, schema: &SourceSchema) -> Vec<String> {
    let grants = &server.grants;
    schema
        .views
        .iter()
        .filter(|v| {
            !(grants.on_table("SHOW VIEW", &v.db, &v.name)
                && grants.on_table("SELECT", &v.db, &v.name))
        })
        .map(|v| v.qualified())
        .collect()
}

/// What the server calls the privilege that lets a user read the binlog position and list the
/// binary logs: MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR.
fn binlog_client_privilege(server: &Server) -> &'static str {
    if server.version.flavor == Flavor::MariaDb && server.version.at_least(10, 5) {
        "BINLOG MONITOR"
    } else {
        "REPLICATION CLIENT"
    }
}

/// `GRANT SELECT ON db.t TO user;` for each object (`db.*` for whole schemas).
fn grant_each(objects: &[String], grantee: &str) -> String {
    let statements: Vec<String> = objects
        .iter()
        .map(|object| {
            let (db, table) = object.split_once('.').unwrap_or((object, "*"));
            let table = if table == "*" { "*".into() } else { format!("`{table}`") };
            format!("GRANT SELECT ON `{db}`.{table} TO {grantee};")
        })
        .collect();
    format!("Run as an administrator: {}", list(&statements))
}

fn roles_note(server: &Server) -> String {
    if server.grants.roles.is_empty() {
        String::new()
    } else {
        format!(
            " (roles granted: {}; their privileges count only when they are default roles)",
            server.grants.roles.join(", ")
        )
    }
}

/// SELECT on every selected table, SHOW VIEW for the selected views' definitions, the binlog
/// status privilege (the snapshot records its binlog position), and the privilege of the
/// consistent snapshot's method (see full/snapshot.rs): RELOAD for FLUSH TABLES WITH READ LOCK,
/// else on MySQL LOCK TABLES, else lock-free (exact on MariaDB, refused on MySQL when
/// replicating).
pub fn dump_privileges(
    mode: MigrationMode,
    source_type: SourceType,
    server: &Server,
    schema: &SourceSchema,
) -> PrecheckItem {
    const NAME: &str = "dump_privileges";
    let grants = &server.grants;
    let grantee = server.grantee();
    let unreadable = unreadable_tables(server, schema);
    if !unreadable.is_empty() {
        return failure(
            NAME,
            format!("no SELECT on {}{}", list(&unreadable), roles_note(server)),
            "Ferry reads every selected table to copy it; a table the user has no privilege on \
             is invisible to it and would be left out.",
            grant_each(&unreadable, &grantee),
        );
    }
    if let Some(item) = copy_reads(server, schema) {
        return item;
    }
    let mysql = server.version.flavor != Flavor::MariaDb;
    // MySQL 8.0.31+ lets FLUSH_TABLES run FLUSH TABLES WITH READ LOCK as RELOAD does.
    let flush_tables = mysql && grants.global("FLUSH_TABLES");
    let (reload, lock_tables) =
        (grants.global("RELOAD") || flush_tables, grants.global("LOCK TABLES"));
    let method = match (reload, lock_tables && mysql, mysql) {
        (true, _, _) => "FLUSH TABLES WITH READ LOCK",
        (false, true, _) => "LOCK TABLES ... READ on the selected tables",
        (false, false, false) => "lock-free, each connection's exact position",
        (false, false, true) => "lock-free, position read before and after",
    };
    let observed = format!(
        "SELECT on the selected tables; RELOAD {}{}; LOCK TABLES {}; snapshot: {method}",
        yes_no(grants.global("RELOAD")),
        if flush_tables { " (FLUSH_TABLES yes)" } else { "" },
        yes_no(lock_tables)
    );
    if reload && (lock_tables || !source_type.is_managed()) {
        return pass(NAME, observed);
    }
    if reload {
        let fallback = if mysql {
            "it then holds LOCK TABLES ... READ on the selected tables, which this user lacks, \
             so it would take lock-free snapshots"
        } else {
            "it then takes lock-free snapshots, reading each one's exact position"
        };
        return warning(
            NAME,
            observed,
            format!(
                "Managed services may refuse FLUSH TABLES WITH READ LOCK even with RELOAD; \
                 {fallback}."
            ),
            remedy::grant(&["LOCK TABLES"], "*.*", &grantee),
        );
    }
    if !mysql {
        return warning(
            NAME,
            observed,
            "Without RELOAD Ferry cannot run FLUSH TABLES WITH READ LOCK. On MariaDB it takes a \
             lock-free snapshot per connection and reads each one's exact binlog position \
             (binlog_snapshot_file/position); connections stand at slightly different instants, \
             which replication reconciles (a Full copy of a source being written may mix them).",
            remedy::grant(&["RELOAD"], "*.*", &grantee),
        );
    }
    if lock_tables {
        return warning(
            NAME,
            observed,
            "Without RELOAD Ferry cannot run FLUSH TABLES WITH READ LOCK. It holds LOCK TABLES \
             ... READ on the selected tables while the copy's snapshot transactions start and \
             the binlog position is read (writes to those tables wait that moment); the \
             position is exact.",
            remedy::grant(&["RELOAD"], "*.*", &grantee),
        );
    }
    let why = "Without RELOAD or LOCK TABLES Ferry can only take a lock-free snapshot per \
        connection, whose binlog position MySQL does not report (LOCK INSTANCE FOR BACKUP and \
        BACKUP_ADMIN do not help: that lock blocks DDL, not writes).";
    if !mode.replicates() {
        return warning(
            NAME,
            observed,
            format!(
                "{why} The copy's connections stand at slightly different instants, so tables \
                 written during the copy may be copied as of different moments."
            ),
            remedy::grant(&["LOCK TABLES"], "*.*", &grantee),
        );
    }
    failure(
        NAME,
        observed,
        format!(
            "{why} Replication would start at a position read before them: a change committed \
             around that moment may be missed, or doubled in a table without a key. \
             GRANT RELOAD (FLUSH TABLES WITH READ LOCK) works too."
        ),
        remedy::grant(&["LOCK TABLES"], "*.*", &grantee),
    )
}

/// The views' definitions and the snapshot's binlog position, which the copy reads besides the
/// rows; a failure naming each missing privilege, or None when the user has them all.
fn copy_reads(server: &Server, schema: &SourceSchema) -> Option<PrecheckItem> {
    const NAME: &str = "dump_privileges";
    let views = unreadable_views(server, schema);
    let client = binlog_client_privilege(server);
    let mut missing = Vec::new();
    let mut observed = Vec::new();
    let mut why = Vec::new();
    if !views.is_empty() {
        missing.extend(["SELECT", "SHOW VIEW"]);
        observed.push(format!("no SHOW VIEW or SELECT on the views {}", list(&views)));
        why.push("Ferry reads each selected view's definition (SHOW CREATE VIEW).");
    }
    if !server.grants.global("REPLICATION CLIENT") {
        missing.push(client);
        observed.push(format!("no {client}"));
        why.push(
            "Ferry records the snapshot's binlog position (so replication can continue from it), \
             which needs the binlog status.",
        );
    }
    if missing.is_empty() {
        return None;
    }
    Some(failure(
        NAME,
        format!("{}{}", observed.join("; "), roles_note(server)),
        why.join(" "),
        remedy::grant(&missing, "*.*", &server.grantee()),
    ))
}

fn yes_no(held: bool) -> &'static str {
    if held { "yes" } else { "no" }
}

/// REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+); SELECT too in
/// Incremental mode, where no dump item checks it (table definitions are read from the source).
pub fn replication_privileges(
    mode: MigrationMode,
    server: &Server,
    schema: &SourceSchema,
) -> PrecheckItem {
    const NAME: &str = "replication_privileges";
    let client_name = binlog_client_privilege(server);
    let mut missing = Vec::new();
    if !server.grants.global("REPLICATION SLAVE") {
        missing.push("REPLICATION SLAVE");
    }
    if !server.grants.global("REPLICATION CLIENT") {
        missing.push(client_name);
    }
    let unreadable =
        if mode.copies_existing_data() { Vec::new() } else { unreadable_tables(server, schema) };
    if !unreadable.is_empty() {
        missing.push("SELECT");
    }
    if missing.is_empty() {
        return pass(NAME, format!("REPLICATION SLAVE, {client_name}"));
    }
    let mut observed = format!("missing {} on *.*", missing.join(", "));
    if !unreadable.is_empty() {
        observed.push_str(&format!(" (no SELECT on {})", list(&unreadable)));
    }
    observed.push_str(&roles_note(server));
    failure(
        NAME,
        observed,
        format!(
            "REPLICATION SLAVE lets Ferry stream the binary log; {client_name} lets it read the \
             binlog position and list the binary logs; SELECT lets it read table definitions."
        ),
        remedy::grant(&missing, "*.*", &server.grantee()),
    )
}

/// The reference product's target privileges on every database Ferry writes.
pub fn target_privileges(server: &Server, databases: &[String]) -> PrecheckItem {
    const NAME: &str = "target_privileges";
    let mut missing: Vec<String> = Vec::new();
    let mut missing_privileges: Vec<&str> = Vec::new();
    for privilege in TARGET_PRIVILEGES {
        let lacking: Vec<&String> =
            databases.iter().filter(|db| !server.grants.on_database(privilege, db)).collect();
        if !lacking.is_empty() {
            missing.push(format!("{privilege} on {}", list(&lacking)));
            missing_privileges.push(privilege);
        }
    }
    if missing.is_empty() {
        return pass(NAME, TARGET_PRIVILEGES.join(", "));
    }
    failure(
        NAME,
        format!("missing {}{}", missing.join("; "), roles_note(server)),
        "Ferry creates the schemas, tables and views, writes and deletes rows, replays DDL and \
         keeps its checkpoints in the ferry_meta schema on the target.",
        remedy::grant(&missing_privileges, "*.*", &server.grantee()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::precheck::grants::Grants;
    use crate::precheck::schema::Table;
    use crate::precheck::server::Version;

    fn table(db: &str, name: &str) -> Table {
        Table { db: db.into(), name: name.into(), engine: None, collation: None }
    }

    /// A table InnoDB listed and information_schema did not, though the grants let the user read
    /// it, was made or dropped while the precheck read the lists: it is not unreadable.
    #[test]
    fn only_tables_the_grants_do_not_cover_count_as_hidden() {
        let server = Server {
            version: Version::parse("9.7.4"),
            variables: Default::default(),
            threads_connected: None,
            current_user: "ferry@%".into(),
            grants: Grants::parse(&["GRANT SELECT ON `app`.`t` TO `ferry`@`%`"]),
        };
        let schema = SourceSchema {
            hidden_tables: Some(vec![table("app", "t"), table("app", "secret")]),
            ..Default::default()
        };
        assert_eq!(unreadable_tables(&server, &schema), ["app.secret"]);
    }
}
