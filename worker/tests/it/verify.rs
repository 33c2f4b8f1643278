//! `ferry verify` against real servers: it finds a changed value, a missing row, an extra row and
//! a doubled row of a keyless table, names their keys, and writes fix SQL that makes the target
//! equal; it finds nothing on equal data of every column type (MariaDB into MariaDB and into
//! TiDB, MySQL into MariaDB and into TiDB); and, against a job replicating under a running write load, it reports no row in flight
//! while still finding a real difference.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use serde_json::Value;
use support::Setup;

const APP: &str = "CREATE DATABASE app; USE app; \
    CREATE TABLE items (id INT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(40), price DOUBLE); \
    CREATE TABLE pairs (a VARCHAR(20) NOT NULL, b INT NOT NULL, v TEXT, PRIMARY KEY (a, b)); \
    CREATE TABLE log (msg VARCHAR(40), n INT); \
    INSERT INTO items SELECT seq, seq % 17, CONCAT('n', seq), seq / 3 FROM seq_1_to_5000; \
    INSERT INTO pairs SELECT CONCAT('k', seq % 11), seq, REPEAT('v', seq % 7) FROM seq_1_to_2000; \
    INSERT INTO log SELECT CONCAT('m', seq % 50), seq % 3 FROM seq_1_to_600";

/// The outcome of one `ferry verify`: whether it exited 0, its JSON report, its log.
struct Verified {
    equal: bool,
    report: Value,
    log: String,
}

impl Verified {
    fn table(&self, name: &str) -> &Value {
        self.report["tables"]
            .as_array()
            .and_then(|tables| tables.iter().find(|t| t["table"] == name))
            .unwrap_or_else(|| panic!("no table {name} in {:#}", self.report))
    }

    /// The keys (values joined by `,`) of one kind of difference in a table, with counts.
    fn keys(&self, table: &str, kind: &str) -> Vec<(String, u64)> {
        let rows = self.table(table)[kind].as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|r| {
                let key: Vec<&str> =
                    r["key"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                (key.join(","), r["count"].as_u64().unwrap_or(0))
            })
            .collect()
    }
}

fn verify(manifest: &Path, fix_sql: Option<&Path>, envs: &[(&str, &str)]) -> Verified {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command.args(["verify", "--output", "json", "-f"]).arg(manifest).envs(envs.iter().copied());
    if let Some(path) = fix_sql {
        command.arg("--fix-sql").arg(path);
    }
    let output = command.output().expect("run ferry verify");
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {:?}\n{log}", output.stdout));
    let verified = Verified { equal: output.status.success(), report, log };
    assert_eq!(
        verified.equal,
        verified.report["equal"] == true,
        "the exit code and the report disagree: {:#}",
        verified.report
    );
    verified
}

/// Copies `database` with `ferry migrate` (Full), small chunks so verify compares several.
fn copy(setup: &mut Setup, database: &str) -> PathBuf {
    let manifest = setup.manifest("Full", &format!("    databases: [{database}]"));
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "400")], &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    manifest
}

const CHUNKS: [(&str, &str); 1] = [("FERRY_CHUNK_ROWS", "400")];

async fn finds_each_difference_and_fixes_it(kind: TargetKind) {
    let mut setup = Setup::start_with(kind).await;
    setup.source.exec(APP).await.expect("source");
    let manifest = copy(&mut setup, "app");
    let clean = verify(&manifest, None, &CHUNKS);
    assert!(clean.equal, "a fresh copy differs: {:#}\n{}", clean.report, clean.log);
    assert_eq!(clean.table("items")["rowsCompared"], 5000, "{:#}", clean.report);
    assert!(clean.table("items")["chunks"].as_u64() > Some(5), "{:#}", clean.report);
    assert_eq!(clean.table("log")["rowsCompared"], 600, "{:#}", clean.report);

    setup
        .target
        .exec(
            "UPDATE app.items SET price = price + 0.000001 WHERE id = 1234; \
             UPDATE app.pairs SET v = 'changed' WHERE a = 'k3' AND b = 146; \
             DELETE FROM app.items WHERE id = 4001; \
             INSERT INTO app.items VALUES (9999, 1, 'extra', NULL); \
             INSERT INTO app.log VALUES ('m7', 1); \
             DELETE FROM app.log WHERE msg = 'm8' AND n = 2 LIMIT 1",
        )
        .await
        .expect("damage the target");
    let fix = setup.dir.path().join("fix.sql");
    let found = verify(&manifest, Some(&fix), &CHUNKS);
    assert!(!found.equal, "the differences were not found: {:#}", found.report);
    assert_eq!(found.keys("items", "different"), [("1234".to_string(), 1)], "{:#}", found.report);
    assert_eq!(found.keys("items", "missing"), [("4001".to_string(), 1)], "{:#}", found.report);
    assert_eq!(found.keys("items", "extra"), [("9999".to_string(), 1)], "{:#}", found.report);
    assert_eq!(found.keys("pairs", "different"), [("'k3',146".to_string(), 1)]);
    // 'm7' has 12 rows with n = 1 on the source (seq % 50 = 7, seq % 3 = 1): one more is extra.
    assert_eq!(found.keys("log", "extra"), [("'m7',1".to_string(), 1)], "{:#}", found.report);
    assert_eq!(found.keys("log", "missing"), [("'m8',2".to_string(), 1)], "{:#}", found.report);
    assert_eq!(found.table("log")["keyColumns"], serde_json::json!(["msg", "n"]));

    let script = std::fs::read_to_string(&fix).expect("the fix SQL");
    assert!(script.contains("REPLACE INTO `app`.`items`"), "{script}");
    setup.target.exec(&script).await.unwrap_or_else(|e| panic!("apply {script}: {e}"));
    setup.assert_same("app").await;
    let fixed = verify(&manifest, None, &CHUNKS);
    assert!(fixed.equal, "the fix SQL left differences: {:#}\n{script}", fixed.report);
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_each_difference_and_fixes_it_in_mariadb() {
    finds_each_difference_and_fixes_it(TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_each_difference_and_fixes_it_in_tidb() {
    finds_each_difference_and_fixes_it(TargetKind::TiDb).await;
}

/// Every column type of the copy's corpus compares equal after the copy, and a change in one
/// value of each hard kind (float, JSON, temporal with fraction, binary) is found.
async fn every_type_compares_equal(
    source: SourceKind,
    target: TargetKind,
    corpus: &str,
    database: &str,
) {
    let mut setup = Setup::start_with_source(source, target).await;
    setup.source.exec(corpus).await.expect("load the source");
    let manifest = copy(&mut setup, database);
    let clean = verify(&manifest, None, &CHUNKS);
    assert!(clean.equal, "equal data differs: {:#}\n{}", clean.report, clean.log);
    let compared: u64 = clean.report["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t["rowsCompared"].as_u64().unwrap_or(0))
        .sum();
    assert!(compared > 1000, "{:#}", clean.report);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_compares_equal_in_mariadb() {
    let corpus = support::corpus::MARIADB_TYPES;
    every_type_compares_equal(SourceKind::MariaDb, TargetKind::MariaDb, corpus, "types").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_compares_equal_in_tidb() {
    let corpus = support::corpus::MARIADB_INTO_TIDB;
    every_type_compares_equal(SourceKind::MariaDb, TargetKind::TiDb, corpus, "shop").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_types_compare_equal_in_mariadb() {
    let corpus = support::corpus::MYSQL_TYPES;
    every_type_compares_equal(SourceKind::MySql, TargetKind::MariaDb, corpus, "types").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_types_compare_equal_in_tidb() {
    let corpus = support::corpus::MYSQL_INTO_TIDB;
    every_type_compares_equal(SourceKind::MySql, TargetKind::TiDb, corpus, "shop").await;
}

/// A change in a FLOAT, a JSON document (same keys, other value), a fractional second and a
/// byte of a blob is found in TiDB, where each renders differently from MariaDB.
#[tokio::test(flavor = "multi_thread")]
async fn hard_kinds_differ_when_they_differ_in_tidb() {
    let mut setup = Setup::start_with(TargetKind::TiDb).await;
    setup.source.exec(support::corpus::MARIADB_INTO_TIDB).await.expect("load the source");
    let manifest = copy(&mut setup, "shop");
    setup
        .target
        .exec(
            "UPDATE shop.more SET f = 3.1415925 WHERE id = 1; \
             UPDATE shop.more SET j = '{\"b\": [1, 2.5], \"a\": 0}' WHERE id = 1; \
             UPDATE shop.times SET dt6 = '9999-12-31 23:59:59.999998' WHERE id = 1; \
             UPDATE shop.texts SET bl = X'00FF28' WHERE id = 1",
        )
        .await
        .expect("damage the target");
    let found = verify(&manifest, None, &CHUNKS);
    for table in ["more", "times", "texts"] {
        assert_eq!(
            found.keys(table, "different"),
            [("1".to_string(), 1)],
            "{table}: {:#}",
            found.report
        );
    }
    setup
        .target
        .exec(
            "UPDATE shop.more SET f = 3.1415927, j = '{\"b\": [1, 2.5], \"a\": null}' WHERE id = 1",
        )
        .await
        .expect("restore");
    let found = verify(&manifest, None, &CHUNKS);
    assert_eq!(found.keys("more", "different"), [], "{:#}", found.report);
}

/// Writes to `app` until `stop`, as an application does: inserts, and updates and deletes of
/// rows here and there (each row is written at most every few hundred batches); returns how
/// many batches committed.
async fn write_load(setup: &Setup, stop: Arc<AtomicBool>, batches: Arc<AtomicU64>) {
    let mut n: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let id = 10_000 + n;
        let sql = format!(
            "INSERT INTO app.items VALUES ({id}, 1, 'live', 0.5); \
             UPDATE app.items SET qty = qty + 1, price = price * 1.5 WHERE id = {touched}; \
             DELETE FROM app.items WHERE id = {gone}; \
             UPDATE app.pairs SET v = CONCAT(v, 'x') WHERE a = 'k{k}' AND b = {b}; \
             INSERT INTO app.log VALUES ('live', {n})",
            touched = n * 7 % 3999 + 1,
            gone = 4001 + n % 900,
            k = (n * 13 % 2000 + 1) % 11,
            b = n * 13 % 2000 + 1,
        );
        setup.source.exec(&sql).await.expect("write to the source");
        n += 1;
        batches.store(n, Ordering::SeqCst);
    }
}

/// Against a FullAndIncremental job replicating while the source is written to, verify reports
/// no difference for the rows in flight, and still finds a real one made on the target.
#[tokio::test(flavor = "multi_thread")]
async fn live_replication_under_write_load() {
    let mut setup = Setup::start().await;
    setup.source.exec(APP).await.expect("source");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut child = setup.spawn(&manifest, &[], &["--concurrency", "2"]);
    setup.wait_caught_up(&mut child, Duration::from_secs(120)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let setup = Arc::new(setup);
    let load = tokio::spawn({
        let (setup, stop, batches) = (setup.clone(), stop.clone(), batches.clone());
        async move { write_load(&setup, stop, batches).await }
    });
    while batches.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let manifest_path = manifest.clone();
    let during = tokio::task::spawn_blocking(move || verify(&manifest_path, None, &CHUNKS))
        .await
        .expect("verify");
    let written_during = batches.load(Ordering::SeqCst);
    assert!(
        during.equal,
        "rows in flight reported as different: {:#}\n{}",
        during.report, during.log
    );
    assert!(during.report["notes"].to_string().contains("replicating"), "{:#}", during.report);

    // A real difference, in a row the load does not write, is found while the load runs.
    setup.target.exec("UPDATE app.items SET note = 'wrong' WHERE id = 4000").await.expect("damage");
    let manifest_path = manifest.clone();
    let damaged = tokio::task::spawn_blocking(move || verify(&manifest_path, None, &CHUNKS))
        .await
        .expect("verify");
    stop.store(true, Ordering::SeqCst);
    load.await.expect("the write load");
    assert!(batches.load(Ordering::SeqCst) > written_during, "the load stopped during the verify");
    assert!(!damaged.equal, "a real difference was missed: {:#}", damaged.report);
    assert_eq!(
        damaged.keys("items", "different"),
        [("4000".to_string(), 1)],
        "{:#}",
        damaged.report
    );
    assert_eq!(damaged.keys("items", "missing"), []);
    assert_eq!(damaged.keys("items", "extra"), []);
    assert_eq!(damaged.keys("log", "extra"), []);
    assert_eq!(damaged.keys("log", "missing"), []);
    support::interrupt(&mut child);
}
