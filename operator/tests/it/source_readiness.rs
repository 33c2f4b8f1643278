//! One judgement of a source's binary log: the operator's MigrationSource check (its BinlogReady
//! condition) and a replicating job's precheck, run against the same real servers, agree item by
//! item. A source that is not ready (binary log off, STATEMENT format, compressed events, MINIMAL
//! row images) is BinlogReady=False naming the remedy the precheck gives for each failed item;
//! a ready one passes both. Compressed events are the case the operator's earlier check of its
//! own let through.

use ferry_crds::job::{CheckResult, MigrationMode, PrecheckItem, Tier};
use ferry_crds::source::SourceType;
use ferry_harness::{MariaDb, MariaDbOptions, MySql, Role, SqlServer};
use ferry_operator::source::check::{binlog_ready, check};
use ferry_worker::config::{Endpoint, JobConfig, JobId, Password, TlsMaterial};

fn endpoint(server: &impl SqlServer) -> Endpoint {
    Endpoint {
        host: server.host().to_string(),
        port: server.port(),
        user: "root".into(),
        password: Password::new(""),
        tls: TlsMaterial::default(),
    }
}

/// A FullAndIncremental job from `source`: the mode whose precheck judges the binary log.
fn job(source_type: SourceType, source: &impl SqlServer, target: &impl SqlServer) -> JobConfig {
    JobConfig {
        id: JobId { namespace: "default".into(), name: "readiness".into() },
        owner: Default::default(),
        key: String::new(),
        source_type,
        source: endpoint(source),
        target: endpoint(target),
        mode: MigrationMode::FullAndIncremental,
        selection: ferry_crds::Selection::default(),
        tier: Tier::Small,
        concurrency: Tier::Small.default_concurrency(),
        safe_mode_duration: std::time::Duration::from_secs(60),
        merge: Default::default(),
        incremental_start: None,
        overwrite_conflicts_at: None,
        ddl_error_policy: Vec::new(),
        cutover: ferry_worker::config::CutoverSettings::from_spec(None),
        validation: None,
    }
}

/// Judges `source` both ways, asserts that they agree, and returns the names of the failed
/// readiness items.
async fn agree(
    source_type: SourceType,
    source: &impl SqlServer,
    target: &impl SqlServer,
) -> anyhow::Result<Vec<String>> {
    let readiness = check(&endpoint(source), source_type).await?;
    let condition = binlog_ready(&readiness);
    let precheck = ferry_worker::precheck::check(&job(source_type, source, target)).await?;
    assert!(!readiness.items.is_empty(), "the operator judged nothing");
    for item in &readiness.items {
        let twin = precheck.iter().find(|i| i.name == item.name);
        assert_eq!(twin, Some(item), "the precheck judges {} otherwise", item.name);
    }
    let failed: Vec<&PrecheckItem> =
        readiness.items.iter().filter(|i| i.result == CheckResult::Failure).collect();
    assert_eq!(condition.status, failed.is_empty(), "BinlogReady: {condition:?}");
    for item in &failed {
        let remedy = item.remedy.as_deref().unwrap_or_default();
        assert!(!remedy.is_empty(), "{} has no remedy", item.name);
        assert!(condition.message.contains(remedy), "{}: {}", item.name, condition.message);
    }
    Ok(failed.iter().map(|i| i.name.clone()).collect())
}

fn mariadb(arg: &str) -> MariaDbOptions {
    MariaDbOptions::new(Role::Source).arg(arg)
}

#[tokio::test]
async fn the_source_check_and_the_precheck_agree_on_mariadb() -> anyhow::Result<()> {
    let (ready, off, statement, compressed, target) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::start(mariadb("--skip-log-bin")),
        MariaDb::start(mariadb("--binlog-format=STATEMENT")),
        MariaDb::start(mariadb("--log-bin-compress")),
        MariaDb::target(),
    )?;
    let mariadb = SourceType::MariaDB;
    assert_eq!(agree(mariadb, &ready, &target).await?, Vec::<String>::new());
    assert_eq!(agree(mariadb, &off, &target).await?, ["log_bin"]);
    assert_eq!(agree(mariadb, &statement, &target).await?, ["binlog_format"]);
    assert_eq!(agree(mariadb, &compressed, &target).await?, ["binlog_compression"]);
    Ok(())
}

#[tokio::test]
async fn the_source_check_and_the_precheck_agree_on_mysql() -> anyhow::Result<()> {
    let (source, target) = tokio::try_join!(MySql::source(), MariaDb::target())?;
    let own = SourceType::SelfManaged;
    assert_eq!(agree(own, &source, &target).await?, Vec::<String>::new());
    source.exec("SET GLOBAL binlog_row_image = 'MINIMAL'").await?;
    assert_eq!(agree(own, &source, &target).await?, ["binlog_row_image"]);
    Ok(())
}
