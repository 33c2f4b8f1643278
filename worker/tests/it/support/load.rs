//! A concurrent write load for the parallel apply tests: several writers on the source change
//! the same few keys (update chains), move primary keys, delete and reinsert rows, swap unique
//! values between rows, change parents and children linked by cascading foreign keys, write a
//! table without a key and a table with a case-insensitive key, while DDL runs in the middle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_harness::SqlServer;
use mysql_async::prelude::Queryable;

/// The tables, created and seeded on both sides before the job starts. The database's collation
/// and the foreign key's name are spelled out: left to each server, MariaDB and TiDB choose
/// different ones (utf8mb4_general_ci vs utf8mb4_bin, child_ibfk_1 vs fk_1).
pub const TABLES: &str = "
CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE TABLE app.acct (id INT PRIMARY KEY, bal BIGINT NOT NULL, code VARCHAR(20) NOT NULL,
  UNIQUE KEY (code));
CREATE TABLE app.slots (id INT PRIMARY KEY, slot INT NOT NULL, UNIQUE KEY (slot));
CREATE TABLE app.comp (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (a, b));
CREATE TABLE app.ci (name VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)
  DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_general_ci;
CREATE TABLE app.parent (id INT PRIMARY KEY, name VARCHAR(20));
CREATE TABLE app.child (id INT PRIMARY KEY, parent_id INT, v INT,
  CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES app.parent (id)
  ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE app.nokey (a INT, b VARCHAR(20));
INSERT INTO app.slots VALUES (1,1),(2,2),(3,3),(4,4),(5,5),(6,6),(7,7),(8,8),(9,9),(10,10),
  (11,11),(12,12),(13,13),(14,14),(15,15),(16,16),(17,17),(18,18),(19,19),(20,20);
";

/// A small deterministic generator (no extra dependency for tests).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One source transaction of writer `w`, step `i`.
fn transaction(rng: &mut Rng, w: u64, i: u64) -> String {
    let (k, k2) = (rng.below(30), rng.below(30));
    let (s1, s2) = (1 + rng.below(20), 1 + rng.below(20));
    let (p, c) = (rng.below(12), rng.below(40));
    let case = ["ab", "AB", "Ab", "aB", "cd", "CD"][rng.below(6) as usize];
    let body = match rng.below(9) {
        0 => format!(
            "INSERT INTO app.acct (id, bal, code) VALUES ({k}, 1, 'c{k}') \
             ON DUPLICATE KEY UPDATE bal = bal + 1;
             UPDATE app.acct SET bal = bal * 2 WHERE id = {k2}"
        ),
        // Primary keys move, unique values move between rows.
        1 => format!(
            "UPDATE IGNORE app.acct SET id = id + 30 WHERE id = {k};
             UPDATE IGNORE app.acct SET id = id - 30 WHERE id = {};
             UPDATE IGNORE app.acct SET code = 'c{k}' WHERE id = {k2}",
            k2 + 30
        ),
        2 => format!(
            "DELETE FROM app.acct WHERE id = {k}; INSERT IGNORE INTO app.acct VALUES ({k}, {i}, 'r{k}')"
        ),
        // Two rows swap their unique slots through a temporary value.
        3 if s1 != s2 => format!(
            "SELECT slot INTO @a FROM app.slots WHERE id = {s1} FOR UPDATE;
             SELECT slot INTO @b FROM app.slots WHERE id = {s2} FOR UPDATE;
             UPDATE app.slots SET slot = -1000 - {w} WHERE id = {s1};
             UPDATE app.slots SET slot = @a WHERE id = {s2};
             UPDATE app.slots SET slot = @b WHERE id = {s1}"
        ),
        4 => format!(
            "INSERT INTO app.comp VALUES ({k}, 'b{w}', {i}) ON DUPLICATE KEY UPDATE v = v + 1;
             UPDATE IGNORE app.comp SET b = CONCAT(b, 'x') WHERE a = {k2} AND LENGTH(b) < 6;
             DELETE FROM app.comp WHERE a = {k} AND LENGTH(b) >= 6"
        ),
        5 => format!(
            "INSERT INTO app.ci VALUES ('{case}', {i}) ON DUPLICATE KEY UPDATE v = {i}, name = '{case}';
             DELETE FROM app.ci WHERE name = '{}' AND v % 5 = 0",
            case.to_lowercase()
        ),
        6 => format!(
            "INSERT INTO app.parent VALUES ({p}, 'p{i}') ON DUPLICATE KEY UPDATE name = 'u{i}';
             INSERT IGNORE INTO app.child VALUES ({c}, {p}, {i});
             UPDATE app.child SET v = v + 1 WHERE parent_id = {p}"
        ),
        7 => match rng.below(3) {
            0 => format!("DELETE FROM app.parent WHERE id = {p}"),
            1 => format!("UPDATE IGNORE app.parent SET id = {} WHERE id = {p}", p + 12),
            _ => format!("UPDATE app.parent SET id = {p} WHERE id = {}", p + 12),
        },
        _ => format!(
            "INSERT INTO app.nokey VALUES ({k}, 'w{w}');
             DELETE FROM app.nokey WHERE a = {k2} LIMIT 1;
             UPDATE app.nokey SET b = 'u{i}' WHERE a = {k} LIMIT 1"
        ),
    };
    format!("BEGIN; {body}; COMMIT")
}

/// Runs writer `w` until `stop`; returns how many transactions committed.
pub async fn writer(conn: mysql_async::Conn, w: u64, stop: Arc<AtomicBool>) -> u64 {
    // Deadlocks, missing parents, duplicates: the source rolls back, nothing to apply.
    run_writer(conn, w, stop, transaction, "ROLLBACK").await
}

/// Runs writer `w` on the transactions `make(rng, w, i)` until `stop`; a transaction the server
/// refuses is undone with `rollback`. Returns how many transactions committed.
pub async fn run_writer(
    mut conn: mysql_async::Conn,
    w: u64,
    stop: Arc<AtomicBool>,
    make: fn(&mut Rng, u64, u64) -> String,
    rollback: &str,
) -> u64 {
    let mut rng = writer_rng(w);
    let mut committed = 0;
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        match conn.query_drop(make(&mut rng, w, i)).await {
            Ok(()) => committed += 1,
            Err(mysql_async::Error::Server(_)) => {
                conn.query_drop(rollback).await.expect("rollback");
            }
            Err(e) => panic!("writer {w}: {e}"),
        }
    }
    committed
}

/// Each writer's own sequence of transactions.
fn writer_rng(w: u64) -> Rng {
    Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1).wrapping_mul(0x2545_f491_4f6c_dd1d))
}

/// Runs writer `w` (the transactions of [`writer`]) on the server at `opts` until `stop`, while
/// the server is restarted or killed: a lost connection is made again once the server answers.
/// A transaction in flight when the server went down may or may not have committed; the source
/// is the reference either way. Returns how many transactions committed.
pub async fn writer_through_restarts(
    opts: mysql_async::Opts,
    w: u64,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut rng = writer_rng(w);
    let mut conn: Option<mysql_async::Conn> = None;
    let (mut committed, mut i) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        let Some(open) = conn.as_mut() else {
            conn = mysql_async::Conn::new(opts.clone()).await.ok();
            if conn.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        i += 1;
        match open.query_drop(transaction(&mut rng, w, i)).await {
            Ok(()) => committed += 1,
            Err(mysql_async::Error::Server(_)) if open.query_drop("ROLLBACK").await.is_ok() => {}
            // The server went away (or is shutting down): connect again.
            Err(_) => conn = None,
        }
    }
    committed
}

/// The seeds of fault runs besides a test's fixed CI seeds: `FERRY_FAULT_SEED` alone (to replay
/// a run), or `FERRY_FAULT_RUNS` seeds from the clock (each run prints its seed).
pub fn extra_fault_seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("FERRY_FAULT_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let runs: u64 =
        std::env::var("FERRY_FAULT_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (0..runs).map(|n| clock.wrapping_add(n.wrapping_mul(0x9e37_79b9))).collect()
}

/// DDL while the writers run: a column added and dropped, a table created and filled.
pub async fn ddl(source: &impl SqlServer, stop: Arc<AtomicBool>) {
    let steps = [
        "ALTER TABLE app.acct ADD COLUMN extra INT NOT NULL DEFAULT 7",
        "CREATE TABLE app.late (id INT PRIMARY KEY, v INT); INSERT INTO app.late VALUES (1, 1), (2, 2)",
        "ALTER TABLE app.acct DROP COLUMN extra",
        "UPDATE app.late SET id = id + 10",
    ];
    for sql in steps {
        tokio::time::sleep(Duration::from_millis(700)).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        source.exec(sql).await.expect("DDL on the source");
    }
}

/// Runs `writers` writers and the DDL for `duration`; returns the committed transactions.
pub async fn run(source: &impl SqlServer, writers: u64, duration: Duration) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let conn = source.conn().await.expect("source conn");
        tasks.push(tokio::spawn(writer(conn, w, stop.clone())));
    }
    let ddl_stop = stop.clone();
    let ddl = async move {
        ddl(source, ddl_stop).await;
    };
    let timer = async {
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(ddl, timer);
    let mut committed = 0;
    for task in tasks {
        committed += task.await.expect("writer");
    }
    committed
}

/// Replicates `run`'s load with four workers into a target of `kind` while it is written, and
/// waits until the target is equal; returns the still running `ferry migrate`.
pub async fn replicate_concurrently(
    kind: ferry_harness::TargetKind,
    catch_up: Duration,
) -> (super::Setup, std::process::Child) {
    let mut setup = super::Setup::start_with(kind).await;
    setup.both(TABLES).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);

    let committed = run(&setup.source, 4, Duration::from_secs(8)).await;
    assert!(committed > 200, "the load committed only {committed} transactions");
    setup.wait_caught_up(&mut ferry, catch_up).await;
    setup.assert_same("app").await;
    (setup, ferry)
}
