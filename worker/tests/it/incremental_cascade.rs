//! Foreign key cascades under replication. MySQL 9 logs the rows its cascades change itself,
//! before the parent's row, flagged NO_FOREIGN_KEY_CHECKS (a child row may then point to a parent
//! key not written yet); MariaDB does not log them, so the target's own foreign keys must cascade.
//! A session with `foreign_key_checks=0` on either source changes rows without checks or
//! cascades, flagged the same way. Parents and children linked by ON DELETE/UPDATE CASCADE and
//! SET NULL, a grandchild, a child without a key and a self-referencing tree are written while
//! `ferry migrate` replicates with four workers; at the end every table matches the source.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use support::Setup;
use support::load::{self, Rng};

/// Constraint names and the database's collation are spelled out: left to each server they
/// differ (MySQL's utf8mb4_0900_ai_ci is not on MariaDB).
const TABLES: &str = "
CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
CREATE TABLE app.parent (id INT PRIMARY KEY, name VARCHAR(20));
CREATE TABLE app.child (id INT PRIMARY KEY, parent_id INT, v INT,
  CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES app.parent (id)
  ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE app.grandchild (id INT PRIMARY KEY, child_id INT,
  CONSTRAINT grandchild_child FOREIGN KEY (child_id) REFERENCES app.child (id)
  ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE app.nullable (id INT PRIMARY KEY, parent_id INT,
  CONSTRAINT nullable_parent FOREIGN KEY (parent_id) REFERENCES app.parent (id)
  ON DELETE SET NULL ON UPDATE SET NULL);
CREATE TABLE app.keyless (parent_id INT, note VARCHAR(20),
  CONSTRAINT keyless_parent FOREIGN KEY (parent_id) REFERENCES app.parent (id)
  ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE app.tree (id INT PRIMARY KEY, up INT,
  CONSTRAINT tree_up FOREIGN KEY (up) REFERENCES app.tree (id) ON DELETE CASCADE);
";

const PARENTS: u64 = 12;
const CHILDREN: u64 = 40;
/// Rows of the tree, two levels deep: MySQL 9 refused to delete a subtree of a 30-row tree
/// ("cascade delete/update exceeds max tables limit of 30").
const TREE: u64 = 12;
/// Parents 50.. and children 600.. are the ones written with checks off, and only those: MySQL
/// checks a child's foreign key only when its value changes, InnoDB also when the row's primary
/// key moves, so an orphan whose key moves would part them for reasons of their own.
const LOOSE: u64 = 5;

/// The same rows on both sides before the job starts.
fn seed() -> String {
    let rows = |range: std::ops::Range<u64>, row: &dyn Fn(u64) -> String| -> String {
        range.map(row).collect::<Vec<_>>().join(",")
    };
    let parents = rows(0..PARENTS, &|p| format!("({p}, 'p{p}')"));
    let loose_parents = rows(50..50 + LOOSE, &|p| format!("({p}, 'l{p}')"));
    let children = rows(0..CHILDREN, &|c| format!("({c}, {}, {c})", c % PARENTS));
    let loose_children = rows(600..620, &|c| format!("({c}, {}, {c})", 50 + c % LOOSE));
    let grandchildren = rows(0..CHILDREN, &|c| format!("({c}, {c})"));
    let nullable = rows(0..CHILDREN, &|c| format!("({c}, {})", c % PARENTS));
    let keyless = rows(0..CHILDREN, &|c| format!("({}, 'k')", c % PARENTS));
    let tree = rows(0..TREE, &|t| match t {
        0..3 => format!("({t}, NULL)"),
        _ => format!("({t}, {})", t / 3),
    });
    format!(
        "INSERT INTO app.parent VALUES {parents},{loose_parents};
         INSERT INTO app.child VALUES {children},{loose_children};
         INSERT INTO app.grandchild VALUES {grandchildren};
         INSERT INTO app.nullable VALUES {nullable}, (600, 50), (601, 51);
         INSERT INTO app.keyless VALUES {keyless}, (50, 'l'), (51, 'l');
         INSERT INTO app.tree VALUES {tree};"
    )
}

/// Every kind of change once, in a known order, before the random load: parent keys moved
/// (children follow, SET NULL children lose their parent), parents deleted with children and
/// grandchildren, child keys moved under their grandchildren, a subtree of the tree deleted, a
/// parent deleted and written again with children in one transaction, and with checks off: a
/// parent deleted without its cascade and an orphan child written, adopted later.
const SCRIPT: &[&str] = &[
    "UPDATE app.parent SET id = 100 WHERE id = 1",
    "DELETE FROM app.parent WHERE id IN (2, 3)",
    "BEGIN; UPDATE app.parent SET id = 101 WHERE id = 4; UPDATE app.parent SET id = 4 WHERE id = 5; \
     UPDATE app.child SET id = id + 1000 WHERE parent_id = 101; COMMIT",
    "DELETE FROM app.tree WHERE id = 1",
    "BEGIN; DELETE FROM app.parent WHERE id = 6; INSERT INTO app.parent VALUES (6, 'again'); \
     INSERT INTO app.child VALUES (500, 6, 1); INSERT INTO app.keyless VALUES (6, 'again'); COMMIT",
    "SET foreign_key_checks = 0; DELETE FROM app.parent WHERE id = 50; \
     INSERT INTO app.child VALUES (620, 77, 1); SET foreign_key_checks = 1",
    "UPDATE app.parent SET id = 77 WHERE id = 8",
];

/// One random source transaction of writer `w`, step `i`.
fn transaction(rng: &mut Rng, w: u64, i: u64) -> String {
    let (p, p2) = (rng.below(PARENTS), rng.below(PARENTS));
    let (c, t) = (rng.below(CHILDREN), 3 + rng.below(TREE - 3));
    let (l, lc) = (50 + rng.below(LOOSE), 600 + rng.below(20));
    let body = match rng.below(9) {
        0 => format!("UPDATE app.parent SET id = {} WHERE id = {p}", p + 100),
        1 => format!("UPDATE app.parent SET id = {p} WHERE id = {}", p + 100),
        2 => format!(
            "DELETE FROM app.parent WHERE id IN ({p}, {p2});
             INSERT IGNORE INTO app.parent VALUES ({p}, 'r{w}.{i}')"
        ),
        3 => format!(
            "UPDATE app.child SET id = {} WHERE id = {c}; UPDATE app.child SET id = {c} WHERE id = {}",
            c + 100,
            c + 100
        ),
        4 => format!(
            "INSERT IGNORE INTO app.parent VALUES ({p}, 'n{w}.{i}');
             INSERT INTO app.child VALUES ({c}, {p}, {i}) ON DUPLICATE KEY UPDATE v = v + 1;
             INSERT IGNORE INTO app.grandchild VALUES ({c}, {c});
             INSERT INTO app.nullable VALUES ({c}, {p}) ON DUPLICATE KEY UPDATE parent_id = {p};
             INSERT INTO app.keyless VALUES ({p}, 'n{w}.{i}')"
        ),
        5 => format!(
            "INSERT IGNORE INTO app.tree VALUES ({t}, {}); DELETE FROM app.tree WHERE id = {}",
            t / 3,
            rng.below(TREE)
        ),
        6 => format!(
            "SET foreign_key_checks = 0; DELETE FROM app.parent WHERE id = {l};
             INSERT IGNORE INTO app.child VALUES ({lc}, {l}, {i});
             INSERT INTO app.keyless VALUES ({l}, 'o{w}.{i}'); SET foreign_key_checks = 1"
        ),
        7 => format!(
            "INSERT IGNORE INTO app.parent VALUES ({l}, 'b{w}.{i}');
             DELETE FROM app.parent WHERE id = {} AND {} = 0",
            50 + rng.below(LOOSE),
            rng.below(2)
        ),
        _ => format!("DELETE FROM app.keyless WHERE parent_id = {p} LIMIT 1"),
    };
    format!("BEGIN; {body}; COMMIT")
}

/// Runs writer `w` until `stop`; returns how many transactions committed.
async fn writer(conn: mysql_async::Conn, w: u64, stop: Arc<AtomicBool>) -> u64 {
    // Deadlocks, missing parents, a tree row whose parent is gone: nothing committed.
    load::run_writer(conn, w, stop, transaction, "ROLLBACK; SET foreign_key_checks = 1").await
}

async fn replicate_cascades(source: SourceKind, target: TargetKind) {
    let mut setup = Setup::start_with_source(source, target).await;
    setup.both(TABLES).await;
    setup.both(&seed()).await;
    let start = setup.source_head().await;
    let manifest = setup.incremental_manifest(&start, "");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "4"]);

    for sql in SCRIPT {
        setup.source.exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let conn = setup.source.conn().await.expect("source conn");
        writers.push(tokio::spawn(writer(conn, w, stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    for (w, task) in writers.into_iter().enumerate() {
        let committed = task.await.expect("writer");
        assert!(committed > 50, "writer {w} committed only {committed} transactions");
    }

    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    setup.assert_same("app").await;
    assert!(support::interrupt(&mut ferry).success(), "{}", setup.last_log());
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_logged_cascades_replicate_into_mariadb() {
    replicate_cascades(SourceKind::MySql, TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_logged_cascades_replicate_into_tidb() {
    replicate_cascades(SourceKind::MySql, TargetKind::TiDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_cascades_run_on_the_mariadb_target() {
    replicate_cascades(SourceKind::MariaDb, TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_cascades_run_on_the_tidb_target() {
    replicate_cascades(SourceKind::MariaDb, TargetKind::TiDb).await;
}
