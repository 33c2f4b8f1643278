//! Cutover against real servers: a FullAndIncremental `ferry migrate` reports the `CaughtUp`
//! condition in its status once the lag stayed under the manifest's threshold; `ferry cutover`
//! refuses a source that is still written, refuses a target that differs, and once the write
//! load has stopped and the source is read-only, completes the running job at the source's final
//! position: `ferry migrate` exits 0 with Completed and that position in its status, and the
//! target equals the source.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_harness::SqlServer;
use serde_json::Value;
use support::{Setup, load};

/// The caught-up thresholds, short for the test.
const CUTOVER: &str = "  cutover:\n    caughtUpLag: 2s\n    caughtUpFor: 2s\n";

fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn is_true(status: &Value, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c["status"] == "True")
}

fn cutover(manifest: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["cutover", "--output", "json", "-f"])
        .arg(manifest)
        .args(args)
        .env("FERRY_LOG", "info")
        .output()
        .expect("run ferry cutover")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn caught_up_then_cutover_completes_the_running_job() {
    let mut setup = Setup::start().await;
    setup.source.exec(load::TABLES).await.expect("source tables");
    let spec = format!("  objects:\n    databases: [app]\n{CUTOVER}");
    let manifest = setup.write_manifest_for(setup.source.port(), "FullAndIncremental", &spec);
    let mut child = setup.spawn(&manifest, &[], &["--concurrency", "2"]);

    // CaughtUp turns True only after the lag stayed under 2 s for 2 s of replication.
    let caught_up =
        setup.wait_status("CaughtUp", Duration::from_secs(120), |s| is_true(s, "CaughtUp")).await;
    assert_eq!(caught_up["stage"], "Incremental", "{caught_up:#}");
    let message = condition(&caught_up, "CaughtUp").expect("condition")["message"].to_string();
    assert!(message.contains("2s"), "{message}");

    // A write load; a cutover while it runs is refused, whatever the grace time.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let conn = setup.source.conn().await.expect("source conn");
        writers.push(tokio::spawn(load::writer(conn, w, stop.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writable = cutover(&manifest, &[]);
    assert!(!writable.status.success(), "cut over a writable source:\n{}", stderr(&writable));
    assert!(stderr(&writable).contains("read_only"), "{}", stderr(&writable));
    let busy = cutover(&manifest, &["--quiet-for", "2s", "--timeout", "4s"]);
    assert!(!busy.status.success(), "cut over a source being written:\n{}", stderr(&busy));
    assert!(stderr(&busy).contains("kept moving"), "{}", stderr(&busy));
    stop.store(true, Ordering::SeqCst);
    let mut committed = 0;
    for writer in writers {
        committed += writer.await.expect("writer");
    }
    assert!(committed > 20, "the load hardly wrote: {committed}");

    // A target row that differs blocks the cutover and leaves replication running.
    setup.source.exec("SET GLOBAL read_only = ON").await.expect("read_only");
    let (file, pos) = setup.source_head().await;
    setup.wait_caught_up(&mut child, Duration::from_secs(120)).await;
    setup.target.exec("INSERT INTO app.slots VALUES (999, 999)").await.expect("damage");
    let differs = cutover(&manifest, &[]);
    assert!(!differs.status.success(), "cut over a differing target:\n{}", stderr(&differs));
    assert!(stderr(&differs).contains("app.slots: 1 extra"), "{}", stderr(&differs));
    assert!(child.try_wait().expect("poll ferry migrate").is_none(), "migrate stopped");
    setup.target.exec("DELETE FROM app.slots WHERE id = 999").await.expect("repair");

    let started = Instant::now();
    let done = cutover(&manifest, &[]);
    assert!(done.status.success(), "cutover failed:\n{}", stderr(&done));
    let report: Value = serde_json::from_slice(&done.stdout).expect("cutover JSON");
    let position = format!("{file}:{pos}");
    assert_eq!(report["position"], position.as_str(), "{report:#}");
    assert_eq!(report["verify"]["equal"], true, "{report:#}");
    assert!(stderr(&done).contains("the running ferry migrate completed"), "{}", stderr(&done));

    let exit = support::wait_exit(&mut child, Duration::from_secs(30));
    assert!(exit.success(), "ferry migrate exited with {exit}:\n{}", setup.last_log());
    assert!(setup.last_log().contains(&format!("completed at {position}")), "{}", setup.last_log());
    let status = setup.status();
    assert_eq!((&status["stage"], &status["phase"]), (&"Completed".into(), &"Completed".into()));
    assert_eq!(status["position"], position.as_str(), "{status:#}");
    assert_eq!(status["cutover"]["state"], "Completed", "{status:#}");
    assert!(is_true(&status, "Ready"), "{status:#}");
    setup.assert_same("app").await;
    setup.source.exec("SET GLOBAL read_only = OFF").await.expect("read_only off");
    eprintln!("cutover took {:?} after {committed} load transactions", started.elapsed());
}
