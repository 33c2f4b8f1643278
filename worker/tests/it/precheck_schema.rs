//! Items about the selected objects and the limits of both ends, against real servers: keys,
//! foreign keys, engines, missing objects, collations the target lacks, target tables with
//! rows, max_connections.

use crate::precheck_support;

use ferry_crds::job::{CheckResult, MigrationMode};
use ferry_harness::SqlServer;
use ferry_harness::{MariaDb, MariaDbOptions, Role};
use precheck_support::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[tokio::test]
async fn table_level_warnings_and_missing_objects() -> TestResult {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source
        .exec(
            "CREATE DATABASE app; \
             CREATE TABLE app.parents (id INT PRIMARY KEY); \
             CREATE TABLE app.children (id INT PRIMARY KEY, parent INT, \
               FOREIGN KEY (parent) REFERENCES app.parents (id) ON DELETE CASCADE); \
             CREATE TABLE app.log (line TEXT); \
             CREATE TABLE app.nullable_unique (id INT, UNIQUE KEY (id)); \
             CREATE TABLE app.cache (k INT PRIMARY KEY) ENGINE = MyISAM",
        )
        .await?;
    target
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.parents (id INT PRIMARY KEY); \
                 INSERT INTO app.parents VALUES (1); CREATE TABLE app.log (line TEXT)",
        )
        .await?;
    let mut cfg = config(&source, &target, MigrationMode::FullAndIncremental);
    let items = check(&cfg).await;
    assert!(failures(&items).is_empty(), "{}", show(&items));
    assert_item(
        &items,
        "primary_keys",
        CheckResult::Warning,
        "2 table(s) without one: app.log, app.nullable_unique",
    );
    assert_item(
        &items,
        "foreign_keys",
        CheckResult::Warning,
        "with ON DELETE/UPDATE actions: app.children",
    );
    assert_item(&items, "table_engines", CheckResult::Warning, "app.cache (MyISAM)");
    assert_item(
        &items,
        "target_tables_with_rows",
        CheckResult::Warning,
        "1 table(s) with rows: app.parents",
    );
    // Incremental mode: target tables must exist instead.
    cfg.mode = MigrationMode::Incremental;
    let items = check(&cfg).await;
    assert_item(&items, "target_tables_exist", CheckResult::Warning, "3 missing on the target");
    cfg.mode = MigrationMode::Full;
    cfg.selection = databases(&["app", "nope"]);
    assert_item(&check(&cfg).await, "selected_objects", CheckResult::Failure, "not found: nope");
    Ok(())
}

/// A collation the target lacks: the source gets an extra collation from a character set
/// directory of its own (MariaDB loads LDML collations from Index.xml).
#[tokio::test]
async fn a_collation_the_target_lacks_fails() -> TestResult {
    let charsets = tempfile::tempdir()?;
    for entry in std::fs::read_dir("/usr/share/mysql/charsets")? {
        let entry = entry?;
        std::fs::copy(entry.path(), charsets.path().join(entry.file_name()))?;
    }
    let index = charsets.path().join("Index.xml");
    let extra = "<charset name=\"utf8mb4\"><collation name=\"utf8mb4_ferry_test_ci\" id=\"1029\">\
                 <rules><reset>a</reset><s>b</s></rules></collation></charset>\n</charsets>";
    std::fs::write(&index, std::fs::read_to_string(&index)?.replace("</charsets>", extra))?;
    let options = MariaDbOptions::new(Role::Source)
        .arg(format!("--character-sets-dir={}", charsets.path().display()));
    let (source, target) = tokio::try_join!(MariaDb::start(options), MariaDb::target())?;
    source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, \
               name VARCHAR(20) COLLATE utf8mb4_ferry_test_ci)",
        )
        .await?;
    let cfg = config(&source, &target, MigrationMode::Full);
    let items = check(&cfg).await;
    assert_item(
        &items,
        "charsets_collations",
        CheckResult::Failure,
        "utf8mb4_ferry_test_ci (app.t)",
    );
    let remedy = item(&items, "charsets_collations").remedy.clone().unwrap_or_default();
    assert!(remedy.contains("utf8mb4_ferry_test_ci -> utf8mb4_general_ci"), "{remedy}");
    // Once the table exists on the target, its definition there is what counts.
    target
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, name VARCHAR(20))")
        .await?;
    assert_item(
        &check(&cfg).await,
        "charsets_collations",
        CheckResult::Pass,
        "utf8mb4_ferry_test_ci",
    );
    Ok(())
}

#[tokio::test]
async fn too_few_connections_fail_on_either_end() -> TestResult {
    let (source, target) = tokio::try_join!(
        MariaDb::start(MariaDbOptions::new(Role::Source).arg("--max-connections=10")),
        MariaDb::start(MariaDbOptions::new(Role::Target).arg("--max-connections=10")),
    )?;
    // MariaDB accepts no fewer than 10 connections; 16 copy connections need more.
    let mut cfg = config(&source, &target, MigrationMode::FullAndIncremental);
    cfg.concurrency = 16;
    let items = check(&cfg).await;
    assert_item(&items, "source_max_connections", CheckResult::Failure, "Ferry needs 19");
    assert_item(&items, "target_max_connections", CheckResult::Failure, "Ferry needs 17");
    cfg.concurrency = 1;
    cfg.mode = MigrationMode::Full;
    let items = check(&cfg).await;
    assert_item(&items, "source_max_connections", CheckResult::Pass, "Ferry needs 2");
    Ok(())
}

/// A TiDB target: its grants, variables and collations are read the same way; collations the
/// copy rewrites for TiDB (latin1_swedish_ci -> latin1_bin) warn instead of failing.
#[tokio::test]
async fn a_tidb_target_passes_with_collation_rewrites_as_warnings() -> TestResult {
    let (source, placeholder, tidb) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), ferry_harness::TiDb::start())?;
    source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, \
             name VARCHAR(20)) CHARACTER SET latin1 COLLATE latin1_swedish_ci",
        )
        .await?;
    let mut cfg = config(&source, &placeholder, MigrationMode::FullAndIncremental);
    cfg.target.port = tidb.port();
    let items = check(&cfg).await;
    assert!(failures(&items).is_empty(), "{}", show(&items));
    assert_item(&items, "target_version", CheckResult::Pass, "TiDB");
    assert_item(&items, "target_privileges", CheckResult::Pass, "CREATE VIEW");
    assert_item(
        &items,
        "charsets_collations",
        CheckResult::Warning,
        "latin1_swedish_ci -> latin1_bin",
    );
    Ok(())
}

/// Triggers, procedures, functions and events are not migrated: each is named, with what to do
/// on a MariaDB target and on TiDB (which supports none of them).
#[tokio::test]
async fn triggers_routines_and_events_are_named_as_not_migrated() -> TestResult {
    let (source, target, tidb) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), ferry_harness::TiDb::start())?;
    let mut cfg = config(&source, &target, MigrationMode::FullAndIncremental);
    cfg.selection = databases(&["app"]);
    assert_item(&check(&cfg).await, "triggers_routines_events", CheckResult::Pass, "none");
    source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, n INT); \
             CREATE TRIGGER app.t_bi BEFORE INSERT ON app.t FOR EACH ROW SET NEW.n = 1; \
             CREATE PROCEDURE app.p() SELECT 1; \
             CREATE FUNCTION app.f() RETURNS INT DETERMINISTIC RETURN 1; \
             CREATE EVENT app.e ON SCHEDULE EVERY 1 DAY DO DELETE FROM app.t; \
             CREATE DATABASE other; CREATE PROCEDURE other.q() SELECT 2",
        )
        .await?;
    let items = check(&cfg).await;
    let expected = "not migrated: trigger app.t_bi (on app.t), function app.f, procedure app.p, \
                    event app.e";
    assert_item(&items, "triggers_routines_events", CheckResult::Warning, expected);
    let found = item(&items, "triggers_routines_events");
    assert!(found.remedy.as_deref().unwrap_or("").contains("After cutover"), "{found:?}");
    assert!(!found.observed.as_deref().unwrap_or("").contains("other.q"), "{found:?}");

    cfg.target.port = tidb.port();
    let found = check(&cfg).await;
    let found = item(&found, "triggers_routines_events");
    assert!(found.reason.as_deref().unwrap_or("").contains("TiDB does not support"), "{found:?}");
    Ok(())
}

/// Source and target on one server fail; pre-existing target tables are compared column by
/// column with the source's (an equal table passes, a narrower one fails), also on TiDB.
#[tokio::test]
async fn target_tables_are_compared_and_one_server_is_refused() -> TestResult {
    let (source, target, tidb) =
        tokio::try_join!(MariaDb::source(), MariaDb::target(), ferry_harness::TiDb::start())?;
    let table = "CREATE DATABASE app; CREATE TABLE app.same (id BIGINT UNSIGNED PRIMARY KEY, \
                 name VARCHAR(50) CHARACTER SET utf8mb4, price DECIMAL(10,2), seen DATETIME(3), \
                 kind ENUM('a','b'), data BLOB, day DATE, note TEXT)";
    source.exec(table).await?;
    source.exec("CREATE TABLE app.narrow (id INT PRIMARY KEY, code VARCHAR(10))").await?;
    let mut cfg = config(&source, &target, MigrationMode::FullAndIncremental);
    cfg.selection = databases(&["app"]);
    for (server, port) in [("MariaDB", target.port()), ("TiDB", tidb.port())] {
        cfg.target.port = port;
        let created =
            if server == "TiDB" { tidb.exec(table).await } else { target.exec(table).await };
        created?;
        let narrow = "CREATE TABLE app.narrow (id INT PRIMARY KEY, code CHAR(4) NOT NULL)";
        if server == "TiDB" {
            tidb.exec(narrow).await?
        } else {
            target.exec(narrow).await?
        };
        let items = check(&cfg).await;
        assert_item(&items, "distinct_servers", CheckResult::Pass, "");
        let found = item(&items, "target_table_definitions");
        let observed = found.observed.as_deref().unwrap_or("");
        assert_eq!(found.result, CheckResult::Failure, "{server}: {}", show(&items));
        assert!(
            observed
                .contains("`app`.`narrow`.`code` (source varchar(10), target char(4): NULL values"),
            "{server}: {observed}"
        );
        assert!(!observed.contains("`app`.`same`"), "{server}: {observed}");
    }
    // Replicating only, the source may be ahead by DDL the binlog will replay: a Warning.
    cfg.mode = MigrationMode::Incremental;
    let items = check(&cfg).await;
    assert_item(&items, "target_table_definitions", CheckResult::Warning, "`app`.`narrow`.`code`");
    let mut same = config(&source, &source, MigrationMode::Full);
    same.selection = databases(&["app"]);
    assert_item(&check(&same).await, "distinct_servers", CheckResult::Failure, "the same server");
    Ok(())
}
