//! The cutover's last verify compares only the tables that changed since an earlier verify found
//! them equal: with no earlier verify every selected table is compared; after one, a table the
//! source changed since, and one that was not equal then, are compared again, and an unchanged
//! one is not.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ferry_harness::SqlServer;
use serde_json::Value;
use support::Setup;

const TABLES: &str = "
CREATE DATABASE app;
CREATE TABLE app.a (id INT PRIMARY KEY, v INT);
CREATE TABLE app.b (id INT PRIMARY KEY, v INT);
CREATE TABLE app.c (id INT PRIMARY KEY, v INT);
INSERT INTO app.a VALUES (1, 1), (2, 2);
INSERT INTO app.b VALUES (1, 1), (2, 2);
INSERT INTO app.c VALUES (1, 1), (2, 2);
";

fn cutover(manifest: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["cutover", "--output", "json", "-f"])
        .arg(manifest)
        .env("FERRY_LOG", "info")
        .output()
        .expect("run ferry cutover")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_verify_compares_only_tables_changed_since_the_previous_one() {
    let mut setup = Setup::start().await;
    setup.source.exec(TABLES).await.expect("source tables");
    let manifest = setup.write_manifest("FullAndIncremental", "  objects:\n    databases: [app]\n");
    let mut child = setup.spawn(&manifest, &[], &["--concurrency", "2"]);
    setup
        .wait_status("Incremental", Duration::from_secs(120), |s| s["stage"] == "Incremental")
        .await;

    // No verify yet: every table is compared, and app.c, damaged, stops the cutover.
    setup.source.exec("SET GLOBAL read_only = ON").await.expect("read_only");
    setup.wait_caught_up(&mut child, Duration::from_secs(120)).await;
    setup.target.exec("INSERT INTO app.c VALUES (99, 99)").await.expect("damage");
    let first = cutover(&manifest);
    assert!(!first.status.success(), "cut over a differing target:\n{}", stderr(&first));
    assert!(stderr(&first).contains("every selected table"), "{}", stderr(&first));
    assert!(stderr(&first).contains("app.c: 1 extra"), "{}", stderr(&first));
    setup.target.exec("DELETE FROM app.c WHERE id = 99").await.expect("repair");

    // app.a and app.b were found equal then; the source changes app.b since.
    setup.source.exec("SET GLOBAL read_only = OFF").await.expect("read_only off");
    setup.source.exec("UPDATE app.b SET v = 20 WHERE id = 2").await.expect("change b");
    setup.source.exec("SET GLOBAL read_only = ON").await.expect("read_only");
    setup.wait_caught_up(&mut child, Duration::from_secs(120)).await;
    let done = cutover(&manifest);
    assert!(done.status.success(), "cutover failed:\n{}", stderr(&done));
    let report: Value = serde_json::from_slice(&done.stdout).expect("cutover JSON");
    let compared: Vec<&str> = report["verify"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["table"].as_str().expect("name"))
        .collect();
    assert_eq!(compared, ["b", "c"], "{report:#}");
    assert_eq!(report["verify"]["equal"], true, "{report:#}");
    let notes = report["verify"]["notes"].to_string();
    assert!(notes.contains("1 of 3 selected tables not compared again"), "{notes}");

    let exit = support::wait_exit(&mut child, Duration::from_secs(30));
    assert!(exit.success(), "ferry migrate exited with {exit}:\n{}", setup.last_log());
    setup.assert_same("app").await;
    setup.source.exec("SET GLOBAL read_only = OFF").await.expect("read_only off");
}
