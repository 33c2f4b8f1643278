//! Replication never writes a value where it does not belong (issue 15), against real MariaDB
//! servers: integers at every width's limits, values mapped to target columns by name, row
//! changes logged as statements, undecodable rows outside the selection, lag while the target
//! is stalled.

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_harness::SqlServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::decode::{row_lines, run};
use support::{INTEGERS, Setup, interrupt, wait_exit};

/// A value of `[min, max]`, most often at or next to a limit or zero.
fn edge_value(rng: &mut StdRng, min: i128, max: i128) -> i128 {
    let candidates = [min, min + 1, max - 1, max, 0, 1, -1, min / 2, max / 2];
    if rng.random_bool(0.7) {
        let v = candidates[rng.random_range(0..candidates.len())];
        v.clamp(min, max)
    } else {
        rng.random_range(min..=max)
    }
}

fn integer_row(rng: &mut StdRng) -> String {
    let values: Vec<String> =
        INTEGERS.iter().map(|&(_, min, max)| edge_value(rng, min, max).to_string()).collect();
    values.join(", ")
}

/// Every integer width and signedness at its limits, inserted, updated and deleted while the
/// job replicates, with and without column names and signedness in the binlog
/// (`binlog_row_metadata`): the target ends equal to the source, and `ferry binlog decode
/// --verbose` prints the rows exactly as `mariadb-binlog --verbose` does.
#[tokio::test(flavor = "multi_thread")]
async fn integers_at_every_limit_replicate_and_decode_exactly() {
    let mut setup = Setup::start().await;
    let columns: Vec<String> =
        INTEGERS.iter().enumerate().map(|(i, (t, _, _))| format!("c{i} {t}")).collect();
    setup
        .both(&format!(
            "CREATE DATABASE app; CREATE TABLE app.ints (id INT PRIMARY KEY, {})",
            columns.join(", ")
        ))
        .await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let mut rng = StdRng::seed_from_u64(1);
    for (round, metadata) in ["NO_LOG", "FULL"].into_iter().enumerate() {
        setup.source.exec(&format!("SET GLOBAL binlog_row_metadata = {metadata}")).await.unwrap();
        let base = round * 100;
        let mut sql = String::new();
        for id in base..base + 40 {
            sql.push_str(&format!(
                "INSERT INTO app.ints VALUES ({id}, {});\n",
                integer_row(&mut rng)
            ));
        }
        for id in base..base + 40 {
            let sets: Vec<String> = INTEGERS
                .iter()
                .enumerate()
                .map(|(i, &(_, min, max))| format!("c{i} = {}", edge_value(&mut rng, min, max)))
                .collect();
            sql.push_str(&format!("UPDATE app.ints SET {} WHERE id = {id};\n", sets.join(", ")));
        }
        sql.push_str(&format!("DELETE FROM app.ints WHERE id % 5 = 0 AND id >= {base};\n"));
        setup.source.exec(&sql).await.unwrap();
    }
    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());

    setup.source.exec("FLUSH BINARY LOGS").await.unwrap();
    let file = setup.source.dir().join("binlog").join(&start.0);
    let (code, ours, err) =
        run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode", "--verbose"], &file);
    assert_eq!(code, Some(0), "{err}");
    let (code, theirs, err) = run("mariadb-binlog", &["--verbose"], &file);
    assert_eq!(code, Some(0), "{err}");
    let (ours, theirs) = (row_lines(&ours), row_lines(&theirs));
    assert!(ours.iter().any(|l| l.contains("-8388608 (8388608)")), "MEDIUMINT minimum missing");
    assert_eq!(ours.len(), theirs.len());
    for (n, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "row line {n} differs");
    }
}

/// Values go to the target column of their name: a pre-existing target table with the
/// source's columns in another order, and one with an extra column too, get each value in its
/// own column, whether the binlog names its columns (`binlog_row_metadata=FULL`) or not;
/// changes logged before a column was added on the source are still placed right after a
/// restart.
#[tokio::test(flavor = "multi_thread")]
async fn values_go_to_target_columns_by_name() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app;
             CREATE TABLE app.t (id INT PRIMARY KEY, a INT, b INT, c VARCHAR(10));
             CREATE TABLE app.x (id INT PRIMARY KEY, a INT, b INT, c VARCHAR(10));
             CREATE TABLE app.g (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL,
               s INT AS (a * 3) STORED, b INT);",
        )
        .await
        .unwrap();
    setup
        .target
        .exec(
            "CREATE DATABASE app;
             CREATE TABLE app.t (id INT PRIMARY KEY, b INT, a INT, c VARCHAR(10));
             CREATE TABLE app.x (c VARCHAR(10), extra INT DEFAULT 42, b INT, id INT PRIMARY KEY, a INT);
             CREATE TABLE app.g (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL,
               s INT AS (a * 3) STORED, b INT);",
        )
        .await
        .unwrap();
    wait_past_source_ddl(&setup).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    for metadata in ["NO_LOG", "FULL"] {
        for table in ["t", "x"] {
            setup
                .source
                .exec(&format!(
                    "SET GLOBAL binlog_row_metadata = {metadata};
                     INSERT INTO app.{table} VALUES (1, 10, 20, 'x'), (2, 11, 21, 'y'), (3, 12, 22, 'z');
                     UPDATE app.{table} SET a = a + 100, c = 'moved' WHERE id = 2;
                     DELETE FROM app.{table} WHERE id = 3;"
                ))
                .await
                .unwrap();
        }
        // Generated columns are in the binlog's columns, and computed by the target.
        setup
            .source
            .exec(
                "INSERT INTO app.g (id, a, b) VALUES (1, 5, 6), (2, 7, 8);
                 UPDATE app.g SET a = a + 1, b = 0 WHERE id = 2;",
            )
            .await
            .unwrap();
        setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
        for table in ["t", "x"] {
            assert_same_columns(&setup, table, "id, a, b, c").await;
        }
        assert_same_columns(&setup, "g", "id, a, v, s, b").await;
        let extra = setup.target.query_strings("SELECT DISTINCT extra FROM app.x").await.unwrap();
        assert_eq!(extra, [Some("42".to_string())], "{}", setup.last_log());
        setup.source.exec("DELETE FROM app.t; DELETE FROM app.x; DELETE FROM app.g").await.unwrap();
    }
    // Changes logged before the source's table changed, read after it did (the target follows
    // the source's DDL in stream order, here a copy of its columns).
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
    setup.source.exec("CREATE TABLE app.u (id INT PRIMARY KEY, a INT, b INT)").await.unwrap();
    setup.source.exec("SET GLOBAL binlog_row_metadata = NO_LOG").await.unwrap();
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
    setup
        .source
        .exec(
            "INSERT INTO app.u VALUES (1, 2, 3);
             ALTER TABLE app.u ADD COLUMN z INT FIRST;
             INSERT INTO app.u VALUES (9, 4, 5, 6);",
        )
        .await
        .unwrap();
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    let rows = setup
        .target
        .query_strings("SELECT CONCAT_WS(',', z, id, a, b) FROM app.u ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        rows,
        [Some("1,2,3".to_string()), Some("9,4,5,6".to_string())],
        "{}",
        setup.last_log()
    );
    assert!(interrupt(&mut ferry).success());
}

/// A target table that lacks a column the source sends stops the job with an error naming the
/// table and the column; nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_column_missing_on_the_target_stops_the_job() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, a INT, name VARCHAR(10))",
        )
        .await
        .unwrap();
    setup
        .target
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, a INT, other INT)")
        .await
        .unwrap();
    wait_past_source_ddl(&setup).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    setup.source.exec("INSERT INTO app.t VALUES (1, 2, 'c')").await.unwrap();
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    let exit = wait_exit(&mut ferry, Duration::from_secs(60));
    let log = setup.last_log();
    assert!(!exit.success(), "{log}");
    assert!(log.contains("column `name` of `app`.`t`"), "{log}");
    let rows = setup.target.query_strings("SELECT COUNT(*) FROM app.t").await.unwrap();
    assert_eq!(rows, [Some("0".to_string())], "nothing was written");
}

/// Row changes the source logs as statements (a session with `binlog_format=STATEMENT`) on a
/// selected table stop the job with an error naming the statement, its strings hidden, and the
/// remedy; on a table outside the selection they are passed over.
#[tokio::test(flavor = "multi_thread")]
async fn statement_format_changes_to_selected_tables_stop_the_job() {
    let mut setup = Setup::start().await;
    setup.both("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))").await;
    setup
        .source
        .exec("CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.source.exec("INSERT INTO app.t VALUES (1, 'row')").await.unwrap();
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup
        .source
        .exec(
            "SET SESSION binlog_format = STATEMENT;
             INSERT INTO other.t VALUES (1);
             INSERT INTO app.t VALUES (2, 'hunter2-secret');",
        )
        .await
        .unwrap();
    let exit = wait_exit(&mut ferry, Duration::from_secs(60));
    let log = setup.last_log();
    assert!(!exit.success(), "{log}");
    assert!(log.contains("INSERT INTO app.t VALUES (2, '…')"), "{log}");
    assert!(log.contains("binlog_format=ROW"), "{log}");
    assert!(!log.contains("hunter2"), "the statement's strings are hidden: {log}");
    let rows = setup.target.query_strings("SELECT COUNT(*) FROM app.t").await.unwrap();
    assert_eq!(rows, [Some("1".to_string())]);
}

/// A row the decoder cannot read, in a database the job does not select, is not decoded: the
/// job replicates what follows.
#[tokio::test(flavor = "multi_thread")]
async fn undecodable_rows_outside_the_selection_do_not_stop_the_job() {
    let mut setup = Setup::start().await;
    setup.both("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)").await;
    setup
        .source
        .exec("CREATE DATABASE other; CREATE TABLE other.t (id INT PRIMARY KEY, t TIME(1))")
        .await
        .unwrap();
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    setup
        .source
        .exec("INSERT INTO other.t VALUES (1, '-00:00:01.5'); INSERT INTO app.t VALUES (1)")
        .await
        .unwrap();
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// Sends a signal to the process behind a MariaDB server.
fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill").args([sig, pid]).status().expect("kill");
    assert!(status.success(), "kill {sig} {pid}");
}

/// Resumes a stopped server when the test ends, whatever happens.
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0]).status();
    }
}

/// A target frozen under load: the status shows growing lag in seconds and bytes, `applied`
/// never above `sourceHead`, and past the bound the `Lagging` condition; once the target thaws,
/// the job catches up and the condition clears.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_target_shows_growing_lag_and_a_warning() {
    let mut setup = Setup::start().await;
    setup.both("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v INT)").await;
    let pid = setup.target.query_strings("SELECT @@pid_file").await.unwrap();
    let pid_file = pid[0].clone().expect("pid file");
    let pid = std::fs::read_to_string(&pid_file).expect("read pid").trim().to_string();
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[("FERRY_LAG_WARNING_SECONDS", "5")], &[]);
    setup.source.exec("INSERT INTO app.t VALUES (0, 0)").await.unwrap();
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;

    let resume = Resume(pid.clone());
    signal(&pid, "-STOP");
    let frozen = Instant::now();
    let mut seen: BTreeMap<&str, i64> = BTreeMap::new();
    let mut lags = Vec::new();
    let mut id = 1;
    loop {
        setup.source.exec(&format!("INSERT INTO app.t VALUES ({id}, {id})")).await.unwrap();
        id += 1;
        let status = setup.status();
        let inc = &status["incremental"];
        let (applied, head) = (&inc["applied"], &inc["sourceHead"]);
        if head.is_object() {
            let applied_at =
                (applied["file"].as_str().unwrap_or(""), applied["pos"].as_u64().unwrap_or(0));
            let head_at = (head["file"].as_str().unwrap_or(""), head["pos"].as_u64().unwrap_or(0));
            assert!(applied_at <= head_at, "applied above the source head: {status:#}");
        }
        let lag_seconds = inc["lagSeconds"].as_i64().unwrap_or(0);
        let lag_bytes = inc["lagBytes"].as_i64().unwrap_or(0);
        seen.insert("lagSeconds", lag_seconds);
        lags.push(lag_seconds);
        seen.insert("lagBytes", lag_bytes);
        let lagging = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Lagging" && c["status"] == "True");
        if lagging && lag_seconds >= 5 && lag_bytes > 0 {
            assert!(lags[0] < lag_seconds, "lag did not grow: {lags:?}");
            break;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(40),
            "no lag warning while the target is frozen: last {seen:?}\n{status:#}\n{}",
            setup.last_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    signal(&pid, "-CONT");
    drop(resume);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    setup.assert_same("app").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = setup.status();
        let cleared = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Lagging" && c["status"] == "False");
        if cleared && status["incremental"]["lagSeconds"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the warning did not clear: {status:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// Waits until the source's clock is past the second of the last DDL on `app`'s tables: rows
/// written from then on are logged after the source's definitions, which are then theirs.
async fn wait_past_source_ddl(setup: &Setup) {
    let sql = "SELECT UNIX_TIMESTAMP() > MAX(UNIX_TIMESTAMP(CREATE_TIME)) \
               FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app'";
    let deadline = Instant::now() + Duration::from_secs(10);
    while setup.source.query_strings(sql).await.unwrap() != [Some("1".to_string())] {
        assert!(Instant::now() < deadline, "the source clock does not move");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `SELECT columns FROM app.table` is the same on both sides (the tables may differ in layout).
async fn assert_same_columns(setup: &Setup, table: &str, columns: &str) {
    let sql = format!("SELECT CONCAT_WS('|', {columns}) FROM app.{table} ORDER BY id");
    let source = setup.source.query_strings(&sql).await.unwrap();
    let target = setup.target.query_strings(&sql).await.unwrap();
    assert!(!source.is_empty());
    assert_eq!(source, target, "app.{table}\n{}", setup.last_log());
}
