//! The full copy into a TiDB target: definitions adapted where TiDB rejects MariaDB's, values
//! exact, chunked tables, views, secondary indexes built after the rows.

mod support;

use ferry_e2e::{SourceKind, SqlServer, TargetKind};
use support::Setup;

const SCHEMA: &str = r#"
SET SESSION sql_mode = '';
CREATE DATABASE shop CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE ints (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, bi BIGINT,
  bu BIGINT UNSIGNED, d DECIMAL(65,30), dbl DOUBLE, b BIT(64), y YEAR) ENGINE=Aria;
INSERT INTO ints VALUES
  (1, -128, 255, -9223372036854775808, 18446744073709551615,
      '99999999999999999999999999999999999.999999999999999999999999999999', 0.1, b'1010', 2155),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE times (id INT PRIMARY KEY, d DATE, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL,
  t6 TIME(6));
INSERT INTO times VALUES (1, '2024-02-29', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.123',
  '-838:59:59.000000'), (2, NULL, NULL, NULL, '-00:00:01.500000');
CREATE TABLE texts (id INT PRIMARY KEY, v VARCHAR(100), l VARCHAR(50) CHARACTER SET latin1 COLLATE latin1_bin,
  bl BLOB, e ENUM('a','b'), s SET('x','y')) DEFAULT CHARSET = latin1 COLLATE latin1_bin;
INSERT INTO texts VALUES (1, '😀 ü', 'café', X'00FF27', 'b', 'x,y'), (2, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE composite (a VARCHAR(20), b INT, PRIMARY KEY (a, b), KEY b_first (b, a),
  KEY a_prefix (a(3)));
INSERT INTO composite SELECT CONCAT('k', seq % 13), seq FROM seq_1_to_2500;
CREATE TABLE more (id INT PRIMARY KEY, f FLOAT, j JSON, l VARCHAR(10) CHARACTER SET latin1,
  u VARCHAR(10) CHARACTER SET utf8mb3, g INT AS (id * 2) VIRTUAL, s INT AS (id + 1) STORED,
  t INT, d VARCHAR(10) NOT NULL DEFAULT 'x''y',
  CONSTRAINT more_times FOREIGN KEY (t) REFERENCES times (id) ON DELETE CASCADE);
INSERT INTO more (id, f, j, l, u, t) VALUES (1, 3.1415927, '{"b": [1, 2.5], "a": null}', 'café', 'ü', 1),
  (2, 16777217, '[]', '', '', NULL), (3, 0.1, NULL, NULL, NULL, 2);
CREATE VIEW v AS SELECT id, bu FROM ints;
ANALYZE TABLE composite;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn copies_into_tidb() {
    let mut setup = Setup::start_with(TargetKind::TiDb).await;
    setup.source.exec(SCHEMA).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "400")], &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    assert!(log.contains("definition adapted for TiDB"), "{log}");
    for table in ["ints", "times", "texts", "composite"] {
        let count = format!("SELECT COUNT(*) FROM shop.{table}");
        assert_eq!(
            setup.target.query_strings(&count).await.expect("target"),
            setup.source.query_strings(&count).await.expect("source"),
            "{table}"
        );
    }
    setup.assert_same("shop").await;
    setup.assert_same_indexes("shop").await;
    assert_eq!(setup.status()["phase"], "Completed");
}

/// MySQL 9.7's own definitions and values, into TiDB: the default utf8mb4_0900_ai_ci, binary
/// JSON, a functional index, CHECK constraints, expression defaults, and rows made by a
/// recursive CTE (MySQL has no sequence tables). The JSON keys sort the same by length first
/// (MySQL's order) and by bytes (TiDB's), as the comparison reads documents as text.
const MYSQL_SCHEMA: &str = r#"
SET SESSION cte_max_recursion_depth = 10000;
CREATE DATABASE shop;
USE shop;
CREATE TABLE ints (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, bi BIGINT,
  bu BIGINT UNSIGNED, d DECIMAL(65,30), dbl DOUBLE, b BIT(64), y YEAR);
INSERT INTO ints VALUES
  (1, -128, 255, -9223372036854775808, 18446744073709551615,
      '99999999999999999999999999999999999.999999999999999999999999999999', 0.1, b'1010', 2155),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE times (id INT PRIMARY KEY, d DATE, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL,
  t6 TIME(6));
INSERT INTO times VALUES (1, '2024-02-29', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.123',
  '-838:59:59.000000'), (2, NULL, NULL, NULL, '-00:00:01.500000');
CREATE TABLE docs (id INT PRIMARY KEY, name VARCHAR(40), doc JSON,
  price DECIMAL(10,2) CHECK (price >= 0),
  created DATETIME DEFAULT (CURRENT_TIMESTAMP), tag VARCHAR(36) DEFAULT (UUID()),
  l VARCHAR(20) CHARACTER SET latin1, bl BLOB,
  INDEX by_kind ((CAST(doc->>'$.k' AS CHAR(20)) COLLATE utf8mb4_bin)));
INSERT INTO docs (id, name, doc, price, created, tag, l, bl) VALUES
  (1, 'Ärger 😀', '{"k": "a", "nn": [1, 2.5, null], "sss": "ü"}', 1.50, '2024-01-01 00:00:00',
      'fixed-tag', 'café', X'00FF27'),
  (2, NULL, NULL, NULL, '2024-01-02 00:00:00', 'other-tag', NULL, NULL),
  (3, 'big', '{"k": "b", "zz": {"a": {"b": [true, false, 18446744073709551615]}}}', 0,
      '2024-01-03 00:00:00', 't3', '', '');
CREATE TABLE composite (a VARCHAR(20), b INT, PRIMARY KEY (a, b), KEY b_first (b, a),
  KEY a_prefix (a(3)));
INSERT INTO composite WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2500)
  SELECT CONCAT('k', n % 13), n FROM s;
CREATE VIEW v AS SELECT id, bu FROM ints;
ANALYZE TABLE composite;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn copies_mysql_into_tidb() {
    let mut setup = Setup::start_with_source(SourceKind::MySql, TargetKind::TiDb).await;
    setup.source.exec(MYSQL_SCHEMA).await.expect("load the source");
    let manifest = setup.manifest("Full", "    databases: [shop]");
    let (ok, log) = setup.run(&manifest, &[("FERRY_CHUNK_ROWS", "400")], &["--concurrency", "2"]);
    assert!(ok, "ferry migrate failed:\n{log}");
    setup.assert_same("shop").await;
    setup.assert_same_indexes("shop").await;
    let collation = "SELECT TABLE_COLLATION FROM information_schema.TABLES \
        WHERE TABLE_SCHEMA = 'shop' AND TABLE_NAME = 'docs'";
    assert_eq!(
        setup.target.query_strings(collation).await.expect("target"),
        [Some("utf8mb4_0900_ai_ci".to_string())]
    );
    assert_eq!(setup.status()["phase"], "Completed");
}
