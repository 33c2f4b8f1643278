//! A copy stopped part way (here by SIGKILL; a source restart does the same) resumes at a new
//! snapshot. Tables linked by a foreign key must still end as one consistent state: a child
//! table copied at the first snapshot and its parent at the second made replication replay a
//! child row whose parent the target no longer had (error 1452, found by `server_restarts`
//! with FERRY_FAULT_SEED=1796673785819309086), or keep a child row whose parent's deletion
//! cascaded on the source.

use crate::support;

use std::time::{Duration, Instant};

use ferry_harness::SqlServer;
use support::{Setup, interrupt};

/// `a_child` sorts first: its one chunk is copied first. `b_filler`, keyless and one chunk, keeps
/// the single copy worker busy while the job is killed, so `parent` has no chunk done yet.
const SCHEMA: &str = "CREATE DATABASE app; \
    CREATE TABLE app.parent (id INT PRIMARY KEY, name VARCHAR(20)); \
    CREATE TABLE app.a_child (id INT PRIMARY KEY, parent_id INT, \
      CONSTRAINT a_child_parent FOREIGN KEY (parent_id) REFERENCES app.parent (id) \
      ON DELETE CASCADE); \
    CREATE TABLE app.b_filler (msg VARCHAR(40)); \
    INSERT INTO app.parent VALUES (1, 'one'), (2, 'two'); \
    INSERT INTO app.a_child VALUES (1, 1), (2, 2); \
    SET max_recursive_iterations = 300000; \
    INSERT INTO app.b_filler WITH RECURSIVE s(n) AS \
      (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 300000) SELECT CONCAT('f', n) FROM s; \
    INSERT INTO app.parent WITH RECURSIVE s(n) AS \
      (SELECT 3 UNION ALL SELECT n + 1 FROM s WHERE n < 3000) SELECT n, 'p' FROM s";

/// While the job is down: a parent and its child appear, then the parent goes and the source
/// cascades the child away (the binlog holds only the parent's deletion).
const WHILE_DOWN: &str = "INSERT INTO app.parent VALUES (9001, 'brief'); \
    INSERT INTO app.a_child VALUES (9001, 9001); \
    DELETE FROM app.parent WHERE id = 9001; \
    INSERT INTO app.a_child VALUES (9002, 2)";

#[tokio::test(flavor = "multi_thread")]
async fn linked_tables_split_across_two_snapshots_end_consistent() {
    let mut setup = Setup::start().await;
    setup.source.exec(SCHEMA).await.expect("schema");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let envs = [("FERRY_CHUNK_ROWS", "100")];
    let mut ferry = setup.spawn(&manifest, &envs, &["--concurrency", "1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while setup.done_chunks().await < 1 {
        assert!(Instant::now() < deadline, "no chunk done:\n{}", setup.last_log());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ferry.kill().expect("SIGKILL ferry");
    ferry.wait().expect("reap ferry");
    let done: Vec<Option<String>> = setup
        .target
        .query_strings("SELECT tbl FROM ferry_meta.full_chunks WHERE done = 1 ORDER BY tbl")
        .await
        .expect("read the plan");
    assert_eq!(done, [Some("a_child".to_string())], "the child alone must be copied first");

    setup.source.exec(WHILE_DOWN).await.expect("changes while the job is down");
    let mut ferry = setup.spawn(&manifest, &envs, &["--concurrency", "1"]);
    let stage = |s: &serde_json::Value| s["stage"] == "Incremental";
    setup.wait_status("the Incremental stage", Duration::from_secs(120), stage).await;
    setup.wait_caught_up(&mut ferry, Duration::from_secs(60)).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
    setup.assert_same("app").await;
    let log = setup.last_log();
    assert!(log.contains("copying them again at the new one"), "{log}");
}
