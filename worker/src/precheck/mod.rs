//! Prechecks of source and target before a job starts: every item of the reference product
//! (connectivity, versions, privileges, binary log settings, keys, collations, connections,
//! what the target already holds), each with a result, what was observed, why it matters and
//! what to do, in terms of the kind of source.
//!
//! Reading is separate from judging: `server`, `schema` and `source` read a handful of queries
//! per end (source and target concurrently, every table at once from information_schema), and
//! the item modules (`source`, `privileges`, `objects`, `limits`) are plain functions of what
//! was read. Items a mode does not need are not produced.

mod columns;
mod grants;
mod item;
mod limits;
mod objects;
mod privileges;
mod remedy;
mod schema;
mod server;
mod source;

use std::collections::BTreeSet;
use std::time::Duration;

use ferry_crds::TlsMode;
use ferry_crds::job::{BinlogPosition, CheckResult, MigrationMode, PrecheckItem};
use mysql_async::Conn;

use crate::config::{Endpoint, JobConfig};
use crate::connect::{self, ConnectError};
use crate::engine::JobContext;
use crate::flavor::ServerIdentity;
use crate::meta::{self, META_SCHEMA};
use crate::report::set_condition;

pub use item::Summary;
use schema::{Selection, SourceSchema, TargetSchema};
use server::Server;
use source::SourceFacts;
pub use source::{BinlogReadiness, binlog_readiness};

/// How long each end may take to answer all its precheck queries.
const SIDE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the precheck could not run or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    #[error("precheck failed: {0}")]
    Failed(String),
    /// A server could not be reached or went away while being checked: nothing was judged,
    /// and a later run may find it up again.
    #[error("precheck could not run: {0}")]
    Unreachable(String),
    #[error("{context}: {source}")]
    Sql { context: String, source: mysql_async::Error },
}

impl PrecheckError {
    /// A server that is down is worth retrying; a real precheck failure is not.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Failed(_) => false,
            Self::Unreachable(_) => true,
            Self::Sql { source, .. } => connect::transient(source),
        }
    }

    pub(crate) fn sql(context: &'static str) -> impl FnOnce(mysql_async::Error) -> Self {
        move |source| Self::Sql { context: context.to_string(), source }
    }
}

/// Runs the checks the job's mode needs, records them in the status (`precheck` and the
/// Prechecked condition) and fails when an item fails. Warnings let the job go on.
pub async fn run(ctx: &JobContext) -> crate::Result<()> {
    let (items, unreachable) = check_all(&ctx.config).await?;
    if let Some(reason) = unreachable {
        // Judging the other items against a server that is down would make a restart final.
        return Err(PrecheckError::Unreachable(reason).into());
    }
    let summary = Summary::of(&items);
    for item in items.iter().filter(|i| i.result != CheckResult::Pass) {
        tracing::warn!(
            item = %item.name,
            result = ?item.result,
            observed = item.observed.as_deref().unwrap_or(""),
            "precheck"
        );
    }
    let failed: Vec<&PrecheckItem> =
        items.iter().filter(|i| i.result == CheckResult::Failure).collect();
    let message = if failed.is_empty() {
        summary.to_string()
    } else {
        let names: Vec<&str> = failed.iter().map(|i| i.name.as_str()).collect();
        format!("{summary}: {}", names.join(", "))
    };
    let reason = match (summary.failures, summary.warnings) {
        (0, 0) => "Passed",
        (0, _) => "PassedWithWarnings",
        _ => "Failed",
    };
    ctx.reporter.update(|s| {
        s.precheck = items.clone();
        set_condition(&mut s.conditions, "Prechecked", failed.is_empty(), reason, message.clone());
    });
    ctx.reporter.publish().await;
    if failed.is_empty() {
        tracing::info!(%summary, "precheck passed");
        return Ok(());
    }
    let details: Vec<String> = failed.iter().map(|i| describe_failure(i)).collect();
    Err(PrecheckError::Failed(format!("{message}\n  {}", details.join("\n  "))).into())
}

/// `name: observed; reason; remedy`, for the error that stops the job: the reason carries what
/// the server said (a refused login, a missing privilege), which the remedy alone cannot.
fn describe_failure(item: &PrecheckItem) -> String {
    let part = |text: Option<&str>| {
        text.map(|t| format!("{}; ", t.trim_end_matches('.'))).unwrap_or_default()
    };
    let (observed, reason) = (part(item.observed.as_deref()), part(item.reason.as_deref()));
    let remedy = item.remedy.as_deref().unwrap_or("see the status");
    format!("{}: {observed}{reason}{remedy}", item.name)
}

/// Checks source and target for a job and returns every item, without a status to report to
/// (`ferry precheck`). Unreachable servers are Failure items, not errors.
pub async fn check(config: &JobConfig) -> Result<Vec<PrecheckItem>, PrecheckError> {
    Ok(check_all(config).await?.0)
}

/// Every item, and why an end could not be read when that may pass by itself (the server is
/// down or restarting, or did not answer in time).
async fn check_all(
    config: &JobConfig,
) -> Result<(Vec<PrecheckItem>, Option<String>), PrecheckError> {
    let rules = &config.selection;
    let selection = Selection::source(rules);
    let (source, target) = tokio::join!(
        bounded("source", read_source(config, selection)),
        bounded("target", read_target(config, Selection::target(rules))),
    );
    let mut items = vec![
        connection_item("source_connection", &config.source, source.as_ref().map(|_| ())),
        connection_item("target_connection", &config.target, target.as_ref().map(|_| ())),
    ];
    let unreachable = [&source.as_ref().err(), &target.as_ref().err()]
        .into_iter()
        .flatten()
        .find(|e| e.transient())
        .map(|e| e.to_string());
    let source = source.ok();
    // A job that ran before resumes from its checkpoint, not from spec.incremental.start.
    let resume = target.as_ref().ok().and_then(|t| t.checkpoint.clone());
    if let Some(facts) = &source {
        let (resume, refused) = resume_start(resume, &facts.server);
        items.extend(source_items(config, selection, facts, resume.as_ref()));
        if let Some(refused) = refused {
            items.retain(|item| item.name != refused.name);
            items.push(refused);
        }
    }
    if let Ok(mut target) = target {
        let databases = target_databases(rules, source.as_ref().map(|f| &f.schema));
        items.extend(target_items(config, &target.server, &databases));
        if let Some(facts) = &source {
            items.extend(cross_items(config, facts, &mut target).await);
        }
        drop(target.conn.disconnect().await);
    }
    Ok((items, unreachable))
}

/// Why one end could not be read.
#[derive(Debug, thiserror::Error)]
enum SideError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("connected, but {0}")]
    Query(#[from] PrecheckError),
    #[error("the {0} did not answer the precheck queries within {SIDE_TIMEOUT:?}")]
    Timeout(&'static str),
}

impl SideError {
    fn transient(&self) -> bool {
        match self {
            Self::Connect(e) => e.retryable(),
            Self::Query(e) => e.retryable(),
            Self::Timeout(_) => true,
        }
    }
}

async fn bounded<T>(
    role: &'static str,
    work: impl Future<Output = Result<T, SideError>>,
) -> Result<T, SideError> {
    tokio::time::timeout(SIDE_TIMEOUT, work).await.unwrap_or(Err(SideError::Timeout(role)))
}

async fn read_source(
    config: &JobConfig,
    selection: Selection<'_>,
) -> Result<SourceFacts, SideError> {
    // Settings and schema are read on two connections at once.
    let (mut settings, mut schema) = tokio::try_join!(
        connect::connect(&config.source, "source"),
        connect::connect(&config.source, "source"),
    )?;
    let facts = SourceFacts::read(&mut settings, &mut schema, config.source_type, selection).await;
    drop(tokio::join!(settings.disconnect(), schema.disconnect()));
    Ok(facts?)
}

/// What the precheck read on the target, and the connection it used.
struct TargetFacts {
    conn: Conn,
    server: Server,
    schema: TargetSchema,
    /// The replication checkpoint of an earlier run.
    checkpoint: Option<Checkpoint>,
    /// An earlier run finished copying the existing data (or started replicating after it).
    copied: bool,
}

async fn read_target(
    config: &JobConfig,
    selection: Selection<'_>,
) -> Result<TargetFacts, SideError> {
    let mut conn = connect::connect(&config.target, "target").await?;
    let server = Server::read(&mut conn).await?;
    let schema = TargetSchema::read(&mut conn, selection).await?;
    let checkpoint = read_checkpoint(&mut conn, config).await;
    let copied = checkpoint.is_some() || copy_done(&mut conn, config).await;
    Ok(TargetFacts { conn, server, schema, checkpoint, copied })
}

/// Whether an earlier run recorded its copy as done; false when it cannot be read.
async fn copy_done(conn: &mut Conn, config: &JobConfig) -> bool {
    meta::full::copy_done(conn, &config.key).await.unwrap_or(false)
}

/// A replication checkpoint, and the source server it was read from when known.
#[derive(Debug, Clone)]
struct Checkpoint {
    position: BinlogPosition,
    source_server: Option<String>,
}

/// Where a resume starts, as the precheck checks it: by the GTID set alone when the source
/// logs GTIDs (the checkpoint's file and offset may be a former server's, after a failover); by
/// file and offset otherwise, which only the checkpoint's own server can serve, so another
/// server gives a failure item in place of `incremental_start`.
fn resume_start(
    checkpoint: Option<Checkpoint>,
    server: &Server,
) -> (Option<BinlogPosition>, Option<PrecheckItem>) {
    let Some(Checkpoint { position, source_server }) = checkpoint else { return (None, None) };
    let now = ServerIdentity::from_variables(server.version.flavor, |name| {
        server.variables.get(name).map(String::as_str)
    });
    let has_set = position.gtid_set.as_deref().is_some_and(|set| !set.trim().is_empty());
    if now.gtids && has_set {
        return (Some(BinlogPosition { file: None, pos: None, ..position }), None);
    }
    let Some(was) = source_server.filter(|was| *was != now.id) else {
        return (Some(position), None);
    };
    let why = if now.gtids {
        "the checkpoint holds no GTID set"
    } else {
        "the source has no GTIDs (gtid_mode is not ON)"
    };
    let refused = item::failure(
        "incremental_start",
        format!(
            "source server {} is not the server the checkpoint was read from ({was}), and {why}",
            now.id
        ),
        "The source at this address changed (a failover to a replica, or a replaced server) \
         and the checkpoint can only be resumed by its binlog file and offset, which belong to \
         the former server and mean nothing on this one.",
        "The checkpoint's binlog offsets mean nothing on another server: point the job back at \
         the former server, or start a new migration (mode FullAndIncremental); to survive \
         failovers, run the sources with GTIDs (MySQL: gtid_mode=ON and \
         enforce_gtid_consistency=ON).",
    );
    (Some(position), Some(refused))
}

/// The replication checkpoint of an earlier run; None when there is none or it cannot be read.
async fn read_checkpoint(conn: &mut Conn, config: &JobConfig) -> Option<Checkpoint> {
    if !config.mode.replicates() {
        return None;
    }
    let saved = meta::incremental::load(conn, &config.key).await.ok().flatten()?;
    let position = saved.position;
    // A job started from a GTID set alone (MySQL) may stop before the stream named a file.
    let file = Some(position.file).filter(|f| !f.is_empty());
    let position = BinlogPosition {
        pos: file.as_ref().map(|_| position.pos as i64),
        file,
        gtid_set: position.gtid_set,
    };
    Some(Checkpoint { position, source_server: saved.source_server })
}

fn connection_item(
    name: &str,
    endpoint: &Endpoint,
    result: Result<(), &SideError>,
) -> PrecheckItem {
    let observed = format!("{} (TLS {:?})", endpoint.describe(), endpoint.tls.mode);
    match result {
        Ok(()) if endpoint.tls.mode == TlsMode::Disabled && !is_loopback(&endpoint.host) => {
            item::warning(
                name,
                observed,
                "the connection is not encrypted: rows and the password cross the network in \
                 clear text",
                "Set tls.mode ServerAuth with the server's CA in caSecretRef (cloud databases \
                 publish theirs), or Mutual with a client certificate.",
            )
        }
        Ok(()) => item::pass(name, observed),
        Err(error) => item::failure(
            name,
            observed,
            error.to_string(),
            "Check host, port, user, the password Secret and the TLS settings; from where Ferry \
             runs, `mysql -h HOST -P PORT -u USER -p` must connect (for PrivateLink, accept the \
             endpoint connection first).",
        ),
    }
}

/// Whether a host name stays on this machine, where plain TCP crosses no network.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Schemas Ferry writes on the target: those the selected ones land in, and its own.
fn target_databases(rules: &ferry_crds::Selection, source: Option<&SourceSchema>) -> Vec<String> {
    let mut names: BTreeSet<String> =
        rules.exact_databases().into_iter().map(|db| rules.route_database(db)).collect();
    if let Some(schema) = source {
        names.extend(schema.schemas.keys().map(|db| rules.route_database(db)));
        names.extend(schema.tables.iter().map(|t| rules.route(&t.db, &t.name).database));
    }
    names.insert(META_SCHEMA.to_string());
    names.into_iter().collect()
}

/// Source schemas the job reads: those it found, and those named exactly.
fn selected_schemas(rules: &ferry_crds::Selection, schema: &SourceSchema) -> Vec<String> {
    let mut names: BTreeSet<String> =
        rules.exact_databases().into_iter().map(String::from).collect();
    names.extend(schema.schemas.keys().cloned());
    names.into_iter().collect()
}

fn source_items(
    config: &JobConfig,
    selection: Selection<'_>,
    facts: &SourceFacts,
    resume: Option<&BinlogPosition>,
) -> Vec<PrecheckItem> {
    let (mode, source_type, server) = (config.mode, config.source_type, &facts.server);
    let schema = &facts.schema;
    let mut items = vec![source::version(source_type, &server.version)];
    if mode.copies_existing_data() {
        items.push(privileges::dump_privileges(mode, source_type, server, schema));
    }
    if mode.replicates() {
        items.push(privileges::replication_privileges(mode, server, schema));
    }
    let selected = selected_schemas(selection.rules(), schema);
    let start = match resume {
        Some(checkpoint) => Some(checkpoint),
        None if mode == MigrationMode::Incremental => config.incremental_start.as_ref(),
        None => None,
    };
    items.extend(source::binlog_items(mode, source_type, facts, &selected, start));
    items.push(objects::selected_objects(selection, schema));
    items.push(objects::primary_keys(mode, schema));
    items.push(objects::foreign_keys(mode, schema));
    if mode.copies_existing_data() {
        items.push(objects::non_transactional_tables(schema));
    }
    let needed = limits::source_connections(mode, config.concurrency);
    items.push(limits::max_connections(limits::End::Source(source_type), server, needed));
    items
}

fn target_items(config: &JobConfig, server: &Server, databases: &[String]) -> Vec<PrecheckItem> {
    let needed = limits::target_connections(config.concurrency);
    vec![
        limits::target_version(server),
        limits::target_writable(server),
        privileges::target_privileges(server, databases),
        limits::max_connections(limits::End::Target, server, needed),
    ]
}

/// Items that compare both ends.
async fn cross_items(
    config: &JobConfig,
    source: &SourceFacts,
    target_facts: &mut TargetFacts,
) -> Vec<PrecheckItem> {
    let (target_conn, target_server, target) =
        (&mut target_facts.conn, &target_facts.server, &target_facts.schema);
    let tidb = target_server.version.flavor == server::Flavor::TiDb;
    let mut items = vec![
        limits::distinct_servers(&source.server, target_server),
        objects::collations(&source.schema, target, tidb),
        objects::programs(&source.schema, tidb, config.selection.objects().routines),
    ];
    items.extend(source::invisible_columns_item(source, target_server.version.flavor));
    let rules = &config.selection;
    let routed = source.schema.routed(rules);
    let existing: Vec<(String, String)> = routed
        .tables
        .iter()
        .map(|t| (t.db.clone(), t.name.clone()))
        .filter(|key| target.tables.contains(key))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let non_empty = if config.mode.copies_existing_data() {
        schema::tables_with_rows(target_conn, &existing).await
    } else {
        Ok(Vec::new())
    };
    match non_empty {
        Ok(non_empty) => {
            items.push(objects::target_tables(config.mode, &routed, target, &non_empty))
        }
        Err(error) => items.push(item::warning(
            "target_tables_with_rows",
            format!("{} selected table(s) exist on the target", existing.len()),
            format!("Ferry could not check them for rows: {error}"),
            "Grant SELECT on them to the target user.",
        )),
    }
    let mismatches = columns::compare(&routed.columns, &target.columns);
    // Before the copy, every difference is the target's own; once replication runs, the source
    // may be ahead by DDL the binlog still holds for the target.
    let pending_ddl = !config.mode.copies_existing_data() || target_facts.copied;
    items.push(columns::item(&mismatches, existing.len(), pending_ddl));
    items.extend(objects::merged_shards(rules, &source.schema));
    items.extend(limits::max_allowed_packet(&source.server, target_server));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(host: &str, mode: TlsMode) -> Endpoint {
        Endpoint {
            host: host.into(),
            port: 3306,
            user: "ferry".into(),
            password: crate::config::Password::new("pw"),
            tls: crate::config::TlsMaterial { mode, ..Default::default() },
        }
    }

    #[test]
    fn plain_tcp_across_the_network_is_a_warning() {
        for (host, mode, expected) in [
            ("127.0.0.1", TlsMode::Disabled, CheckResult::Pass),
            ("localhost", TlsMode::Disabled, CheckResult::Pass),
            ("::1", TlsMode::Disabled, CheckResult::Pass),
            ("db.example.com", TlsMode::Disabled, CheckResult::Warning),
            ("10.0.0.7", TlsMode::Disabled, CheckResult::Warning),
            ("db.example.com", TlsMode::ServerAuth, CheckResult::Pass),
        ] {
            let item = connection_item("source_connection", &endpoint(host, mode), Ok(()));
            assert_eq!(item.result, expected, "{host} {mode:?}: {item:?}");
            if expected == CheckResult::Warning {
                assert!(item.remedy.as_deref().unwrap_or("").contains("ServerAuth"), "{item:?}");
            }
        }
    }
}
