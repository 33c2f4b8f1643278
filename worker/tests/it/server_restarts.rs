//! The source and the target restarted while a FullAndIncremental job copies and then replicates
//! under a write load (keyless and foreign-key tables; DDL during replication): each restart is
//! either clean (SIGTERM, the server shuts down) or a crash (SIGKILL, the server recovers on
//! start), at random instants, several per run. Every run must end with the target equal to the
//! source, whole tables compared. CI runs one fixed seed; `FERRY_FAULT_RUNS=N` runs N more with
//! seeds from the clock, with MariaDB or MySQL sources and MariaDB or TiDB targets as the seed
//! chooses (each prints its seed, to replay one with `FERRY_FAULT_SEED`).

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use support::load::{self, Rng};
use support::{Setup, interrupt};

/// Seeds that run in CI (with a MariaDB source).
const SEEDS: &[u64] = &[0x5e7e_0001];

/// Rows in the table that gives the copy enough chunks to be restarted in the middle of.
const BULK_ROWS: u32 = 60_000;

/// Restarts per run: at most `COPY_RESTARTS` while the copy runs, the rest while replication
/// runs. Four cover each server with each way of stopping.
const RESTARTS: usize = 4;
const COPY_RESTARTS: usize = 2;

/// How long the copy may take, restarts and retries included.
const COPY_TIMEOUT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_replication_survive_clean_and_crash_restarts_of_both_servers() {
    for &seed in SEEDS {
        run_with_restarts(seed, SourceKind::MariaDb, TargetKind::MariaDb).await;
    }
    for seed in load::extra_fault_seeds() {
        let source = SourceKind::ALL[(seed % 2) as usize];
        run_with_restarts(seed, source, TargetKind::ALL[(seed / 2 % 2) as usize]).await;
    }
}

async fn run_with_restarts(seed: u64, source: SourceKind, target: TargetKind) {
    eprintln!("server restart run with FERRY_FAULT_SEED={seed} ({source} into {target})");
    let started = Instant::now();
    let mut setup = Setup::start_with_source(source, target).await;
    setup.source.exec(load::TABLES).await.expect("source tables");
    setup.source.exec(&bulk_rows()).await.expect("bulk rows");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", "2000")];
    let mut ferry = setup.spawn(&manifest, &envs, &["--concurrency", "4", "--retries", "50"]);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| tokio::spawn(load::writer_through_restarts(setup.source.opts(), w, stop.clone())))
        .collect();
    let mut restarts = Restarts::new(seed);

    // During the copy: the first restart once a chunk is done, so that it surely hits the copy.
    let in_stage = |name: &'static str| move |s: &serde_json::Value| s["stage"] == name;
    setup.wait_status("the Full stage", Duration::from_secs(60), in_stage("Full")).await;
    wait_for_a_chunk(&setup).await;
    for _ in 0..COPY_RESTARTS {
        if setup.status()["stage"] != "Full" {
            break;
        }
        restarts.one(&mut setup).await;
    }
    let during_copy = restarts.done.len();
    setup.wait_status("the Incremental stage", COPY_TIMEOUT, in_stage("Incremental")).await;
    let copied = started.elapsed();

    // During replication, with DDL as well.
    let ddl = tokio::spawn(ddl_through_restarts(setup.source.opts(), stop.clone()));
    while restarts.done.len() < RESTARTS {
        restarts.one(&mut setup).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut committed = 0;
    for writer in writers {
        committed += writer.await.expect("writer");
    }
    let ddl_done = ddl.await.expect("DDL");
    assert!(committed > 100, "seed {seed}: the load committed only {committed} transactions");

    setup.wait_caught_up(&mut ferry, Duration::from_secs(180)).await;
    assert!(interrupt(&mut ferry).success(), "seed {seed}:\n{}", setup.last_log());
    setup.assert_same("app").await;
    let log = setup.last_log();
    assert!(
        log.contains("retrying from the checkpoint"),
        "seed {seed}: restarts {:?} and no retry, so none hit Ferry:\n{log}",
        restarts.done
    );
    eprintln!(
        "seed {seed}: restarts {:?} ({during_copy} during the copy, which ended after {copied:?}), \
         {committed} transactions, {ddl_done} DDL statements, equal after {:?}",
        restarts.done,
        started.elapsed()
    );
}

/// `BULK_ROWS` rows in `app.bulk`, written in statements of a few thousand rows.
fn bulk_rows() -> String {
    let mut sql = String::from("CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(200));");
    let rows: Vec<String> = (1..=BULK_ROWS)
        .map(|n| format!("({n}, REPEAT('{}', 150))", (b'A' + (n % 26) as u8) as char))
        .collect();
    for part in rows.chunks(5000) {
        sql.push_str(&format!("INSERT INTO app.bulk VALUES {};", part.join(",")));
    }
    sql
}

/// Waits until the copy has finished a chunk (its snapshot is taken and rows are arriving).
async fn wait_for_a_chunk(setup: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.done_chunks().await < 1 {
        assert!(Instant::now() < deadline, "no chunk copied:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// DDL on the source every moment, through its restarts: a statement the server refuses or
/// loses (the server went down) is left at that; the source is the reference either way.
/// Returns how many statements ran.
async fn ddl_through_restarts(opts: mysql_async::Opts, stop: Arc<AtomicBool>) -> u64 {
    use mysql_async::prelude::Queryable;
    let mut ran = 0;
    for n in 0.. {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let sql = match n % 4 {
            0 => "ALTER TABLE app.acct ADD COLUMN extra INT NOT NULL DEFAULT 7".to_string(),
            1 => format!(
                "CREATE TABLE app.late{n} (id INT PRIMARY KEY, v INT); \
                 INSERT INTO app.late{n} VALUES (1, 1), (2, 2)"
            ),
            2 => "ALTER TABLE app.acct DROP COLUMN extra".to_string(),
            _ => format!("UPDATE app.late{} SET id = id + 10", n - 2),
        };
        let Ok(mut conn) = mysql_async::Conn::new(opts.clone()).await else { continue };
        if conn.query_drop(sql).await.is_ok() {
            ran += 1;
        }
        drop(conn.disconnect().await);
    }
    ran
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Source,
    Target,
}

#[derive(Debug, Clone, Copy)]
enum How {
    /// SIGTERM: the server shuts down cleanly.
    Clean,
    /// SIGKILL: the server crashes and recovers when started.
    Crash,
}

/// Restarts at random instants; every four in a row cover each side with each way, in an order
/// the seed chooses.
struct Restarts {
    rng: Rng,
    plan: Vec<(Side, How)>,
    done: Vec<(Side, How)>,
}

impl Restarts {
    fn new(seed: u64) -> Restarts {
        Restarts { rng: Rng(seed | 1), plan: Vec::new(), done: Vec::new() }
    }

    fn next(&mut self) -> (Side, How) {
        if self.plan.is_empty() {
            self.plan = vec![
                (Side::Source, How::Clean),
                (Side::Source, How::Crash),
                (Side::Target, How::Clean),
                (Side::Target, How::Crash),
            ];
        }
        let at = self.rng.below(self.plan.len() as u64) as usize;
        self.plan.swap_remove(at)
    }

    /// After a random pause, stops one server, leaves it down for a random moment and starts it
    /// again (waiting until it answers).
    async fn one(&mut self, setup: &mut Setup) {
        tokio::time::sleep(Duration::from_millis(300 + self.rng.below(1500))).await;
        let (side, how) = self.next();
        let down = Duration::from_millis(self.rng.below(1500));
        let result = match side {
            Side::Source => {
                match how {
                    How::Clean => setup.source.stop().await.expect("stop the source"),
                    How::Crash => setup.source.kill(),
                }
                tokio::time::sleep(down).await;
                setup.source.restart().await
            }
            Side::Target => {
                match how {
                    How::Clean => setup.target.stop().await.expect("stop the target"),
                    How::Crash => setup.target.kill(),
                }
                tokio::time::sleep(down).await;
                setup.target.restart().await
            }
        };
        if let Err(e) = result {
            panic!("restart the {side:?} after a {how:?} stop: {e}");
        }
        self.done.push((side, how));
    }
}
