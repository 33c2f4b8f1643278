//! The full copy into a TiDB target: definitions adapted where TiDB rejects MariaDB's, values
//! exact, chunked tables, views, secondary indexes built after the rows.

use crate::support;

use ferry_e2e::{SourceKind, SqlServer, TargetKind};
use support::Setup;

#[tokio::test(flavor = "multi_thread")]
async fn copies_into_tidb() {
    let mut setup = Setup::start_with(TargetKind::TiDb).await;
    setup.source.exec(support::corpus::MARIADB_INTO_TIDB).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "400")], &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
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
async fn copies_mysql_into_tidb() {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::TiDb).await;
    setup.source.exec(support::corpus::MYSQL_INTO_TIDB).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "400")], &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
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
