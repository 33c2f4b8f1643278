//! Shared by the full-copy tests: a source and a target, a manifest for a job, and the
//! `ferry migrate` process.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use ferry_e2e::{JobManifest, MariaDb, SqlServer, Target, TargetKind};
use mysql_async::prelude::Queryable;

pub const PASSWORD: &str = "s3cret-pw";
pub const JOB: &str = "default/copy";

pub struct Setup {
    pub source: MariaDb,
    pub target: Target,
    pub dir: tempfile::TempDir,
    runs: usize,
}

impl Setup {
    pub async fn start() -> Setup {
        Self::start_with(TargetKind::MariaDb).await
    }

    /// A MariaDB source and a target of `kind`.
    pub async fn start_with(kind: TargetKind) -> Setup {
        let (source, target) = tokio::join!(MariaDb::source(), kind.start());
        let source = source.expect("start the source");
        let target = target.expect("start the target");
        source.create_user("ferry", PASSWORD, "ALL PRIVILEGES").await.expect("source user");
        target.create_user("ferry", PASSWORD, "ALL PRIVILEGES").await.expect("target user");
        let dir = tempfile::tempdir().expect("tempdir");
        Setup { source, target, dir, runs: 0 }
    }

    /// Writes the manifest of a job in `mode` with `objects` (YAML under `objects:`).
    pub fn manifest(&self, mode: &str, objects: &str) -> PathBuf {
        let yaml = JobManifest {
            name: "copy",
            source_port: self.source.port(),
            target_port: self.target.port(),
            user: "ferry",
            password: PASSWORD,
            mode,
            spec: &format!("  objects:\n{objects}"),
        }
        .yaml();
        let path = self.dir.path().join("job.yaml");
        std::fs::write(&path, yaml).expect("write manifest");
        path
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    /// Starts `ferry migrate`; its log goes to `run-N.log` in the test dir.
    pub fn spawn(&mut self, manifest: &PathBuf, envs: &[(&str, &str)], args: &[&str]) -> Child {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("run-{}.log", self.runs)))
            .expect("log file");
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["migrate", "-f"])
            .arg(manifest)
            .arg("--status-file")
            .arg(self.status_path())
            .args(args)
            .envs(envs.iter().copied())
            .env("FERRY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run ferry")
    }

    /// Runs `ferry migrate` to its end; (success, log).
    pub fn run(
        &mut self,
        manifest: &PathBuf,
        envs: &[(&str, &str)],
        args: &[&str],
    ) -> (bool, String) {
        let status = self.spawn(manifest, envs, args).wait().expect("wait for ferry");
        (status.success(), self.last_log())
    }

    pub fn last_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("run-{}.log", self.runs)))
            .unwrap_or_default()
    }

    pub fn status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.status_path()).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Fails with a diff unless `db` is the same on both servers.
    pub async fn assert_same(&self, db: &str) {
        let mut src = self.source.conn().await.expect("source conn");
        let mut dst = self.target.conn().await.expect("target conn");
        if let Err(e) = ferry_e2e::assert_same_tables(&mut src, &mut dst, db).await {
            panic!("{e}");
        }
    }

    /// Chunks of the job that are done on the target.
    pub async fn done_chunks(&self) -> u64 {
        let mut conn = self.target.conn().await.expect("target conn");
        conn.exec_first::<u64, _, _>(
            "SELECT COUNT(*) FROM ferry_meta.full_chunks WHERE job = ? AND done = 1",
            (JOB,),
        )
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
    }
}
