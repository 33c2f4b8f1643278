//! `ferry precheck` (table and JSON, exit codes) and `ferry migrate` refusing to start on a
//! failed precheck, with the items and the Prechecked condition in its status file.

use std::path::Path;
use std::process::Command;

use ferry_crds::job::{CheckResult, MigrationJobStatus, PrecheckItem};
use ferry_harness::SqlServer;
use ferry_harness::{JobManifest, MariaDb, MariaDbOptions, Role};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn manifest(source: &MariaDb, target: &MariaDb, mode: &str) -> String {
    let (source_port, target_port) = (source.port(), target.port());
    JobManifest {
        source_kind: ferry_harness::SourceKind::MariaDb,
        name: "job",
        source_port,
        target_port,
        user: "root",
        password: "",
        mode,
        spec: "",
    }
    .yaml()
}

fn ferry(args: &[&str], dir: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run ferry");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn precheck_prints_a_table_or_json_and_exits_by_the_result() -> TestResult {
    let (good, statement, target) = tokio::try_join!(
        MariaDb::source(),
        MariaDb::start(MariaDbOptions::new(Role::Source).arg("--binlog-format=STATEMENT")),
        MariaDb::target()
    )?;
    good.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)").await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("good.yaml"), manifest(&good, &target, "FullAndIncremental"))?;
    std::fs::write(dir.path().join("bad.yaml"), manifest(&statement, &target, "Incremental"))?;

    let (code, out, err) = ferry(&["precheck", "-f", "good.yaml", "--output", "json"], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    let items: Vec<PrecheckItem> = serde_json::from_str(&out)?;
    assert!(items.iter().all(|i| i.result == CheckResult::Pass), "{out}");
    assert!(items.iter().any(|i| i.name == "binlog_format"));

    let (code, out, err) = ferry(&["precheck", "-f", "bad.yaml"], dir.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("RESULT   ITEM"), "{out}");
    let row = out.lines().find(|l| l.contains(" binlog_format ")).unwrap_or_default();
    assert!(row.starts_with("Failure") && row.ends_with("STATEMENT"), "{out}");
    assert!(
        out.contains("Failure binlog_format\n  why: ") && out.contains("binlog_format = ROW"),
        "{out}"
    );
    assert!(out.contains("1 failure(s): the job cannot start"), "{out}");
    Ok(())
}

#[tokio::test]
async fn migrate_refuses_to_start_and_records_the_precheck() -> TestResult {
    let (source, target) = tokio::try_join!(
        MariaDb::start(MariaDbOptions::new(Role::Source).arg("--binlog-row-image=MINIMAL")),
        MariaDb::target()
    )?;
    source.exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1)").await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("job.yaml"), manifest(&source, &target, "FullAndIncremental"))?;
    let (code, out, err) =
        ferry(&["migrate", "-f", "job.yaml", "--status-file", "status.json"], dir.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("binlog_row_image"), "{err}");
    let status: MigrationJobStatus =
        serde_json::from_slice(&std::fs::read(dir.path().join("status.json"))?)?;
    let item = status.precheck.iter().find(|i| i.name == "binlog_row_image").expect("item");
    assert_eq!(item.result, CheckResult::Failure);
    let condition = status.conditions.iter().find(|c| c.type_ == "Prechecked").expect("condition");
    assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("False", "Failed"));
    // Nothing was copied: the target has no app schema.
    let schemas = target.query_strings("SHOW DATABASES LIKE 'app'").await?;
    assert!(schemas.is_empty(), "{schemas:?}");
    Ok(())
}
