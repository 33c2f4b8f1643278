//! Edits of a replicating job's selection through `ferry migrate`: the job replicates two tables
//! under a write load, stops, and runs again with a manifest whose `objects` take a whole
//! database (a pattern newly matching tables with rows that the writers keep changing) and
//! leave another table out. The added tables are copied chunk by chunk while replication goes
//! on, and the target ends equal to the source, whole tables compared; a run killed in the
//! middle of that copy resumes it. The table left out stops being replicated and keeps its rows.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_harness::{SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::load::Rng;
use support::{JOB_KEY, Setup};

const TABLES: &str = "
CREATE DATABASE app;
USE app;
CREATE TABLE app.kept (id INT PRIMARY KEY, v INT NOT NULL);
INSERT INTO app.kept SELECT seq, 0 FROM seq_1_to_2000;
CREATE TABLE app.added (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40),
  UNIQUE KEY note (note));
INSERT INTO app.added SELECT seq, seq % 7, CONCAT('n', seq) FROM seq_1_to_20000;
CREATE TABLE app.added_nokey (a INT, b VARCHAR(20));
INSERT INTO app.added_nokey SELECT seq % 50, 'x' FROM seq_1_to_3000;
CREATE DATABASE old;
USE old;
CREATE TABLE old.gone (id INT PRIMARY KEY, v INT NOT NULL);
INSERT INTO old.gone SELECT seq, 0 FROM seq_1_to_500;
";

/// One source transaction: changes all over the added table's keys (rows copied already and
/// rows not copied yet), key moves, unique values taken from other rows, the keyless table, and
/// transactions spanning a replicated table and an added one.
fn transaction(rng: &mut Rng, w: u64, i: u64) -> String {
    let (k, k2) = (1 + rng.below(24_000), 1 + rng.below(2_000));
    let body = match rng.below(8) {
        0 => format!("INSERT INTO app.kept VALUES ({k2}, 1) ON DUPLICATE KEY UPDATE v = v + 1"),
        1 => format!("UPDATE app.added SET v = v + 1, note = CONCAT('w{w}-', {i}) WHERE id = {k}"),
        2 => format!("DELETE FROM app.added WHERE id = {k}"),
        3 => format!(
            "INSERT INTO app.added VALUES ({k}, {i}, NULL) ON DUPLICATE KEY UPDATE v = v + 1"
        ),
        4 => format!("UPDATE app.added SET id = id + 30000 WHERE id = {k}"),
        5 => format!(
            "INSERT INTO app.added_nokey VALUES ({}, 'w{w}'); \
             DELETE FROM app.added_nokey WHERE a = {} LIMIT 1",
            rng.below(50),
            rng.below(50)
        ),
        6 => format!("UPDATE old.gone SET v = v + 1 WHERE id = {}", 1 + rng.below(500)),
        _ => format!(
            "UPDATE app.kept SET v = v + 1 WHERE id = {k2}; \
             UPDATE app.added SET v = v - 1 WHERE id = {k}"
        ),
    };
    format!("BEGIN; {body}; COMMIT")
}

/// Runs writer `w` until `stop`, pausing between transactions so that replication keeps up on
/// a loaded machine (a background copy moves only as fast as replication catches up with the
/// source). Returns how many transactions committed.
async fn writer(mut conn: mysql_async::Conn, w: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let (mut committed, mut i) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        match conn.query_drop(transaction(&mut rng, w, i)).await {
            Ok(()) => committed += 1,
            // A key move onto a taken key, a unique value taken: nothing to replicate.
            Err(mysql_async::Error::Server(_)) => {
                conn.query_drop("ROLLBACK").await.expect("rollback")
            }
            Err(e) => panic!("writer {w}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    committed
}

/// The job's tables whose background copy is not done.
async fn backfilling(setup: &Setup) -> u64 {
    let mut conn = setup.target.conn().await.expect("target conn");
    conn.query_first::<u64, _>(format!(
        "SELECT COUNT(*) FROM ferry_meta.backfill_tables WHERE job = {JOB_KEY}"
    ))
    .await
    .ok()
    .flatten()
    .unwrap_or(0)
}

/// Waits until `done` holds, failing if ferry exits first or `timeout` passes.
async fn wait_for<F, Fut>(setup: &Setup, ferry: &mut std::process::Child, what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(240);
    while !done().await {
        if let Ok(Some(status)) = ferry.try_wait() {
            panic!("ferry exited with {status} before {what}:\n{}", setup.last_log());
        }
        assert!(Instant::now() < deadline, "not {what} in time:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn widened_selection_is_copied_while_replicating(kind: TargetKind, kill: bool) {
    let mut setup = Setup::start_with(kind).await;
    setup.source.exec(TABLES).await.expect("load the source");
    let envs = [
        ("FERRY_CHUNK_ROWS", "2500"),
        ("FERRY_LOG", "info,ferry_worker::incremental::backfill=debug"),
    ];
    let args = ["--concurrency", "2"];
    let first = setup.manifest(
        "FullAndIncremental",
        "    tables:\n    - {database: app, table: kept}\n    - {database: old, table: gone}",
    );
    let mut ferry = setup.spawn(&first, &envs, &args);

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let conn = setup.source.conn().await.expect("source conn");
        writers.push(tokio::spawn(writer(conn, w, stop.clone())));
    }
    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    assert!(support::interrupt(&mut ferry).success(), "{}", setup.last_log());

    // The whole of `app` now, and `old.gone` no more.
    let edited = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut ferry = setup.spawn(&edited, &envs, &args);
    setup.source.exec("INSERT INTO old.gone VALUES (1000000, 1)").await.expect("marker row");
    wait_for(&setup, &mut ferry, "copying a chunk of the added tables", || async {
        setup.done_chunks().await >= 3
    })
    .await;
    let head_at_start = setup.source_head().await;
    if kill {
        ferry.kill().expect("SIGKILL ferry");
        ferry.wait().expect("reap ferry");
        let done = setup.done_chunks().await;
        assert!(backfilling(&setup).await > 0, "killed after the copy ended: nothing to resume");
        ferry = setup.spawn(&edited, &envs, &args);
        let log = setup.last_log();
        wait_for(&setup, &mut ferry, "resuming the copy", || async {
            setup.last_log().contains("copying a table added to the selection")
        })
        .await;
        assert!(setup.done_chunks().await >= done, "chunks done before the kill were lost\n{log}");
    }
    wait_for(&setup, &mut ferry, "done copying the added tables", || async {
        backfilling(&setup).await == 0
    })
    .await;
    let head_at_end = setup.source_head().await;
    let log: String = (1..=4).map(|run| setup.log(run)).collect();
    for table in ["`app`.`added`", "`app`.`added_nokey`"] {
        let copied = format!(
            "table added to the selection is copied; it is replicated from now on table={table}"
        );
        assert!(log.contains(&copied), "{table} not copied in the background:\n{log}");
    }
    assert_ne!(head_at_start, head_at_end, "no source writes while the added tables were copied");

    stop.store(true, Ordering::Relaxed);
    let mut committed = 0;
    for writer in writers {
        committed += writer.await.expect("writer");
    }
    assert!(committed > 100, "the load committed only {committed} transactions");
    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    setup.assert_same("app").await;

    // The removed table keeps its rows on the target, without the changes made since.
    let mut target = setup.target.conn().await.expect("target conn");
    let rows: Option<(u64, u64)> = target
        .query_first("SELECT COUNT(*), SUM(id = 1000000) FROM old.gone")
        .await
        .expect("read old.gone on the target");
    assert_eq!(rows, Some((500, 0)), "old.gone changed on the target after it was removed");
    assert!(support::interrupt(&mut ferry).success(), "{}", setup.last_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn widened_selection_is_copied_while_replicating_into_tidb() {
    widened_selection_is_copied_while_replicating(TargetKind::TiDb, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn widened_selection_copy_resumes_after_a_kill_into_tidb() {
    widened_selection_is_copied_while_replicating(TargetKind::TiDb, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn widened_selection_is_copied_while_replicating_into_mariadb() {
    widened_selection_is_copied_while_replicating(TargetKind::MariaDb, true).await;
}
