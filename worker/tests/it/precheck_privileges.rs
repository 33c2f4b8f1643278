//! Privilege items against real servers: one source and one target, with a user per missing
//! privilege.

use crate::precheck_support;

use ferry_crds::job::{CheckResult, MigrationMode};
use ferry_crds::source::SourceType;
use ferry_harness::SqlServer;
use ferry_harness::{MariaDb, MySql};
use precheck_support::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SOURCE_PRIVILEGES: &[&str] =
    &["SELECT", "RELOAD", "LOCK TABLES", "REPLICATION SLAVE", "REPLICATION CLIENT"];
const TARGET_PRIVILEGES: &[&str] =
    &["CREATE", "SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP", "INDEX", "CREATE VIEW"];

fn all_but(all: &[&str], missing: &str) -> String {
    all.iter().filter(|p| **p != missing).copied().collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn each_missing_source_privilege_is_named() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)").await?;
    source.create_user("full", "pw", &SOURCE_PRIVILEGES.join(", ")).await?;
    let mode = MigrationMode::FullAndIncremental;
    let as_user = |user: &str| {
        let mut cfg = config(&source, &target, mode);
        cfg.source = endpoint(&source, user, "pw");
        cfg
    };
    let items = check(&as_user("full")).await;
    assert!(failures(&items).is_empty(), "{}", show(&items));
    // (privilege left out, item, result, observed)
    let cases = [
        ("SELECT", "dump_privileges", CheckResult::Failure, "no SELECT on app.*"),
        ("REPLICATION SLAVE", "replication_privileges", CheckResult::Failure, "REPLICATION SLAVE"),
        // MariaDB 10.5+ calls it BINLOG MONITOR; the item uses the server's name.
        ("REPLICATION CLIENT", "replication_privileges", CheckResult::Failure, "BINLOG MONITOR"),
        // LOCK TABLES is the fallback for FLUSH TABLES WITH READ LOCK.
        ("RELOAD", "dump_privileges", CheckResult::Warning, "RELOAD no; LOCK TABLES yes"),
    ];
    for (i, (missing, name, result, observed)) in cases.into_iter().enumerate() {
        let user = format!("u{i}");
        source.create_user(&user, "pw", &all_but(SOURCE_PRIVILEGES, missing)).await?;
        let items = check(&as_user(&user)).await;
        assert_item(&items, name, result, observed);
        let remedy = item(&items, name).remedy.clone().unwrap_or_default();
        assert!(remedy.contains("GRANT") && remedy.contains(&format!("'{user}'@'%'")), "{remedy}");
    }
    // Neither RELOAD nor LOCK TABLES: MariaDB still has a lock-free exact position.
    source.create_user("nolock", "pw", "SELECT, REPLICATION SLAVE, REPLICATION CLIENT").await?;
    assert_item(
        &check(&as_user("nolock")).await,
        "dump_privileges",
        CheckResult::Warning,
        "RELOAD no",
    );
    // SELECT on the database only is enough.
    source.create_user("dbonly", "pw", "RELOAD, REPLICATION SLAVE, REPLICATION CLIENT").await?;
    source.exec("GRANT SELECT ON app.* TO 'dbonly'@'%'").await?;
    let items = check(&as_user("dbonly")).await;
    assert!(failures(&items).is_empty(), "{}", show(&items));
    Ok(())
}

#[tokio::test]
async fn each_missing_target_privilege_is_named() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)").await?;
    let as_user = |user: &str| {
        let mut cfg = config(&source, &target, MigrationMode::Full);
        cfg.target = endpoint(&target, user, "pw");
        cfg
    };
    for (i, missing) in TARGET_PRIVILEGES.iter().enumerate() {
        let user = format!("t{i}");
        target.create_user(&user, "pw", &all_but(TARGET_PRIVILEGES, missing)).await?;
        let items = check(&as_user(&user)).await;
        assert_item(
            &items,
            "target_privileges",
            CheckResult::Failure,
            &format!("missing {missing} on app, ferry_meta"),
        );
        assert_eq!(failures(&items), ["target_privileges"], "{}", show(&items));
    }
    // Database-level grants on the schemas Ferry writes are enough.
    target.exec("CREATE USER 'scoped'@'%' IDENTIFIED BY 'pw'").await?;
    for db in ["app", "ferry\\_meta"] {
        target
            .exec(&format!("GRANT {} ON `{db}`.* TO 'scoped'@'%'", TARGET_PRIVILEGES.join(", ")))
            .await?;
    }
    let items = check(&as_user("scoped")).await;
    assert_item(&items, "target_privileges", CheckResult::Pass, "CREATE VIEW");
    Ok(())
}

/// MySQL 9.7 with the privileges the reference product lists (SELECT, RELOAD, REPLICATION SLAVE,
/// REPLICATION CLIENT): a view needs SHOW VIEW too, which the precheck names with its GRANT
/// (before, the precheck passed and the copy stopped at the view).
#[tokio::test]
async fn a_mysql_user_with_the_reference_privileges_is_told_about_show_view() -> TestResult {
    let (source, target) = tokio::try_join!(MySql::source(), MariaDb::target())?;
    source
        .exec(
            "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; \
             CREATE TABLE app.t (id INT PRIMARY KEY, hidden INT INVISIBLE); \
             CREATE VIEW app.v AS SELECT id FROM app.t",
        )
        .await?;
    let reference = "SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT";
    source.create_user("reference", "pw", reference).await?;
    source.create_user("complete", "pw", &format!("{reference}, SHOW VIEW")).await?;
    let as_user = |user: &str, mode| {
        let mut cfg = config(&source, &target, mode);
        cfg.source_type = SourceType::SelfManaged;
        cfg.source = endpoint(&source, user, "pw");
        cfg
    };
    for mode in [MigrationMode::Full, MigrationMode::FullAndIncremental] {
        let items = check(&as_user("reference", mode)).await;
        assert_item(&items, "dump_privileges", CheckResult::Failure, "SHOW VIEW");
        assert_item(&items, "dump_privileges", CheckResult::Failure, "app.v");
        let remedy = item(&items, "dump_privileges").remedy.clone().unwrap_or_default();
        assert!(remedy.contains("GRANT SELECT, SHOW VIEW ON *.* TO 'reference'@'%'"), "{remedy}");
        let items = check(&as_user("complete", mode)).await;
        assert_item(&items, "dump_privileges", CheckResult::Pass, "RELOAD yes");
        assert_item(&items, "source_version", CheckResult::Warning, "MySQL 9.7");
        // The copy writes MySQL's INVISIBLE comment as MariaDB's INVISIBLE: nothing to say.
        assert_absent(&items, "invisible_columns");
    }
    // Without RELOAD (RDS, Aurora) the snapshot holds LOCK TABLES on the selected tables;
    // without that either, MySQL reports no exact position: refused when replicating.
    let no_reload = "SELECT, SHOW VIEW, REPLICATION SLAVE, REPLICATION CLIENT";
    source.create_user("locks", "pw", &format!("{no_reload}, LOCK TABLES")).await?;
    source.create_user("nolocks", "pw", no_reload).await?;
    let items = check(&as_user("locks", MigrationMode::FullAndIncremental)).await;
    assert_item(&items, "dump_privileges", CheckResult::Warning, "snapshot: LOCK TABLES ... READ");
    let items = check(&as_user("nolocks", MigrationMode::FullAndIncremental)).await;
    assert_item(&items, "dump_privileges", CheckResult::Failure, "LOCK TABLES no");
    let remedy = item(&items, "dump_privileges").remedy.clone().unwrap_or_default();
    assert!(remedy.contains("GRANT LOCK TABLES ON *.* TO 'nolocks'@'%'"), "{remedy}");
    let items = check(&as_user("nolocks", MigrationMode::Full)).await;
    assert_item(&items, "dump_privileges", CheckResult::Warning, "snapshot: lock-free");
    // The snapshot reads the binlog position, which takes REPLICATION CLIENT on MySQL.
    source.create_user("noclient", "pw", "SELECT, RELOAD, SHOW VIEW").await?;
    let items = check(&as_user("noclient", MigrationMode::Full)).await;
    assert_item(&items, "dump_privileges", CheckResult::Failure, "no REPLICATION CLIENT");
    // Incremental mode reads no view definitions: SHOW VIEW is not asked for.
    let items = check(&as_user("reference", MigrationMode::Incremental)).await;
    assert_item(&items, "replication_privileges", CheckResult::Pass, "REPLICATION CLIENT");
    assert_absent(&items, "dump_privileges");
    Ok(())
}

/// MySQL invisible columns into TiDB, which has none: the precheck names them and says they
/// arrive visible. (Into MariaDB the copy keeps them INVISIBLE: no item, see above.)
#[tokio::test]
async fn mysql_invisible_columns_warn_for_a_tidb_target() -> TestResult {
    let (source, placeholder, tidb) =
        tokio::try_join!(MySql::source(), MariaDb::target(), ferry_harness::TiDb::start())?;
    source
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, hidden INT INVISIBLE)")
        .await?;
    let mut cfg = config(&source, &placeholder, MigrationMode::Full);
    cfg.source_type = SourceType::SelfManaged;
    cfg.target.port = tidb.port();
    let items = check(&cfg).await;
    assert_item(&items, "invisible_columns", CheckResult::Warning, "app.t.hidden");
    let reason = item(&items, "invisible_columns").reason.clone().unwrap_or_default();
    assert!(reason.contains("TiDB has no invisible columns"), "{reason}");
    Ok(())
}
