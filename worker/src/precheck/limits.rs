//! Items about server limits and the target as a whole: version, writability, connections
//! and packet size.

use ferry_crds::job::{MigrationMode, PrecheckItem};
use ferry_crds::source::SourceType;

use super::item::{failure, pass, warning};
use super::remedy;
use super::server::{Flavor, Server};

/// Connections Ferry opens on the source: the copy's, one holding the snapshot, and for
/// replication the binlog stream plus one for table definitions and positions.
pub fn source_connections(mode: MigrationMode, concurrency: usize) -> u64 {
    let copy = if mode.copies_existing_data() { concurrency as u64 + 1 } else { 0 };
    let replicate = if mode.replicates() { 2 } else { 0 };
    copy + replicate
}

/// Connections Ferry opens on the target: the writers plus one for checkpoints and DDL.
pub fn target_connections(concurrency: usize) -> u64 {
    concurrency as u64 + 1
}

/// Where to raise max_connections on each end.
pub enum End {
    Source(SourceType),
    Target,
}

pub fn max_connections(end: End, server: &Server, needed: u64) -> PrecheckItem {
    let (name, role) = match end {
        End::Source(_) => ("source_max_connections", "source"),
        End::Target => ("target_max_connections", "target"),
    };
    // 0 means unlimited on TiDB (and for max_user_connections everywhere).
    let limit = |v: &str| server.number(v).map(|n| n as u64).filter(|n| *n > 0);
    let max = limit("max_connections");
    let per_user = [limit("max_user_connections"), server.grants.max_user_connections]
        .into_iter()
        .flatten()
        .min();
    // Threads_connected counts the precheck's own connections (two on the source, one on the
    // target), which close before the job opens its own.
    let own = if matches!(end, End::Source(_)) { 2 } else { 1 };
    let in_use = server.threads_connected.unwrap_or(0).saturating_sub(own);
    let observed = format!(
        "max_connections {}, {in_use} in use{}; Ferry needs {needed}",
        max.map_or("unlimited".to_string(), |m| m.to_string()),
        per_user.map_or(String::new(), |u| format!(", max_user_connections {u}"))
    );
    let raise = |value: u64| match &end {
        End::Source(t) => remedy::settings(*t, &[("max_connections", &value.to_string())]),
        End::Target => format!(
            "Raise max_connections on the target to at least {value} (SET GLOBAL max_connections \
             = {value}, and in its configuration), or choose a smaller tier."
        ),
    };
    if let Some(user_limit) = per_user.filter(|u| *u < needed) {
        return failure(
            name,
            observed,
            format!(
                "The {role} user may open only {user_limit} connections; Ferry opens {needed} at \
                 once for this job's concurrency."
            ),
            format!(
                "Raise the user's limit (`ALTER USER ... WITH MAX_USER_CONNECTIONS {needed}`, or \
                 0 for none) or choose a smaller tier."
            ),
        );
    }
    let Some(max) = max else { return pass(name, observed) };
    // The server keeps connections for other clients too: only what is free counts.
    if max < needed + 1 {
        return failure(
            name,
            observed,
            format!(
                "The {role} accepts {max} connections; Ferry opens {needed} at once for this \
                 job's concurrency."
            ),
            raise(needed + in_use + 10),
        );
    }
    if max.saturating_sub(in_use) < needed {
        return warning(
            name,
            observed,
            format!(
                "Only {} connections are free on the {role} now; Ferry opens {needed}, and the \
                 applications may get \"Too many connections\" errors.",
                max.saturating_sub(in_use)
            ),
            raise(needed + in_use + 10),
        );
    }
    pass(name, observed)
}

pub fn target_version(server: &Server) -> PrecheckItem {
    const NAME: &str = "target_version";
    let version = &server.version;
    let old = match version.flavor {
        Flavor::MySql => !version.at_least(5, 7),
        Flavor::MariaDb => !version.at_least(10, 2),
        Flavor::TiDb => false,
    };
    if old {
        return warning(
            NAME,
            version.describe(),
            "Older than MySQL 5.7 / MariaDB 10.2: newer column types and defaults from the source \
             may not be accepted.",
            "Use TiDB, MySQL 5.7+ or MariaDB 10.2+ as the target.",
        );
    }
    pass(NAME, version.describe())
}

pub fn target_writable(server: &Server) -> PrecheckItem {
    const NAME: &str = "target_writable";
    let read_only = ["read_only", "super_read_only", "tidb_super_read_only"]
        .into_iter()
        .filter(|v| server.on(v))
        .collect::<Vec<_>>();
    let bypass = !server.on("super_read_only")
        && !server.on("tidb_super_read_only")
        && (server.grants.global("SUPER") || server.grants.global("READ_ONLY ADMIN"));
    if read_only.is_empty() || bypass {
        return pass(NAME, "writable");
    }
    failure(
        NAME,
        format!("{} ON", read_only.join(", ")),
        "The target refuses writes, so nothing can be copied or applied.",
        format!(
            "Point the job at the primary, or `SET GLOBAL {} = OFF` on the target.",
            read_only[0]
        ),
    )
}

pub fn max_allowed_packet(source: &Server, target: &Server) -> Option<PrecheckItem> {
    const NAME: &str = "max_allowed_packet";
    let (s, t) = (source.number("max_allowed_packet")?, target.number("max_allowed_packet")?);
    let observed = format!("source {} MiB, target {} MiB", s as u64 >> 20, t as u64 >> 20);
    if t >= s {
        return Some(pass(NAME, observed));
    }
    Some(warning(
        NAME,
        observed,
        "A row the source accepted can be larger than the target accepts: the statement that \
         writes it fails with \"packet too large\".",
        format!("Raise max_allowed_packet on the target to at least {} bytes.", s as u64),
    ))
}

/// Source and target must be two servers: copying a server into itself doubles rows of tables
/// without a key, and replicating into it feeds on its own writes without end. MySQL's
/// server_uuid tells servers apart; elsewhere (MariaDB), host name, port, data directory and
/// server_id together do.
pub fn distinct_servers(source: &Server, target: &Server) -> PrecheckItem {
    const NAME: &str = "distinct_servers";
    let identity = |s: &Server| -> Option<String> {
        if let Some(uuid) = s.var("server_uuid").filter(|u| !u.is_empty()) {
            return Some(format!("server_uuid {uuid}"));
        }
        let parts = ["hostname", "port", "datadir", "server_id"].map(|v| s.var(v).unwrap_or(""));
        parts.iter().all(|p| !p.is_empty()).then(|| {
            format!(
                "host {}, port {}, datadir {}, server_id {}",
                parts[0], parts[1], parts[2], parts[3]
            )
        })
    };
    match (identity(source), identity(target)) {
        (Some(s), Some(t)) if s == t => failure(
            NAME,
            format!("source and target are the same server ({s})"),
            "The job would read the server and write into it again: a copy doubles the rows of \
             tables without a key, and replication replays its own writes without end.",
            "Point spec.target at the server the data should move to (another host or port), \
             not at the source.",
        ),
        (Some(s), Some(t)) => pass(NAME, format!("source {s}; target {t}")),
        _ => pass(NAME, "the target is another kind of server than the source"),
    }
}
