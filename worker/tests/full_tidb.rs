//! The full copy into a TiDB target: definitions adapted where TiDB rejects MariaDB's, values
//! exact, chunked tables, views, secondary indexes built after the rows.

mod support;

use ferry_e2e::{SqlServer, TargetKind};
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
