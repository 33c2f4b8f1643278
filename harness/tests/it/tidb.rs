//! TiDB as a target next to MariaDB: it starts from the cached `tidb-server`, answers SQL, and
//! a test can run once per target kind. These tests fail (not skip) when the binary is missing:
//! run `dev/build-go-tools.sh`.

use std::time::Instant;

use ferry_harness::{SqlServer, TargetKind, TiDb, start_target};

#[tokio::test]
async fn tidb_answers_sql() -> anyhow::Result<()> {
    let started = Instant::now();
    let tidb = TiDb::start().await?;
    eprintln!("TiDB answered after {:?}", started.elapsed());
    let version = tidb.query_strings("SELECT VERSION()").await?;
    let version = version.first().cloned().flatten().unwrap_or_default();
    assert!(version.contains("TiDB"), "{version}");
    tidb.exec(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.items (id BIGINT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2)); \
         INSERT INTO shop.items VALUES (1,'apple',1.50),(2,'pear',2.25)",
    )
    .await?;
    assert_eq!(
        tidb.query_strings("SELECT CONCAT(name, '=', price) FROM shop.items ORDER BY id").await?,
        vec![Some("apple=1.50".into()), Some("pear=2.25".into())]
    );
    // The status port answers too.
    let status = std::net::TcpStream::connect(("127.0.0.1", tidb.status_port()));
    assert!(status.is_ok(), "status port {} does not answer", tidb.status_port());
    Ok(())
}

#[tokio::test]
async fn every_target_kind_runs_the_same_sql() -> anyhow::Result<()> {
    for kind in TargetKind::ALL {
        let target = start_target(kind).await?;
        assert_eq!(target.kind(), kind);
        target
            .exec(
                "CREATE DATABASE t; CREATE TABLE t.n (id INT PRIMARY KEY, v VARCHAR(10)); \
                 INSERT INTO t.n VALUES (1,'a'),(2,'b'),(3,'c')",
            )
            .await?;
        target.create_user("writer", "pw-123", "ALL PRIVILEGES").await?;
        let mut conn = mysql_async::Conn::new(target.opts_for("writer", "pw-123")).await?;
        let sum: Option<String> = mysql_async::prelude::Queryable::query_first(
            &mut conn,
            "SELECT CAST(SUM(id) AS CHAR) FROM t.n",
        )
        .await?;
        assert_eq!(sum.as_deref(), Some("6"), "{kind}");
        conn.disconnect().await?;
        assert_eq!(target.as_tidb().is_some(), kind == TargetKind::TiDb);
    }
    Ok(())
}

#[tokio::test]
async fn a_dropped_tidb_stops_and_leaves_no_directory() -> anyhow::Result<()> {
    let tidb = TiDb::start().await?;
    let (port, dir) = (tidb.port(), tidb.dir().to_path_buf());
    drop(tidb);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} answers");
    Ok(())
}

#[test]
fn a_missing_binary_names_the_build_script() {
    let err = ferry_harness::kube_harness::go_tool("tidb-server", "v0.0.0-not-built")
        .expect_err("no such version is built");
    assert!(err.to_string().contains("dev/build-go-tools.sh"), "{err}");
}
