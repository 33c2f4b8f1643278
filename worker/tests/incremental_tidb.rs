//! The parallel apply into a TiDB target: the same conflicting concurrent load as
//! `incremental_parallel`, with cascading foreign keys, a keyless table and DDL.

mod support;

use std::time::Duration;

use ferry_e2e::TargetKind;
use support::{interrupt, load};

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_replicate_into_tidb() {
    let (setup, mut ferry) =
        load::replicate_concurrently(TargetKind::TiDb, Duration::from_secs(180)).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}
