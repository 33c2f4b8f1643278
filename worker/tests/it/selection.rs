//! `spec.objects` patterns and exclude rules, `spec.routes` and `spec.filters` end to end
//! through `ferry migrate`: what is copied and replicated, where it lands, and which events are
//! dropped, against real servers with writes during the copy and after it.

use crate::support;

use std::time::Duration;

use ferry_harness::SqlServer;
use mysql_async::prelude::Queryable;
use support::Setup;

/// `app_1` lands whole as `shop1`; the `orders` tables of three shards merge into `shop.orders`;
/// `*_bak` tables, the unmatched `app_10` and `other` stay behind.
const ROUTED_SPEC: &str = "  objects:
    databases: [\"app_?\", \"shard_*\"]
    exclude: [{database: \"*\", table: \"*_bak\"}]
  routes:
  - from: {database: app_1}
    to: {database: shop1}
  - from: {database: \"shard_*\", table: orders}
    to: {database: shop, table: orders}
";

const SHARDS: [u32; 3] = [1, 2, 3];

fn routed_schema() -> String {
    let mut sql = String::from(
        "CREATE DATABASE app_1; \
         CREATE TABLE app_1.items (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL); \
         CREATE TABLE app_1.items_bak (id INT PRIMARY KEY); \
         CREATE DATABASE app_10; CREATE TABLE app_10.t (id INT PRIMARY KEY); \
         CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY);",
    );
    for s in SHARDS {
        sql.push_str(&format!(
            "CREATE DATABASE shard_{s}; \
             CREATE TABLE shard_{s}.orders (id INT PRIMARY KEY, shard INT NOT NULL, amount INT NOT NULL); \
             CREATE TABLE shard_{s}.orders_bak (id INT PRIMARY KEY);"
        ));
    }
    sql
}

/// Rows `from..from+count` in every routed table: inserts, an update of the previous row and a
/// delete of an older one. Shard keys are disjoint (shard * 1,000,000 + n), as merging needs.
async fn write_routed(setup: &Setup, from: u32, count: u32) {
    let mut sql = String::new();
    for n in from..from + count {
        let (prev, gone) = (n.saturating_sub(1), n.saturating_sub(5));
        sql.push_str(&format!(
            "INSERT INTO app_1.items VALUES ({n}, 'v{n}'); \
             UPDATE app_1.items SET v = CONCAT(v, '+') WHERE id = {prev}; \
             DELETE FROM app_1.items WHERE id = {gone} AND id % 3 = 0; \
             INSERT INTO app_10.t VALUES ({n}); INSERT INTO other.t VALUES ({n}); \
             INSERT INTO app_1.items_bak VALUES ({n});"
        ));
        for s in SHARDS {
            let id = s * 1_000_000 + n;
            sql.push_str(&format!(
                "INSERT INTO shard_{s}.orders VALUES ({id}, {s}, {n}); \
                 UPDATE shard_{s}.orders SET amount = amount + 1 WHERE id = {}; \
                 DELETE FROM shard_{s}.orders WHERE id = {} AND id % 4 = 0; \
                 INSERT INTO shard_{s}.orders_bak VALUES ({id});",
                id - 1,
                s * 1_000_000 + gone
            ));
        }
    }
    setup.source.exec(&sql).await.expect("write the routed tables");
}

type OrderRow = (u32, u32, u32);

async fn orders(conn: &mut mysql_async::Conn, sql: &str) -> Vec<OrderRow> {
    conn.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The source's shards together, and the merged target table.
async fn merged_orders(setup: &Setup) -> (Vec<OrderRow>, Vec<OrderRow>) {
    let union: Vec<String> =
        SHARDS.iter().map(|s| format!("SELECT id, shard, amount FROM shard_{s}.orders")).collect();
    let source_sql = format!("{} ORDER BY id", union.join(" UNION ALL "));
    let mut source = setup.source.conn().await.expect("source conn");
    let mut target = setup.target.conn().await.expect("target conn");
    let expected = orders(&mut source, &source_sql).await;
    let merged = orders(&mut target, "SELECT id, shard, amount FROM shop.orders ORDER BY id").await;
    (expected, merged)
}

/// `app_1.items` on the source and `shop1.items` on the target.
async fn routed_items(setup: &Setup) -> (Vec<(u32, String)>, Vec<(u32, String)>) {
    let mut source = setup.source.conn().await.expect("source conn");
    let mut target = setup.target.conn().await.expect("target conn");
    let a = source.query("SELECT id, v FROM app_1.items ORDER BY id").await.expect("source rows");
    let b = target.query("SELECT id, v FROM shop1.items ORDER BY id").await.expect("target rows");
    (a, b)
}

/// `ferry verify --output json` of the job, its JSON report.
async fn verify(manifest: &std::path::Path) -> serde_json::Value {
    let manifest = manifest.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["verify", "--output", "json", "-f"])
            .arg(&manifest)
            .output()
            .expect("run ferry verify")
    })
    .await
    .expect("verify");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("no JSON report ({e}): {}", String::from_utf8_lossy(&output.stderr))
    })
}

async fn target_schemas(setup: &Setup) -> Vec<String> {
    let mut target = setup.target.conn().await.expect("target conn");
    target
        .query(
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', \
             'sys', 'ferry_meta') ORDER BY 1",
        )
        .await
        .expect("target tables")
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_land_a_database_and_merge_shards_under_writes() {
    let mut setup = Setup::start().await;
    setup.source.exec(&routed_schema()).await.expect("schema");
    write_routed(&setup, 1, 400).await;
    let manifest = setup.write_manifest("FullAndIncremental", ROUTED_SPEC);
    let mut child = setup.spawn(&manifest, &[("FERRY_CHUNK_ROWS", "50")], &["--concurrency", "3"]);
    let shared: &Setup = &setup;
    shared
        .write_while_copying(&mut child, move |n| write_routed(shared, 1000 + n as u32 * 3, 3))
        .await;
    setup
        .wait_status("the Incremental stage", Duration::from_secs(90), |s| {
            s["stage"] == "Incremental"
        })
        .await;
    write_routed(&setup, 5000, 200).await;
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;

    let (expected, merged) = merged_orders(&setup).await;
    assert!(expected.len() > 1000, "only {} shard rows", expected.len());
    assert_eq!(expected, merged, "shop.orders differs from the shards:\n{}", setup.last_log());
    let (items, routed) = routed_items(&setup).await;
    assert!(items.len() > 300, "only {} app_1 rows", items.len());
    assert_eq!(items, routed, "shop1.items differs from app_1.items");
    assert_eq!(
        target_schemas(&setup).await,
        ["shop.orders", "shop1.items"],
        "only the routed tables belong on the target"
    );

    // Verify compares app_1.items with shop1.items (a row removed there is found missing) and
    // says it cannot compare the merged shards, so the job is never reported equal.
    setup.target.exec("DELETE FROM shop1.items WHERE id = 2").await.expect("damage the target");
    let report = verify(&manifest).await;
    let tables = report["tables"].as_array().expect("tables");
    let items = tables.iter().find(|t| t["database"] == "app_1").expect("app_1.items compared");
    assert_eq!(items["table"], "items", "{report:#}");
    assert_eq!(items["missing"][0]["key"], serde_json::json!(["2"]), "{report:#}");
    assert!(items["problem"].is_null(), "{report:#}");
    let shards: Vec<&serde_json::Value> =
        tables.iter().filter(|t| t["table"] == "orders").collect();
    assert_eq!(shards.len(), SHARDS.len(), "{report:#}");
    assert!(shards.iter().all(|t| t["problem"].as_str().is_some_and(|p| p.contains("merged"))));
    assert_eq!(report["equal"], false);

    // DDL on a database routed whole runs in the routed database when it names its tables
    // unqualified.
    setup
        .source
        .exec(
            "USE app_1; ALTER TABLE items ADD COLUMN extra INT NOT NULL DEFAULT 5; \
             INSERT INTO items (id, v, extra) VALUES (90001, 'after', 6)",
        )
        .await
        .expect("DDL in app_1");
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
    let mut target = setup.target.conn().await.expect("target conn");
    let extra: Vec<(u32, u32)> = target
        .query("SELECT id, extra FROM shop1.items WHERE id IN (1, 90001) ORDER BY id")
        .await
        .expect("the routed column");
    assert_eq!(extra, [(1, 5), (90001, 6)]);

    // DDL on a merged shard is refused, naming the merged table and what to do.
    setup.source.exec("ALTER TABLE shard_2.orders ADD COLUMN c INT").await.expect("shard DDL");
    let status = support::wait_exit(&mut child, Duration::from_secs(60));
    assert!(!status.success(), "ferry went on past DDL on a merged shard:\n{}", setup.last_log());
    let log = setup.last_log();
    assert!(
        log.contains("merged with other tables into `shop`.`orders`")
            && log.contains("ddlErrorPolicy"),
        "{log}"
    );
}

/// Filters drop deletes, TRUNCATE and DROP TABLE of `audit_*` and inserts into `events`; the
/// status counts what they dropped, and everything else is replicated.
const FILTER_SPEC: &str = "  objects:
    databases: [app]
  filters:
  - match: {database: app, table: \"audit_*\"}
    ignore: [Delete, Truncate, DropTable]
  - match: {database: app, table: events}
    ignore: [Insert]
";

#[tokio::test(flavor = "multi_thread")]
async fn filters_drop_the_chosen_events_and_count_them() {
    let mut setup = Setup::start().await;
    let values = |from: u32, to: u32| -> String {
        (from..=to).map(|i| format!("({i}, {i})")).collect::<Vec<_>>().join(", ")
    };
    setup
        .source
        .exec(&format!(
            "CREATE DATABASE app; \
             CREATE TABLE app.audit_log (id INT PRIMARY KEY, v INT NOT NULL); \
             CREATE TABLE app.events (id INT PRIMARY KEY, v INT NOT NULL); \
             CREATE TABLE app.items (id INT PRIMARY KEY, v INT NOT NULL); \
             INSERT INTO app.audit_log VALUES {0}; INSERT INTO app.events VALUES {0}; \
             INSERT INTO app.items VALUES {0}",
            values(1, 50)
        ))
        .await
        .expect("schema");
    let manifest = setup.write_manifest("FullAndIncremental", FILTER_SPEC);
    let mut child = setup.spawn(&manifest, &[], &[]);
    setup
        .wait_status("the Incremental stage", Duration::from_secs(90), |s| {
            s["stage"] == "Incremental"
        })
        .await;
    setup
        .source
        .exec(&format!(
            "DELETE FROM app.audit_log WHERE id <= 10; \
             INSERT INTO app.audit_log VALUES {}; \
             INSERT INTO app.events VALUES {}; \
             UPDATE app.events SET v = v + 100 WHERE id <= 3; \
             DELETE FROM app.items WHERE id <= 4; UPDATE app.items SET v = 0 WHERE id = 5; \
             TRUNCATE TABLE app.audit_log; DROP TABLE app.audit_log; \
             INSERT INTO app.items VALUES (1000, 1000)",
            values(1001, 1003),
            values(2001, 2005)
        ))
        .await
        .expect("changes on the source");
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;

    let mut target = setup.target.conn().await.expect("target conn");
    let audit: Vec<u32> =
        target.query("SELECT id FROM app.audit_log ORDER BY id").await.expect("audit_log kept");
    let expected: Vec<u32> = (1..=50).chain(1001..=1003).collect();
    assert_eq!(audit, expected, "deletes, TRUNCATE and DROP of audit_log must be dropped");
    let events: Vec<(u32, u32)> =
        target.query("SELECT id, v FROM app.events ORDER BY id").await.expect("events");
    let expected: Vec<(u32, u32)> =
        (1..=50).map(|i| (i, if i <= 3 { i + 100 } else { i })).collect();
    assert_eq!(events, expected, "inserts into events must be dropped, updates replicated");
    let mut source = setup.source.conn().await.expect("source conn");
    let items = "SELECT id, v FROM app.items ORDER BY id";
    let a: Vec<(u32, u32)> = source.query(items).await.expect("source");
    let b: Vec<(u32, u32)> = target.query(items).await.expect("target");
    assert_eq!(a, b, "unfiltered tables replicate everything");

    let status = setup
        .wait_status("the filters' counts", Duration::from_secs(10), |s| {
            s["incremental"]["skippedEvents"]["dropTable"] == 1
        })
        .await;
    let skipped = &status["incremental"]["skippedEvents"];
    assert_eq!(
        (&skipped["delete"], &skipped["insert"], &skipped["truncate"], &skipped["update"]),
        (&10.into(), &5.into(), &1.into(), &0.into()),
        "{skipped}"
    );
    assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
}

/// The precheck judges the tables the routes land in: an existing routed target table too
/// narrow for its source, and shards that cannot merge because their columns differ.
#[tokio::test]
async fn precheck_checks_the_routed_target_tables() {
    let setup = Setup::start().await;
    setup.source.exec(&routed_schema()).await.expect("schema");
    setup.source.exec("ALTER TABLE shard_3.orders ADD COLUMN note INT").await.expect("shard 3");
    setup
        .target
        .exec(
            "CREATE DATABASE shop1; \
             CREATE TABLE shop1.items (id INT PRIMARY KEY, v VARCHAR(5) NOT NULL)",
        )
        .await
        .expect("routed target table");
    let manifest = setup.write_manifest("FullAndIncremental", ROUTED_SPEC);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["precheck", "--output", "json", "-f"])
        .arg(&manifest)
        .output()
        .expect("run ferry precheck");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let items: Vec<ferry_crds::job::PrecheckItem> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let item = |name: &str| {
        items.iter().find(|i| i.name == name).unwrap_or_else(|| panic!("no {name}: {stdout}"))
    };
    use ferry_crds::job::CheckResult::Failure;
    let shards = item("merged_shards");
    assert_eq!(shards.result, Failure, "{shards:?}");
    assert!(shards.observed.as_deref().unwrap_or("").contains("`shop`.`orders`"), "{shards:?}");
    let definitions = item("target_table_definitions");
    assert_eq!(definitions.result, Failure, "{definitions:?}");
    assert!(definitions.observed.as_deref().unwrap_or("").contains("shop1"), "{definitions:?}");
    assert_eq!(output.status.code(), Some(1), "{stdout}");
}
