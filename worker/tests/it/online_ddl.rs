//! Online schema-change tools really running against a MariaDB source (pt-osc also against MySQL
//! 9.7) under write load, while a FullAndIncremental job replicates it: pt-online-schema-change
//! (Debian's percona-toolkit) and gh-ost (built by dev/build-go-tools.sh). The shadow tables' rows
//! never reach the target; at the tool's swap the target's table gets the ALTER, so schema and
//! data end equal to the source's. The gh-ost runs hold the swap back
//! (`--postpone-cut-over-flag-file`) and restart Ferry abruptly in between: the recorded ALTER
//! must survive it.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::{PASSWORD, Setup, interrupt};

const SCHEMA: &str = "CREATE DATABASE app;
    CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40) NOT NULL, n INT NOT NULL);
    CREATE TABLE app.u (id INT PRIMARY KEY, v VARCHAR(40));";

/// The change each tool makes to `app.t`: a column and an index.
const ALTER: &str = "ADD COLUMN extra INT NOT NULL DEFAULT 7, ADD INDEX by_n (n)";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tool {
    PtOsc,
    GhOst,
}

#[tokio::test(flavor = "multi_thread")]
async fn pt_osc_with_a_table_rule_into_tidb() {
    online_change(Tool::PtOsc, TargetKind::TiDb, "    tables: [{database: app, table: t}]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gh_ost_with_a_database_rule_into_tidb_across_a_restart() {
    online_change(Tool::GhOst, TargetKind::TiDb, "    databases: [app]").await;
}

/// pt-osc 3.2.1 runs against MySQL 9.7 too (gh-ost v1.1.6 does not).
#[tokio::test(flavor = "multi_thread")]
async fn pt_osc_on_a_mysql_source_into_tidb() {
    let setup = Setup::start_with_source(SourceKind::MySql, TargetKind::TiDb).await;
    run_change(setup, Tool::PtOsc, "    databases: [app]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pt_osc_with_a_database_rule_into_mariadb() {
    online_change(Tool::PtOsc, TargetKind::MariaDb, "    databases: [app]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gh_ost_with_a_table_rule_into_mariadb_across_a_restart() {
    online_change(Tool::GhOst, TargetKind::MariaDb, "    tables: [{database: app, table: t}]")
        .await;
}

/// A MariaDB source, a target of `kind`, and [`run_change`].
async fn online_change(tool: Tool, target: TargetKind, objects: &str) {
    run_change(Setup::start_with(target).await, tool, objects).await;
}

/// `tool` alters `app.t` under write load while a job with `objects` replicates it.
async fn run_change(mut setup: Setup, tool: Tool, objects: &str) {
    setup.source.exec(SCHEMA).await.expect("schema");
    setup.source.exec(&rows(1, 3000)).await.expect("rows");
    let manifest = setup.manifest("FullAndIncremental", objects);
    let mut ferry = setup.spawn(&manifest, &[], &[]);
    setup
        .wait_status("the Incremental stage", Duration::from_secs(90), |s| {
            s["stage"] == "Incremental"
        })
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load(setup.source.conn().await.expect("conn"), stop.clone()));
    let run = ToolRun::start(tool, &setup);
    if tool == Tool::GhOst {
        // The ALTER is recorded while gh-ost waits to swap: an abrupt stop and a restart must
        // not lose it.
        wait_recorded(&setup, &mut ferry).await;
        ferry.kill().expect("kill ferry");
        ferry.wait().expect("reap ferry");
        ferry = setup.spawn(&manifest, &[], &[]);
        std::fs::remove_file(run.postpone_flag()).expect("let gh-ost swap");
    }
    let output = run.finish().await;
    stop.store(true, Ordering::Relaxed);
    let committed = load.await.expect("load task");
    assert!(committed > 50, "too little load while the tool ran: {committed}");
    // Rows using the new column after the swap.
    setup
        .source
        .exec("INSERT INTO app.t (id, v, n, extra) VALUES (900001, 'after', 1, 42)")
        .await
        .unwrap();

    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    let log = setup.last_log();
    assert!(log.contains("applying its ALTER"), "the swap was not applied:\n{output}\n{log}");
    if tool == Tool::GhOst {
        assert!(!log.contains("recorded the ALTER"), "the restart read the ALTER again:\n{log}");
    }
    let tables =
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' ORDER BY 1";
    let on_target = setup.target.query_strings(tables).await.unwrap();
    let expected = if objects.contains("databases") { vec!["t", "u"] } else { vec!["t"] };
    let expected: Vec<Option<String>> = expected.into_iter().map(|t| Some(t.to_string())).collect();
    assert_eq!(on_target, expected, "the tools' tables must not reach the target");
    if !objects.contains("databases") {
        setup.source.exec("DROP TABLE app.u").await.unwrap();
    }
    setup.assert_same("app").await;
    setup.assert_same_indexes("app").await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// `INSERT` statements for rows `from..from + count` of `app.t` and `app.u`.
fn rows(from: u32, count: u32) -> String {
    let values: Vec<String> =
        (from..from + count).map(|i| format!("({i}, 'v{i}', {})", i % 97)).collect();
    let u: Vec<String> = (from..from + count).map(|i| format!("({i}, 'u{i}')")).collect();
    format!(
        "INSERT INTO app.t (id, v, n) VALUES {}; INSERT INTO app.u VALUES {}",
        values.join(","),
        u.join(",")
    )
}

/// Inserts, updates and deletes on `app.t` (and `app.u`) until `stop`, naming the columns so
/// that each statement runs before and after the change; returns how many committed.
async fn write_load(mut conn: mysql_async::Conn, stop: Arc<AtomicBool>) -> u64 {
    let mut committed = 0;
    let mut id = 10_000;
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        let sql = format!(
            "BEGIN; INSERT INTO app.t (id, v, n) VALUES ({id}, 'w{id}', {n});
             UPDATE app.t SET n = n + 1, v = 'u{id}' WHERE id = {old};
             DELETE FROM app.t WHERE id = {gone};
             INSERT INTO app.u VALUES ({id}, 'w') ON DUPLICATE KEY UPDATE v = 'again'; COMMIT",
            n = id % 89,
            old = id % 3000 + 1,
            gone = (id * 7) % 3000 + 1,
        );
        match conn.query_drop(sql).await {
            Ok(()) => committed += 1,
            // gh-ost's two-step cut-over leaves no `app.t` for a moment, and pt-osc's chunk
            // copy locks rows (a deadlock): the source undoes the transaction, which does not
            // count.
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1146 | 1213 | 1205) => {
                conn.query_drop("ROLLBACK").await.expect("rollback");
            }
            Err(e) => panic!("load transaction: {e}"),
        }
    }
    committed
}

/// Waits until the job recorded the ALTER of the shadow table and its checkpoint passed it (a
/// restart then does not read the ALTER again: only the record holds it).
async fn wait_recorded(setup: &Setup, ferry: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut conn = setup.target.conn().await.expect("target conn");
        let recorded: Option<(String, u64)> = conn
            .query_first(
                "SELECT binlog_file, binlog_pos FROM ferry_meta.online_ddl \
                 WHERE swapped_file IS NULL",
            )
            .await
            .ok()
            .flatten();
        let checkpoint = setup.checkpoint().await.map(|(file, pos, _)| (file, pos));
        if let (Some(recorded), Some(checkpoint)) = (recorded, checkpoint)
            && checkpoint >= recorded
        {
            return;
        }
        if let Ok(Some(status)) = ferry.try_wait() {
            panic!("ferry exited with {status}:\n{}", setup.last_log());
        }
        assert!(
            Instant::now() < deadline,
            "the shadow ALTER was never recorded:\n{}",
            setup.last_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tool running in the background.
struct ToolRun {
    dir: PathBuf,
    task: tokio::task::JoinHandle<std::process::Output>,
}

impl ToolRun {
    fn start(tool: Tool, setup: &Setup) -> ToolRun {
        let dir = setup.dir.path().to_path_buf();
        let port = setup.source.port();
        let mut command = match tool {
            Tool::PtOsc => pt_osc(port),
            Tool::GhOst => gh_ost(port, &dir),
        };
        let task = tokio::task::spawn_blocking(move || command.output().expect("run the tool"));
        ToolRun { dir, task }
    }

    fn postpone_flag(&self) -> PathBuf {
        self.dir.join("postpone-cut-over")
    }

    /// Waits for the tool to end; fails unless it succeeded. Returns its output.
    async fn finish(self) -> String {
        let output = tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("the tool did not finish within 120 s")
            .expect("tool task");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "the tool failed ({}):\n{text}", output.status);
        text
    }
}

fn pt_osc(port: u16) -> Command {
    let mut command = Command::new("pt-online-schema-change");
    command.args([
        "--execute",
        "--alter",
        ALTER,
        // Ferry's binlog connection looks like a replica; pt-osc must not try to connect to it.
        "--recursion-method=none",
        "--chunk-size=300",
        &format!("h=127.0.0.1,P={port},u=ferry,p={PASSWORD},D=app,t=t"),
    ]);
    command
}

fn gh_ost(port: u16, dir: &Path) -> Command {
    let binary = ferry_harness::cache_dir().join("bin/gh-ost-v1.1.6-mariadb");
    assert!(binary.exists(), "{} is missing: run dev/build-go-tools.sh gh-ost", binary.display());
    let flag = dir.join("postpone-cut-over");
    std::fs::write(&flag, "").expect("postpone flag");
    let mut command = Command::new(binary);
    command.args([
        "--host=127.0.0.1",
        &format!("--port={port}"),
        "--user=ferry",
        &format!("--password={PASSWORD}"),
        "--database=app",
        "--table=t",
        &format!("--alter={ALTER}"),
        // The test's source is a primary with row-based binlogs.
        "--allow-on-master",
        "--assume-rbr",
        "--chunk-size=300",
        "--initially-drop-ghost-table",
        "--initially-drop-old-table",
        "--ok-to-drop-table",
        // The default atomic cut-over relies on MySQL's lock priorities: on MariaDB a write
        // blocked by its lock was seen landing in the table being swapped out, lost on the
        // source (while Ferry, reading the binlog, replicated it).
        "--cut-over=two-step",
        &format!("--serve-socket-file={}", dir.join("gh-ost.sock").display()),
        &format!("--postpone-cut-over-flag-file={}", flag.display()),
        "--execute",
    ]);
    command
}
