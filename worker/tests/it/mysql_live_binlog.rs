//! MySQL 9.7's binlog features, live: a FullAndIncremental job from a source that compresses
//! its transactions (`binlog_transaction_compression=ON`), logs JSON updates as diffs
//! (`binlog_row_value_options=PARTIAL_JSON`), names and types every column in its table maps
//! (`binlog_row_metadata=FULL`) and tags GTIDs (`SET gtid_next = 'AUTOMATIC:tag'`). The target
//! ends equal to the source. A partial JSON update without the document's before image
//! (`binlog_row_image=MINIMAL`) stops the job with an error that says which setting to change.
//! The generated-file tests in mysql_binlog.rs cover the same events byte by byte.

use crate::support;

use std::time::{Duration, Instant};

use ferry_harness::{MariaDb, MySql, MySqlOptions, Role, Source, SqlServer, Target};
use support::Setup;

const SCHEMA: &str = "CREATE DATABASE app COLLATE utf8mb4_general_ci; \
    CREATE TABLE app.docs (id INT PRIMARY KEY, doc JSON, note VARCHAR(40), \
      n BIGINT UNSIGNED, kind ENUM('a', 'b', 'c'), flags SET('x', 'y', 'z')); \
    CREATE TABLE app.bulk (id INT PRIMARY KEY, v VARCHAR(64), doc JSON)";

const DOC: &str =
    r#"{"a": 1, "b": [1, 2, 3], "c": {"d": "e", "key with space": true}, "s": "text"}"#;

/// A source with the features on (ROW, FULL images and GTID mode are the harness's).
async fn start() -> Setup {
    let options = MySqlOptions::new(Role::Source)
        .arg("--binlog-transaction-compression=ON")
        .arg("--binlog-row-value-options=PARTIAL_JSON")
        .arg("--binlog-row-metadata=FULL");
    let (source, target) = tokio::join!(MySql::start(options), MariaDb::target());
    let source = Source::MySql(source.expect("start MySQL"));
    Setup::from_servers(source, Target::MariaDb(target.expect("start the target"))).await
}

/// Rows for the copy: documents to update partially later. The last ones are written under a
/// GTID tag, so the copy's GTID set holds tagged and untagged transactions of one server.
async fn seed(setup: &Setup) {
    let mut sql = String::from(SCHEMA);
    for id in 1..=40 {
        if id == 39 {
            sql.push_str("; SET gtid_next = 'AUTOMATIC:ferry_tag'");
        }
        sql.push_str(&format!(
            "; INSERT INTO app.docs VALUES ({id}, '{DOC}', 'n{id}', {n}, 'a', 'x,z')",
            n = u64::MAX - id
        ));
    }
    setup.source.exec(&sql).await.expect("seed the source");
}

/// Whether the job's checkpointed GTID set is exactly the source's `gtid_executed`, as MySQL
/// itself compares GTID sets.
async fn checkpoint_has_every_source_gtid(setup: &Setup) -> (bool, String) {
    let sql = format!(
        "SELECT gtid_set FROM ferry_meta.incremental_checkpoint WHERE job = {}",
        support::JOB_KEY
    );
    let checkpoint = setup.target.query_strings(&sql).await.expect("the checkpoint");
    let set = checkpoint.into_iter().next().flatten().unwrap_or_default();
    let same = format!(
        "SELECT GTID_SUBSET('{set}', @@GLOBAL.gtid_executed) \
           AND GTID_SUBSET(@@GLOBAL.gtid_executed, '{set}')"
    );
    let answer = setup.source.query_strings(&same).await.expect("compare GTID sets");
    (answer == [Some("1".to_string())], set)
}

/// Starts the job and waits for replication to run.
async fn replicate(setup: &mut Setup) -> std::process::Child {
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut child = setup.spawn(&manifest, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while setup.status()["stage"] != "Incremental" || setup.status()["phase"] != "Running" {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ferry exited with {status} before replicating:\n{}", setup.last_log());
        }
        assert!(Instant::now() < deadline, "no Incremental stage:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child
}

/// Partial JSON updates of every kind MySQL logs as diffs (JSON_SET of existing and new
/// members, JSON_REPLACE, JSON_REMOVE, nested and `last` array paths, quoted keys), with other
/// columns changed in the same statement, several per transaction.
const PARTIAL_UPDATES: &[&str] = &[
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.a', 10) WHERE id = 1",
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.a', 11, '$.new', 'added') WHERE id = 2",
    "UPDATE app.docs SET doc = JSON_REPLACE(doc, '$.b[1]', 'two', '$.s', 'txt') WHERE id = 3",
    "UPDATE app.docs SET doc = JSON_REMOVE(doc, '$.c.d', '$.b[0]') WHERE id = 4",
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.b[last]', 99), note = 'both' WHERE id = 5",
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.c.\"key with space\"', false) WHERE id = 6",
    "UPDATE app.docs SET doc = JSON_REMOVE(doc, '$.b[last]'), n = 0, kind = 'c' WHERE id = 7",
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.b[1]', JSON_OBJECT('deep', JSON_ARRAY(1, 2.5, \
       'x'))) WHERE id = 8",
    "UPDATE app.docs SET doc = JSON_REPLACE(doc, '$.c', JSON_ARRAY()) WHERE id BETWEEN 9 AND 14",
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.a', 1.5, '$.s', 'longer text than before') \
       WHERE id > 30",
    "UPDATE app.docs SET doc = JSON_REMOVE(JSON_SET(doc, '$.a', 2), '$.c') WHERE id = 15",
    "UPDATE app.docs SET doc = JSON_SET(doc, '$.a', NULL) WHERE id = 16; \
     UPDATE app.docs SET doc = JSON_SET(doc, '$.a', 3) WHERE id = 16",
];

/// One big transaction (10,000 rows inserted, then all updated and partly deleted), plus
/// inserts and deletes of documents.
fn bulk_transaction() -> String {
    let digit: Vec<String> = (0..10).map(|d| format!("SELECT {d} AS d")).collect();
    let digit = format!("({})", digit.join(" UNION ALL "));
    let tables: Vec<String> = (0..4).map(|i| format!("{digit} t{i}")).collect();
    format!(
        "START TRANSACTION; \
         INSERT INTO app.bulk SELECT n, SHA2(n, 256), JSON_OBJECT('n', n, 'tags', JSON_ARRAY(n, \
           'tag')) FROM (SELECT 1 + t0.d + 10 * t1.d + 100 * t2.d + 1000 * t3.d AS n FROM {}) \
           numbers; \
         UPDATE app.bulk SET doc = JSON_SET(doc, '$.n', -id), v = REVERSE(v); \
         DELETE FROM app.bulk WHERE id % 7 = 0; \
         INSERT INTO app.docs VALUES (100, '[1, {{\"x\": null}}]', NULL, NULL, NULL, ''); \
         DELETE FROM app.docs WHERE id = 40; \
         COMMIT",
        tables.join(" CROSS JOIN ")
    )
}

async fn wait_until_equal(setup: &Setup, child: &mut std::process::Child) {
    setup.wait_caught_up(child, Duration::from_secs(120)).await;
    setup.assert_same("app").await;
}

/// The source's binlog events of the current file, as `SHOW BINLOG EVENTS` names them.
async fn event_types(setup: &Setup) -> Vec<String> {
    let (file, _) = setup.source_head().await;
    let mut conn = setup.source.conn().await.expect("source connection");
    let rows: Vec<mysql_async::Row> = mysql_async::prelude::Queryable::query(
        &mut conn,
        format!("SHOW BINLOG EVENTS IN '{file}'"),
    )
    .await
    .expect("SHOW BINLOG EVENTS");
    rows.iter().filter_map(|r| r.get::<String, _>("Event_type")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_partial_json_full_metadata_and_tagged_gtids_replicate_exactly() {
    let mut setup = start().await;
    seed(&setup).await;
    let mut child = replicate(&mut setup).await;

    for update in PARTIAL_UPDATES {
        setup.source.exec(update).await.unwrap_or_else(|e| panic!("{update}: {e}"));
    }
    let several = format!("START TRANSACTION; {}; COMMIT", PARTIAL_UPDATES[..4].join("; "));
    setup.source.exec(&several).await.expect("partial updates in one transaction");
    setup.source.exec(&bulk_transaction()).await.expect("the big transaction");
    setup
        .source
        .exec(
            "SET gtid_next = 'AUTOMATIC:ferry_tag'; \
             UPDATE app.docs SET doc = JSON_SET(doc, '$.tagged', 1) WHERE id < 5; \
             INSERT INTO app.docs VALUES (101, '\"tagged\"', 't', 1, 'b', 'y'); \
             SET gtid_next = 'AUTOMATIC'",
        )
        .await
        .expect("transactions with a GTID tag");
    wait_until_equal(&setup, &mut child).await;

    // The features were live: the binlog holds compressed payloads, partial updates and tags.
    let types = event_types(&setup).await;
    assert!(types.iter().any(|t| t == "Transaction_payload"), "no compression: {types:?}");
    assert!(types.iter().any(|t| t == "Update_rows_partial"), "no partial JSON: {types:?}");
    let gtids = setup.source.gtid_executed().await.expect("gtid_executed");
    assert!(gtids.contains(":ferry_tag:"), "no tagged GTID: {gtids}");
    let (same, checkpoint) = checkpoint_has_every_source_gtid(&setup).await;
    assert!(same, "checkpoint GTID set {checkpoint} is not the source's {gtids}");
    assert!(support::interrupt(&mut child).success(), "{}", setup.last_log());
}

/// With `binlog_row_image=MINIMAL` a partial JSON update carries only the diff, not the
/// document it applies to: replication stops and says to set FULL images, rather than guess.
/// A job started while the global setting is MINIMAL is refused by its precheck.
#[tokio::test(flavor = "multi_thread")]
async fn minimal_images_with_partial_json_stop_with_a_clear_error() {
    let mut setup = start().await;
    seed(&setup).await;
    let mut child = replicate(&mut setup).await;
    setup
        .source
        .exec(
            "SET SESSION binlog_row_image = 'MINIMAL'; \
             UPDATE app.docs SET doc = JSON_SET(doc, '$.a', 42) WHERE id = 1",
        )
        .await
        .expect("a partial update with a minimal image");
    let status = support::wait_exit(&mut child, Duration::from_secs(60));
    let log = setup.last_log();
    assert!(!status.success(), "ferry went on without the document:\n{log}");
    assert!(log.contains("partial JSON update") && log.contains("binlog_row_image=FULL"), "{log}");

    setup.source.exec("SET GLOBAL binlog_row_image = 'MINIMAL'").await.expect("global MINIMAL");
    setup.target.exec("DROP DATABASE app; DROP DATABASE ferry_meta").await.expect("reset target");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(!ok, "a job started on MINIMAL images:\n{log}");
    assert!(log.contains("binlog_row_image") && log.contains("FULL"), "{log}");
}
