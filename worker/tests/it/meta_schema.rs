//! The checkpoint schema `ferry_meta` is brought forward from the layouts Ferry created before it
//! had a version row, on a real MariaDB and a real TiDB: every checkpoint survives and reads back
//! through the typed reads, the result is the layout a fresh target gets, the version is
//! current, and a layout from a newer Ferry is refused.

use ferry_harness::{SqlServer, TargetKind};
use ferry_worker::meta::jobs::{self, Owner};
use ferry_worker::meta::{self, CURRENT_VERSION, JOB_KEY_CHARS, MetaError, full, incremental};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

const JOB: &str = "default/job";

/// A layout Ferry created before versions, and checkpoints in it.
struct Layout {
    /// The commit of main whose code created it.
    name: &'static str,
    /// The type of every `job` column.
    job: &'static str,
    /// Whether it has what 6fd32a5 and later added: the chunks' read positions, `full_tables`,
    /// `full_indexes` and `incremental_applied`.
    complete: bool,
}

/// The first release with both stages: 255-character job keys (which cut longer ids) and only
/// three tables; main's code upgraded it in place.
const FIRST: Layout = Layout { name: "28b0206", job: "VARCHAR(255)", complete: false };

/// The last layout before versions: all six tables, 320-character keys.
const MAIN: Layout = Layout { name: "451d736", job: "VARCHAR(320)", complete: true };

const SNAPSHOT_TABLE: &str = "CREATE TABLE ferry_meta.full_snapshot (
    job {job} NOT NULL PRIMARY KEY,
    binlog_file VARCHAR(255) NULL, binlog_pos BIGINT UNSIGNED NULL, gtid_set TEXT NULL,
    safe_until_file VARCHAR(255) NULL, safe_until_pos BIGINT UNSIGNED NULL,
    method VARCHAR(32) NOT NULL, state VARCHAR(16) NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CHUNKS_TABLE: &str = "CREATE TABLE ferry_meta.full_chunks (
    job {job} NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL,
    seq INT NOT NULL, cond LONGTEXT NOT NULL, done TINYINT NOT NULL DEFAULT 0,
    rows_copied BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0,
    {read_at} PRIMARY KEY (job, db, tbl, seq))";

const CHECKPOINT_TABLE: &str = "CREATE TABLE ferry_meta.incremental_checkpoint (
    job {job} NOT NULL PRIMARY KEY,
    binlog_file VARCHAR(255) NOT NULL,
    binlog_pos BIGINT UNSIGNED NOT NULL,
    gtid_set TEXT NULL,
    state VARCHAR(16) NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const LATER_TABLES: &str = "CREATE TABLE ferry_meta.full_tables (
    job {job} NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL,
    read_file VARCHAR(255) NOT NULL, read_pos BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (job, db, tbl));
  CREATE TABLE ferry_meta.full_indexes (
    job {job} NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL,
    definitions LONGTEXT NOT NULL, PRIMARY KEY (job, db, tbl));
  CREATE TABLE ferry_meta.incremental_applied (
    job {job} NOT NULL,
    last_file VARCHAR(255) NOT NULL,
    last_pos BIGINT UNSIGNED NOT NULL,
    worker INT UNSIGNED NOT NULL,
    positions MEDIUMTEXT NOT NULL,
    PRIMARY KEY (job, last_file, last_pos))";

const ROWS: &str = "INSERT INTO ferry_meta.full_snapshot (job, binlog_file, binlog_pos, gtid_set,
    safe_until_file, safe_until_pos, method, state) VALUES ('default/job',
    'mariadb-bin.000001', 120, '0-1-7', 'mariadb-bin.000002', 900, 'lock-free+resumed', 'copying');
  INSERT INTO ferry_meta.full_chunks (job, db, tbl, seq, cond, done, rows_copied, bytes) VALUES
    ('default/job', 'app', 't', 0, '`id` < 1000', 1, 999, 43210),
    ('default/job', 'app', 't', 1, '`id` >= 1000', 0, 0, 0);
  INSERT INTO ferry_meta.incremental_checkpoint (job, binlog_file, binlog_pos, gtid_set, state)
    VALUES ('default/job', 'mariadb-bin.000003', 4567, '0-1-42', 'running')";

const LATER_ROWS: &str = "UPDATE ferry_meta.full_chunks SET read_file = 'mariadb-bin.000001',
    read_pos = 400 WHERE seq = 0;
  INSERT INTO ferry_meta.full_tables VALUES ('default/job', 'app', 'u', 'mariadb-bin.000001', 150);
  INSERT INTO ferry_meta.full_indexes VALUES ('default/job', 'app', 't', 'KEY `k` (`k`)\nKEY `v` (`v`)');
  INSERT INTO ferry_meta.incremental_applied VALUES
    ('default/job', 'mariadb-bin.000003', 9000, 2, 'mariadb-bin.000003:5000,mariadb-bin.000003:9000'),
    ('default/job', 'mariadb-bin.000003', 4000, 1, 'mariadb-bin.000003:4000')";

impl Layout {
    /// The statements that create it, as that commit's code wrote them.
    fn ddl(&self) -> String {
        let read_at = if self.complete {
            "read_file VARCHAR(255) NULL, read_pos BIGINT UNSIGNED NULL,"
        } else {
            ""
        };
        let mut tables =
            vec!["CREATE DATABASE ferry_meta", SNAPSHOT_TABLE, CHUNKS_TABLE, CHECKPOINT_TABLE];
        if self.complete {
            tables.push(LATER_TABLES);
        }
        tables.join(";\n").replace("{job}", self.job).replace("{read_at}", read_at)
    }

    /// Checkpoints of the job in every table it has.
    fn rows(&self) -> String {
        if self.complete { format!("{ROWS}; {LATER_ROWS}") } else { ROWS.to_string() }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn previous_layouts_migrate_on_mariadb() {
    migrations_keep_checkpoints(TargetKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn previous_layouts_migrate_on_tidb() {
    migrations_keep_checkpoints(TargetKind::TiDb).await;
}

async fn migrations_keep_checkpoints(kind: TargetKind) {
    let target = kind.start().await.expect("start the target");
    let mut conn = target.conn().await.expect("connect to the target");

    meta::ensure(&mut conn).await.expect("create ferry_meta on an empty target");
    assert_eq!(meta::schema::version(&mut conn).await.expect("version"), Some(CURRENT_VERSION));
    let fresh = layout(&mut conn).await;

    for previous in [FIRST, MAIN] {
        let name = previous.name;
        target.exec("DROP DATABASE ferry_meta").await.expect("drop ferry_meta");
        target.exec(&previous.ddl()).await.unwrap_or_else(|e| panic!("create layout {name}: {e}"));
        target.exec(&previous.rows()).await.unwrap_or_else(|e| panic!("fill layout {name}: {e}"));

        meta::ensure(&mut conn).await.unwrap_or_else(|e| panic!("migrate layout {name}: {e}"));
        assert_eq!(
            meta::schema::version(&mut conn).await.expect("version"),
            Some(CURRENT_VERSION),
            "{name}"
        );
        assert_same_layout(&layout(&mut conn).await, &fresh, name);
        checkpoints_survived(&mut conn, &previous).await;

        // A stop before the version row was written runs the migration again: nothing changes.
        target.exec("DELETE FROM ferry_meta.schema_version").await.expect("forget the version");
        meta::ensure(&mut conn).await.unwrap_or_else(|e| panic!("migrate {name} again: {e}"));
        assert_same_layout(&layout(&mut conn).await, &fresh, name);
        checkpoints_survived(&mut conn, &previous).await;

        stages_write_the_migrated_layout(&mut conn, &previous).await;
        jobs_adopt_the_rows_once(&mut conn, &previous).await;
    }

    newer_versions_are_refused(&target, &mut conn).await;
}

/// Every checkpoint of the previous layout reads back through the typed reads.
async fn checkpoints_survived(conn: &mut Conn, previous: &Layout) {
    let name = previous.name;
    let (snapshot, state) =
        full::load_snapshot(conn, JOB).await.expect("read the snapshot").expect("a snapshot");
    let expected = full::Snapshot {
        file: Some("mariadb-bin.000001".into()),
        pos: Some(120),
        gtid_set: Some("0-1-7".into()),
        safe_until: Some(("mariadb-bin.000002".into(), 900)),
        method: "lock-free+resumed".into(),
    };
    assert_eq!((snapshot, state.as_str()), (expected, "copying"), "{name}");
    assert!(!full::copy_done(conn, JOB).await.expect("copy state"), "{name}");
    assert_eq!(
        full::safe_until(conn, JOB).await.expect("safe until"),
        Some(("mariadb-bin.000002".into(), 900)),
        "{name}"
    );

    let plan = full::load_plan(conn, JOB, "app", "t").await.expect("read the chunk plan");
    let plan: Vec<_> =
        plan.iter().map(|c| (c.seq, c.cond.as_str(), c.done, c.rows, c.bytes)).collect();
    assert_eq!(
        plan,
        [(0, "`id` < 1000", true, 999, 43210), (1, "`id` >= 1000", false, 0, 0)],
        "{name}"
    );

    let checkpoint =
        incremental::load(conn, JOB).await.expect("read the checkpoint").expect("a checkpoint");
    let position = &checkpoint.position;
    assert_eq!(
        (position.file.as_str(), position.pos, position.gtid_set.as_deref(), checkpoint.clean),
        ("mariadb-bin.000003", 4567, Some("0-1-42"), false),
        "{name}"
    );

    let positions = full::load_table_positions(conn, JOB).await.expect("table positions");
    let indexes = full::deferred_indexes(conn, JOB, "app", "t").await.expect("deferred indexes");
    let pending = full::tables_with_deferred_indexes(conn, JOB).await.expect("index tables");
    let applied = incremental::load_applied(conn, JOB, position).await.expect("applied");
    let mut applied: Vec<_> = applied.into_iter().collect();
    applied.sort();
    if previous.complete {
        assert_eq!(positions["app"]["u"], ("mariadb-bin.000001".to_string(), 150), "{name}");
        assert_eq!(indexes.as_deref(), Some("KEY `k` (`k`)\nKEY `v` (`v`)"), "{name}");
        assert_eq!(pending, [("app".to_string(), "t".to_string())], "{name}");
        let above = |pos| format!("mariadb-bin.000003:{pos}");
        assert_eq!(applied, [above(5000), above(9000)], "{name}");
    } else {
        assert!(positions.is_empty() && indexes.is_none() && pending.is_empty(), "{name}");
        assert!(applied.is_empty(), "{name}");
    }
}

/// Both stages write their checkpoints into the migrated tables: a job id longer than the old
/// 255-character keys stays whole, and a chunk records where it was read.
async fn stages_write_the_migrated_layout(conn: &mut Conn, previous: &Layout) {
    let name = previous.name;
    let long_job = format!("default/{}", "n".repeat(300));
    let snapshot = full::Snapshot { method: "ftwrl".into(), ..Default::default() };
    full::save_snapshot(conn, &long_job, &snapshot, "done").await.expect("save a long job");
    let (saved, state) = full::load_snapshot(conn, &long_job).await.expect("read").expect("saved");
    assert_eq!((saved, state.as_str()), (snapshot, "done"), "{name}");
    assert!(full::copy_done(conn, &long_job).await.expect("copy state"), "{name}");

    let position =
        incremental::Position { file: "mariadb-bin.000004".into(), pos: 77, ..Default::default() };
    incremental::advance(conn, &long_job, &position, false).await.expect("save a checkpoint");
    let checkpoint = incremental::load(conn, &long_job).await.expect("read").expect("saved");
    assert_eq!((checkpoint.position, checkpoint.clean), (position, true), "{name}");

    let chunk = full::Chunk { db: "app".into(), table: "t".into(), seq: 1, cond: String::new() };
    let read_at = Some(("mariadb-bin.000001".to_string(), 300));
    conn.query_drop(full::mark_done_sql(JOB, &chunk, 5, 6, &read_at))
        .await
        .unwrap_or_else(|e| panic!("{name}: mark a chunk done: {e}"));
    full::save_table_positions(conn, JOB).await.expect("save table positions");
    let positions = full::load_table_positions(conn, JOB).await.expect("table positions");
    // The first layout's chunk 0 never recorded its position, so its table gets none.
    let expected = (previous.complete).then(|| ("mariadb-bin.000001".to_string(), 300));
    assert_eq!(positions.get("app").and_then(|t| t.get("t")).cloned(), expected, "{name}");
}

/// The rows an earlier Ferry keyed by `namespace/name` are adopted once, by the first job of
/// that name to run: its own key (the UID) names them after. A job created again under the
/// name (another UID) starts fresh, and the rows its predecessor left are deleted. The CLI's
/// key is stable until `ferry reset` forgets it, and a name is never cut.
async fn jobs_adopt_the_rows_once(conn: &mut Conn, previous: &Layout) {
    let name = previous.name;
    let first = Owner::Kubernetes { uid: "uid-1".into() };
    assert_eq!(jobs::lookup(conn, &first, JOB).await.expect("lookup"), JOB, "{name}");
    let key = jobs::resolve(conn, &first, JOB).await.expect("adopt");
    assert_eq!(key, "uid-1", "{name}");
    let (snapshot, _) = full::load_snapshot(conn, &key).await.expect("read").expect("adopted");
    assert_eq!(snapshot.pos, Some(120), "{name}");
    let checkpoint = incremental::load(conn, &key).await.expect("read").expect("adopted");
    assert_eq!(checkpoint.position.pos, 4567, "{name}");
    assert!(full::load_snapshot(conn, JOB).await.expect("read").is_none(), "{name}: re-keyed");
    assert!(incremental::load(conn, JOB).await.expect("read").is_none(), "{name}: re-keyed");
    assert_eq!(jobs::resolve(conn, &first, JOB).await.expect("again"), key, "{name}");
    assert_eq!(jobs::lookup(conn, &first, JOB).await.expect("lookup"), key, "{name}");

    let second = Owner::Kubernetes { uid: "uid-2".into() };
    assert_eq!(jobs::lookup(conn, &second, JOB).await.expect("lookup"), "uid-2", "{name}");
    assert!(incremental::load(conn, "uid-2").await.expect("read").is_none(), "{name}: fresh");
    assert_eq!(jobs::resolve(conn, &second, JOB).await.expect("recreated"), "uid-2", "{name}");
    assert!(full::load_snapshot(conn, "uid-2").await.expect("read").is_none(), "{name}: fresh");
    assert!(incremental::load(conn, "uid-2").await.expect("read").is_none(), "{name}: fresh");
    assert!(incremental::load(conn, &key).await.expect("read").is_none(), "{name}: left rows");
    assert!(full::load_plan(conn, &key, "app", "t").await.expect("read").is_empty(), "{name}");

    let cli = "default/cli";
    let id = jobs::resolve(conn, &Owner::Cli, cli).await.expect("register");
    assert_eq!(jobs::resolve(conn, &Owner::Cli, cli).await.expect("rerun"), id, "{name}");
    assert_eq!(jobs::lookup(conn, &Owner::Cli, cli).await.expect("lookup"), id, "{name}");
    let snapshot = full::Snapshot { method: "ftwrl".into(), ..Default::default() };
    full::save_snapshot(conn, &id, &snapshot, "done").await.expect("save");
    // Its snapshot and its registration.
    assert_eq!(jobs::forget(conn, &Owner::Cli, cli).await.expect("reset"), 2, "{name}");
    assert!(full::load_snapshot(conn, &id).await.expect("read").is_none(), "{name}: reset");
    let fresh = jobs::resolve(conn, &Owner::Cli, cli).await.expect("register again");
    assert_ne!(fresh, id, "{name}: a reset job gets a new id");

    assert_eq!(jobs::forget(conn, &second, JOB).await.expect("delete"), 1, "{name}");
    assert_eq!(jobs::lookup(conn, &second, JOB).await.expect("lookup"), JOB, "{name}");

    let longest = format!("ns/{}", "n".repeat(JOB_KEY_CHARS as usize - 3));
    let id = jobs::resolve(conn, &Owner::Cli, &longest).await.expect("the longest name");
    assert_eq!(jobs::lookup(conn, &Owner::Cli, &longest).await.expect("lookup"), id, "{name}");
    let cut = &longest[..longest.len() - 1];
    assert_eq!(jobs::lookup(conn, &Owner::Cli, cut).await.expect("lookup"), cut, "{name}");
    let error = jobs::resolve(conn, &Owner::Cli, &format!("{longest}n")).await.expect_err("long");
    assert!(matches!(error, ferry_worker::Error::Meta(MetaError::NameTooLong { .. })), "{error}");
}

/// A version this Ferry does not know stops it before it reads or changes anything.
async fn newer_versions_are_refused(target: &impl SqlServer, conn: &mut Conn) {
    let newer = CURRENT_VERSION + 1;
    target
        .exec(&format!("UPDATE ferry_meta.schema_version SET version = {newer}"))
        .await
        .expect("a newer version");
    let before = layout(conn).await;
    let error = meta::ensure(conn).await.expect_err("a newer layout was used");
    assert!(
        matches!(
            &error,
            ferry_worker::Error::Meta(MetaError::Newer { found, known })
                if *found == newer && *known == CURRENT_VERSION
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("version {newer}, newer than the version {CURRENT_VERSION}")),
        "{message}"
    );
    assert!(!error.retryable(), "{message}");
    assert_same_layout(&layout(conn).await, &before, "refused");
    assert_eq!(meta::schema::version(conn).await.expect("version"), Some(newer));
}

/// Fails with the lines of each layout that the other lacks.
fn assert_same_layout(layout: &[String], expected: &[String], name: &str) {
    let lacking = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|line| !b.contains(line)).cloned().collect()
    };
    assert!(
        layout == expected,
        "layout {name} differs from a fresh one:\nonly in {name}: {:#?}\nonly fresh: {:#?}",
        lacking(layout, expected),
        lacking(expected, layout)
    );
}

/// Every column and index of `ferry_meta`, as the server describes them.
async fn layout(conn: &mut Conn) -> Vec<String> {
    let columns: Vec<(String, String, String, String, Option<String>, String)> = conn
        .query(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'ferry_meta' \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .expect("read ferry_meta's columns");
    let indexes: Vec<(String, String, u32, String)> = conn
        .query(
            "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'ferry_meta' \
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        )
        .await
        .expect("read ferry_meta's indexes");
    let columns = columns.into_iter().map(|c| format!("{c:?}"));
    columns.chain(indexes.into_iter().map(|i| format!("{i:?}"))).collect()
}
