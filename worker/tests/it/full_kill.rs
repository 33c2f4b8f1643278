//! `ferry migrate` killed with SIGKILL at several points of a copy, then run again, ends with the
//! target equal to the source: chunks are committed with their checkpoint, so none is lost or
//! doubled (a table without a key shows doubling), and the secondary indexes built after the
//! rows all exist. Ctrl-C stops cleanly and resumes too.

use crate::support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ferry_harness::SqlServer;
use support::{CopyPath, Setup};

const CHUNK_ROWS: &str = "1500";

async fn load(setup: &Setup) {
    setup
        .source
        .exec(
            "CREATE DATABASE app; USE app;
             CREATE TABLE a (id INT PRIMARY KEY, pad VARCHAR(200), KEY pad_prefix (pad(16)));
             INSERT INTO a SELECT seq, REPEAT(MD5(seq), 6) FROM seq_1_to_40000;
             CREATE TABLE b (k VARCHAR(32), n INT, pad VARCHAR(200), PRIMARY KEY (k, n),
               KEY n_first (n), UNIQUE KEY n_k (n, k));
             INSERT INTO b SELECT MD5(seq % 100), seq, REPEAT('x', seq % 200) FROM seq_1_to_30000;
             CREATE TABLE c (id BIGINT PRIMARY KEY, v TEXT, KEY v_prefix (v(8)), KEY `odd``name` (id, v(2)));
             INSERT INTO c SELECT seq * 3, REPEAT(CHAR(65 + seq % 26), 150) FROM seq_1_to_30000;
             CREATE TABLE nokey (a INT, b VARCHAR(100), KEY a_b (a, b));
             INSERT INTO nokey SELECT seq % 10, REPEAT('n', 90) FROM seq_1_to_20000;
             ANALYZE TABLE a, b, c, nokey;",
        )
        .await
        .expect("load the source");
}

/// Waits until at least `chunks` chunks are done (or the process ended), then SIGKILLs it.
async fn kill_after(setup: &Setup, child: &mut Child, chunks: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = setup.done_chunks().await;
        if done >= chunks || Instant::now() > deadline {
            child.kill().expect("SIGKILL ferry");
            child.wait().expect("reap ferry");
            return done;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ferry ended before the kill point ({status}):\n{}", setup.last_log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_copies_resume_to_an_equal_target_by_load_data() {
    killed_copies_resume_to_an_equal_target(CopyPath::Load).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_copies_resume_to_an_equal_target_by_statements() {
    killed_copies_resume_to_an_equal_target(CopyPath::Statements).await;
}

async fn killed_copies_resume_to_an_equal_target(path: CopyPath) {
    let mut setup = Setup::start().await;
    load(&setup).await;
    let manifest = setup.manifest("Full", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", CHUNK_ROWS), path.env()];
    let args = ["--concurrency", "2"];

    // Killed while starting (schema, snapshot, planning), then after 5, 25 and 50 chunks.
    let mut child = setup.spawn(&manifest, &envs, &args);
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("SIGKILL ferry");
    child.wait().expect("reap ferry");
    let mut last = 0;
    for target in [5, 25, 50] {
        let mut child = setup.spawn(&manifest, &envs, &args);
        let done = kill_after(&setup, &mut child, target).await;
        assert!(done >= last, "done chunks went back from {last} to {done}");
        last = done;
    }
    assert!(last >= 50, "only {last} chunks were done before the last kill");

    let (ok, log) = setup.run(&manifest, &envs, &args);
    assert!(ok, "the final run failed:\n{log}");
    path.assert_followed(&log);
    assert!(log.contains("resuming the copy"), "the final run did not resume:\n{log}");
    setup.assert_same("app").await;
    setup.assert_same_indexes("app").await;
    assert_eq!(setup.status()["phase"], "Completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_with_the_checkpoint_saved() {
    let mut setup = Setup::start().await;
    load(&setup).await;
    let manifest = setup.manifest("Full", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", CHUNK_ROWS)];
    let args = ["--concurrency", "2"];
    let mut child = setup.spawn(&manifest, &envs, &args);
    let deadline = Instant::now() + Duration::from_secs(120);
    while setup.done_chunks().await < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let stopped_at = Instant::now();
    let status = child.wait().expect("wait for ferry");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(30),
        "Ctrl-C took {:?}",
        stopped_at.elapsed()
    );
    let log = setup.last_log();
    assert!(status.success(), "ferry failed on Ctrl-C:\n{log}");
    assert!(log.contains("stopped; run the same command to resume"), "{log}");
    let done = setup.done_chunks().await;
    assert!(done >= 10, "the checkpoint holds {done} chunks");

    let (ok, log) = setup.run(&manifest, &envs, &args);
    assert!(ok, "the resumed run failed:\n{log}");
    setup.assert_same("app").await;
}
