//! The type corpora of the copy tests (full_types, full_tidb), shared with verify: every column
//! type each source has, with its edge values.

pub const MARIADB_TYPES: &str = r#"
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
  (3, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, '\\N', 'N', '\\\\N\t\\', '\\', '\\N', 'tab\tend\n');
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

/// MySQL 9.7's own column kinds into MariaDB: binary JSON, CHECK constraints, expression
/// defaults, an SRID spatial column with its index, generated columns, and a view (database
/// collation utf8mb4_general_ci: MariaDB 10.11 lacks MySQL's default utf8mb4_0900_ai_ci, which
/// the precheck reports; the copy into TiDB keeps it, see full_tidb). SHOW CREATE TABLE writes
/// INVISIBLE and SRID as version comments MariaDB would skip: they must arrive as MariaDB's own
/// INVISIBLE and REF_SYSTEM_ID.
pub const MYSQL_TYPES: &str = r#"
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

pub const MARIADB_INTO_TIDB: &str = r#"
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

/// MySQL 9.7's own definitions and values, into TiDB: the default utf8mb4_0900_ai_ci, binary
/// JSON, a functional index, CHECK constraints, expression defaults, and rows made by a
/// recursive CTE (MySQL has no sequence tables). The JSON keys sort the same by length first
/// (MySQL's order) and by bytes (TiDB's), as the comparison reads documents as text.
pub const MYSQL_INTO_TIDB: &str = r#"
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
