//! Catching up by merging (issue 19): replication started after a burst of writes applies many
//! source transactions per target transaction, collapsing repeated changes of one row (insert
//! then updates, update chains, insert then delete, unique values swapped across transactions,
//! duplicate rows of a table without a key), and the target ends equal to the source; killed in
//! the middle of merged transactions and resumed without safe mode, nothing is lost or doubled.

use crate::support;

use std::time::Duration;

use ferry_harness::{SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::load::{self, Rng};
use support::{Setup, interrupt, wait_exit};

/// Tables of the deterministic burst, beside [`load::TABLES`] (which seeds `app.slots`).
const BURST_TABLES: &str = "
CREATE TABLE app.burst (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20));
CREATE TABLE app.dups (a INT, b VARCHAR(20));
";

/// Source transactions, one per statement (autocommit), that change the same rows again and
/// again: each round inserts a row then updates it three times, deletes every third, inserts
/// and deletes a duplicate of a keyless row, and swaps two rows' unique slots across three
/// transactions.
fn burst_round(r: u64) -> String {
    let (s1, s2) = (1 + r % 20, 1 + (r + 7) % 20);
    let mut sql = format!(
        "INSERT INTO app.burst VALUES ({r}, 0, 'n{r}');
         UPDATE app.burst SET v = v + 1 WHERE id = {r};
         UPDATE app.burst SET v = v + 1, note = 'u{r}' WHERE id = {r};
         UPDATE app.burst SET v = v * 10 WHERE id = {r} OR id = {};
         INSERT INTO app.dups VALUES ({}, 'dup');
         INSERT INTO app.dups VALUES ({}, 'dup');
         DELETE FROM app.dups WHERE a = {} AND b = 'dup' LIMIT 1;
         UPDATE app.dups SET b = 'moved' WHERE a = {} LIMIT 1;",
        r / 2,
        r % 7,
        r % 7,
        r % 7,
        (r + 3) % 7,
    );
    if r.is_multiple_of(3) {
        sql.push_str(&format!("DELETE FROM app.burst WHERE id = {r};"));
    }
    if s1 != s2 {
        sql.push_str(&format!(
            "SELECT slot INTO @a FROM app.slots WHERE id = {s1};
             SELECT slot INTO @b FROM app.slots WHERE id = {s2};
             UPDATE app.slots SET slot = -1 WHERE id = {s1};
             UPDATE app.slots SET slot = @a WHERE id = {s2};
             UPDATE app.slots SET slot = @b WHERE id = {s1};"
        ));
    }
    sql
}

/// Writes the burst and the concurrent mixed load on the source while nothing replicates;
/// returns how many source transactions that made, about.
async fn write_backlog(setup: &Setup, rounds: u64, load_for: Duration) -> u64 {
    let mut conn = setup.source.conn().await.expect("source conn");
    for chunk in (0..rounds).collect::<Vec<_>>().chunks(20) {
        let sql: String = chunk.iter().map(|&r| burst_round(r)).collect();
        conn.query_drop(sql).await.expect("burst");
    }
    let committed = load::run(&setup.source, 4, load_for).await;
    assert!(committed > 200, "the load committed only {committed} transactions");
    rounds * 10 + committed
}

/// `key=N` from the log line that reports the merge counts.
fn logged_count(log: &str, key: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("source transactions applied in target"))?;
    let after = line.split_once(&format!("{key}="))?.1;
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_merged_and_ends_equal() {
    merged_catch_up(TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_is_merged_into_tidb_and_ends_equal() {
    merged_catch_up(TargetKind::TiDb).await;
}

async fn merged_catch_up(kind: TargetKind) {
    let mut setup = Setup::start_with(kind).await;
    setup.both(load::TABLES).await;
    setup.both(BURST_TABLES).await;
    let start = setup.source_head().await;
    let written = write_backlog(&setup, 300, Duration::from_secs(5)).await;

    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "2"]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(180)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());

    let log = setup.last_log();
    let source = logged_count(&log, "source_transactions").expect("merge counts in the log");
    let target = logged_count(&log, "target_transactions").expect("merge counts in the log");
    eprintln!("{kind:?}: {source} source transactions in {target} target transactions");
    assert!(source >= written / 2, "only {source} of about {written} transactions applied");
    // Transaction at a time, both would be equal.
    assert!(
        source >= 3 * target,
        "{source} source transactions took {target} target transactions: not merged"
    );
}

/// Kills `ferry migrate` at random instants while it merges a backlog, then resumes; safe mode
/// is off, so a transaction applied twice would fail on its duplicate key or double a row of
/// the keyless tables, and one lost would leave the tables different.
#[tokio::test(flavor = "multi_thread")]
async fn killed_while_merging_resumes_exactly_once() {
    let mut setup = Setup::start().await;
    setup.both(load::TABLES).await;
    setup.both(BURST_TABLES).await;
    let start = setup.source_head().await;
    write_backlog(&setup, 1500, Duration::from_secs(8)).await;
    let head = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "  safeModeDuration: 0s");

    let mut rng = Rng(0x51_7cc1_b727_220a);
    let mut kills_mid_backlog = 0;
    let mut last = None;
    for kill in 0..4 {
        let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "2"]);
        // Kill once this run has applied something, at a random instant after that.
        wait_for_progress(&setup, &mut ferry, &last).await;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(600))).await;
        if let Ok(Some(status)) = ferry.try_wait() {
            panic!("ferry exited with {status} before kill {kill}:\n{}", setup.last_log());
        }
        ferry.kill().expect("SIGKILL");
        wait_exit(&mut ferry, Duration::from_secs(10));
        last = setup.checkpoint().await;
        if let Some((file, pos, _)) = &last
            && (file.clone(), *pos) < head
        {
            kills_mid_backlog += 1;
        }
    }
    assert!(kills_mid_backlog > 0, "every kill came after the backlog was applied");

    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "2"]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(180)).await;
    setup.assert_same("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
    let log = setup.last_log();
    let source = logged_count(&log, "source_transactions").expect("merge counts in the log");
    let target = logged_count(&log, "target_transactions").expect("merge counts in the log");
    assert!(source > target, "the resumed run did not merge: {source} in {target}");
}

/// Waits until the checkpoint moves past `last` (the previous run's), or the run exits.
async fn wait_for_progress(
    setup: &Setup,
    ferry: &mut std::process::Child,
    last: &Option<(String, u64, String)>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let position = |c: &Option<(String, u64, String)>| c.as_ref().map(|(f, p, _)| (f.clone(), *p));
    loop {
        let now = setup.checkpoint().await;
        if now.is_some() && position(&now) > position(last) {
            return;
        }
        if let Ok(Some(status)) = ferry.try_wait() {
            panic!("ferry exited with {status}:\n{}", setup.last_log());
        }
        assert!(std::time::Instant::now() < deadline, "no progress in 60 s:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
