//! The parallel apply into a TiDB target: the same conflicting concurrent load as
//! `incremental_parallel`, with cascading foreign keys, a keyless table and DDL.

use crate::support;

use std::time::Duration;

use ferry_harness::{SqlServer, TargetKind};
use support::{interrupt, load};

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_replicate_into_tidb() {
    let (setup, mut ferry) =
        load::replicate_concurrently(TargetKind::TiDb, Duration::from_secs(180)).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// Every type the decoder handles, copied into TiDB by the full copy (which creates the tables)
/// and then changed on the source: replication must apply each value exactly.
#[tokio::test(flavor = "multi_thread")]
async fn every_type_replicates_into_tidb() {
    let mut setup = support::Setup::start_with(TargetKind::TiDb).await;
    setup
        .source
        .exec(
            "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
             CREATE TABLE app.items (
               id INT PRIMARY KEY, name VARCHAR(50), qty BIGINT UNSIGNED, y YEAR,
               ts TIMESTAMP(3) NULL, price DECIMAL(30,10), doc JSON, t TIME(6), d DATE,
               dt DATETIME(6), f DOUBLE, fl FLOAT, e ENUM('a','b','c'), s SET('x','y','z'),
               b BIT(10), l VARCHAR(20) CHARACTER SET latin1, u VARCHAR(20) CHARACTER SET utf8mb3,
               blb BLOB);
             INSERT INTO app.items (id, name) VALUES (100, 'copied')",
        )
        .await
        .expect("source schema");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let incremental = |s: &serde_json::Value| s["stage"] == "Incremental";
    setup.wait_status("the Incremental stage", Duration::from_secs(90), incremental).await;

    setup
        .source
        .exec(
            "SET time_zone = '+00:00';
             INSERT INTO app.items VALUES
              (1, 'one', 18446744073709551615, 2155, '1970-01-01 00:00:01.500',
               -12345678901234567890.0123456789, '{\"k\": [1, 2.5, \"ü\"], \"a\": null}',
               '-838:59:59.000000', '2024-02-29', '2024-02-29 23:59:59.999999', 1.5e300,
               3.1415927, 'b', 'x,z', b'1010101010', 'caf\\xe9', 'ü', x'00ff10'),
              (2, NULL, 0, 1901, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL,
               NULL, NULL, NULL),
              (3, 'three', 3, 0, '2038-01-19 03:14:07.999', 0.01, '[]', '00:00:00.000001',
               '1000-01-01', '1000-01-01 00:00:00', -0.0, 16777217, 'c', 'y', b'0', '', '', '');
             UPDATE app.items SET l = 'na\\xefve', fl = 0.1, doc = '{\"b\": 1}' WHERE id = 1;
             UPDATE app.items SET id = 10, name = 'moved', t = '-00:00:01.5' WHERE id = 3;
             DELETE FROM app.items WHERE id = 2;
             UPDATE app.items SET name = 'changed after the copy' WHERE id = 100;",
        )
        .await
        .expect("changes on the source");
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}
