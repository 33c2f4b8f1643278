//! A job's identity on the target, through the `ferry` command: a rerun of a manifest resumes
//! its job, and `ferry reset` forgets the job's checkpoints so that the next run starts a new
//! migration, under a new id.

use crate::support;

use std::process::Command;

use ferry_harness::SqlServer;
use support::{JOB_KEY, Setup};

/// The id `ferry migrate` registered for the manifest's job.
async fn registered_id(setup: &Setup) -> Option<String> {
    let sql = format!("SELECT {JOB_KEY}");
    setup.target.query_strings(&sql).await.ok()?.into_iter().next().flatten()
}

async fn rows_keyed_by(setup: &Setup, id: &str) -> u64 {
    let tables = ["full_snapshot", "full_chunks", "full_tables", "full_indexes"];
    let mut rows = 0;
    for table in tables {
        let sql = format!("SELECT COUNT(*) FROM ferry_meta.{table} WHERE job = '{id}'");
        let count = setup.target.query_strings(&sql).await.expect("count rows");
        rows += count[0].as_deref().and_then(|c| c.parse::<u64>().ok()).expect("a count");
    }
    rows
}

fn reset(manifest: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["reset", "-f"])
        .arg(manifest)
        .output()
        .expect("run ferry reset");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_resumes_and_a_reset_starts_a_new_migration() {
    let mut setup = Setup::start().await;
    setup
        .source
        .exec(
            "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO app.t SELECT seq, CONCAT('v', seq) FROM app.seq_1_to_300",
        )
        .await
        .expect("source");
    let manifest = setup.manifest("Full", "    databases: [app]");
    let (ok, log) = reset(&manifest);
    assert!(ok && log.contains("nothing to reset"), "{log}");

    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "{log}");
    setup.assert_same("app").await;
    let first = registered_id(&setup).await.expect("the first run registered the job");
    assert!(rows_keyed_by(&setup, &first).await > 0, "the copy's checkpoint is under the id");

    // The same manifest again resumes the finished copy: the dropped table is not copied again.
    setup.target.exec("DROP DATABASE app").await.expect("drop the target's copy");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok && log.contains("existing data already copied"), "{log}");
    assert_eq!(registered_id(&setup).await.as_deref(), Some(first.as_str()));
    let databases = setup.target.query_strings("SHOW DATABASES LIKE 'app'").await.expect("list");
    assert!(databases.is_empty(), "a resumed, finished copy copied again: {databases:?}");

    // A reset forgets the job: its rows go, the next run copies everything under a new id.
    let (ok, log) = reset(&manifest);
    assert!(ok && log.contains("reset: deleted its"), "{log}");
    assert_eq!(rows_keyed_by(&setup, &first).await, 0, "rows left after the reset");
    assert_eq!(registered_id(&setup).await, None, "the registration is gone");
    let (ok, log) = setup.run(&manifest, &[], &[]);
    assert!(ok, "{log}");
    setup.assert_same("app").await;
    let second = registered_id(&setup).await.expect("registered again");
    assert_ne!(second, first, "the new migration has a new id");
}
