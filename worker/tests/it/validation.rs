//! Continuous validation against real servers: with `spec.validation.continuous`, a running
//! `ferry migrate` compares every row replication changes on source and target. Under a write
//! load that keeps changing the same rows it counts no mismatch (rows in flight are read again
//! until the source holds still); a row changed on the target behind Ferry's back is reported
//! with its key.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_harness::SqlServer;
use serde_json::Value;
use support::{Setup, load};

/// A delay long enough for the test to damage a row after it is applied and before it is
/// compared.
const SPEC: &str =
    "  objects:\n    databases: [app]\n  validation:\n    continuous: true\n    delay: 3s\n";

fn count(status: &Value, field: &str) -> i64 {
    status["validation"][field].as_i64().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn continuous_validation_is_quiet_under_load_and_finds_a_damaged_row() {
    let mut setup = Setup::start().await;
    setup.source.exec(load::TABLES).await.expect("source tables");
    let manifest = setup.write_manifest("FullAndIncremental", SPEC);
    let mut child = setup.spawn(&manifest, &[], &["--concurrency", "2"]);
    setup
        .wait_status("Incremental", Duration::from_secs(120), |s| s["stage"] == "Incremental")
        .await;

    // Writers that move keys, swap unique values and hit the same rows over and over.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let conn = setup.source.conn().await.expect("source conn");
        writers.push(tokio::spawn(load::writer(conn, w, stop.clone())));
    }
    let during = setup
        .wait_status("rows validated during the load", Duration::from_secs(120), |s| {
            count(s, "rowsChecked") >= 50
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    let mut committed = 0;
    for writer in writers {
        committed += writer.await.expect("writer");
    }
    assert!(committed > 100, "the load hardly wrote: {committed}");
    assert_eq!(count(&during, "mismatched"), 0, "{during:#}");
    setup.wait_caught_up(&mut child, Duration::from_secs(120)).await;
    let settled = setup
        .wait_status("every changed row compared", Duration::from_secs(120), |s| {
            count(s, "pending") == 0 && count(s, "rowsChecked") > count(&during, "rowsChecked")
        })
        .await;
    let validation = &settled["validation"];
    assert_eq!(count(&settled, "mismatched"), 0, "false mismatches: {validation:#}");
    // app.nokey has no key: its rows are counted, not compared.
    assert!(count(&settled, "skipped") > 0, "{validation:#}");
    setup.assert_same("app").await;

    // A row replication wrote, then changed on the target alone before it is compared.
    setup.source.exec("INSERT INTO app.acct VALUES (5000, 1, 'damaged')").await.expect("insert");
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
    setup.target.exec("UPDATE app.acct SET bal = 2 WHERE id = 5000").await.expect("damage");
    let found = setup
        .wait_status("the damaged row reported", Duration::from_secs(60), |s| {
            count(s, "mismatched") > 0
        })
        .await;
    let validation = &found["validation"];
    assert_eq!(count(&found, "mismatched"), 1, "{validation:#}");
    assert_eq!(validation["sampleKeys"], serde_json::json!(["`app`.`acct` different: 5000"]));
    assert!(setup.last_log().contains("different: 5000"), "{}", setup.last_log());
    let exit = support::interrupt(&mut child);
    assert!(exit.success(), "ferry migrate exited with {exit}:\n{}", setup.last_log());
}
