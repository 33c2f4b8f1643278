//! The harness against real MariaDB servers: sources write a ROW binlog, targets none, several
//! run at once, and the table comparison catches a single changed value.

use ferry_harness::SqlServer;
use ferry_harness::{HarnessError, MariaDb, MariaDbOptions, Role, assert_same_tables};

const FIXTURE: &str = "CREATE DATABASE shop; \
    CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), note TEXT); \
    INSERT INTO shop.items VALUES (1,'apple',1.50,NULL),(2,'pear',2.25,'ripe'),(3,'fig',9.99,'🍐'); \
    CREATE TABLE shop.log (msg VARCHAR(20)); \
    INSERT INTO shop.log VALUES ('a'),('a'),('b')";

#[tokio::test]
async fn source_writes_a_row_binlog_and_target_does_not() -> anyhow::Result<()> {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    let sql =
        "SELECT CONCAT_WS(',', @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id > 0)";
    assert_eq!(source.query_strings(sql).await?, vec![Some("ON,ROW,FULL,1".to_string())]);
    assert_eq!(target.query_strings("SELECT @@log_bin").await?, vec![Some("0".to_string())]);
    assert_ne!(source.port(), target.port());
    Ok(())
}

#[tokio::test]
async fn comparison_catches_a_changed_row() -> anyhow::Result<()> {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source.exec(FIXTURE).await?;
    target.exec(FIXTURE).await?;
    let (mut src, mut dst) = (source.conn().await?, target.conn().await?);
    assert_same_tables(&mut src, &mut dst, "shop").await?;

    target.exec("UPDATE shop.items SET price = 2.26 WHERE id = 2").await?;
    let err = assert_same_tables(&mut src, &mut dst, "shop").await.unwrap_err();
    let HarnessError::Mismatch(report) = err else { panic!("expected a mismatch, got {err}") };
    assert!(report.contains("shop.items"), "{report}");
    assert!(report.contains("2.26"), "{report}");
    assert!(!report.contains("shop.log"), "{report}");
    Ok(())
}

#[tokio::test]
async fn comparison_catches_a_duplicated_row_in_a_keyless_table() -> anyhow::Result<()> {
    let (source, target) = tokio::try_join!(MariaDb::source(), MariaDb::target())?;
    source.exec(FIXTURE).await?;
    target.exec(FIXTURE).await?;
    target.exec("INSERT INTO shop.log VALUES ('b')").await?;
    let (mut src, mut dst) = (source.conn().await?, target.conn().await?);
    let err = assert_same_tables(&mut src, &mut dst, "shop").await.unwrap_err();
    assert!(err.to_string().contains("3 rows on the source, 4 on the target"), "{err}");
    Ok(())
}

#[tokio::test]
async fn extra_arguments_override_the_role() -> anyhow::Result<()> {
    let options = MariaDbOptions::new(Role::Source).arg("--binlog-format=STATEMENT");
    let server = MariaDb::start(options).await?;
    assert_eq!(
        server.query_strings("SELECT @@binlog_format").await?,
        vec![Some("STATEMENT".into())]
    );
    Ok(())
}

#[tokio::test]
async fn a_dropped_server_stops_and_leaves_no_directory() -> anyhow::Result<()> {
    let server = MariaDb::target().await?;
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    drop(server);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still answers"
    );
    Ok(())
}

/// `ferry-lab mariadb`, as the benchmark scripts use it (bench/lab.sh): a source on the port
/// and under the directory given, with the extra server arguments on top of the role's, its
/// address written once it answers; SIGTERM stops it and removes its directory.
#[tokio::test]
async fn ferry_lab_runs_one_server_where_a_script_says() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ready = dir.path().join("address");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let lab = std::process::Command::new(env!("CARGO_BIN_EXE_ferry-lab"))
        .args(["mariadb", "--role", "source", "--port", &port.to_string(), "--dir"])
        .arg(dir.path())
        .arg("--ready-file")
        .arg(&ready)
        .args(["--", "--max-connections=77"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut lab = KillOnDrop(lab);
    let lab = &mut lab.0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !ready.exists() {
        assert!(lab.try_wait()?.is_none(), "ferry-lab mariadb exited before the server answered");
        assert!(std::time::Instant::now() < deadline, "no address within 120 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(std::fs::read_to_string(&ready)?.trim(), format!("127.0.0.1:{port}"));
    let url = format!("mysql://root@127.0.0.1:{port}");
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?;
    let sql = "SELECT CONCAT_WS(',', @@log_bin, @@binlog_format, @@max_connections)";
    let settings: Option<String> =
        mysql_async::prelude::Queryable::query_first(&mut conn, sql).await?;
    assert_eq!(settings.as_deref(), Some("ON,ROW,77"));
    conn.disconnect().await?;
    let server_dirs = || std::fs::read_dir(dir.path()).map(|d| d.flatten().count());
    assert_eq!(server_dirs()?, 2, "the address file and the server's directory");

    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(lab.id() as libc::pid_t, libc::SIGTERM) };
    let status = lab.wait()?;
    assert!(status.success(), "ferry-lab mariadb ended with {status}");
    assert_eq!(server_dirs()?, 1, "the server's directory is removed");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} answers");
    Ok(())
}

/// A child process killed when a failing assertion unwinds past it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
