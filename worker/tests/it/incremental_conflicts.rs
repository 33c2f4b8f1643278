//! Conflicts, overwriting them, safe mode after an abrupt stop, and a purged binlog, each with
//! a MariaDB and a MySQL source.

use crate::support;

use ferry_harness::{SourceKind, SqlServer, TargetKind};

use std::time::Duration;

use mysql_async::prelude::Queryable;
use support::{Replicating, Setup, interrupt, wait_exit};

/// The collation is spelled out: MySQL's default (utf8mb4_0900_ai_ci) is not MariaDB's.
const TABLES: &str = "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; \
    CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(20), parent INT);";

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_key_fails_the_job_and_overwriting_replaces_the_row() {
    duplicate_key_then_overwrite(SourceKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_key_from_mysql_fails_the_job_and_overwriting_replaces_the_row() {
    duplicate_key_then_overwrite(SourceKind::MySql).await;
}

async fn duplicate_key_then_overwrite(source: SourceKind) {
    let mut job = Setup::replicating(source, TargetKind::MariaDb, TABLES, "").await;
    job.catch_up_with("INSERT INTO app.items VALUES (1, 'first', NULL)").await;
    let Replicating { mut setup, start, mut ferry, .. } = job;

    setup.target.exec("INSERT INTO app.items VALUES (100, 'target', NULL)").await.unwrap();
    setup.source.exec("INSERT INTO app.items VALUES (100, 'source', 1)").await.unwrap();
    let exit = wait_exit(&mut ferry, Duration::from_secs(60));
    assert_eq!(exit.code(), Some(1), "{}", setup.last_log());
    let status = setup.status();
    let message = status["lastError"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("duplicate key"), "{status:#}");
    assert!(message.contains("`app`.`items`"), "{status:#}");
    assert!(message.contains("'100'"), "the key is named: {status:#}");
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["lastError"]["retryable"], false);

    // Overwriting at the failure position resumes and replaces the conflicting target row.
    let position = support::failure_position(&message);
    let extra = format!("  overwriteConflictsAt: \"{position}\"");
    let manifest = setup.incremental_manifest(&start, &extra);
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.source.exec("UPDATE app.items SET v = 'later' WHERE id = 1").await.unwrap();
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_mode_after_an_abrupt_stop_replaces_rows_and_shows_in_status() {
    safe_mode_after_an_abrupt_stop(SourceKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_mode_after_an_abrupt_stop_of_a_mysql_job_replaces_rows_and_shows_in_status() {
    safe_mode_after_an_abrupt_stop(SourceKind::MySql).await;
}

async fn safe_mode_after_an_abrupt_stop(source: SourceKind) {
    let safe_mode = "  safeModeDuration: 10m";
    let mut job = Setup::replicating(source, TargetKind::MariaDb, TABLES, safe_mode).await;
    job.catch_up_with("INSERT INTO app.items VALUES (1, 'a', NULL), (2, 'b', NULL)").await;
    let Replicating { mut setup, manifest, mut ferry, .. } = job;
    ferry.kill().expect("SIGKILL");
    wait_exit(&mut ferry, Duration::from_secs(10));

    // Rows the target already has (as after a replay of changes applied before a crash).
    setup.target.exec("INSERT INTO app.items VALUES (3, 'stale', NULL)").await.unwrap();
    setup
        .source
        .exec(
            "INSERT INTO app.items VALUES (3, 'fresh', 2); \
             UPDATE app.items SET id = 4, v = 'moved' WHERE id = 1; \
             UPDATE app.items SET v = 'b2' WHERE id = 2",
        )
        .await
        .unwrap();
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    let has_until = |s: &serde_json::Value| s["incremental"]["safeModeUntil"].is_string();
    let status = setup.wait_status("safeModeUntil", Duration::from_secs(30), has_until).await;
    let until = status["incremental"]["safeModeUntil"].as_str().unwrap_or_default();
    let until = chrono::DateTime::parse_from_rfc3339(until).expect("RFC 3339");
    let left = until.signed_duration_since(chrono::Utc::now()).num_seconds();
    assert!((500..=600).contains(&left), "safe mode for about 10 minutes, {left} s left");
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purged_binlog_asks_for_a_new_full_migration() {
    purged_binlog(SourceKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purged_mysql_binlog_asks_for_a_new_full_migration() {
    purged_binlog(SourceKind::MySql).await;
}

async fn purged_binlog(source: SourceKind) {
    let mut job = Setup::replicating(source, TargetKind::MariaDb, TABLES, "").await;
    job.catch_up_with("INSERT INTO app.items VALUES (1, 'a', NULL)").await;
    let Replicating { mut setup, start, manifest, mut ferry } = job;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());

    setup
        .source
        .exec(
            "INSERT INTO app.items VALUES (2, 'lost', NULL); FLUSH BINARY LOGS; \
             INSERT INTO app.items VALUES (3, 'lost', NULL); FLUSH BINARY LOGS",
        )
        .await
        .unwrap();
    let (current, _) = setup.source_head().await;
    // The source keeps a file a dump thread still reads; the stopped job's thread ends at its
    // next heartbeat.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        setup.source.exec(&format!("PURGE BINARY LOGS TO '{current}'")).await.unwrap();
        let mut conn = setup.source.conn().await.unwrap();
        // MySQL adds a third column (Encrypted): only the names are read.
        let name = |row: mysql_async::Row| row.get::<String, _>(0).unwrap_or_default();
        let files: Vec<String> = conn.query_map("SHOW BINARY LOGS", name).await.unwrap();
        if !files.contains(&start.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{} was not purged: {files:?}", start.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let exit = wait_exit(&mut ferry, Duration::from_secs(60));
    assert_eq!(exit.code(), Some(1), "{}", setup.last_log());
    let message = setup.status()["lastError"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("purged"), "{message}");
    assert!(message.contains("new full migration"), "{message}");
}
