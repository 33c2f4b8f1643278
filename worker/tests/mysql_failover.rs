//! A failover of a MySQL source, as RDS and Aurora users live it: a second MySQL replicates from
//! the first (real replication, GTID auto-positioning), Ferry copies and replicates from the first
//! under a write load, the first stops, the replica is promoted and the job's source is switched
//! to it. Binlog files and offsets differ between the two servers; the job resumes from its GTID
//! set and the target ends equal to the new primary, nothing lost or doubled. A server lacking
//! transactions already applied, and a source without GTIDs whose server changed, are refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_e2e::{MySql, MySqlOptions, Role, Source, SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::{JOB, PASSWORD, Setup, interrupt, load};

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
    conn.exec_first(
        "SELECT gtid_set FROM ferry_meta.incremental_checkpoint WHERE job = ?",
        (JOB,),
    )
    .await
    .ok()
    .flatten()
    .flatten()
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
            panic!("ferry exited with {status} before catching up:\n{}", setup.last_log());
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

async fn assert_equal(setup: &Setup, server: &MySql) {
    let mut source = server.conn().await.expect("source connection");
    let mut target = setup.target.conn().await.expect("target connection");
    if let Err(e) = ferry_e2e::assert_same_tables(&mut source, &mut target, "app").await {
        panic!("{e}\nferry log:\n{}", setup.last_log());
    }
}

async fn server_uuid(server: &MySql) -> String {
    let uuid = server.query_strings("SELECT @@GLOBAL.server_uuid").await.expect("server_uuid");
    uuid.into_iter().flatten().next().expect("a server_uuid")
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_follows_a_failover_to_the_promoted_replica() {
    let started = Instant::now();
    let (primary, target) = tokio::join!(MySql::source(), TargetKind::MariaDb.start());
    let primary = primary.expect("start the primary");
    let replica = MySql::replica_of(&primary).await.expect("start the replica");
    let mut setup =
        Setup::from_servers(Source::MySql(primary), target.expect("start the target")).await;
    setup.source.exec(load::TABLES).await.expect("the tables on the primary");

    // The copy, then replication, while four writers and DDL change the primary.
    let manifest = setup.manifest("FullAndIncremental", OBJECTS);
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
    let writers = Writers::start(&setup.source, 0..4).await;
    load::ddl(&setup.source, Arc::new(AtomicBool::new(false))).await;
    let deadline = Instant::now() + CATCH_UP;
    while checkpoint_gtids(&setup).await.is_none() {
        assert!(Instant::now() < deadline, "replication never started:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Killed while applying (transactions above the checkpoint may be applied already), and
    // behind: the writers go on for a while.
    ferry.kill().expect("kill ferry");
    let _ = ferry.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed = writers.stop().await;
    assert!(committed > 100, "the load committed only {committed} transactions");

    let primary = mysql(&mut setup.source);
    replica.wait_replicated(primary, CATCH_UP).await.expect("the replica catches up");
    assert!(!checkpoint_holds(&setup, &replica).await, "ferry was not behind at the failover");
    primary.shutdown().await.expect("stop the primary");
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
    eprintln!("failover test took {:?}", started.elapsed());
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
    let tables = "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)";
    setup.both(tables).await;
    second.exec(tables).await.expect("tables on the second source");

    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup.source.exec("INSERT INTO app.t VALUES (1), (2)").await.expect("write");
    setup.wait_caught_up(&mut ferry, CATCH_UP).await;
    assert!(interrupt(&mut ferry).success(), "ferry did not stop cleanly:\n{}", setup.last_log());

    // The other server's offsets would place the job anywhere in its binlog.
    second.exec("INSERT INTO app.t VALUES (100)").await.expect("write to the second");
    let (file, pos) = &start;
    let spec = format!(
        "  incremental:\n    start: {{file: {file}, pos: {pos}}}\n  objects:\n{OBJECTS}\n"
    );
    let manifest = setup.write_manifest_for(second.port(), "Incremental", &spec);
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
