//! The target runs out of space in the middle of a FullAndIncremental job: a MariaDB target whose
//! one tablespace (no file per table) has a maximum size. The job must not fail at once nor hang:
//! it retries within its retry budget with the error, naming the full table, in its status;
//! once the target restarts with a larger maximum, the job resumes and ends equal.

use crate::support;

use std::time::{Duration, Instant};

use ferry_harness::{MariaDb, MariaDbOptions, Role, SourceKind, SqlServer, Target};
use support::load;
use support::{Setup, interrupt};

/// Rows of about 200 bytes: some 30 MB, more than the small tablespace holds.
const BULK_ROWS: u32 = 150_000;

/// The tablespace's maximum size in MB, first too small, then enough.
const SMALL_MAX_MB: u32 = 24;
const LARGE_MAX_MB: u32 = 400;

fn target_options(max_mb: u32) -> MariaDbOptions {
    MariaDbOptions::new(Role::Target)
        .arg("--innodb-file-per-table=OFF")
        .arg(format!("--innodb-data-file-path=ibdata1:12M:autoextend:max:{max_mb}M"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_target_is_retried_with_a_clear_error_then_resumed_when_given_space() {
    let started = Instant::now();
    let (source, target) =
        tokio::join!(SourceKind::MariaDb.start(), MariaDb::start(target_options(SMALL_MAX_MB)));
    let target = Target::MariaDb(target.expect("start the small target"));
    let mut setup = Setup::from_servers(source.expect("start the source"), target).await;
    setup.source.exec(load::TABLES).await.expect("source tables");
    setup
        .source
        .exec(&format!(
            "CREATE TABLE app.bulk (id INT PRIMARY KEY, pad VARCHAR(200)); \
             INSERT INTO app.bulk SELECT seq, REPEAT(CHAR(65 + seq % 26), 190) \
             FROM app.seq_1_to_{BULK_ROWS}"
        ))
        .await
        .expect("bulk rows");
    let manifest = setup.manifest("FullAndIncremental", "    databases: [app]");
    let mut ferry = setup.spawn(&manifest, &[], &["--concurrency", "2", "--retries", "20"]);

    let full = setup
        .wait_status("a retry after the table is full", Duration::from_secs(180), |s| {
            retrying(s).is_some_and(|m| m.contains("is full"))
        })
        .await;
    let message = retrying(&full).unwrap_or_default();
    assert!(message.contains("bulk"), "the error does not name the full table: {message}");
    assert!(
        ferry.try_wait().expect("ferry's state").is_none(),
        "ferry gave up:\n{}",
        setup.last_log()
    );

    let Target::MariaDb(server) = &mut setup.target else { unreachable!("a MariaDB target") };
    server.restart_with(target_options(LARGE_MAX_MB)).await.expect("restart with more space");
    let stage = |s: &serde_json::Value| s["stage"] == "Incremental";
    setup.wait_status("the Incremental stage", Duration::from_secs(300), stage).await;
    let committed = load::run(&setup.source, 2, Duration::from_secs(3)).await;
    setup.wait_caught_up(&mut ferry, Duration::from_secs(120)).await;
    assert!(interrupt(&mut ferry).success(), "{}", setup.last_log());
    setup.assert_same("app").await;
    eprintln!(
        "target full, retried ({message}); resumed after more space; {committed} transactions; \
         equal after {:?}",
        started.elapsed()
    );
}

/// The message of the retry in progress, if the status shows one.
fn retrying(status: &serde_json::Value) -> Option<String> {
    status["conditions"].as_array()?.iter().find_map(|c| {
        (c["type"] == "Failed" && c["reason"] == "Retrying")
            .then(|| c["message"].as_str().unwrap_or_default().to_string())
    })
}
