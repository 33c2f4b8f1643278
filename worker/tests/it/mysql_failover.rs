//! A failover of a MySQL source, as RDS and Aurora users live it: a second MySQL replicates from
//! the first (real replication, GTID auto-positioning), Ferry copies and replicates from the first
//! under a write load, the first stops, the replica is promoted and the job's source is switched
//! to it. Binlog files and offsets differ between the two servers; the job resumes from its GTID
//! set and the target ends equal to the new primary, nothing lost or doubled. A server lacking
//! transactions already applied, and a source without GTIDs whose server changed, are refused.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_harness::{MySql, MySqlOptions, Role, Source, SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::{PASSWORD, Setup, interrupt, load};

const OBJECTS: &str = "    databases: [app]";
const CATCH_UP: Duration = Duration::from_secs(60);

fn mysql(source: &mut Source) -> &mut MySql {
    match source {
        Source::MySql(server) => server,
        Source::MariaDb(_) => unreachable!("these tests start MySQL sources"),
    }
}

/// Writers of [`load::writer`] on one server until stopped.
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<u64>>,
}

impl Writers {
    async fn start(server: &impl SqlServer, ids: std::ops::Range<u64>) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in ids {
            let conn = server.conn().await.expect("writer connection");
            tasks.push(tokio::spawn(load::writer(conn, w, stop.clone())));
        }
        Writers { stop, tasks }
    }

    /// Stops the writers; returns how many transactions they committed.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let mut committed = 0;
        for task in self.tasks {
            committed += task.await.expect("writer");
        }
        committed
    }
}

/// The GTID set of the job's checkpoint on the target.
async fn checkpoint_gtids(setup: &Setup) -> Option<String> {
    let mut conn = setup.target.conn().await.ok()?;
    let sql = format!(
        "SELECT gtid_set FROM ferry_meta.incremental_checkpoint WHERE job = {}",
        support::JOB_KEY
    );
    conn.query_first(sql).await.ok().flatten().flatten()
}

/// Whether `server`'s executed GTID set is inside the checkpoint's (MySQL's own GTID_SUBSET).
async fn checkpoint_holds(setup: &Setup, server: &MySql) -> bool {
    let Some(checkpoint) = checkpoint_gtids(setup).await else { return false };
    let mut conn = server.conn().await.expect("server connection");
    let held: Option<i64> = conn
        .exec_first("SELECT GTID_SUBSET(@@GLOBAL.gtid_executed, ?)", (checkpoint,))
        .await
        .expect("GTID_SUBSET");
    held == Some(1)
}

/// Waits until the checkpoint holds every transaction `server` has executed.
async fn wait_holds(setup: &Setup, server: &MySql, ferry: &mut std::process::Child) {
    let deadline = Instant::now() + CATCH_UP;
    while !checkpoint_holds(setup, server).await {
        if let Ok(Some(status)) = ferry.try_wait() {
            panic!("ferry exited with {status} before catching up:\n{}", every_log(setup));
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint {:?} never held the executed set of port {}:\n{}",
            checkpoint_gtids(setup).await,
            server.port(),
            setup.last_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The logs of every `ferry migrate` run of the test, for failure messages.
fn every_log(setup: &Setup) -> String {
    let logs = (1..).map(|n| (n, setup.log(n))).take_while(|(_, log)| !log.is_empty());
    logs.map(|(n, log)| format!("--- run {n}:\n{log}")).collect()
}

async fn assert_equal(setup: &Setup, server: &MySql) {
    let mut source = server.conn().await.expect("source connection");
    let mut target = setup.target.conn().await.expect("target connection");
    if let Err(e) = ferry_harness::assert_same_tables(&mut source, &mut target, "app").await {
        panic!("{e}\nferry log:\n{}", setup.last_log());
    }
}

async fn server_uuid(server: &MySql) -> String {
    let uuid = server.query_strings("SELECT @@GLOBAL.server_uuid").await.expect("server_uuid");
    uuid.into_iter().flatten().next().expect("a server_uuid")
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_follows_a_failover_to_the_promoted_replica() {
    follows_a_failover_into(TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_into_tidb_follows_a_failover_to_the_promoted_replica() {
    follows_a_failover_into(TargetKind::TiDb).await;
}

async fn follows_a_failover_into(kind: TargetKind) {
    let started = Instant::now();
    let (primary, target) = tokio::join!(MySql::source(), kind.start());
    let primary = primary.expect("start the primary");
    let replica = MySql::replica_of(&primary).await.expect("start the replica");
    // Column names in the binlog: the DDL below changes a table while its rows are written.
    for server in [&primary, &replica] {
        server.exec("SET GLOBAL binlog_row_metadata = FULL").await.expect("binlog_row_metadata");
    }
    let mut setup =
        Setup::from_servers(Source::MySql(primary), target.expect("start the target")).await;
    setup.source.exec(load::TABLES).await.expect("the tables on the primary");

    // The copy, then replication, while four writers change the primary, and DDL once the
    // copy is done.
    let manifest = setup.manifest("FullAndIncremental", OBJECTS);
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
    let writers = Writers::start(&setup.source, 0..4).await;
    let deadline = Instant::now() + CATCH_UP;
    while checkpoint_gtids(&setup).await.is_none() {
        let running = matches!(ferry.try_wait(), Ok(None));
        assert!(running && Instant::now() < deadline, "no replication:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load::ddl(&setup.source, Arc::new(AtomicBool::new(false))).await;
    // Killed while applying (transactions above the checkpoint may be applied already), and
    // behind: the writers go on for a while.
    ferry.kill().expect("kill ferry");
    let _ = ferry.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed = writers.stop().await;
    assert!(committed > 100, "the load committed only {committed} transactions");

    replica.wait_replicated(mysql(&mut setup.source), CATCH_UP).await.expect("replica catches up");
    assert!(!checkpoint_holds(&setup, &replica).await, "ferry was not behind at the failover");
    mysql(&mut setup.source).shutdown().await.expect("stop the primary");
    replica.promote().await.expect("promote the replica");

    // The promoted replica takes writes of its own; the job now reads from it.
    let writers = Writers::start(&replica, 10..12).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let manifest = setup.write_manifest_for(
        replica.port(),
        "FullAndIncremental",
        &format!("  objects:\n{OBJECTS}"),
    );
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
    assert!(writers.stop().await > 0, "no write on the promoted replica");
    wait_holds(&setup, &replica, &mut ferry).await;
    assert_equal(&setup, &replica).await;
    assert!(interrupt(&mut ferry).success(), "ferry did not stop cleanly:\n{}", setup.last_log());

    // Another run on the promoted replica, now the checkpoint's server, goes on from there.
    let writers = Writers::start(&replica, 20..22).await;
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(writers.stop().await > 0, "no write on the promoted replica");
    wait_holds(&setup, &replica, &mut ferry).await;
    assert_equal(&setup, &replica).await;
    assert!(interrupt(&mut ferry).success(), "ferry did not stop cleanly:\n{}", setup.last_log());

    // Back to the former primary, which lacks the promoted replica's own transactions: refused,
    // and the target is left as it is.
    let former = mysql(&mut setup.source);
    former.restart().await.expect("restart the former primary");
    let port = former.port();
    let manifest =
        setup.write_manifest_for(port, "FullAndIncremental", &format!("  objects:\n{OBJECTS}"));
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "ferry resumed on a server lacking applied transactions:\n{log}");
    let replica_uuid = server_uuid(&replica).await;
    assert!(
        log.contains("lacks transactions that are already applied") && log.contains(&replica_uuid),
        "{log}"
    );
    assert_equal(&setup, &replica).await;
    eprintln!("failover test into {kind} took {:?}", started.elapsed());
}

/// With `gtid_mode=OFF` only binlog files and offsets place a checkpoint, and they belong to one
/// server: after the job's source is switched to another server, it stops and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_source_without_gtids_is_refused_after_a_server_switch() {
    let without_gtids = || {
        MySqlOptions::new(Role::Source).arg("--gtid-mode=OFF").arg("--enforce-gtid-consistency=OFF")
    };
    let (first, second, target) = tokio::join!(
        MySql::start(without_gtids()),
        MySql::start(without_gtids()),
        TargetKind::MariaDb.start()
    );
    let second = second.expect("start the second source");
    second.create_user("ferry", PASSWORD, "ALL PRIVILEGES").await.expect("user on the second");
    let mut setup = Setup::from_servers(
        Source::MySql(first.expect("start the first source")),
        target.expect("start the target"),
    )
    .await;
    let tables = "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci; \
        CREATE TABLE app.t (id INT PRIMARY KEY)";
    setup.source.exec(tables).await.expect("tables on the first source");
    second.exec(tables).await.expect("tables on the second source");

    let manifest = setup.manifest("FullAndIncremental", OBJECTS);
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.source.exec("INSERT INTO app.t VALUES (1), (2)").await.expect("write");
    setup.wait_caught_up(&mut ferry, CATCH_UP).await;
    assert!(interrupt(&mut ferry).success(), "ferry did not stop cleanly:\n{}", setup.last_log());

    // The other server's offsets would place the job anywhere in its binlog.
    second.exec("INSERT INTO app.t VALUES (100)").await.expect("write to the second");
    let spec = format!("  objects:\n{OBJECTS}");
    let manifest = setup.write_manifest_for(second.port(), "FullAndIncremental", &spec);
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "ferry resumed by the offsets of another server:\n{log}");
    for says in [
        "not the server the checkpoint was read from",
        "gtid_mode is not ON",
        "start a new migration",
    ] {
        assert!(log.contains(says), "the error does not say `{says}`:\n{log}");
    }
    let rows = setup.target.query_strings("SELECT id FROM app.t ORDER BY id").await.expect("rows");
    assert_eq!(rows, [Some("1".to_string()), Some("2".to_string())], "{log}");
}
