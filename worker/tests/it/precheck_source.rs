//! Precheck items about the source server, each against a real MariaDB configured to pass or
//! to fail it: binary log settings, retention, filters, compression, read-only, start position,
//! version, and the mode deciding which items exist.

use crate::precheck_support;

use ferry_crds::job::{BinlogPosition, CheckResult, MigrationMode};
use ferry_harness::SqlServer;
use ferry_harness::{MariaDb, MariaDbOptions, Role};
use precheck_support::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn source_with(args: &[&str]) -> MariaDbOptions {
    args.iter().fold(MariaDbOptions::new(Role::Source), |o, a| o.arg(*a))
}

const APP: &str = "CREATE DATABASE app; \
    CREATE TABLE app.users (id INT PRIMARY KEY, name VARCHAR(20)); \
    CREATE TABLE app.orders (id BIGINT NOT NULL, user_id INT, UNIQUE KEY (id))";

#[tokio::test]
async fn a_well_configured_pair_passes_every_item() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source.exec(APP).await?;
    let items = check(&config(&source, &target, MigrationMode::FullAndIncremental)).await;
    let not_passed: Vec<_> = items.iter().filter(|i| i.result != CheckResult::Pass).collect();
    assert!(not_passed.is_empty(), "{}", show(&items));
    for name in [
        "source_connection",
        "target_connection",
        "source_version",
        "dump_privileges",
        "replication_privileges",
        "server_id",
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "binlog_retention",
        "binlog_db_filters",
        "binlog_compression",
        "source_read_only",
        "selected_objects",
        "primary_keys",
        "foreign_keys",
        "table_engines",
        "source_max_connections",
        "target_version",
        "target_writable",
        "target_privileges",
        "target_max_connections",
        "charsets_collations",
        "target_tables_with_rows",
        "max_allowed_packet",
    ] {
        item(&items, name);
    }
    assert_item(&items, "source_version", CheckResult::Pass, "MariaDB 10.");
    assert_item(&items, "binlog_retention", CheckResult::Pass, "7 day(s)");
    assert_item(&items, "selected_objects", CheckResult::Pass, "1 schema(s), 2 table(s)");
    Ok(())
}

#[tokio::test]
async fn binlog_off_fails_only_when_the_mode_replicates() -> TestResult {
    let (source, target) =
        tokio::try_join!(MariaDb::start(source_with(&["--skip-log-bin"])), MariaDb::target())?;
    let items = check(&config(&source, &target, MigrationMode::FullAndIncremental)).await;
    assert_item(&items, "log_bin", CheckResult::Failure, "OFF");
    let remedy = item(&items, "log_bin").remedy.clone().unwrap_or_default();
    assert!(remedy.contains("log_bin = mysql-bin") && remedy.contains("mariadb"), "{remedy}");
    let full = check(&config(&source, &target, MigrationMode::Full)).await;
    assert_absent(&full, "log_bin");
    assert_absent(&full, "binlog_format");
    assert_absent(&full, "replication_privileges");
    assert!(failures(&full).is_empty(), "{}", show(&full));
    Ok(())
}

#[tokio::test]
async fn statement_and_mixed_formats_and_minimal_images_fail() -> TestResult {
    let (statement, minimal, target) = tokio::try_join!(
        MariaDb::start(source_with(&["--binlog-format=STATEMENT"])),
        MariaDb::start(source_with(&["--binlog-row-image=MINIMAL"])),
        MariaDb::target()
    )?;
    let items = check(&config(&statement, &target, MigrationMode::Incremental)).await;
    assert_item(&items, "binlog_format", CheckResult::Failure, "STATEMENT");
    assert_eq!(failures(&items), ["binlog_format"], "{}", show(&items));
    statement.exec("SET GLOBAL binlog_format = 'MIXED'").await?;
    let items = check(&config(&statement, &target, MigrationMode::Incremental)).await;
    assert_item(&items, "binlog_format", CheckResult::Failure, "MIXED");
    let items = check(&config(&minimal, &target, MigrationMode::FullAndIncremental)).await;
    assert_item(&items, "binlog_row_image", CheckResult::Failure, "MINIMAL");
    assert_eq!(failures(&items), ["binlog_row_image"], "{}", show(&items));
    Ok(())
}

#[tokio::test]
async fn short_retention_fails_and_a_few_days_warn() -> TestResult {
    let (source, target) = tokio::try_join!(
        MariaDb::start(source_with(&["--binlog-expire-logs-seconds=3600"])),
        MariaDb::target()
    )?;
    let cfg = config(&source, &target, MigrationMode::FullAndIncremental);
    assert_item(&check(&cfg).await, "binlog_retention", CheckResult::Failure, "1.0 hour(s)");
    source.exec("SET GLOBAL binlog_expire_logs_seconds = 259200").await?;
    assert_item(&check(&cfg).await, "binlog_retention", CheckResult::Warning, "3 day(s)");
    // 0 on both variables: never purged.
    source.exec("SET GLOBAL binlog_expire_logs_seconds = 0").await?;
    assert_item(&check(&cfg).await, "binlog_retention", CheckResult::Pass, "never purged");
    Ok(())
}

#[tokio::test]
async fn binlog_ignore_db_and_do_db_against_the_selection() -> TestResult {
    let (ignoring, only_other, target) = tokio::try_join!(
        MariaDb::start(source_with(&["--binlog-ignore-db=app"])),
        MariaDb::start(source_with(&["--binlog-do-db=other"])),
        MariaDb::target()
    )?;
    for server in [&ignoring, &only_other] {
        server.exec("CREATE DATABASE app; CREATE DATABASE other").await?;
    }
    let mut cfg = config(&ignoring, &target, MigrationMode::Incremental);
    assert_item(&check(&cfg).await, "binlog_db_filters", CheckResult::Failure, "not logged: app");
    cfg.selection = databases(&["other"]);
    assert_item(&check(&cfg).await, "binlog_db_filters", CheckResult::Pass, "ignore_db: [app]");
    let cfg = config(&only_other, &target, MigrationMode::Incremental);
    assert_item(&check(&cfg).await, "binlog_db_filters", CheckResult::Failure, "not logged: app");
    Ok(())
}

#[tokio::test]
async fn compressed_binlog_and_read_only_source_fail_with_an_incremental_mode() -> TestResult {
    let (compressed, read_only, logging_replica, target) = tokio::try_join!(
        MariaDb::start(source_with(&["--log-bin-compress"])),
        MariaDb::start(source_with(&["--read-only"])),
        // log_slave_updates is read-only at run time on MariaDB: set where the server starts.
        MariaDb::start(source_with(&["--read-only", "--log-slave-updates"])),
        MariaDb::target()
    )?;
    let items = check(&config(&compressed, &target, MigrationMode::Incremental)).await;
    assert_item(&items, "binlog_compression", CheckResult::Failure, "log_bin_compress ON");
    let items = check(&config(&read_only, &target, MigrationMode::Incremental)).await;
    assert_item(&items, "source_read_only", CheckResult::Failure, "read_only ON");
    assert_eq!(failures(&items), ["source_read_only"], "{}", show(&items));
    // A replica that logs what it replicates is fine, with a warning.
    let settings = "SELECT CONCAT(@@read_only, @@log_slave_updates)";
    assert_eq!(logging_replica.query_strings(settings).await?, [Some("ONON".to_string())]);
    let items = check(&config(&logging_replica, &target, MigrationMode::Incremental)).await;
    assert_item(&items, "source_read_only", CheckResult::Warning, "log_slave_updates ON");
    assert!(failures(&items).is_empty(), "{}", show(&items));
    let full = check(&config(&read_only, &target, MigrationMode::Full)).await;
    assert_absent(&full, "source_read_only");
    assert!(!full.is_empty() && failures(&full).is_empty(), "{}", show(&full));
    Ok(())
}

#[tokio::test]
async fn an_incremental_start_in_a_purged_file_fails() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let mut cfg = config(&source, &target, MigrationMode::Incremental);
    cfg.incremental_start = Some(BinlogPosition {
        file: Some("mysql-bin.000099".into()),
        pos: Some(4),
        gtid_set: None,
    });
    assert_item(
        &check(&cfg).await,
        "incremental_start",
        CheckResult::Failure,
        "mysql-bin.000099:4",
    );
    cfg.incremental_start = Some(BinlogPosition {
        file: Some("mysql-bin.000001".into()),
        pos: Some(4),
        gtid_set: None,
    });
    assert_item(&check(&cfg).await, "incremental_start", CheckResult::Pass, "mysql-bin.000001:4");
    if let Some(start) = cfg.incremental_start.as_mut() {
        start.pos = Some(1 << 40);
    }
    assert_item(&check(&cfg).await, "incremental_start", CheckResult::Failure, "bytes");
    Ok(())
}

#[tokio::test]
async fn a_mysql_source_type_on_mariadb_warns_and_unreachable_servers_fail() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let mut cfg = config(&source, &target, MigrationMode::Full);
    cfg.source_type = ferry_crds::source::SourceType::RDSMySQL;
    assert_item(&check(&cfg).await, "source_version", CheckResult::Warning, "MariaDB");
    cfg.source.password = ferry_worker::config::Password::new("wrong");
    cfg.target.port = 1; // nothing listens there
    let items = check(&cfg).await;
    assert_item(&items, "source_connection", CheckResult::Failure, "root@127.0.0.1");
    assert_item(&items, "target_connection", CheckResult::Failure, "127.0.0.1:1");
    assert!(
        item(&items, "source_connection").reason.as_deref().unwrap_or("").contains("Access denied")
    );
    assert_eq!(items.len(), 2, "nothing else is checked without connections:\n{}", show(&items));
    Ok(())
}
