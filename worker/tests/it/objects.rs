//! Views, routines, triggers and events: views copied and replicated into TiDB, the precheck's
//! account of what happens to each kind, routines created on a MariaDB target on request, and
//! triggers never created where they would fire a second time on Ferry's writes.

use crate::support;

use std::time::Duration;

use ferry_harness::{SqlServer, TargetKind};
use support::{Setup, interrupt};

/// The names `sql` lists on each server, sorted.
async fn names(setup: &Setup, sql: &str) -> (Vec<String>, Vec<String>) {
    let list = |rows: Vec<Option<String>>| {
        let mut names: Vec<String> = rows.into_iter().flatten().collect();
        names.sort();
        names
    };
    let source = setup.source.query_strings(sql).await.expect("source query");
    let target = setup.target.query_strings(sql).await.expect("target query");
    (list(source), list(target))
}

/// The views of `app` are the same on both sides, and each returns the same rows.
async fn assert_same_views(setup: &Setup, expected: &[&str]) {
    let (source, target) =
        names(setup, "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'app'")
            .await;
    assert_eq!(source, expected, "the source's views");
    assert_eq!(target, expected, "the target's views\n{}", setup.last_log());
    for view in expected {
        let sql = format!("SELECT CONCAT_WS('|', id, label) FROM app.{view} ORDER BY id");
        let rows = |r: Vec<Option<String>>| r.into_iter().flatten().collect::<Vec<_>>();
        let source = rows(setup.source.query_strings(&sql).await.expect("source view"));
        let target = rows(setup.target.query_strings(&sql).await.expect("target view"));
        assert!(!source.is_empty(), "view {view} is empty on the source");
        assert_eq!(source, target, "view {view} differs\n{}", setup.last_log());
    }
}

fn precheck_item(status: &serde_json::Value, name: &str) -> serde_json::Value {
    let items = status["precheck"].as_array().cloned().unwrap_or_default();
    items.into_iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("no {name}: {status:#}"))
}

/// Views (one reading another, one whose definer does not exist on the target) are copied into
/// TiDB, and views created, altered, replaced and dropped during replication follow, with row
/// changes around them. The precheck names the source's trigger and procedure as not migrated.
#[tokio::test(flavor = "multi_thread")]
async fn views_are_copied_and_replicated_into_tidb() {
    let mut setup = Setup::start_with(TargetKind::TiDb).await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE USER 'app_owner'@'%'; \
             GRANT SELECT ON app.* TO 'app_owner'@'%'; \
             CREATE TABLE app.t (id INT PRIMARY KEY, label VARCHAR(20), n INT); \
             INSERT INTO app.t VALUES (1, 'one', 10), (2, 'two', 20), (3, 'three', 30); \
             CREATE VIEW app.big AS SELECT id, label FROM app.t WHERE n >= 20; \
             CREATE VIEW app.big_of_big AS SELECT id, UPPER(label) AS label FROM app.big; \
             CREATE DEFINER = 'app_owner'@'%' SQL SECURITY DEFINER VIEW app.owned AS \
               SELECT id, label FROM app.t; \
             CREATE TRIGGER app.t_bi BEFORE INSERT ON app.t FOR EACH ROW SET NEW.n = NEW.n + 0; \
             CREATE PROCEDURE app.p() SELECT 1",
        )
        .await
        .expect("source schema");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let incremental = |s: &serde_json::Value| s["stage"] == "Incremental";
    let status = setup.wait_status("Incremental", Duration::from_secs(120), incremental).await;
    assert_same_views(&setup, &["big", "big_of_big", "owned"]).await;

    let item = precheck_item(&status, "triggers_routines_events");
    assert_eq!(item["result"], "Warning", "{item:#}");
    let observed = item["observed"].as_str().unwrap_or_default();
    assert_eq!(observed, "not migrated: trigger app.t_bi (on app.t), procedure app.p");
    let reason = item["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("the application must not rely on them"), "{item:#}");

    setup
        .source
        .exec(
            "INSERT INTO app.t VALUES (4, 'four', 40); \
             CREATE VIEW app.fresh AS SELECT id, label FROM app.t WHERE id > 2; \
             CREATE VIEW app.gone AS SELECT id, label FROM app.t; \
             UPDATE app.t SET n = 5 WHERE id = 2; \
             ALTER VIEW app.big AS SELECT id, CONCAT(label, '!') AS label FROM app.t WHERE n > 10; \
             INSERT INTO app.t VALUES (5, 'five', 50); \
             CREATE OR REPLACE VIEW app.owned AS SELECT id, label FROM app.t WHERE id < 5; \
             DROP VIEW app.gone; \
             DELETE FROM app.t WHERE id = 1",
        )
        .await
        .expect("changes on the source");
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    assert_same_views(&setup, &["big", "big_of_big", "fresh", "owned"]).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// With `spec.objects.routines`, a MariaDB target gets the source's procedures and functions
/// from the copy and their later CREATE and DROP statements; triggers and events are never
/// created there: the rows a source trigger writes arrive once, through the binlog, and a
/// trigger created on the target would write them a second time on Ferry's own writes.
#[tokio::test(flavor = "multi_thread")]
async fn routines_are_migrated_on_request_and_triggers_never_fire_twice() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; \
             CREATE TABLE app.t (id INT PRIMARY KEY, n INT); \
             CREATE TABLE app.audit (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40)); \
             CREATE TRIGGER app.t_ai AFTER INSERT ON app.t FOR EACH ROW \
               INSERT INTO app.audit (note) VALUES (CONCAT('insert ', NEW.id)); \
             CREATE PROCEDURE app.add_row(x INT) INSERT INTO app.t VALUES (x, app.twice(x)); \
             CREATE FUNCTION app.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2; \
             CREATE EVENT app.purge ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM app.audit; \
             CALL app.add_row(1); CALL app.add_row(2)",
        )
        .await
        .expect("source schema");
    let objects = "    databases: [app]\n    routines: true";
    let manifest = setup.manifest("FullAndIncremental", objects);
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let incremental = |s: &serde_json::Value| s["stage"] == "Incremental";
    let status = setup.wait_status("Incremental", Duration::from_secs(120), incremental).await;

    let item = precheck_item(&status, "triggers_routines_events");
    assert_eq!(
        item["observed"].as_str().unwrap_or_default(),
        "not migrated: trigger app.t_ai (on app.t), event app.purge; created and replicated: \
         procedure app.add_row, function app.twice",
        "{item:#}"
    );
    let routines = "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES \
                    WHERE ROUTINE_SCHEMA = 'app'";
    let (source, target) = names(&setup, routines).await;
    assert_eq!(target, source, "routines after the copy\n{}", setup.last_log());
    let twice = setup.target.query_strings("SELECT app.twice(21)").await.expect("call on target");
    assert_eq!(twice, vec![Some("42".to_string())]);

    setup
        .source
        .exec(
            "CALL app.add_row(3); \
             CREATE FUNCTION app.thrice(x INT) RETURNS INT DETERMINISTIC RETURN x * 3; \
             INSERT INTO app.t VALUES (4, app.thrice(4)); \
             DROP PROCEDURE app.add_row; \
             CREATE TRIGGER app.t_bu BEFORE UPDATE ON app.t FOR EACH ROW SET NEW.n = NEW.n + 1000; \
             UPDATE app.t SET n = 0 WHERE id = 1; \
             INSERT INTO app.t VALUES (5, 5)",
        )
        .await
        .expect("changes on the source");
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    // Five audit rows on both sides (one per insert) and id 1 updated once: no trigger ran on
    // the target.
    setup.assert_same("app").await;
    let audit = setup.target.query_strings("SELECT COUNT(*) FROM app.audit").await.expect("audit");
    assert_eq!(audit, vec![Some("5".to_string())], "{}", setup.last_log());
    let (source, target) = names(&setup, routines).await;
    assert_eq!(source, ["FUNCTION thrice", "FUNCTION twice"]);
    assert_eq!(target, source, "routines after replication\n{}", setup.last_log());
    let programs = "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
                    WHERE TRIGGER_SCHEMA = 'app' UNION ALL \
                    SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'app'";
    let (source, target) = names(&setup, programs).await;
    assert_eq!(source, ["purge", "t_ai", "t_bu"]);
    assert!(target.is_empty(), "triggers or events on the target: {target:?}");
    let log = setup.last_log();
    assert!(log.contains("stored program statement not replicated"), "{log}");
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// The rows `view` returns on `server`, as `id|label` lines.
async fn view_rows(server: &impl SqlServer, view: &str) -> Vec<String> {
    let sql = format!("SELECT CONCAT_WS('|', id, label) FROM {view} ORDER BY id");
    server.query_strings(&sql).await.expect("read the view").into_iter().flatten().collect()
}

/// Under a database route (`app` -> `shop`), a view reading its own database's tables moves with
/// them, in the copy and in replication; a view reading `app` from another database would read
/// a schema the target does not have: the copy refuses it, and so does replication, each naming
/// the view and the table.
#[tokio::test(flavor = "multi_thread")]
async fn views_move_with_a_database_route_or_are_refused() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE DATABASE crm; \
             CREATE TABLE app.t (id INT PRIMARY KEY, label VARCHAR(20)); \
             INSERT INTO app.t VALUES (1, 'one'), (2, 'two'); \
             CREATE VIEW app.v AS SELECT id, label FROM app.t WHERE id > 1; \
             CREATE VIEW crm.reads_app AS SELECT id, label FROM app.t",
        )
        .await
        .expect("source schema");
    let spec = "  objects:\n    databases: [app, crm]\n  routes:\n  - from: {database: app}\n    \
                to: {database: shop}\n";
    let manifest = setup.write_manifest("FullAndIncremental", spec);
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "the copy accepted a view reading a routed database:\n{log}");
    assert!(log.contains("view `crm`.`reads_app` reads `app`.`t`"), "{log}");

    setup.source.exec("DROP VIEW crm.reads_app").await.expect("drop the view");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let incremental = |s: &serde_json::Value| s["stage"] == "Incremental";
    setup.wait_status("Incremental", Duration::from_secs(120), incremental).await;
    assert_eq!(view_rows(&setup.target, "shop.v").await, ["2|two"], "{}", setup.last_log());

    setup
        .source
        .exec(
            "USE app; CREATE VIEW v2 AS SELECT id, label FROM t WHERE id <> 2; \
             INSERT INTO t VALUES (3, 'three'); \
             CREATE VIEW crm.bad AS SELECT id, label FROM app.t",
        )
        .await
        .expect("changes on the source");
    let exit = support::wait_exit(&mut ferry, Duration::from_secs(60));
    let log = setup.last_log();
    assert!(!exit.success(), "replication accepted a view reading a routed database:\n{log}");
    assert!(log.contains("view `crm`.`bad` reads `app`.`t`"), "{log}");
    assert_eq!(view_rows(&setup.target, "shop.v2").await, ["1|one", "3|three"], "{log}");
    assert_eq!(view_rows(&setup.target, "shop.v").await, ["2|two", "3|three"], "{log}");
}
