//! Overwriting conflicts is a one-off: `--overwrite-conflicts-at POS` (spec.overwriteConflictsAt)
//! writes the source's rows over the conflicting target rows in the source transactions up to
//! the failure position, counts them in the status, and a later conflict stops the job again.

use crate::support;

use std::process::Child;
use std::time::Duration;

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use support::{Replicating, Setup, interrupt, wait_exit};

const TABLES: &str = "CREATE DATABASE app; \
    CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(20), parent INT);";

/// Waits for the run to fail on a conflict and returns the position its error names.
fn failure_position(setup: &Setup, ferry: &mut Child) -> String {
    let exit = wait_exit(ferry, Duration::from_secs(60));
    assert_eq!(exit.code(), Some(1), "{}", setup.last_log());
    let status = setup.status();
    let message = status["lastError"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("duplicate key"), "{status:#}");
    assert_eq!(status["lastError"]["retryable"], false, "{status:#}");
    support::failure_position(message)
}

fn binlog_order(position: &str) -> (String, u64) {
    let (file, pos) = position.rsplit_once(':').expect("file:pos");
    (file.to_string(), pos.parse().expect("an offset"))
}

#[tokio::test(flavor = "multi_thread")]
async fn overwriting_replaces_the_conflicts_at_the_failure_position_only() {
    let mut job = Setup::replicating(SourceKind::MariaDb, TargetKind::MariaDb, TABLES, "").await;
    job.catch_up_with("INSERT INTO app.items VALUES (1, 'first', NULL)").await;
    let Replicating { mut setup, start, manifest, mut ferry } = job;

    // Two conflicting rows in one source transaction.
    setup
        .target
        .exec("INSERT INTO app.items VALUES (100, 't', NULL), (101, 't', NULL)")
        .await
        .unwrap();
    setup
        .source
        .exec("BEGIN; INSERT INTO app.items VALUES (100, 's', 1), (101, 's', 1); COMMIT")
        .await
        .unwrap();
    let position = failure_position(&setup, &mut ferry);

    // A plain rerun resumes and stops at the same conflict.
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    assert_eq!(failure_position(&setup, &mut ferry), position);

    // Overwriting there replaces both rows, counts them, and replication goes on.
    let overwrite = ["--overwrite-conflicts-at", position.as_str()];
    let mut ferry = setup.spawn(&manifest, &[], &overwrite);
    setup.source.exec("UPDATE app.items SET v = 'later' WHERE id = 1").await.unwrap();
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    let counted = |s: &serde_json::Value| s["incremental"]["conflictsOverwritten"] == 2;
    setup.wait_status("two rows overwritten", Duration::from_secs(30), counted).await;

    // A conflict after the position stops the same run: overwriting was for that position only.
    setup.target.exec("INSERT INTO app.items VALUES (200, 't', NULL)").await.unwrap();
    setup.source.exec("INSERT INTO app.items VALUES (200, 's', 1)").await.unwrap();
    let later = failure_position(&setup, &mut ferry);
    assert!(binlog_order(&later) > binlog_order(&position), "{later} after {position}");
    let kept = setup.target.query_strings("SELECT v FROM app.items WHERE id = 200").await.unwrap();
    assert_eq!(kept, [Some("t".to_string())], "the later conflict's row was overwritten");

    // The manifest's field does the same for the later position.
    let field = format!("  overwriteConflictsAt: \"{later}\"");
    let manifest = setup.incremental_manifest(&start, &field);
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}
