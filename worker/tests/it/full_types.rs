//! `ferry migrate` in Full mode copies every column type exactly, chunked tables, tables without
//! keys, quoted names, generated columns, foreign keys, views, a system-versioned table with an invisible column,
//! and reports Completed.

use crate::support;

use ferry_harness::{SourceKind, SqlServer, TargetKind};
use support::{CopyPath, Setup};

#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_exactly_by_load_data() {
    every_type_round_trips_exactly(CopyPath::Load).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_exactly_by_statements() {
    every_type_round_trips_exactly(CopyPath::Statements).await;
}

async fn every_type_round_trips_exactly(path: CopyPath) {
    let mut setup = Setup::start().await;
    setup.source.exec(support::corpus::MARIADB_TYPES).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [types]");
    let envs = [("FERRY_CHUNK_ROWS", "500"), path.env()];
    let (ok, log) = setup.run(&manifest, &envs, &["--concurrency", "3"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    path.assert_followed(&log);
    setup.assert_same("types").await;

    let status = setup.status();
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert_eq!(status["stage"], "Completed", "{status:#}");
    let full = &status["full"];
    assert_eq!(full["tablesDone"], full["tablesTotal"], "{status:#}");
    assert_eq!(full["tablesTotal"], 15, "{status:#}");
    assert_eq!(full["percent"], "100.0%", "{status:#}");
    assert!(
        full["snapshot"]["file"].as_str().is_some_and(|f| f.starts_with("mysql-bin")),
        "{status:#}"
    );
    assert!(log.contains("no primary key"), "no warning for the keyless table:\n{log}");

    let views = setup
        .target
        .query_strings("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'types' ORDER BY 1")
        .await
        .expect("views");
    assert_eq!(views, vec![Some("v_ints".into()), Some("v_of_v".into())]);
    let unselected = setup
        .target
        .query_strings(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'other'",
        )
        .await
        .expect("schemata");
    assert!(unselected.is_empty(), "an unselected database was copied");
    let auto_increment =
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_NAME = 'ints'";
    assert_eq!(
        setup.target.query_strings(auto_increment).await.expect("target"),
        setup.source.query_strings(auto_increment).await.expect("source"),
    );
    let generated =
        setup.target.query_strings("SELECT gen_s FROM types.misc WHERE id = 3").await.expect("gen");
    assert_eq!(generated, vec![Some("9".into())]);

    // Run again: the copy is recorded as done, so nothing is copied twice.
    // A copied row changed on the target: copying again (REPLACE) would put the source's back.
    setup.target.exec("UPDATE types.big SET v = 'marker' WHERE id = 7").await.expect("marker row");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "second run failed:\n{log}");
    assert!(log.contains("already copied"), "second run copied again:\n{log}");
    let marker = setup.target.query_strings("SELECT v FROM types.big WHERE id = 7").await;
    assert_eq!(marker.expect("marker"), [Some("marker".to_string())], "the rows were copied again");
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_on_the_target_are_replaced_and_tables_kept() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(10)); \
             INSERT INTO app.t VALUES (1, 'source'), (2, 'source')",
        )
        .await
        .expect("source");
    setup
        .target
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(10)); \
             INSERT INTO app.t VALUES (1, 'stale')",
        )
        .await
        .expect("target");
    let manifest = setup.manifest("Full", "    tables: [{database: app, table: t}]");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "ferry migrate failed:\n{log}");
    setup.assert_same("app").await;
    assert!(log.contains("exists on the target"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn selected_objects_that_do_not_exist_are_named() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
        .await
        .expect("source");
    for (objects, named) in [
        ("    databases: [nosuchdb]", "nosuchdb"),
        ("    tables: [{database: app, table: nosuch}]", "nosuch"),
    ] {
        let manifest = setup.manifest("Full", objects);
        let (ok, log) = setup.run(&manifest, &[], &[]);
        assert!(!ok, "ferry migrate succeeded with {objects}:\n{log}");
        assert!(
            log.contains(named) && (log.contains("does not exist") || log.contains("not found")),
            "{objects}:\n{log}"
        );
    }
}

/// Without RELOAD the copy cannot take the global read lock and takes one snapshot per
/// connection; writes committed while it copies (after its snapshots) must not reach the copy,
/// which holds exactly the rows as they were when it started.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_global_lock_the_copy_is_still_exact() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; USE app; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)); \
             INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_30000; \
             REVOKE RELOAD ON *.* FROM 'ferry'@'%'",
        )
        .await
        .expect("source");
    let rows_at_start = source_rows(&setup).await;
    let manifest = setup.manifest("Full", "    databases: [app]");
    let mut child = setup.spawn(&manifest, &[("FERRY_CHUNK_ROWS", "300")], &["--concurrency", "3"]);
    let source = &setup.source;
    let during = setup
        .write_while_copying(&mut child, |n| async move {
            let id = n * 97 % 30_000 + 1;
            let sql = format!(
                "UPDATE app.t SET v = 'changed' WHERE id = {id}; \
                 DELETE FROM app.t WHERE id = {}; INSERT INTO app.t VALUES ({}, 'new')",
                30_001 - id,
                100_000 + n
            );
            source.exec(&sql).await.expect("write to the source");
        })
        .await;
    assert!(child.wait().expect("wait for ferry").success(), "{}", setup.last_log());
    assert!(during > 0, "no write committed while the copy ran:\n{}", setup.last_log());
    assert!(
        setup.last_log().contains("refused FLUSH TABLES WITH READ LOCK"),
        "{}",
        setup.last_log()
    );
    assert_eq!(setup.snapshot_method().await.as_deref(), Some("lock-free"));

    let mut target = setup.target.conn().await.expect("target conn");
    let copied = ferry_harness::table_rows(&mut target, "app", "t").await.expect("target rows");
    assert_eq!(copied.len(), rows_at_start.len());
    assert!(copied == rows_at_start, "the copy is not the source as it was when the copy started");
    assert_ne!(source_rows(&setup).await, rows_at_start, "the writes changed nothing");
    let snapshot = &setup.status()["full"]["snapshot"];
    assert!(snapshot["file"].is_string() && snapshot["pos"].is_number(), "{snapshot}");
}

/// A target with local files off gets multi-row statements, unless only LOAD DATA was asked
/// for, which stops naming the setting.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_without_local_infile_gets_statements() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; USE app; CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)); \
             INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_3000",
        )
        .await
        .expect("source");
    setup.target.exec("SET GLOBAL local_infile = 0").await.expect("local_infile off");
    let manifest = setup.manifest("Full", "    databases: [app]");
    let (ok, log) = setup.run(&manifest, &[CopyPath::Load.env()], &[]);
    assert!(!ok, "a forced LOAD DATA copy ran without local files:\n{log}");
    assert!(log.contains("SET GLOBAL local_infile = 1"), "{log}");

    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "500")], &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    assert!(log.contains("the target refuses LOAD DATA LOCAL"), "{log}");
    setup.assert_same("app").await;
}

async fn source_rows(setup: &Setup) -> Vec<String> {
    let mut conn = setup.source.conn().await.expect("source conn");
    ferry_harness::table_rows(&mut conn, "app", "t").await.expect("source rows")
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_types_round_trip_into_mariadb_by_load_data() {
    mysql_types_round_trip_into_mariadb(CopyPath::Load).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql_types_round_trip_into_mariadb_by_statements() {
    mysql_types_round_trip_into_mariadb(CopyPath::Statements).await;
}

async fn mysql_types_round_trip_into_mariadb(path: CopyPath) {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::MariaDb).await;
    setup.source.exec(support::corpus::MYSQL_TYPES).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [types]");
    let envs = [("FERRY_CHUNK_ROWS", "500"), path.env()];
    let (ok, log) = setup.run(&manifest, &envs, &["--concurrency", "3"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    path.assert_followed(&log);
    let extra = "SELECT EXTRA FROM information_schema.COLUMNS \
        WHERE TABLE_SCHEMA = 'types' AND TABLE_NAME = 'own' AND COLUMN_NAME = 'secret'";
    assert_eq!(
        setup.target.query_strings(extra).await.expect("target"),
        [Some("INVISIBLE".into())]
    );
    let secret = "SELECT secret FROM types.own ORDER BY id";
    assert_eq!(
        setup.target.query_strings(secret).await.expect("target"),
        [Some("42".into()), None]
    );
    // MariaDB records the SRID (its SHOW CREATE TABLE does not show it).
    let srid = "SELECT SRID FROM information_schema.GEOMETRY_COLUMNS \
        WHERE G_TABLE_SCHEMA = 'types' AND G_TABLE_NAME = 'own' AND G_GEOMETRY_COLUMN = 'loc'";
    assert_eq!(setup.target.query_strings(srid).await.expect("target"), [Some("4326".into())]);
    setup.assert_same("types").await;
    // The expression defaults hold the source's values, not ones the target computed.
    let tag = "SELECT tag FROM types.own ORDER BY id";
    assert_eq!(
        setup.target.query_strings(tag).await.expect("target"),
        setup.source.query_strings(tag).await.expect("source")
    );
    let views = "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'types'";
    assert_eq!(setup.target.query_strings(views).await.expect("views"), [Some("v_own".into())]);
    assert_eq!(setup.status()["phase"], "Completed");
}

/// A job without `objects` copies every user database, and no system one.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_without_objects_copies_every_user_database() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE a; CREATE TABLE a.t (id INT PRIMARY KEY, f FLOAT); \
             INSERT INTO a.t VALUES (1, 0.1), (2, 16777217); \
             CREATE DATABASE b; CREATE TABLE b.u (v VARCHAR(5)); INSERT INTO b.u VALUES ('x'); \
             CREATE VIEW b.w AS SELECT v FROM b.u",
        )
        .await
        .expect("source");
    let yaml = ferry_harness::JobManifest {
        source_kind: setup.source.source_kind(),
        name: "job",
        source_port: setup.source.port(),
        target_port: setup.target.port(),
        user: "ferry",
        password: support::PASSWORD,
        mode: "Full",
        spec: "",
    }
    .yaml();
    assert!(!yaml.contains("objects"), "{yaml}");
    let manifest = setup.dir.path().join("job.yaml");
    std::fs::write(&manifest, yaml).expect("write the manifest");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "ferry migrate failed:\n{log}");
    setup.assert_same("a").await;
    setup.assert_same("b").await;
    let user_databases = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME \
        NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys', 'ferry_meta') ORDER BY 1";
    let copied = setup.target.query_strings(user_databases).await.expect("target databases");
    assert_eq!(copied, [Some("a".to_string()), Some("b".to_string())]);
}
