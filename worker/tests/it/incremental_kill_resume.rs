//! Exactly-once across crashes: `ferry migrate` with four apply workers is SIGKILLed at random
//! instants while a mixed write load with DDL and concurrent writers (conflicting keys, foreign
//! keys, tables without keys) runs on the source, resumed each time, and at the end every table
//! matches, including those without any key (where a doubled or lost change would show). Into
//! MariaDB and into TiDB; and from MySQL 9.7 (which logs its foreign key cascades itself), with
//! the job started from the executed GTID set alone (COM_BINLOG_DUMP_GTID).

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::load::{self, Rng};
use support::{Setup, interrupt, wait_exit};

const TABLES: &str = "
CREATE TABLE app.ledger (id INT PRIMARY KEY, bal BIGINT NOT NULL, note VARCHAR(40));
CREATE TABLE app.ev (id INT AUTO_INCREMENT PRIMARY KEY, v INT, at DATETIME(6));
CREATE TABLE app.shape (id INT PRIMARY KEY, v INT);
";

/// One source transaction of the mixed load; every 40th step is DDL instead.
async fn step(conn: &mut mysql_async::Conn, rng: &mut Rng, i: u64, columns: &mut Vec<u64>) {
    if i % 40 == 39 {
        let sql = if columns.len() < 3 || (rng.below(2) == 0 && columns.len() < 6) {
            columns.push(i);
            format!("ALTER TABLE app.shape ADD COLUMN c{i} INT DEFAULT {i}")
        } else {
            let c = columns.remove(0);
            format!("ALTER TABLE app.shape DROP COLUMN c{c}")
        };
        conn.query_drop(sql).await.expect("DDL");
        let t = i % 3;
        conn.query_drop(format!(
            "DROP TABLE IF EXISTS app.tmp{t}; CREATE TABLE app.tmp{t} (id INT PRIMARY KEY, v INT); \
             INSERT INTO app.tmp{t} VALUES (1, {i})"
        ))
        .await
        .expect("DDL");
        return;
    }
    let k = rng.below(50);
    let k2 = rng.below(50);
    let sql = format!(
        "BEGIN;
         INSERT INTO app.ledger VALUES ({k}, 1, 'n{i}') ON DUPLICATE KEY UPDATE bal = bal + 1, note = 'u{i}';
         INSERT INTO app.nokey VALUES ({k}, 'r{k}');
         DELETE FROM app.nokey WHERE a = {k2} LIMIT 1;
         INSERT INTO app.ev (v, at) VALUES ({i}, NOW(6));
         UPDATE app.nokey SET b = 'w{i}' WHERE a = {k} LIMIT 1;
         INSERT INTO app.shape (id, v) VALUES ({k}, {i}) ON DUPLICATE KEY UPDATE v = {i};
         DELETE FROM app.ledger WHERE id = {k2} AND bal > 3;
         COMMIT"
    );
    // The concurrent writers can deadlock with it on the source: it rolls back, so try again.
    loop {
        match conn.query_drop(&sql).await {
            Ok(()) => return,
            Err(mysql_async::Error::Server(e)) if matches!(e.code, 1205 | 1213) => {
                conn.query_drop("ROLLBACK").await.expect("rollback");
            }
            Err(e) => panic!("load transaction: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_instants_loses_and_doubles_nothing() {
    kill_and_resume(TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_instants_into_tidb_loses_and_doubles_nothing() {
    kill_and_resume(TargetKind::TiDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_instants_from_a_mysql_gtid_start_loses_and_doubles_nothing() {
    kill_and_resume_from(SourceKind::MySql, TargetKind::MariaDb).await;
}

async fn kill_and_resume(kind: TargetKind) {
    kill_and_resume_from(SourceKind::MariaDb, kind).await;
}

/// A MySQL source's job starts from its executed GTID set, a MariaDB one's from file and pos.
async fn kill_and_resume_from(source: SourceKind, kind: TargetKind) {
    let mut setup = Setup::start_with_source(source, kind).await;
    setup.both(load::TABLES).await;
    setup.both(TABLES).await;
    let manifest = match source {
        SourceKind::MySql => {
            let executed = setup.source.gtid_executed().await.expect("gtid_executed");
            setup.incremental_manifest_from_gtid(&executed, "  safeModeDuration: 1h")
        }
        SourceKind::MariaDb => {
            let start = setup.source_head().await;
            setup.incremental_manifest(&start, "  safeModeDuration: 1h")
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let conn = setup.source.conn().await.expect("source conn");
        writers.push(tokio::spawn(load::writer(conn, w, stop.clone())));
    }
    let mut conn = setup.source.conn().await.expect("source conn");
    let load_stop = stop.clone();
    let mixed = tokio::spawn(async move {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut columns = Vec::new();
        let mut i = 0;
        while !load_stop.load(Ordering::Relaxed) {
            step(&mut conn, &mut rng, i, &mut columns).await;
            i += 1;
        }
        i
    });

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut ahead = 0;
    for kill in 0..6 {
        let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
        let millis = 700 + rng.below(2300);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        if let Ok(Some(status)) = ferry.try_wait() {
            panic!("ferry exited with {status} before kill {kill}:\n{}", setup.last_log());
        }
        ferry.kill().expect("SIGKILL");
        wait_exit(&mut ferry, Duration::from_secs(10));
        ahead += applied_above_checkpoint(&setup).await;
    }
    // Workers ran ahead of the checkpoint at some kill, so a resume had to skip what they
    // had recorded as applied.
    assert!(ahead > 0, "no transaction above the checkpoint at any kill");
    stop.store(true, Ordering::Relaxed);
    let steps = mixed.await.expect("load");
    assert!(steps > 100, "the load ran only {steps} transactions");
    for writer in writers {
        let committed = writer.await.expect("writer");
        assert!(committed > 100, "a writer committed only {committed} transactions");
    }

    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);
    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    setup.assert_same("app").await;
    // Resuming after an abrupt stop turns safe mode on, and the status says until when.
    let has_until = |s: &serde_json::Value| s["incremental"]["safeModeUntil"].is_string();
    setup.wait_status("safeModeUntil", Duration::from_secs(30), has_until).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
}

/// Records of transactions applied above the checkpoint, left by a killed run. None when the
/// run was killed before it created its checkpoint tables (a slow start on a loaded machine).
async fn applied_above_checkpoint(setup: &Setup) -> u64 {
    let mut conn = setup.target.conn().await.expect("target conn");
    let count: Result<Option<u64>, _> = conn
        .query_first(
            "SELECT COUNT(*) FROM ferry_meta.incremental_applied a \
             JOIN ferry_meta.incremental_checkpoint c ON c.job = a.job \
             WHERE (a.last_file, a.last_pos) > (c.binlog_file, c.binlog_pos)",
        )
        .await;
    match count {
        Ok(count) => count.unwrap_or(0),
        Err(mysql_async::Error::Server(e)) if e.code == NO_SUCH_TABLE => 0,
        Err(e) => panic!("read ferry_meta: {e}"),
    }
}

/// ER_NO_SUCH_TABLE.
const NO_SUCH_TABLE: u16 = 1146;
