//! The whole flow of a FullAndIncremental job through `ferry migrate`: the copy, then binlog
//! replication from the copy's snapshot with no gap and no overlap, while the source is written
//! to during both stages; also with the lock-free snapshot, whose safe-mode window replication
//! must honour. The first test runs with a MySQL 9.7 source too, with DDL replicated.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use support::Setup;

const SCHEMA: &str = "CREATE DATABASE app; \
    CREATE TABLE app.items (id INT PRIMARY KEY, qty INT NOT NULL, note VARCHAR(40)); \
    CREATE TABLE app.log (msg VARCHAR(40))";

/// Inserts, updates and deletes on `app.items`, and inserts into the keyless `app.log`.
async fn write(setup: &Setup, from: u32, count: u32) {
    let mut sql = String::new();
    for id in from..from + count {
        sql.push_str(&format!(
            "INSERT INTO app.items VALUES ({id}, {id}, 'n{id}'); \
             UPDATE app.items SET qty = qty + 1 WHERE id = {prev}; \
             DELETE FROM app.items WHERE id = {gone};",
            prev = id.saturating_sub(1),
            gone = id.saturating_sub(7),
        ));
        sql.push_str(&format!("INSERT INTO app.log VALUES ('m{id}');"));
    }
    setup.source.exec(&sql).await.expect("write to the source");
}

/// Inserts `rows` rows (at most 100,000) numbered from 1,000,001 into `app.items`, in SQL that
/// MariaDB and MySQL both run (no sequence engine, no recursion limit).
fn filler(rows: u32) -> String {
    let digit: Vec<String> = (0..10).map(|d| format!("SELECT {d} AS d")).collect();
    let digit = format!("({})", digit.join(" UNION ALL "));
    let tables: Vec<String> = (0..5).map(|i| format!("{digit} t{i}")).collect();
    format!(
        "INSERT INTO app.items SELECT 1000000 + n, n, 'filler' FROM (SELECT 1 + t0.d + 10 * t1.d \
         + 100 * t2.d + 1000 * t3.d + 10000 * t4.d AS n FROM {}) numbers WHERE n <= {rows}",
        tables.join(" CROSS JOIN ")
    )
}

async fn wait_for(setup: &Setup, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done(&setup.status()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_until_equal(setup: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (mut src, mut dst) =
            (setup.source.conn().await.unwrap(), setup.target.conn().await.unwrap());
        match ferry_harness::assert_same_tables(&mut src, &mut dst, "app").await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{e}\n{}", setup.last_log()),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

async fn copy_then_replicate(setup: &mut Setup, envs: &[(&str, &str)]) {
    setup.source.exec(SCHEMA).await.expect("schema");
    write(setup, 1, 3000).await;
    // Rows the writes do not touch, so the copy lasts long enough to be written to.
    setup.source.exec(&filler(20_000)).await.expect("filler rows");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut child = setup.spawn(&manifest, envs, &["--concurrency", "3"]);

    // Writes while the copy runs (after its snapshot) must reach the target through the binlog.
    let shared: &Setup = setup;
    let during = shared
        .write_while_copying(&mut child, move |n| write(shared, 3001 + n as u32 * 5, 5))
        .await;
    assert!(during > 0, "no write committed while the copy ran:\n{}", setup.last_log());
    wait_for(setup, "the Incremental stage", |s| s["stage"] == "Incremental").await;
    write(setup, 100_001, 300).await;
    wait_until_equal(setup).await;

    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("wait for ferry");
    assert!(status.success(), "ferry did not stop cleanly:\n{}", setup.last_log());
    let applied = &setup.status()["incremental"]["applied"];
    assert!(applied["file"].is_string() && applied["pos"].as_i64() > Some(4), "{applied}");
}

#[tokio::test]
async fn copy_then_replicate_with_no_gap_and_no_overlap() {
    let mut setup = Setup::start().await;
    copy_then_replicate(&mut setup, &[("FERRY_CHUNK_ROWS", "200")]).await;
    assert_eq!(setup.snapshot_method().await.as_deref(), Some("ftwrl"), "{}", setup.last_log());
}

/// MySQL 9.7 (GTID mode on, `SHOW BINARY LOG STATUS`, utf8mb4_0900_ai_ci by default): the copy,
/// then replication of row changes and of DDL, into TiDB. The expression defaults (EXTRA
/// `DEFAULT_GENERATED` on MySQL and TiDB) must carry the source's values, not the target's.
#[tokio::test]
async fn copy_then_replicate_from_mysql_with_ddl() {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::TiDb).await;
    copy_then_replicate(&mut setup, &[("FERRY_CHUNK_ROWS", "200")]).await;
    let gtid = &setup.status()["incremental"]["applied"]["gtidSet"];
    assert!(gtid.as_str().is_some_and(|g| g.contains(':')), "no MySQL GTID set: {gtid}");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut child = setup.spawn(&manifest, &[], &[]);
    setup
        .source
        .exec(
            "ALTER TABLE app.items ADD COLUMN extra INT NOT NULL DEFAULT 7; \
             INSERT INTO app.items (id, qty, extra) VALUES (90001, 1, 8); \
             CREATE TABLE app.fresh (id INT PRIMARY KEY, v VARCHAR(10), \
               tag VARCHAR(36) DEFAULT (UUID()), at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)); \
             INSERT INTO app.fresh (id, v) VALUES (1, 'new'); \
             RENAME TABLE app.fresh TO app.renamed; \
             INSERT INTO app.renamed (id, v) VALUES (2, 'renamed'); \
             ALTER TABLE app.items DROP COLUMN note; \
             UPDATE app.items SET qty = qty + 100 WHERE id % 5 = 0",
        )
        .await
        .expect("DDL and DML on the source");
    write_mysql_ddl_free(&setup).await;
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
    wait_until_equal(&setup).await;
    assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
}

/// Row changes after the DDL above (`write` uses the dropped `note` column).
async fn write_mysql_ddl_free(setup: &Setup) {
    let sql: String = (0..200)
        .map(|i| format!("INSERT INTO app.items (id, qty) VALUES ({}, {i}); ", 80000 + i))
        .collect();
    setup.source.exec(&sql).await.expect("rows after the DDL");
}

#[tokio::test]
async fn lock_free_snapshot_then_replicate_stays_exact() {
    let mut setup = Setup::start().await;
    // Without RELOAD the copy cannot take the global read lock and reads lock-free.
    setup.source.exec("REVOKE RELOAD ON *.* FROM 'ferry'@'%'").await.expect("revoke RELOAD");
    copy_then_replicate(&mut setup, &[("FERRY_CHUNK_ROWS", "200")]).await;
    assert_eq!(setup.snapshot_method().await.as_deref(), Some("lock-free"), "{}", setup.last_log());
}

/// MySQL without RELOAD (as on RDS, Aurora, Cloud SQL), FLUSH_TABLES (which also allows the
/// global read lock) nor BACKUP_ADMIN: the snapshot holds
/// `LOCK TABLES ... READ` on the selected tables while its transactions start and the position
/// is read. A writer commits to the keyed and the keyless table without pause from before the
/// job starts until it replicates, so commits race the snapshot: each must arrive exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn mysql_without_reload_locks_the_tables_and_stays_exact() {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::MariaDb).await;
    // MariaDB 10.11 lacks MySQL's default collation utf8mb4_0900_ai_ci.
    let schema = SCHEMA.replacen(
        "CREATE DATABASE app;",
        "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;",
        1,
    );
    setup.source.exec(&schema).await.expect("schema");
    let filler = "SET SESSION cte_max_recursion_depth = 30000; \
        INSERT INTO app.items WITH RECURSIVE s(n) AS \
        (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) SELECT n + 1000000, n, 'filler' FROM s; \
        INSERT INTO app.log SELECT CONCAT('f', id) FROM app.items WHERE id % 4 = 0; \
        REVOKE RELOAD, FLUSH_TABLES, BACKUP_ADMIN ON *.* FROM 'ferry'@'%'";
    setup.source.exec(filler).await.expect("filler rows, revoke RELOAD");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let conn = setup.source.conn().await.expect("conn");
        writers.push(tokio::spawn(write_until(conn, w, stop.clone())));
    }
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", "500")];
    let mut child = setup.spawn(&manifest, &envs, &["--concurrency", "8"]);
    wait_for(&setup, "the Incremental stage", |s| s["stage"] == "Incremental").await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for writer in writers {
        written += writer.await.expect("writer");
    }
    assert!(written > 100, "only {written} transactions raced the copy");
    assert_eq!(
        setup.snapshot_method().await.as_deref(),
        Some("lock-tables"),
        "{}",
        setup.last_log()
    );
    assert!(setup.last_log().contains("holding LOCK TABLES"), "{}", setup.last_log());
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
    wait_until_equal(&setup).await;
    assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
}

/// A MySQL FULLTEXT index has InnoDB make auxiliary `fts_<hex>_...` tables, which MySQL's
/// INNODB_TABLES lists (to a user with PROCESS) and information_schema.TABLES does not: they are
/// InnoDB's own, not tables the user may not read. With the documented grants the job copies and
/// replicates the table; with PROCESS added, so that the precheck reads InnoDB's list, it still
/// passes, also when SELECT is granted on the table alone (before, the precheck named the `fts_`
/// tables as lacking SELECT).
#[tokio::test(flavor = "multi_thread")]
async fn mysql_full_text_tables_pass_the_precheck_with_the_documented_grants() {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::MariaDb).await;
    setup
        .source
        .exec(
            "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; \
             CREATE TABLE app.docs (id INT PRIMARY KEY, body TEXT, FULLTEXT KEY ft (body)); \
             INSERT INTO app.docs VALUES (1, 'full text'), (2, 'search me'); \
             REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'ferry'@'%'",
        )
        .await
        .expect("full-text table");
    let grants = [
        "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'ferry'@'%'",
        "GRANT PROCESS ON *.* TO 'ferry'@'%'",
        "REVOKE SELECT ON *.* FROM 'ferry'@'%'; GRANT SELECT ON app.docs TO 'ferry'@'%'",
    ];
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    for (run, grant) in grants.iter().enumerate() {
        setup.source.exec(grant).await.expect("grant");
        let mut child = setup.spawn(&manifest, &[], &[]);
        let insert = format!("INSERT INTO app.docs VALUES ({}, 'replicated')", 10 + run);
        wait_for(&setup, "the Incremental stage", |s| s["stage"] == "Incremental").await;
        setup.source.exec(&insert).await.expect("insert");
        setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
        setup.assert_same("app").await;
        assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
    }
}

/// Concurrent writers: commits land every moment the snapshot is being taken.
const WRITERS: u32 = 6;

/// One transaction after another into `app.items` and the keyless `app.log` until `stop`,
/// with ids of its own (writer `w`); returns how many committed.
async fn write_until(
    mut conn: mysql_async::Conn,
    w: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u32 {
    use mysql_async::prelude::Queryable;
    let first = 200_000 + w * 50_000;
    let mut id = first;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        id += 1;
        let sql = format!(
            "START TRANSACTION; INSERT INTO app.items VALUES ({id}, 0, 'w'); \
             UPDATE app.items SET qty = qty + 1 WHERE id = {} OR id = {}; \
             INSERT INTO app.log VALUES ('w{id}'); COMMIT",
            id - 1,
            1_000_000 + id % 20_000,
        );
        conn.query_drop(sql).await.expect("write to the source");
    }
    id - first
}

/// The keyless `app.log` is copied by the resumed run, after rows were added to it while the job
/// was down: replication from the first snapshot must skip those inserts (the copy holds them),
/// where safe mode could not help, as a keyless row has no key to replace.
#[tokio::test]
async fn resumed_copy_then_replicate_stays_exact() {
    let mut setup = Setup::start().await;
    setup.source.exec(SCHEMA).await.expect("schema");
    write(&setup, 1, 3000).await;
    // Enough chunks that the copy is still running when it is killed, and a keyless table (one
    // chunk, second in the queue) large enough to be still copying when the first chunk is done.
    let filler = "SET max_recursive_iterations = 100000; INSERT INTO app.items WITH RECURSIVE s(n) AS \
        (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 30000) SELECT n + 100000, n, 'filler' FROM s; \
        INSERT INTO app.log WITH RECURSIVE s(n) AS \
        (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000) SELECT CONCAT('f', n) FROM s";
    setup.source.exec(filler).await.expect("filler rows");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", "100")];
    let mut child = setup.spawn(&manifest, &envs, &["--concurrency", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.done_chunks().await < 1 {
        assert!(Instant::now() < deadline, "no chunk done:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL ferry");
    child.wait().expect("reap ferry");
    let log_copied: Vec<Option<String>> = setup
        .target
        .query_strings("SELECT done FROM ferry_meta.full_chunks WHERE tbl = 'log'")
        .await
        .expect("read the plan");
    assert_eq!(log_copied, [Some("0".to_string())], "app.log must be left to the resumed run");

    // Changes made while the job is down: the resumed copy reads some of them from its new
    // snapshot, and replication from the first snapshot's position replays them all again.
    write(&setup, 3001, 300).await;
    let mut child = setup.spawn(&manifest, &envs, &["--concurrency", "1"]);
    wait_for(&setup, "the Incremental stage", |s| s["stage"] == "Incremental").await;
    write(&setup, 3301, 100).await;
    wait_until_equal(&setup).await;
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
    assert!(child.wait().expect("wait").success(), "{}", setup.last_log());
}
