//! MySQL as a source next to MariaDB: it starts in its chroot (dev/build-mysql-root.sh), answers
//! as MySQL 9, logs with GTIDs, and a user with MySQL's default `caching_sha2_password` logs in
//! over plain TCP. These tests fail (not skip) when the chroot is missing.

use std::time::Instant;

use ferry_harness::{MySql, SourceKind, SqlServer};
use mysql_async::prelude::Queryable;

#[tokio::test]
async fn mysql_sources_start_with_gtids_and_distinct_identities() -> anyhow::Result<()> {
    let started = Instant::now();
    let (a, b) = tokio::try_join!(MySql::source(), MySql::source())?;
    eprintln!("two MySQL servers answered after {:?}", started.elapsed());
    let facts = "SELECT CONCAT_WS(' ', VERSION(), @@gtid_mode, @@binlog_format, \
                 @@binlog_row_image, @@log_bin, @@collation_server)";
    let facts = a.query_strings(facts).await?.remove(0).unwrap_or_default();
    assert!(facts.starts_with("9.") && facts.contains(" ON ROW FULL 1 "), "{facts}");
    assert!(facts.ends_with("utf8mb4_0900_ai_ci"), "{facts}");
    let uuid = "SELECT @@server_uuid";
    assert_ne!(a.query_strings(uuid).await?, b.query_strings(uuid).await?, "same server_uuid");
    assert_ne!(a.port(), b.port());
    Ok(())
}

#[tokio::test]
async fn a_caching_sha2_user_logs_in_over_plain_tcp() -> anyhow::Result<()> {
    let source = SourceKind::MySql.start().await?;
    source.create_user("app", "pw-123", "SELECT").await?;
    let plugin = source
        .query_strings("SELECT plugin FROM mysql.user WHERE user = 'app'")
        .await?
        .remove(0)
        .unwrap_or_default();
    assert_eq!(plugin, "caching_sha2_password");
    // The first login takes the full exchange (the server's RSA key: no TLS here), the second
    // the server's cache; both must work.
    for _ in 0..2 {
        let mut conn = mysql_async::Conn::new(source.opts_for("app", "pw-123")).await?;
        let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await?;
        assert_eq!(user.as_deref(), Some("app@%"));
        conn.disconnect().await?;
    }
    let wrong = mysql_async::Conn::new(source.opts_for("app", "wrong")).await;
    assert!(wrong.is_err(), "a wrong password logged in");
    // Written GTIDs show in the head the harness reads.
    source.exec("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY)").await?;
    let (file, pos) = source.binlog_head().await?;
    assert!(file.starts_with("mysql-bin.") && pos > 4, "{file}:{pos}");
    assert!(source.gtid_executed().await?.contains(":1-"), "no GTIDs logged");
    Ok(())
}
