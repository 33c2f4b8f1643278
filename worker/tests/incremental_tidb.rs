//! The parallel apply into a TiDB target: the same conflicting concurrent load as
//! `incremental_parallel`, with cascading foreign keys, a keyless table and DDL.

mod support;

use std::time::Duration;

use ferry_e2e::TargetKind;
use support::{Setup, interrupt, load};

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_replicate_into_tidb() {
    let mut setup = Setup::start_with(TargetKind::TiDb).await;
    setup.both(load::TABLES).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);

    let committed = load::run(&setup.source, 4, Duration::from_secs(8)).await;
    assert!(committed > 200, "the load committed only {committed} transactions");

    setup.wait_caught_up(&mut ferry, Duration::from_secs(180)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}
