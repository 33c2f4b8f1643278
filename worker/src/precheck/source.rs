//! The source: what is read from it, and the items about its version and binary log.

use ferry_crds::job::{BinlogPosition, CheckResult, MigrationMode, PrecheckItem};
use ferry_crds::source::{BinlogSettings, SourceType};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::item::{failure, list, pass, warning};
use super::remedy;
use super::schema::{Selection, SourceSchema};
use super::server::{Flavor, Server, Version};
use super::{PrecheckError, describe_failure};

const DAY: u64 = 86_400;

/// Everything the source checks look at.
#[derive(Debug, Clone)]
pub struct SourceFacts {
    pub server: Server,
    /// `Binlog_Do_DB` and `Binlog_Ignore_DB` of the binlog status; None when unreadable.
    pub binlog_filters: Option<(Vec<String>, Vec<String>)>,
    /// SHOW BINARY LOGS (name, size); None when unreadable or not needed.
    pub binary_logs: Option<Vec<(String, u64)>>,
    /// RDS/Aurora `binlog retention hours`: outer None when unreadable, inner None when NULL.
    pub rds_retention_hours: Option<Option<f64>>,
    /// `db.table.column` of the selected MySQL invisible columns.
    pub invisible_columns: Vec<String>,
    pub schema: SourceSchema,
}

impl SourceFacts {
    /// Reads the server settings on one connection and the schema on the other, concurrently.
    pub async fn read(
        settings_conn: &mut Conn,
        schema_conn: &mut Conn,
        source_type: SourceType,
        selection: Selection<'_>,
    ) -> Result<Self, PrecheckError> {
        let settings = async {
            let server = Server::read(settings_conn).await?;
            let filters = read_binlog_filters(settings_conn, &server.version).await;
            let binary_logs = settings_conn.query("SHOW BINARY LOGS").await.ok().map(
                |rows: Vec<mysql_async::Row>| rows.into_iter().filter_map(binary_log).collect(),
            );
            let rds = rds_retention(settings_conn, source_type).await;
            let invisible = match server.version.flavor {
                Flavor::MySql => invisible_columns(settings_conn, selection).await?,
                _ => Vec::new(),
            };
            Ok::<_, PrecheckError>((server, filters, binary_logs, rds, invisible))
        };
        let schema = SourceSchema::read(schema_conn, selection);
        let ((server, binlog_filters, binary_logs, rds_retention_hours, invisible_columns), schema) =
            tokio::try_join!(settings, schema)?;
        Ok(Self {
            server,
            binlog_filters,
            binary_logs,
            rds_retention_hours,
            invisible_columns,
            schema,
        })
    }
}

/// A source server's readiness to feed binlog replication: the precheck items that depend on the
/// server alone, not on a job's selection or start position. The operator's MigrationSource
/// check (its BinlogReady condition) and every job's precheck judge the source with these same
/// items, so the two cannot disagree.
#[derive(Debug, Clone)]
pub struct BinlogReadiness {
    pub version: Version,
    /// The settings as read, for the MigrationSource status.
    pub binlog: BinlogSettings,
    pub items: Vec<PrecheckItem>,
}

impl BinlogReadiness {
    /// The failed items as `name: observed; remedy`: empty when the source can replicate.
    pub fn problems(&self) -> Vec<String> {
        let failed = self.items.iter().filter(|i| i.result == CheckResult::Failure);
        failed.map(describe_failure).collect()
    }
}

/// Reads the source's settings on `conn` and judges its binlog readiness.
pub async fn binlog_readiness(
    conn: &mut Conn,
    source_type: SourceType,
) -> Result<BinlogReadiness, PrecheckError> {
    let server = Server::read(conn).await?;
    let rds_retention_hours = rds_retention(conn, source_type).await;
    Ok(judge_readiness(source_type, server, rds_retention_hours))
}

impl BinlogReadiness {
    /// Judges a server from what it said: `VERSION()`, its global variables (`SHOW GLOBAL
    /// VARIABLES` names and values) and, on RDS and Aurora, `binlog retention hours` (outer None:
    /// unreadable, inner None: not set).
    pub fn judge(
        source_type: SourceType,
        version: &str,
        variables: impl IntoIterator<Item = (String, String)>,
        rds_retention_hours: Option<Option<f64>>,
    ) -> Self {
        let server = Server {
            version: Version::parse(version),
            variables: variables.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect(),
            threads_connected: None,
            current_user: String::new(),
            grants: Default::default(),
        };
        judge_readiness(source_type, server, rds_retention_hours)
    }
}

fn judge_readiness(
    source_type: SourceType,
    server: Server,
    rds_retention_hours: Option<Option<f64>>,
) -> BinlogReadiness {
    let facts = SourceFacts {
        server,
        binlog_filters: None,
        binary_logs: None,
        rds_retention_hours,
        invisible_columns: Vec::new(),
        schema: SourceSchema::default(),
    };
    BinlogReadiness {
        version: facts.server.version.clone(),
        binlog: binlog_settings(&facts.server),
        items: server_binlog_items(source_type, &facts),
    }
}

/// The binary log settings as the MigrationSource status shows them; retention 0 means never
/// purged automatically.
fn binlog_settings(server: &Server) -> BinlogSettings {
    let gtid_mode = match server.version.flavor {
        Flavor::MariaDb => Some(format!(
            "MariaDB (strict mode {})",
            server.var("gtid_strict_mode").unwrap_or("OFF")
        )),
        _ => server.var("gtid_mode").map(str::to_string),
    };
    BinlogSettings {
        log_bin: server.var("log_bin").map(|_| server.on("log_bin")),
        format: server.var("binlog_format").map(str::to_string),
        row_image: server.var("binlog_row_image").map(str::to_string),
        retention_seconds: Some(retention_seconds(server).unwrap_or(0) as i64),
        server_id: server.number("server_id").map(|id| id as i64),
        gtid_mode,
    }
}

/// MySQL's invisible columns (8.0.23+) among the selected tables, as `db.table.column`.
async fn invisible_columns(
    conn: &mut Conn,
    selection: Selection<'_>,
) -> Result<Vec<String>, PrecheckError> {
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE EXTRA LIKE '%INVISIBLE%' AND {} ORDER BY 1, 2, ORDINAL_POSITION",
        selection.schema_condition("TABLE_SCHEMA")
    );
    let rows: Vec<(String, String, String)> =
        conn.query(sql).await.map_err(PrecheckError::sql("list the invisible columns"))?;
    Ok(rows
        .into_iter()
        .filter(|(db, table, _)| selection.table(db, table))
        .map(|(db, table, column)| format!("{db}.{table}.{column}"))
        .collect())
}

/// MySQL writes INVISIBLE in SHOW CREATE TABLE as the version comment `/*!80023 INVISIBLE */`,
/// which TiDB (reporting 8.0.11, and without invisible columns) skips: the column is created
/// visible. MariaDB skips it too, but the schema copy rewrites it as MariaDB's INVISIBLE.
pub fn invisible_columns_item(facts: &SourceFacts, target: Flavor) -> Option<PrecheckItem> {
    const NAME: &str = "invisible_columns";
    // Ferry writes MySQL's INVISIBLE comment as MariaDB's INVISIBLE; MySQL runs it as it is.
    if facts.invisible_columns.is_empty() || target != Flavor::TiDb {
        return None;
    }
    Some(warning(
        NAME,
        format!("invisible on the source: {}", list(&facts.invisible_columns)),
        "TiDB has no invisible columns (MySQL's SHOW CREATE TABLE writes them with the version \
         comment /*!80023 INVISIBLE */, which TiDB skips): Ferry copies and replicates their \
         values, but on TiDB they are visible, so SELECT * and INSERT without a column list \
         see one more column than on the source.",
        "Make them visible on the source first (ALTER TABLE ... ALTER COLUMN ... SET VISIBLE), \
         or adapt the applications that rely on SELECT * or INSERT without a column list.",
    ))
}

/// None when the user may not read the binlog status (or the binary log is off).
async fn read_binlog_filters(
    conn: &mut Conn,
    version: &Version,
) -> Option<(Vec<String>, Vec<String>)> {
    let mut rows: Vec<mysql_async::Row> = conn.query(version.binlog_status_sql()).await.ok()?;
    let Some(row) = rows.pop() else { return Some((Vec::new(), Vec::new())) };
    let names = |column: &str| -> Vec<String> {
        row.get_opt::<String, _>(column)
            .and_then(Result::ok)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    Some((names("Binlog_Do_DB"), names("Binlog_Ignore_DB")))
}

fn binary_log(row: mysql_async::Row) -> Option<(String, u64)> {
    let name = row.get_opt::<String, _>(0)?.ok()?;
    let size = row.get_opt::<u64, _>(1).and_then(Result::ok).unwrap_or(0);
    Some((name, size))
}

/// RDS and Aurora keep their binlog retention apart from the server variables; other sources:
/// None.
async fn rds_retention(conn: &mut Conn, source_type: SourceType) -> Option<Option<f64>> {
    match source_type {
        SourceType::RDSMySQL | SourceType::AuroraMySQL => rds_retention_hours(conn).await,
        _ => None,
    }
}

async fn rds_retention_hours(conn: &mut Conn) -> Option<Option<f64>> {
    let sql = "SELECT value FROM mysql.rds_configuration WHERE name = 'binlog retention hours'";
    let value: Option<Option<String>> = conn.query_first(sql).await.ok()?;
    Some(value.flatten().and_then(|v| v.trim().parse().ok()))
}

/// Versions the reference product supports per kind of source (MariaDB: 10.0 and later).
fn supported_versions(source_type: SourceType) -> &'static [(u32, u32)] {
    match source_type {
        SourceType::SelfManaged | SourceType::AuroraMySQL => &[(5, 6), (5, 7), (8, 0)],
        _ => &[(5, 7), (8, 0)],
    }
}

pub fn version(source_type: SourceType, version: &Version) -> PrecheckItem {
    const NAME: &str = "source_version";
    let observed = version.describe();
    let declared = format!("{source_type:?}");
    match version.flavor {
        Flavor::TiDb => failure(
            NAME,
            observed,
            "The source is TiDB; Ferry reads MySQL and MariaDB binary logs, which TiDB does not \
             write.",
            "Use TiCDC or BR to move data between TiDB clusters.",
        ),
        Flavor::MariaDb if !version.at_least(10, 0) => failure(
            NAME,
            observed,
            "MariaDB before 10.0 lacks the GTIDs and row images Ferry relies on.",
            "Upgrade the source to MariaDB 10.x or later.",
        ),
        Flavor::MariaDb if source_type != SourceType::MariaDB => warning(
            NAME,
            observed,
            format!("The server is MariaDB, but the MigrationSource says type {declared}."),
            "Set spec.type: MariaDB on the MigrationSource so that MariaDB's binlog handling and \
             remedies apply.",
        ),
        Flavor::MariaDb => pass(NAME, observed),
        Flavor::MySql if source_type == SourceType::MariaDB => warning(
            NAME,
            observed,
            "The server is MySQL, but the MigrationSource says type MariaDB.",
            "Set spec.type on the MigrationSource to the kind of MySQL it is (SelfManaged, \
             RDSMySQL, AuroraMySQL, ...).",
        ),
        Flavor::MySql => mysql_version(source_type, version, observed),
    }
}

fn mysql_version(source_type: SourceType, version: &Version, observed: String) -> PrecheckItem {
    const NAME: &str = "source_version";
    let supported = supported_versions(source_type);
    let names: Vec<String> = supported.iter().map(|(a, b)| format!("{a}.{b}")).collect();
    if supported.contains(&(version.major, version.minor)) {
        return pass(NAME, observed);
    }
    let newest = supported[supported.len() - 1];
    if (version.major, version.minor) > newest {
        warning(
            NAME,
            observed,
            format!(
                "{source_type:?} {}.{} is newer than the versions the reference product supports \
                 ({}); Ferry reads its binary log as 8.0's, which later versions keep compatible.",
                version.major,
                version.minor,
                names.join(", ")
            ),
            "Nothing to change; check the migrated data before cutting over.",
        )
    } else {
        failure(
            NAME,
            observed,
            format!(
                "{source_type:?} {}.{} is not supported (supported: {}).",
                version.major,
                version.minor,
                names.join(", ")
            ),
            format!("Upgrade the source to MySQL {}.", names.join(" or ")),
        )
    }
}

pub fn server_id(source_type: SourceType, server: &Server) -> PrecheckItem {
    const NAME: &str = "server_id";
    let id = server.number("server_id").unwrap_or(0.0);
    if id > 0.0 {
        return pass(NAME, format!("{id}"));
    }
    failure(
        NAME,
        format!("{id}"),
        "With server_id 0 the server refuses binlog clients, so replication cannot start.",
        remedy::settings(source_type, &[("server_id", "<a unique number > 0>")]),
    )
}

pub fn log_bin(source_type: SourceType, server: &Server) -> PrecheckItem {
    const NAME: &str = "log_bin";
    if server.on("log_bin") {
        return pass(NAME, "ON");
    }
    failure(
        NAME,
        "OFF",
        "Without a binary log there are no changes to replicate.",
        remedy::log_bin(source_type),
    )
}

pub fn binlog_format(source_type: SourceType, server: &Server) -> PrecheckItem {
    const NAME: &str = "binlog_format";
    let format = server.var("binlog_format").unwrap_or("(unknown)").to_ascii_uppercase();
    if format == "ROW" {
        return pass(NAME, format);
    }
    failure(
        NAME,
        format,
        "Ferry replays row changes; STATEMENT and MIXED formats log SQL text whose effect on the \
         target can differ (non-deterministic functions, triggers, LIMIT without ORDER BY).",
        remedy::settings(source_type, &[("binlog_format", "ROW")]),
    )
}

pub fn binlog_row_image(source_type: SourceType, server: &Server) -> PrecheckItem {
    const NAME: &str = "binlog_row_image";
    let Some(image) = server.var("binlog_row_image") else {
        return pass(NAME, "(not present: this version logs full rows)");
    };
    let image = image.to_ascii_uppercase();
    if image == "FULL" {
        return pass(NAME, image);
    }
    failure(
        NAME,
        image,
        "With MINIMAL or NOBLOB images, updates and deletes do not carry every column, so Ferry \
         cannot rebuild the row on the target or resolve conflicts safely.",
        remedy::settings(source_type, &[("binlog_row_image", "FULL")]),
    )
}

/// Seconds binary logs are kept; None: never purged.
fn retention_seconds(server: &Server) -> Option<u64> {
    let seconds = server.number("binlog_expire_logs_seconds").unwrap_or(0.0);
    let days = server.number("expire_logs_days").unwrap_or(0.0);
    if seconds > 0.0 {
        Some(seconds as u64)
    } else if days > 0.0 {
        Some((days * DAY as f64) as u64)
    } else {
        None
    }
}

pub fn binlog_retention(source_type: SourceType, facts: &SourceFacts) -> PrecheckItem {
    const NAME: &str = "binlog_retention";
    let seconds = match source_type {
        SourceType::RDSMySQL | SourceType::AuroraMySQL => match facts.rds_retention_hours {
            None => {
                return warning(
                    NAME,
                    "could not read mysql.rds_configuration",
                    "RDS and Aurora purge binary logs as soon as they can unless 'binlog \
                     retention hours' is set; Ferry could not read it.",
                    remedy::retention(source_type, 7 * DAY),
                );
            }
            Some(None) => Some(0),
            Some(Some(hours)) => Some((hours * 3600.0) as u64),
        },
        _ => retention_seconds(&facts.server),
    };
    let Some(seconds) = seconds else {
        return pass(NAME, "binary logs are never purged automatically");
    };
    let observed = describe_seconds(seconds);
    let why = "Ferry needs every binary log from the start of the copy until it has caught up; \
               a log purged before Ferry read it means a new full migration.";
    if seconds < DAY {
        failure(
            NAME,
            observed,
            format!("{why} Less than 1 day is too short for most copies."),
            remedy::retention(source_type, 7 * DAY),
        )
    } else if seconds < 7 * DAY {
        warning(
            NAME,
            observed,
            format!("{why} 1 day is the minimum; 7 days are recommended."),
            remedy::retention(source_type, 7 * DAY),
        )
    } else {
        pass(NAME, observed)
    }
}

fn describe_seconds(seconds: u64) -> String {
    if seconds == 0 {
        "purged as soon as possible (not set)".into()
    } else if seconds.is_multiple_of(DAY) {
        format!("{} day(s) ({seconds} s)", seconds / DAY)
    } else {
        format!("{:.1} hour(s) ({seconds} s)", seconds as f64 / 3600.0)
    }
}

/// Whether binlog-do-db / binlog-ignore-db leave a selected schema out of the binary log.
pub fn binlog_filters(facts: &SourceFacts, selected: &[String]) -> PrecheckItem {
    const NAME: &str = "binlog_db_filters";
    let Some((do_db, ignore_db)) = &facts.binlog_filters else {
        return warning(
            NAME,
            format!("could not read {}", facts.server.version.binlog_status_sql()),
            "Ferry could not check binlog_do_db and binlog_ignore_db (the user lacks \
             REPLICATION CLIENT / BINLOG MONITOR, or the binary log is off).",
            "Grant REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+) and run the precheck \
             again.",
        );
    };
    let observed = format!("do_db: [{}], ignore_db: [{}]", do_db.join(","), ignore_db.join(","));
    let excluded: Vec<&String> = selected
        .iter()
        .filter(|db| (!do_db.is_empty() && !do_db.contains(db)) || ignore_db.contains(db))
        .collect();
    if excluded.is_empty() {
        return pass(NAME, observed);
    }
    failure(
        NAME,
        format!("{observed}; not logged: {}", list(&excluded)),
        "Changes to these selected schemas are not written to the binary log, so Ferry would \
         never see them.",
        "Remove the binlog-do-db / binlog-ignore-db entries that leave them out from the \
         server's configuration (my.cnf, or the parameter group / server parameters on a \
         managed service) and restart, or leave these schemas out of the job.",
    )
}

pub fn binlog_compression(server: &Server) -> Option<PrecheckItem> {
    const NAME: &str = "binlog_compression";
    server.var("log_bin_compress")?;
    if !server.on("log_bin_compress") {
        return Some(pass(NAME, "log_bin_compress OFF"));
    }
    Some(failure(
        NAME,
        "log_bin_compress ON",
        "MariaDB then writes compressed query and row events, which Ferry cannot decode.",
        remedy::settings(SourceType::MariaDB, &[("log_bin_compress", "OFF")])
            + " It is dynamic too: SET GLOBAL log_bin_compress = OFF applies to new events.",
    ))
}

/// Aurora readers and read-only replicas with an incremental mode.
pub fn read_only(source_type: SourceType, server: &Server) -> PrecheckItem {
    const NAME: &str = "source_read_only";
    let aurora = source_type == SourceType::AuroraMySQL || server.var("aurora_version").is_some();
    if aurora && server.on("innodb_read_only") {
        return failure(
            NAME,
            "Aurora reader instance (innodb_read_only ON)",
            "Aurora readers do not write a binary log: they support existing-data migration \
             only, not incremental replication.",
            "Point the MigrationSource at the cluster (writer) endpoint, or use mode: Full to \
             copy from the reader.",
        );
    }
    if !(server.on("read_only") || server.on("super_read_only")) {
        return pass(NAME, "read-write");
    }
    if server.on("log_slave_updates") || server.on("log_replica_updates") {
        return warning(
            NAME,
            "read_only ON, log_slave_updates ON",
            "The source is read-only, probably a replica. Its binary log carries its primary's \
             changes, later by the replica's own lag.",
            "Nothing to change; to cut lag, point the MigrationSource at the primary.",
        );
    }
    failure(
        NAME,
        "read_only ON, log_slave_updates OFF",
        "The source is read-only and does not log replicated changes: if it is a replica, its \
         primary's changes never reach its binary log, so Ferry would replicate nothing.",
        format!(
            "Point the MigrationSource at the primary (writer), or turn on log_slave_updates: {}",
            remedy::settings(source_type, &[("log_slave_updates", "ON")])
        ),
    )
}

/// Where replication starts (a checkpoint, or an Incremental job's start): the file must
/// still be on the server.
pub fn incremental_start(
    start: Option<&BinlogPosition>,
    facts: &SourceFacts,
) -> Option<PrecheckItem> {
    const NAME: &str = "incremental_start";
    let start = start?;
    let Some(file) = &start.file else {
        return Some(pass(
            NAME,
            format!("GTID set {}", start.gtid_set.clone().unwrap_or_default()),
        ));
    };
    let observed = start.file_pos().unwrap_or_else(|| file.clone());
    let Some(logs) = &facts.binary_logs else {
        return Some(warning(
            NAME,
            observed,
            "Ferry could not list the binary logs (SHOW BINARY LOGS) to check the start file.",
            "Grant REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+).",
        ));
    };
    let oldest = logs.first().map(|(n, _)| n.as_str()).unwrap_or("(none)");
    match logs.iter().find(|(name, _)| name == file) {
        None => Some(failure(
            NAME,
            format!("{observed}; oldest binary log on the server: {oldest}"),
            "The binary log file replication starts from (the checkpoint of an earlier run, or \
             spec.incremental.start) is not on the server: purged, or misspelled. The changes \
             since then are gone.",
            "The binary logs were purged: run a new full migration (mode FullAndIncremental, \
             after emptying or replacing the target tables), or pick a start position from SHOW \
             BINARY LOGS.",
        )),
        Some((_, size)) if start.pos.is_some_and(|p| p > *size as i64) => Some(failure(
            NAME,
            format!("{observed}; {file} has {size} bytes"),
            "The start position lies beyond the end of the file.",
            format!(
                "Take the position from {} or SHOW BINLOG EVENTS.",
                facts.server.version.binlog_status_sql()
            ),
        )),
        Some(_) => Some(pass(NAME, observed)),
    }
}

/// The job's mode decides which binlog items exist.
pub fn binlog_items(
    mode: MigrationMode,
    source_type: SourceType,
    facts: &SourceFacts,
    selected: &[String],
    start: Option<&BinlogPosition>,
) -> Vec<PrecheckItem> {
    if !mode.replicates() {
        return Vec::new();
    }
    let mut items = server_binlog_items(source_type, facts);
    items.push(binlog_filters(facts, selected));
    items.extend(incremental_start(start, facts));
    items
}

/// The binlog items that depend on the server alone (see [`BinlogReadiness`]).
fn server_binlog_items(source_type: SourceType, facts: &SourceFacts) -> Vec<PrecheckItem> {
    let server = &facts.server;
    let mut items = vec![
        server_id(source_type, server),
        log_bin(source_type, server),
        binlog_format(source_type, server),
        binlog_row_image(source_type, server),
        binlog_retention(source_type, facts),
    ];
    items.extend(binlog_compression(server));
    items.push(read_only(source_type, server));
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::job::CheckResult;

    fn server(version: &str, variables: &[(&str, &str)]) -> Server {
        Server {
            version: Version::parse(version),
            variables: variables.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            threads_connected: Some(3),
            current_user: "ferry@%".into(),
            grants: Default::default(),
        }
    }

    fn facts(server: Server, rds_retention_hours: Option<Option<f64>>) -> SourceFacts {
        SourceFacts {
            server,
            binlog_filters: None,
            binary_logs: None,
            rds_retention_hours,
            invisible_columns: Vec::new(),
            schema: Default::default(),
        }
    }

    #[test]
    fn aurora_readers_fail_and_writers_pass() {
        let reader = server("8.0.28", &[("aurora_version", "3.05.2"), ("innodb_read_only", "ON")]);
        let item = read_only(SourceType::AuroraMySQL, &reader);
        assert_eq!(item.result, CheckResult::Failure);
        assert!(item.remedy.unwrap_or_default().contains("mode: Full"));
        let writer = server("8.0.28", &[("aurora_version", "3.05.2"), ("innodb_read_only", "OFF")]);
        assert_eq!(read_only(SourceType::AuroraMySQL, &writer).result, CheckResult::Pass);
    }

    #[test]
    fn rds_retention_comes_from_rds_configuration() {
        let mysql = server("8.0.35", &[("binlog_expire_logs_seconds", "2592000")]);
        let unset = binlog_retention(SourceType::RDSMySQL, &facts(mysql.clone(), Some(None)));
        assert_eq!(unset.result, CheckResult::Failure);
        assert!(unset.remedy.unwrap_or_default().contains("'binlog retention hours', 168"));
        let week = facts(mysql.clone(), Some(Some(168.0)));
        assert_eq!(binlog_retention(SourceType::AuroraMySQL, &week).result, CheckResult::Pass);
        let hidden = binlog_retention(SourceType::RDSMySQL, &facts(mysql, None));
        assert_eq!(hidden.result, CheckResult::Warning);
    }

    #[test]
    fn server_id_zero_and_versions_per_source_type() {
        let zero = server("5.7.44-log", &[("server_id", "0")]);
        assert_eq!(server_id(SourceType::SelfManaged, &zero).result, CheckResult::Failure);
        let v56 = Version::parse("5.6.51-log");
        assert_eq!(version(SourceType::SelfManaged, &v56).result, CheckResult::Pass);
        assert_eq!(version(SourceType::RDSMySQL, &v56).result, CheckResult::Failure);
        let v84 = Version::parse("8.4.3");
        assert_eq!(version(SourceType::AzureMySQL, &v84).result, CheckResult::Warning);
        let tidb = Version::parse("8.0.11-TiDB-v7.5.0");
        assert_eq!(version(SourceType::SelfManaged, &tidb).result, CheckResult::Failure);
    }

    #[test]
    fn log_bin_remedies_follow_the_source_type() {
        let off = server("8.0.35", &[("log_bin", "OFF")]);
        let rds = log_bin(SourceType::RDSMySQL, &off).remedy.unwrap_or_default();
        assert!(rds.contains("automated backups"), "{rds}");
        let own = log_bin(SourceType::SelfManaged, &off).remedy.unwrap_or_default();
        assert!(own.contains("/etc/my.cnf") && own.contains("restart"), "{own}");
    }
}
