//! DDL statements of the kinds applications run, replicated with row changes around them from a
//! MariaDB source into a MariaDB and a TiDB target, and from MySQL into TiDB, then compared
//! (schema and every value).
//!
//! The statements run one by one on the source; after each DDL the test waits until the job has
//! applied it or stopped. A statement the target refuses must stop the job with an error naming
//! it, its binlog position and the choices; the test then skips it with `--ddl-skip`, drops its
//! scenario's tables on the source (replicated too) and goes on. What each target refuses is
//! asserted, so a change shows.

use crate::support;

use std::process::Child;
use std::time::{Duration, Instant};

use ferry_harness::{CompareOptions, SourceKind, SqlServer, TargetKind};
use mysql_async::prelude::Queryable;
use support::Setup;

/// One scenario: its tables, and statements (DDL and row changes) run in order in one session.
struct Scenario {
    tables: &'static [&'static str],
    statements: &'static [&'static str],
}

const fn scenario(
    tables: &'static [&'static str],
    statements: &'static [&'static str],
) -> Scenario {
    Scenario { tables, statements }
}

const CORPUS: &[Scenario] = &[
    scenario(
        &["add_col"],
        &[
            "CREATE TABLE add_col (id INT PRIMARY KEY, a VARCHAR(20))",
            "INSERT INTO add_col VALUES (1, 'one'), (2, 'two')",
            "ALTER TABLE add_col ADD COLUMN b INT NOT NULL DEFAULT 7",
            "INSERT INTO add_col (id, a, b) VALUES (3, 'three', 3)",
            "ALTER TABLE add_col ADD COLUMN c VARCHAR(10) AFTER id",
            "UPDATE add_col SET c = 'x' WHERE id < 3",
            "ALTER TABLE add_col ADD COLUMN d DATETIME(3) FIRST",
            "INSERT INTO add_col VALUES ('2024-02-29 10:11:12.123', 4, 'c', 'four', 4)",
            "ALTER TABLE add_col ADD e DECIMAL(10,2) DEFAULT 1.50, ADD f ENUM('a','b') DEFAULT 'b'",
            "INSERT INTO add_col (id, a) VALUES (5, 'five')",
        ],
    ),
    scenario(
        &["drop_col"],
        &[
            "CREATE TABLE drop_col (id INT PRIMARY KEY, a INT, b VARCHAR(10), c TEXT)",
            "INSERT INTO drop_col VALUES (1, 1, 'b', 'c'), (2, 2, 'bb', 'cc')",
            "ALTER TABLE drop_col DROP COLUMN b",
            "INSERT INTO drop_col VALUES (3, 3, 'ccc')",
            "ALTER TABLE drop_col DROP c, ADD e INT",
            "UPDATE drop_col SET e = id * 10",
        ],
    ),
    scenario(
        &["modify_col"],
        &[
            "CREATE TABLE modify_col (id INT PRIMARY KEY, a INT, b VARCHAR(10), c FLOAT)",
            "INSERT INTO modify_col VALUES (1, 100, 'abc', 1.5), (2, -5, 'n', 2.25)",
            "ALTER TABLE modify_col MODIFY a BIGINT",
            "INSERT INTO modify_col VALUES (3, 9000000000, 'big', 0)",
            "ALTER TABLE modify_col MODIFY b VARCHAR(50) NOT NULL DEFAULT ''",
            "ALTER TABLE modify_col CHANGE b bb VARCHAR(60) NOT NULL DEFAULT 'z'",
            "INSERT INTO modify_col (id, a) VALUES (4, 4)",
            "ALTER TABLE modify_col MODIFY c DOUBLE",
            "ALTER TABLE modify_col MODIFY a DECIMAL(20,2)",
            "UPDATE modify_col SET a = a + 0.25",
        ],
    ),
    scenario(
        &["rename_col"],
        &[
            "CREATE TABLE rename_col (id INT PRIMARY KEY, a INT, b INT)",
            "INSERT INTO rename_col VALUES (1, 1, 1)",
            "ALTER TABLE rename_col RENAME COLUMN a TO a2",
            "INSERT INTO rename_col (id, a2, b) VALUES (2, 2, 2)",
            "ALTER TABLE rename_col CHANGE COLUMN b b2 BIGINT",
            "UPDATE rename_col SET b2 = 5000000000 WHERE id = 2",
        ],
    ),
    scenario(
        &["idx"],
        &[
            "CREATE TABLE idx (id INT PRIMARY KEY, a INT, b VARCHAR(40), c VARCHAR(40))",
            "INSERT INTO idx VALUES (1, 1, 'x', 'p'), (2, 2, 'y', 'q')",
            "ALTER TABLE idx ADD INDEX ia (a)",
            "CREATE INDEX ib ON idx (b)",
            "ALTER TABLE idx ADD UNIQUE KEY uab (a, b)",
            "CREATE UNIQUE INDEX uc ON idx (c(10))",
            "INSERT INTO idx VALUES (3, 3, 'z', 'r')",
            "DROP INDEX ib ON idx",
            "ALTER TABLE idx DROP INDEX ia",
            "ALTER TABLE idx RENAME INDEX uab TO uab2",
            "ALTER TABLE idx ADD INDEX ibc (b, c DESC)",
            "DELETE FROM idx WHERE id = 1",
        ],
    ),
    scenario(
        &["pk"],
        &[
            "CREATE TABLE pk (id INT NOT NULL, a INT NOT NULL, v VARCHAR(10))",
            "INSERT INTO pk VALUES (1, 1, 'a'), (2, 1, 'b')",
            "ALTER TABLE pk ADD PRIMARY KEY (id)",
            "INSERT INTO pk VALUES (3, 2, 'c')",
            "UPDATE pk SET v = 'bb' WHERE id = 2",
        ],
    ),
    scenario(
        &["pk_change"],
        &[
            "CREATE TABLE pk_change (id INT NOT NULL, a INT NOT NULL, PRIMARY KEY (id))",
            "INSERT INTO pk_change VALUES (1, 1), (2, 1)",
            "ALTER TABLE pk_change DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)",
            "INSERT INTO pk_change VALUES (1, 2)",
        ],
    ),
    scenario(
        &["uniq"],
        &[
            "CREATE TABLE uniq (id INT NOT NULL, code VARCHAR(10) NOT NULL)",
            "INSERT INTO uniq VALUES (1, 'a'), (2, 'b')",
            "ALTER TABLE uniq ADD UNIQUE INDEX ucode (code)",
            "UPDATE uniq SET code = 'c' WHERE id = 2",
            "ALTER TABLE uniq DROP INDEX ucode, ADD CONSTRAINT uid UNIQUE (id)",
            "DELETE FROM uniq WHERE id = 1",
        ],
    ),
    scenario(
        &["part_range"],
        &[
            "CREATE TABLE part_range (id INT NOT NULL, d DATE NOT NULL, PRIMARY KEY (id, d)) \
         PARTITION BY RANGE (YEAR(d)) (PARTITION p2020 VALUES LESS THAN (2021), \
         PARTITION p2021 VALUES LESS THAN (2022))",
            "INSERT INTO part_range VALUES (1, '2020-05-01'), (2, '2021-05-01')",
            "ALTER TABLE part_range ADD PARTITION (PARTITION p2022 VALUES LESS THAN (2023))",
            "INSERT INTO part_range VALUES (3, '2022-05-01')",
            "ALTER TABLE part_range DROP PARTITION p2020",
            "ALTER TABLE part_range TRUNCATE PARTITION p2021",
            "INSERT INTO part_range VALUES (4, '2021-07-01')",
            "ALTER TABLE part_range REORGANIZE PARTITION p2022 INTO \
         (PARTITION p2022 VALUES LESS THAN (2023), PARTITION pmax VALUES LESS THAN MAXVALUE)",
            "INSERT INTO part_range VALUES (5, '2030-01-01')",
        ],
    ),
    scenario(
        &["part_hash"],
        &[
            "CREATE TABLE part_hash (id INT PRIMARY KEY, v INT) PARTITION BY HASH (id) PARTITIONS 4",
            "INSERT INTO part_hash VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)",
            "ALTER TABLE part_hash COALESCE PARTITION 2",
            "INSERT INTO part_hash VALUES (6, 6)",
            "ALTER TABLE part_hash REMOVE PARTITIONING",
            "UPDATE part_hash SET v = v * 2",
        ],
    ),
    scenario(
        &["part_list"],
        &[
            "CREATE TABLE part_list (id INT PRIMARY KEY, v INT)",
            "INSERT INTO part_list VALUES (1, 1), (2, 2)",
            "ALTER TABLE part_list PARTITION BY LIST (id) (PARTITION a VALUES IN (1, 3), \
         PARTITION b VALUES IN (2, 4))",
            "INSERT INTO part_list VALUES (3, 3)",
        ],
    ),
    scenario(
        &["xchg_p", "xchg_t"],
        &[
            "CREATE TABLE xchg_p (id INT PRIMARY KEY, v INT) PARTITION BY RANGE (id) \
         (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE)",
            "CREATE TABLE xchg_t (id INT PRIMARY KEY, v INT)",
            "INSERT INTO xchg_p VALUES (1, 1), (200, 2)",
            "INSERT INTO xchg_t VALUES (5, 5), (6, 6)",
            "ALTER TABLE xchg_p EXCHANGE PARTITION p0 WITH TABLE xchg_t",
            "INSERT INTO xchg_p VALUES (7, 7)",
            "INSERT INTO xchg_t VALUES (2, 2)",
        ],
    ),
    scenario(
        &["cs"],
        &[
            "CREATE TABLE cs (id INT PRIMARY KEY, a VARCHAR(20)) CHARACTER SET latin1",
            "INSERT INTO cs VALUES (1, 'caf\u{e9}')",
            "ALTER TABLE cs ADD b VARCHAR(10) CHARACTER SET utf8mb3",
            "ALTER TABLE cs ADD c TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            "ALTER TABLE cs ADD d VARCHAR(10) CHARACTER SET utf8mb4",
            "INSERT INTO cs VALUES (2, 'na\u{ef}ve', '\u{fc}', '\u{1f600}', 'D')",
            "ALTER TABLE cs DEFAULT CHARSET = utf8mb4",
            "ALTER TABLE cs ADD e VARCHAR(5)",
            "INSERT INTO cs (id, e) VALUES (3, '\u{2603}')",
        ],
    ),
    scenario(
        &["cs_convert"],
        &[
            "CREATE TABLE cs_convert (id INT PRIMARY KEY, a VARCHAR(20)) \
         CHARACTER SET latin1 COLLATE latin1_swedish_ci",
            "INSERT INTO cs_convert VALUES (1, 'caf\u{e9}')",
            "ALTER TABLE cs_convert CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
            "INSERT INTO cs_convert VALUES (2, '\u{1f600}')",
        ],
    ),
    scenario(
        &["cs_modify"],
        &[
            "CREATE TABLE cs_modify (id INT PRIMARY KEY, a VARCHAR(20) CHARACTER SET utf8mb3)",
            "INSERT INTO cs_modify VALUES (1, 'abc')",
            "ALTER TABLE cs_modify MODIFY a VARCHAR(20) CHARACTER SET utf8mb4",
            "INSERT INTO cs_modify VALUES (2, '\u{1f600}')",
            "ALTER TABLE cs_modify MODIFY a VARCHAR(20) COLLATE utf8mb4_unicode_ci",
        ],
    ),
    scenario(
        &["defaults"],
        &[
            "CREATE TABLE defaults (id INT PRIMARY KEY, a INT DEFAULT 1)",
            "INSERT INTO defaults (id) VALUES (1)",
            "ALTER TABLE defaults ALTER COLUMN a SET DEFAULT 5",
            "INSERT INTO defaults (id) VALUES (2)",
            "ALTER TABLE defaults ALTER a DROP DEFAULT",
            "INSERT INTO defaults VALUES (3, 3)",
            "ALTER TABLE defaults ADD d DATE DEFAULT '2024-02-29', ADD s VARCHAR(10) DEFAULT 'it''s'",
            "INSERT INTO defaults (id, a) VALUES (4, 4)",
        ],
    ),
    scenario(
        &["tz"],
        &[
            "CREATE TABLE tz (id INT PRIMARY KEY)",
            "INSERT INTO tz VALUES (1)",
            "SET time_zone = '+05:00'",
            "ALTER TABLE tz ADD t TIMESTAMP NULL DEFAULT '2021-06-01 12:00:00'",
            "SET time_zone = '+00:00'",
            "INSERT INTO tz (id) VALUES (2)",
        ],
    ),
    scenario(
        &["gen"],
        &[
            "CREATE TABLE gen (id INT PRIMARY KEY, a INT, b VARCHAR(20))",
            "INSERT INTO gen VALUES (1, 2, 'x')",
            "ALTER TABLE gen ADD g INT AS (a * 2) VIRTUAL",
            "INSERT INTO gen (id, a, b) VALUES (2, 5, 'y')",
            "ALTER TABLE gen ADD INDEX ig (g)",
            "ALTER TABLE gen DROP COLUMN g",
            "UPDATE gen SET a = 7 WHERE id = 1",
        ],
    ),
    scenario(
        &["gen_stored"],
        &[
            "CREATE TABLE gen_stored (id INT PRIMARY KEY, a INT, h INT AS (a + 1) STORED)",
            "INSERT INTO gen_stored (id, a) VALUES (1, 1)",
            "ALTER TABLE gen_stored ADD s VARCHAR(30) AS (CONCAT('v', a)) STORED",
            "INSERT INTO gen_stored (id, a) VALUES (2, 2)",
        ],
    ),
    scenario(
        &["modes"],
        &[
            "CREATE TABLE modes (id INT PRIMARY KEY, a VARCHAR(10), b VARCHAR(10))",
            "INSERT INTO modes VALUES (1, 'x', 'y')",
            "SET sql_mode = 'ANSI_QUOTES'",
            "ALTER TABLE \"modes\" ADD \"q\" INT DEFAULT 3",
            "SET sql_mode = 'PIPES_AS_CONCAT'",
            "ALTER TABLE modes ADD g VARCHAR(30) AS (a || b) VIRTUAL",
            "SET sql_mode = DEFAULT",
            "INSERT INTO modes (id, a, b) VALUES (2, 'p', 'q')",
        ],
    ),
    scenario(
        &["names_tab"],
        &[
            "CREATE TABLE names_tab (id INT PRIMARY KEY)",
            "SET NAMES latin1",
            "ALTER TABLE names_tab ADD c VARCHAR(10) CHARACTER SET utf8mb4 DEFAULT 'caf\u{e9}'",
            "SET NAMES utf8mb4",
            "INSERT INTO names_tab (id) VALUES (1)",
        ],
    ),
    scenario(
        &["opts"],
        &[
            "CREATE TABLE opts (id INT PRIMARY KEY AUTO_INCREMENT, v INT)",
            "INSERT INTO opts (v) VALUES (1)",
            "ALTER TABLE opts COMMENT = 'hello'",
            "ALTER TABLE opts ENGINE = MyISAM",
            "INSERT INTO opts (v) VALUES (2)",
            "ALTER TABLE opts ENGINE=Aria PAGE_CHECKSUM=1 TRANSACTIONAL=1",
            "ALTER TABLE opts engine = innodb",
            "ALTER TABLE opts AUTO_INCREMENT = 1000",
            "INSERT INTO opts (v) VALUES (3)",
            "ALTER TABLE opts ROW_FORMAT = DYNAMIC",
            "ALTER TABLE opts MODIFY v INT COMMENT 'the value'",
        ],
    ),
    scenario(
        &["ren_a", "ren_b", "ren_c", "ren_d", "ren_e"],
        &[
            "CREATE TABLE ren_a (id INT PRIMARY KEY)",
            "INSERT INTO ren_a VALUES (1)",
            "RENAME TABLE ren_a TO ren_b",
            "INSERT INTO ren_b VALUES (2)",
            "ALTER TABLE ren_b RENAME TO ren_c",
            "CREATE TABLE ren_d (id INT PRIMARY KEY)",
            "RENAME TABLE ren_c TO ren_e, ren_d TO ren_c",
            "INSERT INTO ren_c VALUES (3)",
            "INSERT INTO ren_e VALUES (4)",
        ],
    ),
    scenario(
        &["trunc"],
        &[
            "CREATE TABLE trunc (id INT PRIMARY KEY AUTO_INCREMENT, v INT)",
            "INSERT INTO trunc (v) VALUES (1), (2)",
            "TRUNCATE TABLE trunc",
            "INSERT INTO trunc (v) VALUES (3)",
            "TRUNCATE trunc",
        ],
    ),
    scenario(
        &["like_src", "like_copy"],
        &[
            "CREATE TABLE like_src (id INT PRIMARY KEY, v VARCHAR(10), KEY iv (v)) ENGINE=Aria",
            "INSERT INTO like_src VALUES (1, 'a')",
            "CREATE TABLE like_copy LIKE like_src",
            "INSERT INTO like_copy VALUES (1, 'b')",
        ],
    ),
    scenario(
        &["sel_src", "sel_a", "sel_b"],
        &[
            "CREATE TABLE sel_src (id INT PRIMARY KEY, v VARCHAR(10))",
            "INSERT INTO sel_src VALUES (1, 'a'), (2, 'b'), (3, 'c')",
            "CREATE TABLE sel_a SELECT * FROM sel_src WHERE id < 3",
            "CREATE TABLE sel_b (extra INT DEFAULT 9, PRIMARY KEY (id)) SELECT id, v FROM sel_src",
            "INSERT INTO sel_b (id, v) VALUES (4, 'd')",
        ],
    ),
    scenario(
        &["drop_a", "drop_b", "drop_c"],
        &[
            "CREATE TABLE drop_a (id INT PRIMARY KEY)",
            "CREATE TABLE drop_b (id INT PRIMARY KEY)",
            "CREATE TABLE drop_c (id INT PRIMARY KEY)",
            "INSERT INTO drop_a VALUES (1)",
            "DROP TABLE drop_a",
            "DROP TABLE IF EXISTS drop_b, drop_c, drop_missing",
        ],
    ),
    scenario(
        &["multi"],
        &[
            "CREATE TABLE multi (id INT PRIMARY KEY, y INT, z INT)",
            "INSERT INTO multi VALUES (1, 1, 1)",
            "ALTER TABLE multi ADD x INT DEFAULT 0, ADD INDEX ix (x), DROP COLUMN y, MODIFY z BIGINT",
            "INSERT INTO multi (id, z) VALUES (2, 2)",
        ],
    ),
    scenario(
        &["fk_p", "fk_c"],
        &[
            "CREATE TABLE fk_p (id INT PRIMARY KEY)",
            "CREATE TABLE fk_c (id INT PRIMARY KEY, p INT, KEY ip (p), \
         CONSTRAINT fk1 FOREIGN KEY (p) REFERENCES fk_p (id))",
            "INSERT INTO fk_p VALUES (1), (2)",
            "INSERT INTO fk_c VALUES (1, 1)",
            "ALTER TABLE fk_c DROP FOREIGN KEY fk1",
            "ALTER TABLE fk_c ADD CONSTRAINT fk2 FOREIGN KEY (p) REFERENCES fk_p (id) ON DELETE CASCADE",
            "DELETE FROM fk_p WHERE id = 1",
        ],
    ),
    scenario(
        &["chk"],
        &[
            "CREATE TABLE chk (id INT PRIMARY KEY, a INT)",
            "INSERT INTO chk VALUES (1, 1)",
            "ALTER TABLE chk ADD CONSTRAINT c_pos CHECK (a > 0)",
            "INSERT INTO chk VALUES (2, 2)",
            "ALTER TABLE chk DROP CONSTRAINT c_pos",
        ],
    ),
    scenario(
        &["autoinc"],
        &[
            "CREATE TABLE autoinc (id INT NOT NULL, v INT, PRIMARY KEY (id))",
            "INSERT INTO autoinc VALUES (1, 1)",
            "ALTER TABLE autoinc MODIFY id INT NOT NULL AUTO_INCREMENT",
            "INSERT INTO autoinc (v) VALUES (2)",
        ],
    ),
    scenario(
        &["json_doc"],
        &[
            "CREATE TABLE json_doc (id INT PRIMARY KEY)",
            "ALTER TABLE json_doc ADD doc JSON",
            "INSERT INTO json_doc VALUES (1, '{\"a\": [1, 2]}')",
        ],
    ),
    scenario(
        &["ft_tab"],
        &[
            "CREATE TABLE ft_tab (id INT PRIMARY KEY, body TEXT)",
            "INSERT INTO ft_tab VALUES (1, 'hello world')",
            "ALTER TABLE ft_tab ADD FULLTEXT INDEX ft (body)",
            "INSERT INTO ft_tab VALUES (2, 'again')",
        ],
    ),
    scenario(
        &["sp_tab"],
        &[
            "CREATE TABLE sp_tab (id INT PRIMARY KEY)",
            "ALTER TABLE sp_tab ADD p POINT",
            "INSERT INTO sp_tab VALUES (1, POINT(1, 2))",
        ],
    ),
    scenario(
        &["narrow"],
        &[
            "CREATE TABLE narrow (id INT PRIMARY KEY, v VARCHAR(10))",
            "INSERT INTO narrow VALUES (1, 'abcdefgh')",
            "SET sql_mode = ''",
            "ALTER TABLE narrow MODIFY v VARCHAR(3)",
            "SET sql_mode = DEFAULT",
            "INSERT INTO narrow VALUES (2, 'xyz')",
        ],
    ),
];

/// What each target refuses, as seen with MariaDB 10.11 and TiDB v8.5.
const REFUSED_BY_MARIADB: &[&str] = &[];
const REFUSED_BY_TIDB: &[&str] = &[
    // 8200: Unsupported drop primary key when the table is using clustered index.
    "ALTER TABLE pk_change DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)",
    // 3106: 'Adding generated stored column through ALTER TABLE' is not supported.
    "ALTER TABLE gen_stored ADD s VARCHAR(30) AS (CONCAT('v', a)) STORED",
    // 1072: column does not exist: x (an index on a column added by the same statement).
    "ALTER TABLE multi ADD x INT DEFAULT 0, ADD INDEX ix (x), DROP COLUMN y, MODIFY z BIGINT",
    // 8200: Unsupported modify column: can't set auto_increment.
    "ALTER TABLE autoinc MODIFY id INT NOT NULL AUTO_INCREMENT",
    // Warning 1214: accepted, but no FULLTEXT index made.
    "ALTER TABLE ft_tab ADD FULLTEXT INDEX ft (body)",
    // 1064: no spatial types.
    "ALTER TABLE sp_tab ADD p POINT",
];

/// From MySQL, TiDB refuses the same (but for the scenarios left out, below).
const REFUSED_FROM_MYSQL_BY_TIDB: &[&str] = &[
    "ALTER TABLE pk_change DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)",
    "ALTER TABLE gen_stored ADD s VARCHAR(30) AS (CONCAT('v', a)) STORED",
    "ALTER TABLE multi ADD x INT DEFAULT 0, ADD INDEX ix (x), DROP COLUMN y, MODIFY z BIGINT",
    "ALTER TABLE autoinc MODIFY id INT NOT NULL AUTO_INCREMENT",
    "ALTER TABLE ft_tab ADD FULLTEXT INDEX ft (body)",
    "ALTER TABLE sp_tab ADD p POINT",
];

/// Scenarios run from MariaDB only: Aria is MariaDB's engine (`opts`, and `like_src` copies an Aria table); MySQL's
/// information_schema prints a TIMESTAMP default as written in the creating session's zone
/// (`tz`: the rows get the same instant on both sides, the printed defaults differ).
const MARIADB_ONLY: &[&str] = &["opts", "like_src", "tz"];

#[tokio::test(flavor = "multi_thread")]
async fn ddl_corpus_into_mariadb() {
    run_corpus(SourceKind::MariaDb, TargetKind::MariaDb, REFUSED_BY_MARIADB).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_corpus_into_tidb() {
    run_corpus(SourceKind::MariaDb, TargetKind::TiDb, REFUSED_BY_TIDB).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ddl_corpus_from_mysql_into_tidb() {
    run_corpus(SourceKind::MySql, TargetKind::TiDb, REFUSED_FROM_MYSQL_BY_TIDB).await;
}

fn is_ddl(sql: &str) -> bool {
    let word = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    matches!(word.as_str(), "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE")
}

/// A statement the target refused: the statement and the job's message.
struct Refusal {
    statement: &'static str,
    message: String,
}

struct Run {
    setup: Setup,
    manifest: std::path::PathBuf,
    ferry: Child,
    skipped: Vec<String>,
}

impl Run {
    /// Creates `schema` on the source and runs a FullAndIncremental job of `app` until it
    /// replicates.
    async fn start(mut setup: Setup, schema: &str) -> Run {
        setup.source.exec(schema).await.expect("source schema");
        let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
        let ferry = setup.spawn(&manifest, &[], &[]);
        let run = Run { ferry, setup, manifest, skipped: Vec::new() };
        let incremental = |s: &serde_json::Value| s["stage"] == "Incremental";
        run.setup.wait_status("the Incremental stage", Duration::from_secs(90), incremental).await;
        run
    }

    fn restart(&mut self) {
        let mut args: Vec<&str> = Vec::new();
        for position in &self.skipped {
            args.extend(["--ddl-skip", position]);
        }
        self.ferry = self.setup.spawn(&self.manifest, &[], &args);
    }

    /// Waits until the job has applied everything the source logged (`None`) or has stopped
    /// (its last error).
    async fn settle(&mut self) -> Option<String> {
        let head = self.setup.source_head().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = self.ferry.try_wait() {
                let status = self.setup.status();
                return Some(status["lastError"]["message"].as_str().unwrap_or("").to_string());
            }
            if let Some((file, pos, _)) = self.setup.checkpoint().await
                && (file > head.0 || (file == head.0 && pos >= head.1))
            {
                return None;
            }
            assert!(Instant::now() < deadline, "not caught up:\n{}", self.setup.last_log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn run_corpus(source_kind: SourceKind, kind: TargetKind, expected_refusals: &[&str]) {
    let started = Instant::now();
    let corpus: Vec<&Scenario> = CORPUS
        .iter()
        .filter(|s| source_kind == SourceKind::MariaDb || !MARIADB_ONLY.contains(&s.tables[0]))
        .collect();
    let ddl_count = corpus.iter().flat_map(|s| s.statements).filter(|s| is_ddl(s)).count();
    assert!(ddl_count >= 60, "the corpus has {ddl_count} DDL statements");
    let setup = Setup::start_with_source(source_kind, kind).await;
    let mut run = Run::start(
        setup,
        "CREATE DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
             CREATE TABLE app.seed (id INT PRIMARY KEY, v VARCHAR(10));
             INSERT INTO app.seed VALUES (1, 'copied')",
    )
    .await;

    let mut source = run.setup.source.conn().await.expect("source conn");
    source.query_drop("USE app").await.expect("USE app");
    let mut refusals: Vec<Refusal> = Vec::new();
    for scenario in corpus {
        for &statement in scenario.statements {
            source
                .query_drop(statement)
                .await
                .unwrap_or_else(|e| panic!("source: {statement}: {e}"));
            if !is_ddl(statement) {
                continue;
            }
            let Some(message) = run.settle().await else { continue };
            let position = refused_position(&message).unwrap_or_else(|| {
                panic!("{statement}: the job stopped with {message}\n{}", run.setup.last_log())
            });
            assert_reported(statement, &position, &message);
            refusals.push(Refusal { statement, message });
            run.skipped.push(position);
            run.restart();
            assert_eq!(run.settle().await, None, "after skipping {statement}");
            // The scenario's tables now differ; they leave the comparison on both sides.
            reset_session(&mut source).await;
            for table in scenario.tables {
                source.query_drop(format!("DROP TABLE IF EXISTS {table}")).await.expect("drop");
            }
            break;
        }
    }
    reset_session(&mut source).await;
    assert_eq!(run.settle().await, None, "the job stopped at the end");
    let report: Vec<String> =
        refusals.iter().map(|r| format!("{}\n    -> {}", r.statement, r.message)).collect();
    eprintln!(
        "{source_kind} into {kind:?}: {ddl_count} DDL statements, {} refused, in {:?}:\n{}",
        refusals.len(),
        started.elapsed(),
        report.join("\n")
    );
    let mut s = run.setup.source.conn().await.expect("source conn");
    let mut t = run.setup.target.conn().await.expect("target conn");
    if let Err(e) =
        ferry_harness::compare_databases(&mut s, &mut t, "app", CompareOptions::default()).await
    {
        panic!("{e}\nferry log:\n{}", run.setup.last_log());
    }
    let refused: Vec<&str> = refusals.iter().map(|r| r.statement).collect();
    assert_eq!(refused, expected_refusals, "what {kind:?} refuses changed");
    let status = run.setup.status();
    let _ = run.ferry.kill();
    let _ = run.ferry.wait();
    // The status of the last run lists the statements it skipped.
    let handled = status["ddlHandled"].as_array().cloned().unwrap_or_default();
    if let Some(last) = run.skipped.last() {
        assert!(
            handled.iter().any(|h| h["position"] == last.as_str() && h["action"] == "Skip"),
            "status.ddlHandled lacks {last}: {status:#}"
        );
    }
}

async fn reset_session(source: &mut mysql_async::Conn) {
    for sql in ["SET NAMES utf8mb4", "SET sql_mode = DEFAULT", "SET time_zone = DEFAULT"] {
        source.query_drop(sql).await.expect(sql);
    }
}

/// A placeholder child, replaced by the first real run.
/// The position a refusal names: `at FILE:POS (`.
fn refused_position(message: &str) -> Option<String> {
    let rest = message.split("the target refused the DDL statement at ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

/// The error names the statement, its position and every way past it.
fn assert_reported(statement: &str, position: &str, message: &str) {
    // The error blanks string literals (and `"names"` under ANSI_QUOTES): the text before them.
    let start: String =
        statement.chars().take_while(|c| *c != '\'' && *c != '"').take(30).collect();
    for needle in [
        start.as_str(),
        &format!("--ddl-skip {position}"),
        &format!("--ddl-replace {position}"),
        "spec.ddlErrorPolicy",
    ] {
        assert!(message.contains(needle), "the error lacks `{needle}`: {message}");
    }
}

/// Through the CLI: a statement TiDB refuses (a spatial column) stops the job with its position;
/// `--ddl-replace` runs the given statements instead, and the status records it; the next
/// refused one is passed with `--ddl-skip`; the tables end equal to the source's.
#[tokio::test(flavor = "multi_thread")]
async fn refused_ddl_is_replaced_or_skipped_through_the_cli() {
    let setup = Setup::start_with(TargetKind::TiDb).await;
    let mut run = Run::start(
        setup,
        "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v INT);
             INSERT INTO app.t VALUES (1, 1)",
    )
    .await;

    let refused = "ALTER TABLE app.t ADD p POINT";
    run.setup.source.exec(refused).await.expect("source DDL");
    let message = run.settle().await.expect("TiDB refuses a POINT column");
    let position = refused_position(&message).expect("the error names a position");
    assert_reported(refused, &position, &message);
    // The checkpoint stays before the statement: nothing after it is applied.
    let (file, pos, _) = run.setup.checkpoint().await.expect("a checkpoint");
    let refused_pos: u64 = position.rsplit(':').next().and_then(|p| p.parse().ok()).expect("pos");
    assert!(
        position.starts_with(&file) && pos < refused_pos,
        "checkpoint {file}:{pos} vs {position}"
    );

    // Replaced: the target gets a BLOB column in its place.
    let fix = run.setup.dir.path().join("fix.sql");
    std::fs::write(
        &fix,
        "ALTER TABLE app.t ADD p LONGBLOB;\nALTER TABLE app.t COMMENT = 'replaced';\n",
    )
    .expect("write fix.sql");
    let fix = fix.to_str().expect("a UTF-8 path").to_string();
    run.ferry = run.setup.spawn(
        &run.manifest,
        &[],
        &["--ddl-replace", &position, "--ddl-replace-sql", &fix],
    );
    assert_eq!(run.settle().await, None, "after the replacement:\n{}", run.setup.last_log());
    let columns = run
        .setup
        .target
        .query_strings(
            "SELECT CONCAT(COLUMN_NAME, ' ', DATA_TYPE) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 't' ORDER BY ORDINAL_POSITION",
        )
        .await
        .expect("target columns");
    assert_eq!(
        columns,
        vec![Some("id int".into()), Some("v int".into()), Some("p longblob".into())]
    );
    let status = run.setup.status();
    let handled = &status["ddlHandled"][0];
    assert_eq!(
        (handled["position"].as_str(), handled["action"].as_str()),
        (Some(position.as_str()), Some("Replace"))
    );
    assert!(handled["statement"].as_str().is_some_and(|s| s.contains("ADD p POINT")), "{status:#}");

    // Skipped: the second refused statement, then the source drops the table TiDB lacks.
    run.setup
        .source
        .exec("CREATE TABLE app.g (id INT PRIMARY KEY, q POLYGON)")
        .await
        .expect("source DDL");
    let message = run.settle().await.expect("TiDB refuses a POLYGON column");
    let second = refused_position(&message).expect("the error names a position");
    assert_ne!(second, position);
    run.skipped.push(second);
    run.restart();
    run.setup
        .source
        .exec(
            "DROP TABLE IF EXISTS app.g; ALTER TABLE app.t DROP COLUMN p, COMMENT = 'replaced';
             INSERT INTO app.t VALUES (2, 2)",
        )
        .await
        .expect("source DDL");
    assert_eq!(run.settle().await, None, "after the skip:\n{}", run.setup.last_log());
    let mut s = run.setup.source.conn().await.expect("source conn");
    let mut t = run.setup.target.conn().await.expect("target conn");
    if let Err(e) =
        ferry_harness::compare_databases(&mut s, &mut t, "app", CompareOptions::default()).await
    {
        panic!("{e}\nferry log:\n{}", run.setup.last_log());
    }
    let _ = run.ferry.kill();
    let _ = run.ferry.wait();
}
