//! Shared by the `ferry migrate` tests: a source and a target, manifests for a copy or an
//! Incremental job, the process and its logs, checkpoints, and waiting for it to catch up.

pub mod corpus;
pub mod decode;
pub mod load;
pub mod mysql_binlog;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ferry_harness::{JobManifest, Source, SourceKind, SqlServer, Target, TargetKind};
use mysql_async::prelude::Queryable;

/// The copy's two ways of writing rows, each forced through `FERRY_COPY_WRITE` so one test runs
/// its corpus through both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPath {
    /// `LOAD DATA LOCAL INFILE` from memory; a target refusing it fails the run.
    Load,
    /// Multi-row REPLACE statements.
    Statements,
}

impl CopyPath {
    pub fn env(self) -> (&'static str, &'static str) {
        match self {
            CopyPath::Load => ("FERRY_COPY_WRITE", "load"),
            CopyPath::Statements => ("FERRY_COPY_WRITE", "insert"),
        }
    }

    /// Fails when a run forced onto LOAD DATA wrote a chunk as statements after all.
    pub fn assert_followed(self, log: &str) {
        if self == CopyPath::Load {
            assert!(!log.contains("LOAD DATA rejected"), "a chunk fell back to statements:\n{log}");
        }
    }
}

/// (column type, min, max) of every integer type, signed and unsigned.
pub const INTEGERS: &[(&str, i128, i128)] = &[
    ("TINYINT", -128, 127),
    ("TINYINT UNSIGNED", 0, 255),
    ("SMALLINT", -32768, 32767),
    ("SMALLINT UNSIGNED", 0, 65535),
    ("MEDIUMINT", -8388608, 8388607),
    ("MEDIUMINT UNSIGNED", 0, 16777215),
    ("INT", -2147483648, 2147483647),
    ("INT UNSIGNED", 0, 4294967295),
    ("BIGINT", -9223372036854775808, 9223372036854775807),
    ("BIGINT UNSIGNED", 0, 18446744073709551615),
];

pub const PASSWORD: &str = "s3cret-pw";
/// The manifest the tests write (YAML files in the test directory hold [`PASSWORD`]; every other
/// file there is Ferry's output).
const MANIFEST_FILE: &str = "job.yaml";

/// SQL for the checkpoint key `ferry migrate` registered for job `default/job` (see
/// `ferry_meta.jobs`).
pub const JOB_KEY: &str =
    "(SELECT id FROM ferry_meta.jobs WHERE owner = 'cli' AND name = 'default/job')";

pub struct Setup {
    pub source: Source,
    pub target: Target,
    pub dir: tempfile::TempDir,
    runs: usize,
    /// Ports the manifests name instead of the servers' (fault proxies in between).
    route: Option<(u16, u16)>,
}

/// No credential in any output: every file a test's Ferry runs left (stderr logs, stdout, the
/// status with its conditions and errors, reports) is scanned for the password when the test's
/// setup goes away, so every `ferry migrate` a worker test runs passes through this check.
impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        if let Some(leak) = files_holding(self.dir.path(), PASSWORD) {
            panic!("the password appears in Ferry's output {leak}");
        }
    }
}

/// The first file under `dir` (the manifest aside) that contains `secret`, with the line.
fn files_holding(dir: &std::path::Path, secret: &str) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let manifest = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if manifest || !path.is_file() {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(secret)) {
            return Some(format!("{}: {line}", path.display()));
        }
    }
    None
}

impl Setup {
    pub async fn start() -> Setup {
        Self::start_with(TargetKind::MariaDb).await
    }

    /// A MariaDB source and a target of `kind`.
    pub async fn start_with(kind: TargetKind) -> Setup {
        Self::start_with_source(SourceKind::MariaDb, kind).await
    }

    /// A source of `source_kind` and a target of `target_kind`, each with the user `ferry`.
    pub async fn start_with_source(source_kind: SourceKind, target_kind: TargetKind) -> Setup {
        let (source, target) = tokio::join!(source_kind.start(), target_kind.start());
        Self::from_servers(source.expect("start the source"), target.expect("start the target"))
            .await
    }

    /// Servers a test started itself, each given the user `ferry`.
    pub async fn from_servers(source: Source, target: Target) -> Setup {
        source.create_user("ferry", PASSWORD, "ALL PRIVILEGES").await.expect("source user");
        target.create_user("ferry", PASSWORD, "ALL PRIVILEGES").await.expect("target user");
        let dir = tempfile::tempdir().expect("tempdir");
        Setup { source, target, dir, runs: 0, route: None }
    }

    /// Runs `sql` on both servers (the tables the job replicates into must exist on the target).
    pub async fn both(&self, sql: &str) {
        self.source.exec(sql).await.expect("source DDL");
        self.target.exec(sql).await.expect("target DDL");
    }

    /// The source's current `(file, pos)`.
    pub async fn source_head(&self) -> (String, u64) {
        self.source.binlog_head().await.expect("the source's binlog position")
    }

    /// Writes the manifest of a job in `mode` with `objects` (YAML under `objects:`).
    pub fn manifest(&self, mode: &str, objects: &str) -> PathBuf {
        self.write_manifest(mode, &format!("  objects:\n{objects}"))
    }

    /// Writes the manifest: Incremental mode from `start`, `extra` spec lines appended.
    pub fn incremental_manifest(&self, start: &(String, u64), extra: &str) -> PathBuf {
        let (file, pos) = start;
        let spec = format!(
            "  incremental:\n    start: {{file: {file}, pos: {pos}}}\n  objects:\n    databases: [app]\n{extra}"
        );
        self.write_manifest("Incremental", &spec)
    }

    /// Writes the manifest: Incremental mode from a GTID set alone (no file and position).
    pub fn incremental_manifest_from_gtid(&self, gtid_set: &str, extra: &str) -> PathBuf {
        let spec = format!(
            "  incremental:\n    start: {{gtidSet: \"{gtid_set}\"}}\n  objects:\n    databases: [app]\n{extra}"
        );
        self.write_manifest("Incremental", &spec)
    }

    /// Manifests written from now on send Ferry to these ports (for example fault proxies in
    /// front of the servers) instead of the servers' own.
    pub fn route_through(&mut self, source_port: u16, target_port: u16) {
        self.route = Some((source_port, target_port));
    }

    /// Writes the manifest of a job in `mode` with `spec` (YAML lines under `spec:`).
    pub fn write_manifest(&self, mode: &str, spec: &str) -> PathBuf {
        let source_port = self.route.map_or(self.source.port(), |(source, _)| source);
        self.write_manifest_for(source_port, mode, spec)
    }

    /// Writes the manifest with the source at `source_port` (another server than `source`, as
    /// after a failover).
    pub fn write_manifest_for(&self, source_port: u16, mode: &str, spec: &str) -> PathBuf {
        let target_port = self.route.map_or(self.target.port(), |(_, target)| target);
        let yaml = JobManifest {
            source_kind: self.source.source_kind(),
            name: "job",
            source_port,
            target_port,
            user: "ferry",
            password: PASSWORD,
            mode,
            spec,
        }
        .yaml();
        let path = self.dir.path().join(MANIFEST_FILE);
        std::fs::write(&path, yaml).expect("write manifest");
        path
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    /// Starts `ferry migrate` with `envs` and `args`; its log goes to `run-N.log` in the test dir.
    pub fn spawn(&mut self, manifest: &PathBuf, envs: &[(&str, &str)], args: &[&str]) -> Child {
        self.runs += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("run-{}.log", self.runs)))
            .expect("log file");
        let stdout =
            std::fs::File::create(self.dir.path().join(format!("run-{}.stdout", self.runs)))
                .expect("stdout file");
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["migrate", "-f"])
            .arg(manifest)
            .arg("--status-file")
            .arg(self.status_path())
            .args(args)
            // A test may raise FERRY_LOG through `envs`.
            .env("FERRY_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(stdout)
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

    /// The log of run `n` (1-based).
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("run-{n}.log"))).unwrap_or_default()
    }

    pub fn last_log(&self) -> String {
        self.log(self.runs)
    }

    pub fn status(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.status_path()).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Waits until the status file satisfies `done` (it is written periodically) and returns it.
    pub async fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the status never showed {what} within {timeout:?}: {status:#}\n{}",
                self.last_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The checkpoint row on the target: (file, pos, state).
    pub async fn checkpoint(&self) -> Option<(String, u64, String)> {
        let mut conn = self.target.conn().await.ok()?;
        conn.query_first(format!(
            "SELECT binlog_file, binlog_pos, state FROM ferry_meta.incremental_checkpoint \
             WHERE job = {JOB_KEY}"
        ))
        .await
        .ok()
        .flatten()
    }

    /// Waits until the checkpoint reaches the source's current position.
    pub async fn wait_caught_up(&self, child: &mut Child, timeout: Duration) {
        let head = self.source_head().await;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((file, pos, _)) = self.checkpoint().await
                && (file > head.0 || (file == head.0 && pos >= head.1))
            {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ferry exited with {status} before catching up:\n{}", self.last_log());
            }
            assert!(
                Instant::now() < deadline,
                "not caught up with {head:?} within {timeout:?}: checkpoint {:?}\n{}",
                self.checkpoint().await,
                self.last_log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Chunks of the job's copy that are done on the target.
    pub async fn done_chunks(&self) -> u64 {
        let mut conn = self.target.conn().await.expect("target conn");
        conn.query_first::<u64, _>(format!(
            "SELECT COUNT(*) FROM ferry_meta.full_chunks WHERE job = {JOB_KEY} AND done = 1"
        ))
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
    }

    /// Chunks of the job's copy planned and not done yet (0 before any plan is saved).
    pub async fn pending_chunks(&self) -> u64 {
        let mut conn = self.target.conn().await.expect("target conn");
        conn.query_first::<Option<u64>, _>(format!(
            "SELECT CAST(SUM(done = 0) AS UNSIGNED) FROM ferry_meta.full_chunks WHERE job = {JOB_KEY}"
        ))
        .await
        .ok()
        .flatten()
        .flatten()
        .unwrap_or(0)
    }

    /// How the copy's snapshot was taken (`ftwrl`, `lock-free`, ...), from its checkpoint.
    pub async fn snapshot_method(&self) -> Option<String> {
        let sql = format!("SELECT method FROM ferry_meta.full_snapshot WHERE job = {JOB_KEY}");
        self.target.query_strings(&sql).await.ok()?.into_iter().next().flatten()
    }

    /// Runs `write(n)` for n = 0, 1, ... from the moment the copy has finished its first chunk
    /// (its snapshot is taken) until `child` exits or stops copying; returns how many writes
    /// committed while chunks were still pending, which a test asserts is not zero.
    pub async fn write_while_copying<F, Fut>(&self, child: &mut Child, mut write: F) -> u64
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.done_chunks().await < 1 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("ferry exited with {status} before copying a chunk:\n{}", self.last_log());
            }
            assert!(Instant::now() < deadline, "no chunk copied:\n{}", self.last_log());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut during = 0;
        for n in 0.. {
            write(n).await;
            if self.pending_chunks().await == 0 || !matches!(child.try_wait(), Ok(None)) {
                break;
            }
            during += 1;
        }
        during
    }

    /// Fails with a diff (and the last ferry log) unless `database` is the same on both servers.
    /// The indexes of `database`'s tables are the same on both sides: names, uniqueness,
    /// columns in order and prefix lengths. A functional index part has no column: MySQL shows
    /// NULL, TiDB the text 'NULL'.
    pub async fn assert_same_indexes(&self, database: &str) {
        let sql = format!(
            "SELECT CONCAT_WS(' ', TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, \
             IFNULL(COLUMN_NAME, 'NULL'), \
             IFNULL(SUB_PART, '-')) FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = '{database}'"
        );
        let mut source = self.source.query_strings(&sql).await.expect("source indexes");
        let mut target = self.target.query_strings(&sql).await.expect("target indexes");
        source.sort();
        target.sort();
        assert_eq!(source, target, "indexes differ\nferry log:\n{}", self.last_log());
    }

    pub async fn assert_same(&self, database: &str) {
        let mut s = self.source.conn().await.expect("source conn");
        let mut t = self.target.conn().await.expect("target conn");
        if let Err(e) = ferry_harness::assert_same_tables(&mut s, &mut t, database).await {
            panic!("{e}\nferry log:\n{}", self.last_log());
        }
    }
}

/// A job replicating database `app` with `ferry migrate` in Incremental mode, started at the
/// source's head.
pub struct Replicating {
    pub setup: Setup,
    /// The source's position the job started at.
    pub start: (String, u64),
    pub manifest: PathBuf,
    pub ferry: Child,
}

impl Setup {
    /// A source of `source` kind and a target of `target` kind, `tables` created on both, and
    /// `ferry migrate` replicating from the source's head with the spec lines `extra`.
    pub async fn replicating(
        source: SourceKind,
        target: TargetKind,
        tables: &str,
        extra: &str,
    ) -> Replicating {
        let mut setup = Setup::start_with_source(source, target).await;
        setup.both(tables).await;
        let start = setup.source_head().await;
        let manifest = setup.incremental_manifest(&start, extra);
        let ferry = setup.spawn(&manifest, &[], &[]);
        Replicating { setup, start, manifest, ferry }
    }
}

impl Replicating {
    /// Runs `sql` on the source and waits (a minute at most) until the job has applied it.
    pub async fn catch_up_with(&mut self, sql: &str) {
        self.setup.source.exec(sql).await.expect("source write");
        self.setup.wait_caught_up(&mut self.ferry, Duration::from_secs(60)).await;
    }
}

/// The position a conflict's error names (`... in the source transactions up to FILE:POS. ...`).
pub fn failure_position(message: &str) -> String {
    let after = message.split_once("up to ").map(|(_, rest)| rest).unwrap_or_default();
    let position = after.split_once(". ").map_or(after, |(position, _)| position);
    assert!(position.contains(':'), "no position in the error: {message}");
    position.to_string()
}

/// Sends SIGINT (Ctrl-C) and waits for a clean exit.
pub fn interrupt(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    wait_exit(child, Duration::from_secs(30))
}

/// Waits for the process to exit (killing it after `timeout`).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ferry did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The scan finds the password in any output file and leaves the manifest alone.
#[test]
fn the_credential_scan_finds_a_password_in_any_output_but_the_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(MANIFEST_FILE), format!("password: {PASSWORD}\n")).unwrap();
    std::fs::write(dir.path().join("run-1.log"), "connected to the source\n").unwrap();
    assert_eq!(files_holding(dir.path(), PASSWORD), None);
    let status = format!("{{\"message\": \"access denied for ferry:{PASSWORD}\"}}\n");
    std::fs::write(dir.path().join("status.json"), status).unwrap();
    let found = files_holding(dir.path(), PASSWORD).expect("the leak is found");
    assert!(found.contains("status.json"), "{found}");
}
