//! The parallel apply against real MariaDB servers: concurrent writers on the source change the
//! same keys, move keys, swap unique values, cascade through foreign keys and write a table
//! without a key while DDL runs; four workers replicate and the tables end equal.

use crate::support;

use std::time::Duration;

use ferry_harness::{SqlServer, TargetKind};
use support::{Setup, interrupt, load};

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_replicate_a_conflicting_concurrent_load() {
    let (setup, mut ferry) =
        load::replicate_concurrently(TargetKind::MariaDb, Duration::from_secs(120)).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
    let (_, _, state) = setup.checkpoint().await.expect("checkpoint");
    assert_eq!(state, "stopped");
    // A clean stop leaves every transaction below the checkpoint: no applied records remain.
    let records = setup
        .target
        .query_strings("SELECT COUNT(*) FROM ferry_meta.incremental_applied")
        .await
        .expect("applied records");
    assert_eq!(records, vec![Some("0".to_string())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_applied_in_batches_by_four_workers() {
    let mut setup = Setup::start().await;
    setup.both(load::TABLES).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    // The backlog is written first, so workers get full queues and batch them.
    let committed = load::run(&setup.source, 4, Duration::from_secs(6)).await;
    assert!(committed > 200, "the load committed only {committed} transactions");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}
