//! `ferry migrate` recovers by itself when the source drops its binlog stream or restarts:
//! it resumes from the checkpoint after a backoff and ends with the target equal to the source.

use crate::support;

use std::time::Duration;

use ferry_harness::SqlServer;
use support::{Setup, interrupt};

const TABLES: &str = "CREATE DATABASE app; \
    CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(20)); \
    CREATE TABLE app.log (msg VARCHAR(20))";

async fn write(setup: &Setup, from: u32, count: u32) {
    let mut sql = String::new();
    for id in from..from + count {
        sql.push_str(&format!(
            "INSERT INTO app.items VALUES ({id}, 'v{id}'); \
             UPDATE app.items SET v = 'u{id}' WHERE id = {prev}; \
             INSERT INTO app.log VALUES ('m{id}');",
            prev = id.saturating_sub(1),
        ));
    }
    setup.source.exec(&sql).await.expect("write to the source");
}

/// Ends the source's binlog dump threads, as a failover or a network cut would.
async fn kill_binlog_dumps(setup: &Setup) -> usize {
    let ids = setup
        .source
        .query_strings(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .expect("list the binlog dump threads");
    for id in ids.iter().flatten() {
        setup.source.exec(&format!("KILL {id}")).await.expect("kill a binlog dump thread");
    }
    ids.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_by_itself_after_the_source_drops_the_stream() {
    let mut setup = Setup::start().await;
    setup.both(TABLES).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &[]);

    write(&setup, 1, 200).await;
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    for round in 0..2 {
        assert_eq!(kill_binlog_dumps(&setup).await, 1, "round {round}: one stream to cut");
        write(&setup, 1000 + round * 1000, 200).await;
        // The retry waits 1 s, then 2 s; catching up proves the stream came back.
        setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    }
    setup.assert_same("app").await;

    let log = setup.last_log();
    assert_eq!(log.matches("retrying from the checkpoint").count(), 2, "{log}");
    let status = setup.status();
    let failed = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Failed"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["status"], "False", "{status}");
    assert_eq!(status["phase"], "Running", "{status}");
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn gives_up_after_the_retries_it_was_allowed() {
    let mut setup = Setup::start().await;
    setup.both(TABLES).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &["--retries", "0"]);
    write(&setup, 1, 50).await;
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;

    kill_binlog_dumps(&setup).await;
    let status = support::wait_exit(&mut ferry, Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", setup.last_log());
    let log = setup.last_log();
    assert!(log.contains("binlog stream"), "{log}");
    assert_eq!(setup.status()["phase"], "Failed");
}
