//! `ferry migrate` in Full mode copies every column type exactly, chunked tables, tables without
//! keys, quoted names, generated columns, foreign keys, views, a system-versioned table with an invisible column,
//! and reports Completed.

mod support;

use ferry_e2e::{SourceKind, SqlServer, TargetKind};
use support::Setup;

const SCHEMA: &str = r#"
SET SESSION sql_mode = '';
CREATE DATABASE types CHARACTER SET utf8mb4;
CREATE DATABASE other;
CREATE TABLE other.skipped (id INT PRIMARY KEY);
USE types;
CREATE TABLE ints (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT,
  su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, bu BIGINT UNSIGNED) AUTO_INCREMENT = 1000;
INSERT INTO ints VALUES
  (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0),
  (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
      9223372036854775807, 18446744073709551615),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE nums (id INT PRIMARY KEY, d1 DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT,
  dbl DOUBLE, fx FLOAT(10,4));
INSERT INTO nums VALUES
  (1, '99999999999999999999999999999999999.999999999999999999999999999999', -12.5,
      1.1, 0.1, 123.4567),
  (2, '-0.000000000000000000000000000001', 0, 3.4028234e38, 1.7976931348623157e308, -1.5),
  (3, 0, NULL, -1.17549435e-38, 2.2250738585072014e-308, 0),
  (4, NULL, 1, 16777217, 123456789.123456789, NULL);
CREATE TABLE bits (id INT PRIMARY KEY, b1 BIT(1), b8 BIT(8), b64 BIT(64));
INSERT INTO bits VALUES (1, b'1', b'10101010', b'1111111111111111111111111111111111111111111111111111111111111111'),
  (2, b'0', b'0', b'0'), (3, NULL, NULL, NULL);
CREATE TABLE times (id INT PRIMARY KEY, d DATE, dt0 DATETIME, dt6 DATETIME(6),
  ts0 TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, t0 TIME, t6 TIME(6), y YEAR);
INSERT INTO times VALUES
  (1, '2024-02-29', '2024-02-29 23:59:59', '9999-12-31 23:59:59.999999',
      '2038-01-19 03:14:07', '1970-01-01 00:00:01.001', '-838:59:59', '-00:00:01.500000', 0),
  (2, '0000-00-00', '0000-00-00 00:00:00', '1000-01-01 00:00:00.000001',
      '0000-00-00 00:00:00', '2001-02-03 04:05:06.789', '838:59:59', '838:59:59.000000', 1901),
  (3, '2024-00-00', NULL, NULL, NULL, NULL, '00:00:00', '-12:34:56.123456', 2155),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE texts (id INT PRIMARY KEY, c CHAR(10), v VARCHAR(100), t TEXT, mt MEDIUMTEXT,
  l VARCHAR(50) CHARACTER SET latin1, lt TEXT CHARACTER SET latin1);
INSERT INTO texts VALUES
  (1, 'abc', '😀 𝄞 ✓ — ü', 'quote '' backslash \\ nul \0 newline \n tab \t cr \r z \Z', '',
      'café ÿ', CONCAT('x', CHAR(0x80 USING latin1), CHAR(0x81 USING latin1), CHAR(0xFF USING latin1))),
  (2, '', '', NULL, REPEAT('long text ', 50000), '', NULL),
  (3, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE bins (id INT PRIMARY KEY, b4 BINARY(4), vb VARBINARY(300), bl BLOB, lb LONGBLOB);
INSERT INTO bins VALUES (1, X'00FF0A27', X'5C00275C', X'', NULL),
  (2, 'ab', NULL, NULL, NULL), (3, NULL, NULL, NULL, NULL);
INSERT INTO bins SELECT 4, NULL, NULL, NULL, GROUP_CONCAT(CHAR(seq % 256) SEPARATOR '')
  FROM seq_0_to_4095;
CREATE TABLE misc (id INT PRIMARY KEY, e ENUM('a','b','c'), s SET('x','y','z'), j JSON,
  g GEOMETRY, p POINT, gen_v INT AS (id * 2) VIRTUAL, gen_s INT AS (id * 3) STORED);
INSERT INTO misc (id, e, s, j, g, p) VALUES
  (1, 'b', 'x,z', '{"a": [1, 2.5, "ü"], "b": null}', ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'),
      POINT(1.5, -2.25)),
  (2, NULL, '', '[]', NULL, NULL), (3, 'a', 'x,y,z', '"text"', ST_GeomFromText('LINESTRING(0 0,1 1)'), POINT(0, 0));
CREATE TABLE `we``ird tab le` (`sel ect` INT PRIMARY KEY, `a``b` VARCHAR(10), `naïve` INT);
INSERT INTO `we``ird tab le` VALUES (1, 'x', 2), (2, NULL, NULL);
CREATE TABLE composite (a VARCHAR(20), b INT, v TEXT, PRIMARY KEY (a, b));
INSERT INTO composite SELECT CONCAT('key-', seq % 37, '-é'), seq, REPEAT('v', seq % 50) FROM seq_1_to_3000;
CREATE TABLE big (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(40));
INSERT INTO big SELECT seq * 7, MD5(seq) FROM seq_1_to_5000;
CREATE TABLE uk (u VARCHAR(10) NOT NULL, x INT, UNIQUE KEY (u));
INSERT INTO uk SELECT CONCAT('u', seq), seq FROM seq_1_to_1200;
CREATE TABLE nokey (a INT, b TEXT);
INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL);
CREATE TABLE parent (id INT PRIMARY KEY);
CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id));
INSERT INTO parent VALUES (1), (2);
INSERT INTO child VALUES (10, 1), (20, 2);
CREATE TABLE hist (id INT PRIMARY KEY, v VARCHAR(10), h INT INVISIBLE) WITH SYSTEM VERSIONING;
INSERT INTO hist (id, v, h) VALUES (1, 'old', 10), (2, 'gone', 20);
UPDATE hist SET v = 'new', h = 11 WHERE id = 1;
DELETE FROM hist WHERE id = 2;
CREATE VIEW v_ints AS SELECT id, bu FROM ints;
CREATE VIEW v_of_v AS SELECT id FROM v_ints;
ANALYZE TABLE composite, big, uk;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_type_round_trips_exactly() {
    let mut setup = Setup::start().await;
    setup.source.exec(SCHEMA).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [types]");
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "500")], &["--concurrency", "3"]);
    assert!(ok, "ferry migrate failed:\n{log}");
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
    let copied = ferry_e2e::table_rows(&mut target, "app", "t").await.expect("target rows");
    assert_eq!(copied.len(), rows_at_start.len());
    assert!(copied == rows_at_start, "the copy is not the source as it was when the copy started");
    assert_ne!(source_rows(&setup).await, rows_at_start, "the writes changed nothing");
    let snapshot = &setup.status()["full"]["snapshot"];
    assert!(snapshot["file"].is_string() && snapshot["pos"].is_number(), "{snapshot}");
}

async fn source_rows(setup: &Setup) -> Vec<String> {
    let mut conn = setup.source.conn().await.expect("source conn");
    ferry_e2e::table_rows(&mut conn, "app", "t").await.expect("source rows")
}

/// MySQL 9.7's own column kinds into MariaDB: binary JSON, CHECK constraints, expression
/// defaults, an SRID spatial column with its index, generated columns, and a view (database
/// collation utf8mb4_general_ci: MariaDB 10.11 lacks MySQL's default utf8mb4_0900_ai_ci, which
/// the precheck reports; the copy into TiDB keeps it, see full_tidb). SHOW CREATE TABLE writes
/// INVISIBLE and SRID as version comments MariaDB would skip: they must arrive as MariaDB's own
/// INVISIBLE and REF_SYSTEM_ID.
const MYSQL_SCHEMA: &str = r#"
SET SESSION cte_max_recursion_depth = 10000;
CREATE DATABASE types CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE types;
CREATE TABLE own (id INT PRIMARY KEY, secret INT INVISIBLE, doc JSON,
  price DECIMAL(10,2) CHECK (price >= 0), tag VARCHAR(36) DEFAULT (UUID()),
  at DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6), loc POINT NOT NULL SRID 4326,
  gen_v INT AS (id * 2) VIRTUAL, gen_s INT AS (id * 3) STORED, SPATIAL INDEX (loc));
INSERT INTO own (id, secret, doc, price, loc) VALUES
  (1, 42, '{"k": "a", "nn": [1, 2.5, null], "sss": "ü"}', 1.5, ST_SRID(POINT(1.5, -2.25), 4326)),
  (2, NULL, NULL, NULL, ST_SRID(POINT(0, 0), 4326));
CREATE TABLE nums (id INT PRIMARY KEY, bu BIGINT UNSIGNED, d DECIMAL(65,30), b BIT(64),
  t6 TIME(6), y YEAR, e ENUM('a','b'), s SET('x','y'), l VARCHAR(20) CHARACTER SET latin1);
INSERT INTO nums WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 3000)
  SELECT n, 18446744073709551615 - n, n / 7, n, SEC_TO_TIME(n * 37 - 50000), 1901 + n % 255,
  IF(n % 2, 'a', 'b'), IF(n % 3, 'x,y', ''), IF(n % 5, 'café', NULL) FROM s;
CREATE VIEW v_own AS SELECT id, doc FROM own;
ANALYZE TABLE nums;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn mysql_types_round_trip_into_mariadb() {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::MariaDb).await;
    setup.source.exec(MYSQL_SCHEMA).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [types]");
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "500")], &["--concurrency", "3"]);
    assert!(ok, "ferry migrate failed:\n{log}");
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
    let yaml = ferry_e2e::JobManifest {
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
