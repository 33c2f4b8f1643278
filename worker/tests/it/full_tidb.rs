//! The full copy into a TiDB target: definitions adapted where TiDB rejects MariaDB's, values
//! exact, chunked tables, views, secondary indexes built after the rows.

use crate::support;

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use support::{CopyPath, Setup};

#[tokio::test(flavor = "multi_thread")]
async fn copies_into_tidb_by_load_data() {
    copies_into_tidb(CopyPath::Load).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_into_tidb_by_statements() {
    copies_into_tidb(CopyPath::Statements).await;
}

async fn copies_into_tidb(path: CopyPath) {
    let mut setup = Setup::start_with(TargetKind::TiDb).await;
    setup.source.exec(support::corpus::MARIADB_INTO_TIDB).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let envs = [("FERRY_CHUNK_ROWS", "400"), path.env()];
    let (ok, log) = setup.run(&manifest, &envs, &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    path.assert_followed(&log);
    assert!(log.contains("definition adapted for the target"), "{log}");
    for table in ["ints", "times", "texts", "composite"] {
        let count = format!("SELECT COUNT(*) FROM shop.{table}");
        assert_eq!(
            setup.target.query_strings(&count).await.expect("target"),
            setup.source.query_strings(&count).await.expect("source"),
            "{table}"
        );
    }
    setup.assert_same("shop").await;
    setup.assert_same_indexes("shop").await;
    assert_eq!(setup.status()["phase"], "Completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_mysql_into_tidb_by_load_data() {
    copies_mysql_into_tidb(CopyPath::Load).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_mysql_into_tidb_by_statements() {
    copies_mysql_into_tidb(CopyPath::Statements).await;
}

async fn copies_mysql_into_tidb(path: CopyPath) {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::TiDb).await;
    setup.source.exec(support::corpus::MYSQL_INTO_TIDB).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let envs = [("FERRY_CHUNK_ROWS", "400"), path.env()];
    let (ok, log) = setup.run(&manifest, &envs, &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    path.assert_followed(&log);
    setup.assert_same("shop").await;
    setup.assert_same_indexes("shop").await;
    let collation = "SELECT TABLE_COLLATION FROM information_schema.TABLES \
        WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'docs'";
    assert_eq!(
        setup.target.query_strings(collation).await.expect("target"),
        [Some("utf8mb4_0900_ai_ci".to_string())]
    );
    assert_eq!(setup.status()["phase"], "Completed");
}
