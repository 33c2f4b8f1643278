//! Paths that used to end with exit 0 over wrong or missing data now end exact or in a clear
//! error (issue 15): narrower target columns, invalid and zero dates, values the target
//! rejects, long job names, unreadable tables, source and target the same server, restarts
//! during a copy, stops by signal, and bad input files. Real MariaDB servers and `ferry`.

use crate::support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_harness::{JobManifest, SqlServer, Target};
use mysql_async::prelude::Queryable;
use support::{PASSWORD, Setup, wait_exit};

/// `ferry` with `args`, its exit code, its standard error, and how long it took.
fn ferry(args: &[&str]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferry");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned(), started.elapsed())
}

async fn count(server: &impl SqlServer, sql: &str) -> u64 {
    let rows = server.query_strings(sql).await.expect("count");
    rows.first().cloned().flatten().and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn narrower_target_columns_fail_the_precheck_naming_each() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.people (id INT PRIMARY KEY, \
             name VARCHAR(50), price DECIMAL(10,2), seen DATETIME, note TEXT); \
             INSERT INTO app.people VALUES (1, 'Alexander', 12.75, '2024-05-06 07:08:09', 'x')",
        )
        .await
        .expect("source");
    setup
        .target
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.people (id INT PRIMARY KEY, \
             name VARCHAR(3), price INT, seen DATE)",
        )
        .await
        .expect("target");
    let manifest = setup.manifest("Full", "    databases: [app]");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "the copy ran into narrower columns:\n{log}");
    for expected in [
        "target_table_definitions",
        "`app`.`people`.`name` (source varchar(50), target varchar(3): narrower",
        "`app`.`people`.`price` (source decimal(10,2), target int(11): converts decimal to int",
        "`app`.`people`.`seen` (source datetime, target date: converts datetime to date",
        "`app`.`people`.`note` (source text: missing on the target",
        "ALTER TABLE `app`.`people` MODIFY COLUMN `name` varchar(50)",
        "ALTER TABLE `app`.`people` ADD COLUMN `note` text",
    ] {
        assert!(log.contains(expected), "the error lacks {expected:?}:\n{log}");
    }
    assert_eq!(count(&setup.target, "SELECT COUNT(*) FROM app.people").await, 0);
}

/// Dates a source holds under ALLOW_INVALID_DATES and its default mode (zero dates, zero
/// months and days) arrive as the same text, not as zero dates.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_zero_dates_arrive_exactly() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; CREATE DATABASE app; \
             CREATE TABLE app.dates (id INT PRIMARY KEY, d DATE, dt DATETIME(3)); \
             INSERT INTO app.dates VALUES (1, '2024-02-31', '2024-02-31 10:00:00.125'), \
               (2, '0000-00-00', '0000-00-00 00:00:00'), (3, '2024-00-10', '2024-04-00 01:02:03')",
        )
        .await
        .expect("source");
    let manifest = setup.manifest("Full", "    databases: [app]");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "the copy failed:\n{log}");
    let sql = "SELECT CONCAT_WS(' | ', id, d, dt) FROM app.dates ORDER BY id";
    let source = setup.source.query_strings(sql).await.expect("source rows");
    let target = setup.target.query_strings(sql).await.expect("target rows");
    assert_eq!(source.len(), 3);
    assert_eq!(source, target, "dates changed on the way:\n{log}");
}

/// A value the target refuses (here a target trigger makes one too long) stops the copy with
/// the table, the column and the row's key, instead of a silently cut value.
#[tokio::test(flavor = "multi_thread")]
async fn a_value_the_target_rejects_names_table_column_and_key() {
    let mut setup = Setup::start().await;
    let table = "CREATE DATABASE app; \
                 CREATE TABLE app.people (id INT PRIMARY KEY, name VARCHAR(8))";
    setup.both(table).await;
    setup
        .source
        .exec("INSERT INTO app.people SELECT seq, CONCAT('n', seq) FROM app.seq_1_to_100")
        .await
        .expect("rows");
    setup
        .target
        .exec(
            "CREATE TRIGGER app.grow BEFORE INSERT ON app.people FOR EACH ROW \
             SET NEW.name = IF(NEW.id = 77, CONCAT(NEW.name, '-too-long'), NEW.name)",
        )
        .await
        .expect("trigger");
    let manifest = setup.manifest("Full", "    databases: [app]");
    let (ok, log) = setup.run(&manifest, &[], &["--retries", "0"]);
    assert!(!ok, "the copy went on:\n{log}");
    assert!(
        log.contains(
            "the target cannot hold the value of `app`.`people` column `name` in the row id=77"
        ),
        "{log}"
    );
    // MariaDB takes LOAD DATA LOCAL: the load is rejected, and the chunk written again as
    // statements names the row.
    assert!(log.contains("LOAD DATA rejected"), "{log}");
    let cut = count(&setup.target, "SELECT COUNT(*) FROM app.people WHERE id = 77").await;
    assert_eq!(cut, 0, "a cut value reached the target:\n{log}");
}

/// A 250-character job name: its checkpoint keeps the whole id, and a ferry_meta table from a
/// version with 255-character keys is widened.
#[tokio::test(flavor = "multi_thread")]
async fn long_job_names_keep_whole_checkpoints() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO app.t SELECT seq, CONCAT('v', seq) FROM app.seq_1_to_500",
        )
        .await
        .expect("source");
    setup
        .target
        .exec(
            "CREATE DATABASE ferry_meta; CREATE TABLE ferry_meta.full_snapshot (\
             job VARCHAR(255) NOT NULL PRIMARY KEY, binlog_file VARCHAR(255) NULL, \
             binlog_pos BIGINT UNSIGNED NULL, gtid_set TEXT NULL, \
             safe_until_file VARCHAR(255) NULL, safe_until_pos BIGINT UNSIGNED NULL, \
             method VARCHAR(32) NOT NULL, state VARCHAR(16) NOT NULL, \
             updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
        )
        .await
        .expect("an old ferry_meta");
    let name = format!("long-{}", "n".repeat(245));
    let yaml = JobManifest {
        source_kind: setup.source.source_kind(),
        name: &name,
        source_port: setup.source.port(),
        target_port: setup.target.port(),
        user: "ferry",
        password: PASSWORD,
        mode: "Full",
        spec: "  objects:\n    databases: [app]",
    }
    .yaml();
    let manifest = setup.dir.path().join("long.yaml");
    std::fs::write(&manifest, yaml).expect("manifest");
    for run in 0..2 {
        let (ok, log) = setup.run(&manifest, &[], &[]);
        assert!(ok, "run {run} failed:\n{log}");
        setup.assert_same("app").await;
    }
    let mut conn = setup.target.conn().await.expect("target");
    // The registry keeps the whole name, and the checkpoint is keyed by the id it gave the job.
    let jobs: Vec<(String, String)> = conn
        .query("SELECT j.name, s.job FROM ferry_meta.jobs j JOIN ferry_meta.full_snapshot s ON s.job = j.id")
        .await
        .expect("checkpoint");
    assert_eq!(
        jobs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        [format!("default/{name}")]
    );
    for (table, column) in [("full_snapshot", "job"), ("jobs", "name")] {
        let width: Option<u64> = conn
            .exec_first(
                "SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = 'ferry_meta' AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (table, column),
            )
            .await
            .expect("width");
        assert_eq!(width, Some(320), "{table}.{column}");
    }
}

/// A source user without SELECT on one table of a selected database cannot even see it: the
/// precheck names it (or the database, when InnoDB's table list is closed to the user too)
/// with the GRANT that fixes it, and nothing is copied.
#[tokio::test(flavor = "multi_thread")]
async fn tables_the_source_user_cannot_read_fail_the_precheck() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.t1 (id INT PRIMARY KEY); \
             CREATE TABLE shop.t2 (id INT PRIMARY KEY); INSERT INTO shop.t2 VALUES (1); \
             CREATE SEQUENCE shop.s; GRANT SELECT ON shop.s TO 'ferry'@'%'; \
             REVOKE ALL PRIVILEGES ON *.* FROM 'ferry'@'%'; \
             GRANT RELOAD, REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO 'ferry'@'%'; \
             GRANT SELECT ON shop.t1 TO 'ferry'@'%'",
        )
        .await
        .expect("source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "copied without t2:\n{log}");
    assert!(log.contains("dump_privileges"), "{log}");
    assert!(log.contains("GRANT SELECT ON `shop`.* TO 'ferry'@'%';"), "{log}");

    setup.source.exec("GRANT PROCESS ON *.* TO 'ferry'@'%'").await.expect("grant PROCESS");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "copied without t2:\n{log}");
    // Only t2: the sequence the user may read is an InnoDB table it sees.
    assert!(log.contains("dump_privileges: no SELECT on shop.t2; "), "{log}");
    assert!(log.contains("GRANT SELECT ON `shop`.`t2` TO 'ferry'@'%';"), "{log}");
    assert_eq!(
        count(
            &setup.target,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'"
        )
        .await,
        0
    );

    setup.source.exec("GRANT SELECT ON shop.t2 TO 'ferry'@'%'").await.expect("grant t2");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "{log}");
    // The copy does not create sequences; the precheck names the one it leaves behind.
    assert!(log.contains("sequence shop.s"), "{log}");
    setup.source.exec("DROP SEQUENCE shop.s").await.expect("drop the sequence");
    setup.assert_same("shop").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn source_and_target_the_same_server_are_refused() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec("CREATE DATABASE app; CREATE TABLE app.log (line INT); INSERT INTO app.log VALUES (1), (2), (3)")
        .await
        .expect("source");
    let yaml = JobManifest {
        source_kind: setup.source.source_kind(),
        name: "job",
        source_port: setup.source.port(),
        target_port: setup.source.port(),
        user: "ferry",
        password: PASSWORD,
        mode: "Full",
        spec: "  objects:\n    databases: [app]",
    }
    .yaml();
    let manifest = setup.dir.path().join("same.yaml");
    std::fs::write(&manifest, yaml).expect("manifest");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "{log}");
    assert!(log.contains("distinct_servers: source and target are the same server"), "{log}");
    assert_eq!(count(&setup.source, "SELECT COUNT(*) FROM app.log").await, 3, "{log}");
}

/// The target killed during the copy and started again a few seconds later: the job retries
/// (its precheck too, while the target is still down) and completes with an equal target.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_restarted_during_the_copy_is_retried_to_the_end() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.a (id INT PRIMARY KEY, pad VARCHAR(200)); \
             INSERT INTO app.a SELECT seq, REPEAT(MD5(seq), 6) FROM app.seq_1_to_60000; \
             CREATE TABLE app.nokey (a INT, b VARCHAR(100)); \
             INSERT INTO app.nokey SELECT seq % 10, REPEAT('n', 90) FROM app.seq_1_to_20000",
        )
        .await
        .expect("source");
    let manifest = setup.manifest("Full", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", "500")];
    let mut child = setup.spawn(&manifest, &envs, &["--concurrency", "1", "--retries", "10"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while setup.done_chunks().await < 5 {
        assert!(Instant::now() < deadline, "no progress:\n{}", setup.last_log());
        assert!(child.try_wait().expect("ferry").is_none(), "ended early:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Target::MariaDb(target) = &mut setup.target else { unreachable!("a MariaDB target") };
    target.kill();
    // Down until the job has retried at least twice: the second retry finds it down too.
    while setup.last_log().matches("retrying from the checkpoint").count() < 2 {
        assert!(Instant::now() < deadline, "no retries:\n{}", setup.last_log());
        assert!(child.try_wait().expect("ferry").is_none(), "gave up:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Target::MariaDb(target) = &mut setup.target else { unreachable!("a MariaDB target") };
    target.restart().await.expect("restart the target");
    let status = wait_exit(&mut child, Duration::from_secs(180));
    let log = setup.last_log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("precheck could not run"),
        "the precheck did not meet the down target:\n{log}"
    );
    setup.assert_same("app").await;
}

/// SIGTERM and Ctrl-C stop replication cleanly: the stop message, exit 0, the status says
/// Paused (not Running), and the next run resumes.
#[tokio::test(flavor = "multi_thread")]
async fn signals_stop_with_a_final_status() {
    let mut setup = Setup::start().await;
    setup.both("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)").await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    for (round, signal) in ["-TERM", "-INT"].into_iter().enumerate() {
        let mut child = setup.spawn(&manifest, &[], &[]);
        let first = round * 10 + 1;
        setup
            .source
            .exec(&format!("INSERT INTO app.t SELECT seq FROM app.seq_{first}_to_{}", first + 9))
            .await
            .expect("write");
        setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
        let sent = Command::new("kill").args([signal, &child.id().to_string()]).status();
        assert!(sent.expect("kill").success());
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let log = setup.last_log();
        assert_eq!(status.code(), Some(0), "{signal}: {log}");
        assert!(log.contains("stopped; run the same command to resume"), "{signal}: {log}");
        assert_eq!(setup.status()["phase"], "Paused", "{signal}: {}", setup.status());
        let (_, _, state) = setup.checkpoint().await.expect("a checkpoint");
        assert_eq!(state, "stopped", "{signal}");
    }
    setup.assert_same("app").await;
}

/// A binlog file whose event claims 4 GiB ends as truncated at once, within a 1 GiB address
/// space; a manifest of 100 KB of brackets or dashes is rejected at once, by name.
#[test]
fn bad_input_is_rejected_in_bounded_time_and_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binlog = dir.path().join("huge-event.bin");
    let mut bytes = vec![0xfe, b'b', b'i', b'n'];
    let mut header = [0u8; 19];
    header[4] = 2; // QUERY_EVENT
    header[9..13].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.resize(608, 0);
    std::fs::write(&binlog, bytes).expect("write binlog");
    let limited = format!(
        "ulimit -v 1048576; exec '{}' binlog decode '{}'",
        env!("CARGO_BIN_EXE_ferry"),
        binlog.display()
    );
    let started = Instant::now();
    let output = Command::new("sh").args(["-c", &limited]).output().expect("run ferry");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is truncated: 604 of 4294967280 bytes"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());

    for (name, text, expected) in [
        (
            "brackets.yaml",
            format!("a: {}", "[".repeat(100_000)),
            "nests collections 65 deep at line 1;",
        ),
        (
            "dashes.yaml",
            format!("a:\n  {}x", "- ".repeat(50_000)),
            "deep at line 2; at most 64 levels",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write manifest");
        let (code, stderr, took) = ferry(&["validate", "-f", path.to_str().expect("path")]);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
    }
}

/// The same on TiDB: its session takes the strict mode with ALLOW_INVALID_DATES, the dates
/// arrive as they are, and a second run (whose precheck compares the tables Ferry created with
/// the source's) passes.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_dates_reach_tidb_exactly_and_created_tables_pass_the_precheck() {
    let mut setup = Setup::start_with(ferry_harness::TargetKind::TiDb).await;
    setup
        .source
        .exec(
            "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; CREATE DATABASE app; \
             CREATE TABLE app.dates (id INT PRIMARY KEY, d DATE, dt DATETIME(3), \
               name VARCHAR(20), price DECIMAL(10,2), kind ENUM('a','b'), big BIGINT UNSIGNED) \
               CHARACTER SET latin1; \
             INSERT INTO app.dates VALUES (1, '2024-02-31', '2024-02-31 10:00:00.125', 'é', 1.5, 'b', 18446744073709551615), \
               (2, '0000-00-00', '0000-00-00 00:00:00', '', -0.01, 'a', 0), \
               (3, '2024-00-10', '2024-04-00 01:02:03', NULL, NULL, NULL, NULL)",
        )
        .await
        .expect("source");
    let manifest = setup.manifest("Full", "    databases: [app]");
    for run in 0..2 {
        let (ok, log) = setup.run(&manifest, &[], &[]);
        assert!(ok, "run {run} failed:\n{log}");
    }
    let sql =
        "SELECT CONCAT_WS(' | ', id, d, dt, name, price, kind, big) FROM app.dates ORDER BY id";
    let source = setup.source.query_strings(sql).await.expect("source rows");
    let target = setup.target.query_strings(sql).await.expect("target rows");
    assert_eq!(source, target, "values changed on the way:\n{}", setup.last_log());
}

/// Replication too: rows written under ALLOW_INVALID_DATES, zero dates and zero parts arrive
/// as the source holds them.
#[tokio::test(flavor = "multi_thread")]
async fn replication_carries_invalid_and_zero_dates_exactly() {
    let mut setup = Setup::start().await;
    setup
        .both("CREATE DATABASE app; CREATE TABLE app.dates (id INT PRIMARY KEY, d DATE, dt DATETIME(3))")
        .await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut child = setup.spawn(&manifest, &[], &[]);
    setup
        .source
        .exec(
            "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'; \
             INSERT INTO app.dates VALUES (1, '2024-02-31', '2024-02-31 10:00:00.125'), \
               (2, '0000-00-00', '0000-00-00 00:00:00'), (3, '2024-00-10', '2024-04-00 01:02:03'); \
             UPDATE app.dates SET d = '2023-04-31' WHERE id = 2",
        )
        .await
        .expect("source");
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
    assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
    let sql = "SELECT CONCAT_WS(' | ', id, d, dt) FROM app.dates ORDER BY id";
    let source = setup.source.query_strings(sql).await.expect("source rows");
    let target = setup.target.query_strings(sql).await.expect("target rows");
    assert_eq!(source, target, "dates changed on the way:\n{}", setup.last_log());
}

/// The source killed while replicating and started again: the job retries through the precheck
/// of a down source and catches up with what was written after the restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_restarted_during_replication_is_retried() {
    let mut setup = Setup::start().await;
    setup.both("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v INT)").await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut child = setup.spawn(&manifest, &[], &["--retries", "10"]);
    let insert = |from: u32| {
        format!("INSERT INTO app.t SELECT seq, seq FROM app.seq_{from}_to_{}", from + 99)
    };
    setup.source.exec(&insert(1)).await.expect("write");
    setup.wait_caught_up(&mut child, Duration::from_secs(60)).await;
    setup.source.kill();
    let deadline = Instant::now() + Duration::from_secs(120);
    while setup.last_log().matches("retrying from the checkpoint").count() < 2 {
        assert!(Instant::now() < deadline, "no retries:\n{}", setup.last_log());
        assert!(child.try_wait().expect("ferry").is_none(), "gave up:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.source.restart().await.expect("restart the source");
    setup.source.exec(&insert(101)).await.expect("write after the restart");
    setup.wait_caught_up(&mut child, Duration::from_secs(120)).await;
    assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
    assert!(setup.last_log().contains("precheck could not run"), "{}", setup.last_log());
    setup.assert_same("app").await;
}

/// A row the source changes but the target lacks (deleted there behind Ferry's back) stops
/// replication naming the table and the row, rather than leaving the target silently different:
/// an UPDATE of a keyless table (netted to the removal of its old row and the insert of its new
/// one, so the message names the row the update removed) and a batched DELETE by primary key.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_missing_on_the_target_stops_replication_naming_it() {
    let cases = [
        (
            "CREATE TABLE app.log (at INT, note VARCHAR(20)); \
             INSERT INTO app.log VALUES (1, 'one'), (2, 'two')",
            "DELETE FROM app.log WHERE at = 2",
            "UPDATE app.log SET note = 'second' WHERE at = 2",
            "the target has no row of `app`.`log` where the source deleted at=2, note='two'",
        ),
        (
            "CREATE TABLE app.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)",
            "DELETE FROM app.t WHERE id = 3",
            "DELETE FROM app.t WHERE id IN (2, 3)",
            "the target has no row of `app`.`t` where the source deleted one of 2 rows (1 found)",
        ),
    ];
    for (tables, on_target, on_source, expected) in cases {
        let mut setup = Setup::start().await;
        setup.both(&format!("CREATE DATABASE app; {tables}")).await;
        setup.target.exec(on_target).await.expect("change the target behind Ferry");
        let start = setup.source_head().await;
        let manifest = setup.incremental_manifest(&start, "");
        let mut child = setup.spawn(&manifest, &[], &["--retries", "0"]);
        setup.source.exec(on_source).await.expect("source change");
        let status = wait_exit(&mut child, Duration::from_secs(60));
        let log = setup.last_log();
        assert!(!status.success(), "replication went on over a missing row:\n{log}");
        assert!(log.contains(expected), "expected `{expected}` in:\n{log}");
    }
}
