//! Network faults between Ferry and its servers while a FullAndIncremental job copies and then
//! replicates under a write load with DDL, keyless and foreign-key tables: a fault proxy on each
//! side (see `ferry_harness::fault`) resets every connection, adds latency or holds all traffic at
//! random instants. Every run must end with the target equal to the source. CI runs fixed seeds;
//! `FERRY_FAULT_RUNS=N` runs N more with seeds from the clock (printed, to replay one with
//! `FERRY_FAULT_SEED`).

use crate::support;

use std::time::{Duration, Instant};

use ferry_harness::{Direction, FaultProxy, Faults, SqlServer};
use support::load::{self, Rng};
use support::{Setup, interrupt};

/// Seeds that run in CI.
const SEEDS: &[u64] = &[0x5eed_0001];

/// Rows in the table that gives the copy several chunks of work.
const BULK_ROWS: u32 = 40_000;

/// How long the copy may take, retries included.
const COPY_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_replication_survive_resets_latency_and_partitions() {
    for &seed in SEEDS {
        run_with_faults(seed).await;
    }
    for seed in load::extra_fault_seeds() {
        run_with_faults(seed).await;
    }
}

async fn run_with_faults(seed: u64) {
    eprintln!("network fault run with FERRY_FAULT_SEED={seed}");
    let mut setup = Setup::start().await;
    setup.source.exec(load::TABLES).await.expect("source tables");
    setup.source.exec(&bulk_rows()).await.expect("bulk rows");
    let source_proxy = FaultProxy::start(setup.source.port()).await.expect("source proxy");
    let target_proxy = FaultProxy::start(setup.target.port()).await.expect("target proxy");
    setup.route_through(source_proxy.port(), target_proxy.port());
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4", "--retries", "30"]);

    let proxies = [&source_proxy, &target_proxy];
    let mut chaos = Chaos { rng: Rng(seed | 1), injected: 0, resets: 0 };
    // The copy under faults, then replication under faults and the write load. (The load starts
    // after the copy: its DDL on a table being copied fails the copy, a separate limitation.)
    let stage = |name: &'static str| move |s: &serde_json::Value| s["stage"] == name;
    setup.wait_status("the Full stage", Duration::from_secs(60), stage("Full")).await;
    let copied = setup.wait_status("the Incremental stage", COPY_TIMEOUT, stage("Incremental"));
    tokio::join!(chaos.inject(proxies, Duration::from_secs(3)), copied);
    let (committed, ()) = tokio::join!(
        load::run(&setup.source, 3, Duration::from_secs(10)),
        chaos.inject(proxies, Duration::from_secs(10))
    );
    let injected = chaos.injected;
    assert!(committed > 100, "seed {seed}: the load committed only {committed} transactions");
    for proxy in [&source_proxy, &target_proxy] {
        proxy.set(Faults::default());
    }
    setup.wait_caught_up(&mut ferry, Duration::from_secs(180)).await;
    assert!(interrupt(&mut ferry).success(), "seed {seed}:\n{}", setup.last_log());
    setup.assert_same("app").await;
    let log = setup.last_log();
    assert!(
        log.contains("retrying from the checkpoint"),
        "seed {seed}: {injected} faults and no retry, so none hit Ferry:\n{log}"
    );
}

/// Random faults on random sides.
struct Chaos {
    rng: Rng,
    injected: u32,
    /// Resets so far, limited so that the job's retry backoff (1 s doubling) stays short.
    resets: u32,
}

impl Chaos {
    /// For `duration`, at random instants: reset every connection through one proxy, add
    /// latency, or hold one side's traffic for up to two seconds. The first fault of a run is
    /// always a reset, so that every run tests a retry.
    async fn inject(&mut self, proxies: [&FaultProxy; 2], duration: Duration) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(300 + self.rng.below(1200))).await;
            let proxy = proxies[self.rng.below(2) as usize];
            let kind = if self.injected == 0 { 0 } else { self.rng.below(3) };
            match kind {
                0 if self.resets < 4 => {
                    proxy.cut_all();
                    self.resets += 1;
                }
                1 => proxy.set(Faults {
                    latency: Duration::from_millis(2 + self.rng.below(30)),
                    ..Faults::default()
                }),
                _ => {
                    proxy.set(Faults { blackhole: true, ..Faults::default() });
                    tokio::time::sleep(Duration::from_millis(200 + self.rng.below(1800))).await;
                    proxy.set(Faults::default());
                }
            }
            self.injected += 1;
        }
    }
}

/// Seeds of the slow-link run in CI.
const LINK_SEEDS: &[u64] = &[0x5eed_0101];

/// Bytes a second each connection gets through either proxy while the copy runs: slow enough
/// that the copy takes several seconds, and resets land inside its statements and results.
const COPY_BANDWIDTH: u64 = 3 << 20;

/// How long a fault that needs traffic may wait for it.
const FAULT_HIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The copy over bandwidth-limited links, one source connection reset in the middle of a chunk's
/// result and one target connection in the middle of a multi-row statement; then replication
/// under the write load with the source's connections made half-open (the socket stays up,
/// nothing arrives: only deadlines can tell, and Ferry must reconnect), a target connection
/// reset in the middle of a statement and a bandwidth squeeze. The target must end equal.
#[tokio::test(flavor = "multi_thread")]
async fn copy_and_replication_survive_slow_links_byte_resets_and_half_open_streams() {
    for &seed in LINK_SEEDS {
        run_with_link_faults(seed).await;
    }
    for seed in load::extra_fault_seeds() {
        run_with_link_faults(seed).await;
    }
}

async fn run_with_link_faults(seed: u64) {
    eprintln!("link fault run with FERRY_FAULT_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng(seed | 1);
    let mut setup = Setup::start().await;
    setup.source.exec(load::TABLES).await.expect("source tables");
    setup.source.exec(&bulk_rows()).await.expect("bulk rows");
    let source_proxy = FaultProxy::start(setup.source.port()).await.expect("source proxy");
    let target_proxy = FaultProxy::start(setup.target.port()).await.expect("target proxy");
    let slow = Faults { bandwidth: Some(COPY_BANDWIDTH), ..Faults::default() };
    source_proxy.set(slow);
    target_proxy.set(slow);
    setup.route_through(source_proxy.port(), target_proxy.port());
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", "4000")];
    let mut ferry = setup.spawn(&manifest, &envs, &["--concurrency", "4", "--retries", "30"]);

    let stage = |name: &'static str| move |s: &serde_json::Value| s["stage"] == name;
    setup.wait_status("the Full stage", Duration::from_secs(60), stage("Full")).await;
    // Mid-result: a chunk's rows stop part way; mid-statement: a REPLACE is cut part way.
    let mid_result = (Direction::ToClient, 100_000 + rng.below(400_000));
    reset_once(&setup, &source_proxy, slow, mid_result).await;
    let mid_statement = (Direction::ToServer, 100_000 + rng.below(400_000));
    reset_once(&setup, &target_proxy, slow, mid_statement).await;
    source_proxy.set(Faults::default());
    target_proxy.set(Faults::default());
    setup.wait_status("the Incremental stage", COPY_TIMEOUT, stage("Incremental")).await;
    let copied = started.elapsed();

    // The half-open stream first, while nothing else restarts the job: the stream is open once
    // the checkpoint moves, and only its silence deadline ends it.
    let faults = async {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
        wait_checkpoint_moves(&setup).await;
        half_open_once(&setup, &source_proxy).await;
        // The stream's silence deadline, or the bound on the loop's source queries.
        wait_log(&setup, "is taken as lost", Duration::from_secs(90)).await;
        let tiny = (Direction::ToServer, 200 + rng.below(5_000));
        reset_once(&setup, &target_proxy, Faults::default(), tiny).await;
        target_proxy.set(Faults { bandwidth: Some(20_000), ..Faults::default() });
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(2000))).await;
        target_proxy.set(Faults::default());
    };
    let (committed, ()) =
        tokio::join!(load::run(&setup.source, 3, Duration::from_secs(12)), faults);
    assert!(committed > 100, "seed {seed}: the load committed only {committed} transactions");
    setup.wait_caught_up(&mut ferry, Duration::from_secs(180)).await;
    assert!(interrupt(&mut ferry).success(), "seed {seed}:\n{}", setup.last_log());
    setup.assert_same("app").await;
    eprintln!(
        "seed {seed}: byte resets source {} target {}, half-open source connections {}, copy \
         done after {copied:?}, {committed} transactions, equal after {:?}",
        source_proxy.byte_resets(),
        target_proxy.byte_resets(),
        source_proxy.half_opened(),
        started.elapsed()
    );
}

/// `BULK_ROWS` rows in `app.bulk`, filled on the source itself.
fn bulk_rows() -> String {
    format!(
        "CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(200)); \
         INSERT INTO app.bulk SELECT seq, REPEAT(CHAR(65 + seq % 26), 150) \
         FROM app.seq_1_to_{BULK_ROWS}"
    )
}

/// Sets a reset after some bytes one way on top of `base`, waits until a connection is reset by
/// it, and puts `base` back.
async fn reset_once(setup: &Setup, proxy: &FaultProxy, base: Faults, after: (Direction, u64)) {
    let before = proxy.byte_resets();
    proxy.set(Faults { reset_after: Some(after), ..base });
    let deadline = Instant::now() + FAULT_HIT_TIMEOUT;
    while proxy.byte_resets() == before {
        assert!(
            Instant::now() < deadline,
            "no connection carried {after:?} bytes within {FAULT_HIT_TIMEOUT:?}:\n{}",
            setup.last_log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.set(base);
}

/// Makes the source's connections that receive anything for a moment half-open: the binlog
/// stream (a heartbeat a second at least) among them, and the replication loop's own source
/// connection when it reads column names then.
async fn half_open_once(setup: &Setup, proxy: &FaultProxy) {
    proxy.set(Faults { half_open: Some(Direction::ToClient), ..Faults::default() });
    let deadline = Instant::now() + FAULT_HIT_TIMEOUT;
    while proxy.half_opened() == 0 {
        assert!(Instant::now() < deadline, "no source traffic to stop:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Past a heartbeat, so that the stream is among them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set(Faults::default());
}

/// Waits until the replication checkpoint on the target moves: the binlog stream delivers.
async fn wait_checkpoint_moves(setup: &Setup) {
    let first = setup.checkpoint().await;
    let deadline = Instant::now() + FAULT_HIT_TIMEOUT;
    while setup.checkpoint().await == first {
        assert!(Instant::now() < deadline, "the checkpoint never moved:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until Ferry's log says `what`.
async fn wait_log(setup: &Setup, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !setup.last_log().contains(what) {
        assert!(Instant::now() < deadline, "the log never said {what:?}:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
