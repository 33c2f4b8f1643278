//! Privilege items against real servers: one source and one target, with a user per missing
//! privilege.

mod precheck_support;

use ferry_crds::job::{CheckResult, MigrationMode};
use ferry_e2e::MariaDb;
use ferry_e2e::SqlServer;
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
