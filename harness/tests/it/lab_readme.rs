//! README.md's "Try it on Kubernetes without a cluster", run as written there: the commands
//! are read from the README, so the README and this test cannot drift. `dev/setup.sh` and the
//! `cargo build` line are skipped (cargo built the binaries; `target/debug/` becomes their
//! directory), and the lab runs in a directory of its own (`FERRY_LAB_DIR`, which the
//! README's commands honour) so that it cannot meet a lab a user has running.
//!
//! Besides each command succeeding, it checks what the command is for: `up` prints the same
//! next steps, the watch shows the job reach Incremental / Running, the row inserted on the
//! source reaches TiDB, pause stops the worker, resume replicates again, restart starts a new
//! worker, the logs are where the README says, delete removes the job and its worker, and
//! `ferry-lab down` leaves no process and no file behind.

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ferry_crds::job::{MigrationJob, Phase, Stage};
use ferry_harness::kube_harness::LocalBinaries;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use mysql_async::prelude::Queryable as _;

const SECTION: &str = "## Try it on Kubernetes without a cluster";
const UP_TIMEOUT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(180);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const JOB: &str = "lab-shop";
const NAMESPACE: &str = "default";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// The shell lines of the section's code blocks, block by block.
fn readme_blocks() -> anyhow::Result<Vec<Vec<String>>> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let start = readme.find(SECTION).with_context(|| format!("README.md has no {SECTION:?}"))?;
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        match (line.trim_start().starts_with("```"), current.take()) {
            (true, None) => current = Some(Vec::new()),
            (true, Some(block)) => blocks.push(block),
            (false, Some(mut block)) => {
                if !line.trim().is_empty() {
                    block.push(line.trim().to_string());
                }
                current = Some(block);
            }
            (false, None) => {}
        }
    }
    ensure!(current.is_none(), "an unclosed code block in README.md's {SECTION:?}");
    Ok(blocks)
}

/// A line without its trailing comment (the README puts two spaces before `#`).
fn command_of(line: &str) -> &str {
    line.split_once("  #").map_or(line, |(command, _)| command).trim()
}

/// Starts `bash -c script` in its own process group, from the repository root, with the lab's
/// directory in the environment.
fn spawn_shell(script: &str, lab: &Path, stdout: Stdio, stderr: Stdio) -> anyhow::Result<Child> {
    Command::new("bash")
        .args(["-c", script])
        .current_dir(repo_root())
        .env("FERRY_LAB_DIR", lab)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("run {script}"))
}

/// Runs a command to its end (at most [`COMMAND_TIMEOUT`]) and returns its output; fails
/// unless it exits 0.
fn run_shell(script: &str, lab: &Path) -> anyhow::Result<String> {
    let mut child = spawn_shell(script, lab, Stdio::piped(), Stdio::piped())?;
    let output = collect(child.stdout.take().context("stdout")?);
    let errors = collect(child.stderr.take().context("stderr")?);
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(child.id() as i32, libc::SIGKILL);
            bail!("{script}: still running after {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (output, errors) = (output.join(), errors.join());
    ensure!(status.success(), "{script}: {status}\n{errors}{output}");
    Ok(output)
}

/// A pipe read to its end on a thread, its text shared as it arrives.
struct Collected {
    text: Arc<Mutex<String>>,
    thread: std::thread::JoinHandle<()>,
}

impl Collected {
    fn now(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn join(self) -> String {
        let Self { text, thread } = self;
        let _ = thread.join();
        text.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

fn collect(pipe: impl std::io::Read + Send + 'static) -> Collected {
    let text = Arc::new(Mutex::new(String::new()));
    let shared = text.clone();
    let thread = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Ok(mut text) = shared.lock() {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
    Collected { text, thread }
}

fn kill_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) on the process group this test created; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// `ferry-lab up` running in the background; stopped on drop if the test did not stop it.
struct Up {
    child: Child,
    stdout: Collected,
    stderr: PathBuf,
}

impl Up {
    fn start(command: &str, lab: &Path, stderr: PathBuf) -> anyhow::Result<Self> {
        let file = std::fs::File::create(&stderr)?;
        let mut child = spawn_shell(command, lab, Stdio::piped(), file.into())?;
        let stdout = collect(child.stdout.take().context("stdout")?);
        Ok(Self { child, stdout, stderr })
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `up` printed its summary down to its last line, and returns it.
    fn wait_up(&mut self) -> anyhow::Result<String> {
        let deadline = Instant::now() + UP_TIMEOUT;
        loop {
            let printed = self.stdout.now();
            if printed.contains("Stop with Ctrl-C") {
                return Ok(printed);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("ferry-lab up exited with {status}:\n{}{printed}", self.stderr());
            }
            if Instant::now() > deadline {
                bail!("ferry-lab up: not up within {UP_TIMEOUT:?}:\n{}{printed}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("ferry-lab up still runs {timeout:?} after `down`:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM makes the lab stop its servers and pods and remove its directory.
            kill_group(self.child.id() as i32, libc::SIGTERM);
            let _ = self.wait_exit(Duration::from_secs(60));
            kill_group(self.child.id() as i32, libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// A process: its pid and start time (so that a reused pid is not taken for it).
#[derive(Debug, PartialEq)]
struct Process {
    pid: i32,
    start: String,
    args: Vec<String>,
}

fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: split after its closing one.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split(' ').map(String::from).collect())
}

fn process(pid: i32) -> Option<Process> {
    let fields = stat_fields(pid)?;
    // Fields after the name: state (3), ppid (4), ... starttime (22).
    if fields.first().is_some_and(|state| state == "Z") {
        return None;
    }
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args = cmdline.split('\0').filter(|a| !a.is_empty()).map(String::from).collect();
    Some(Process { pid, start: fields.get(19)?.clone(), args })
}

/// Every live process descended from `root`, `root` included.
fn descendants(root: i32) -> Vec<Process> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<i32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut family = vec![root];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    family.into_iter().filter_map(process).collect()
}

/// Fails if a process of the lab names a path outside the places it may use: its directory,
/// the cache (tools, MariaDB's initial data directory), the binaries and the system's own.
fn check_paths(family: &[Process], allowed: &[&Path]) -> anyhow::Result<()> {
    for process in family {
        for arg in &process.args {
            let path = arg.split_once('=').map_or(arg.as_str(), |(_, value)| value);
            let outside = path.starts_with('/')
                && !allowed.iter().any(|dir| Path::new(path).starts_with(dir));
            ensure!(!outside, "a process of the lab uses {path}, outside its places: {process:?}");
        }
    }
    Ok(())
}

/// What `ferry-lab env` exported, read from the lab's `lab.env`.
fn lab_port(lab: &Path, variable: &str) -> anyhow::Result<u16> {
    let env = std::fs::read_to_string(lab.join("lab.env")).context("read lab.env")?;
    let value = env
        .split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{variable}=")))
        .with_context(|| format!("lab.env has no {variable}:\n{env}"))?;
    Ok(value.parse()?)
}

async fn connect(port: u16) -> anyhow::Result<mysql_async::Conn> {
    let url = format!("mysql://root@127.0.0.1:{port}");
    Ok(mysql_async::Conn::new(mysql_async::Opts::from_url(&url)?).await?)
}

/// The lab's cluster, as the test sees it: the job, its worker pods, and what to show when a
/// step fails.
struct Cluster {
    jobs: Api<MigrationJob>,
    pods: Api<Pod>,
    lab: PathBuf,
    /// Where kubectl and helm would cache what they learn of the lab's API server if they
    /// ignored the lab's KUBECACHEDIR.
    home_cache: PathBuf,
}

impl Cluster {
    async fn connect(lab: &Path) -> anyhow::Result<Self> {
        let kubeconfig = Kubeconfig::read_from(lab.join("kubeconfig"))?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let port = config.cluster_url.port_u16().context("the API server's port")?;
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let home_cache = home.join(format!(".kube/cache/discovery/127.0.0.1_{port}"));
        let client = kube::Client::try_from(config)?;
        Ok(Self {
            home_cache,
            jobs: Api::namespaced(client.clone(), NAMESPACE),
            pods: Api::namespaced(client, NAMESPACE),
            lab: lab.to_path_buf(),
        })
    }

    async fn workers(&self) -> anyhow::Result<Vec<String>> {
        let params = ListParams::default().labels("app.kubernetes.io/name=ferry-worker");
        let pods = self.pods.list(&params).await?.items;
        let names = pods.into_iter().filter_map(|p| p.metadata.name);
        Ok(names.filter(|n| n.starts_with(&format!("{JOB}-worker-"))).collect())
    }

    /// The job's status and the ends of the lab's pod logs.
    async fn describe(&self) -> String {
        let status = match self.jobs.get_opt(JOB).await {
            Ok(Some(job)) => serde_json::to_string_pretty(&job.status).unwrap_or_default(),
            other => format!("{other:?}"),
        };
        let mut out = format!("--- job {JOB} status\n{status}\n");
        let pods = self.lab.join("pods");
        for pod in std::fs::read_dir(pods).into_iter().flatten().flatten() {
            for log in std::fs::read_dir(pod.path().join("logs")).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(log.path()).unwrap_or_default();
                let tail = &text[text.len().saturating_sub(3000)..];
                out.push_str(&format!("--- {}\n{tail}\n", log.path().display()));
            }
        }
        out
    }

    /// Waits until the job satisfies `done` (`None` for a job that is gone).
    async fn wait(
        &self,
        what: &str,
        done: impl Fn(Option<&MigrationJob>, &[String]) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP;
        loop {
            let job = self.jobs.get_opt(JOB).await?;
            if done(job.as_ref(), &self.workers().await?) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: not within {STEP:?}\n{}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn status(job: Option<&MigrationJob>) -> Option<&ferry_crds::job::MigrationJobStatus> {
    job?.status.as_ref()
}

fn replicating(job: Option<&MigrationJob>) -> bool {
    status(job)
        .is_some_and(|s| s.stage == Some(Stage::Incremental) && s.phase == Some(Phase::Running))
}

/// Runs the README's watch command until a line shows the job in Incremental / Running.
fn watch_until_replicating(command: &str, script: &str, lab: &Path) -> anyhow::Result<()> {
    let mut child = spawn_shell(script, lab, Stdio::piped(), Stdio::piped())?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let output = collect(child.stdout.take().context("stdout")?);
    let deadline = Instant::now() + STEP;
    let result = loop {
        let printed = output.now();
        let seen = printed.lines().any(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            // STAGE then PHASE, wherever the columns before them put them.
            columns.first() == Some(&JOB)
                && columns.windows(2).any(|w| w == ["Incremental", "Running"])
        });
        if seen {
            break Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let mut errors = String::new();
            let _ = stderr.read_to_string(&mut errors);
            break Err(anyhow::anyhow!("{command} ended ({status}) first:\n{errors}{printed}"));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "{script}: no Incremental / Running within {STEP:?}:\n{printed}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    kill_group(child.id() as i32, libc::SIGKILL);
    let _ = child.wait();
    result
}

/// Row count of `shop.customers` and the digests of database `shop` on a server.
async fn shop(port: u16) -> anyhow::Result<(u64, String)> {
    let mut conn = connect(port).await?;
    let rows: Option<u64> = conn.query_first("SELECT COUNT(*) FROM shop.customers").await?;
    let digests = ferry_harness::database_digests(&mut conn, "shop").await?;
    Ok((rows.context("no count")?, format!("{digests:?}")))
}

/// The binaries' directory, with `ferry` and `ferry-operator` built for the current code. It
/// builds what `cargo test --workspace` (dev/test.sh) builds, so there it is a no-op.
fn binaries() -> anyhow::Result<PathBuf> {
    ferry_harness::workspace::build(Path::new(env!("CARGO")), &repo_root())?;
    let lab = Path::new(env!("CARGO_BIN_EXE_ferry-lab")).canonicalize()?;
    let dir = lab.parent().context("the binaries' directory")?.to_path_buf();
    LocalBinaries::in_dir(&dir)?;
    Ok(dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_try_out_runs_as_written() -> anyhow::Result<()> {
    let blocks = readme_blocks()?;
    ensure!(blocks.len() == 2, "expected two code blocks (start, then try), found {blocks:?}");
    let bin = binaries()?;
    let local =
        |line: &str| command_of(line).replace("target/debug/", &format!("{}/", bin.display()));
    // A short path: MariaDB's socket lives below it and socket paths are limited to 107 bytes.
    let scratch = tempfile::Builder::new().prefix("ferry-lab-readme-").tempdir()?;
    let lab = scratch.path().join("lab");

    // The first block: setup and build are cargo's job here; `up` runs in the background.
    let mut up = None;
    for line in &blocks[0] {
        let command = local(line);
        if command.starts_with("dev/setup.sh") || command.starts_with("cargo build") {
            continue;
        }
        ensure!(
            command.ends_with("ferry-lab up"),
            "unexpected command {command:?} in the first block"
        );
        up = Some(Up::start(&command, &lab, scratch.path().join("up.stderr"))?);
    }
    let mut up = up.context("the first block does not run `ferry-lab up`")?;
    let started = Instant::now();
    let printed = up.wait_up()?;
    eprintln!("the lab is up after {:.1?}", started.elapsed());
    for line in &blocks[1] {
        let command = local(line);
        ensure!(printed.contains(&command), "`up` does not print {command:?}:\n{printed}");
    }

    let mut environment = Vec::new();
    let mut cluster = None;
    let mut checked = Vec::new();
    let mut family = Vec::new();
    for line in &blocks[1] {
        let command = local(line);
        let script = format!("{}\n{command}", environment.join("\n"));
        let started = Instant::now();
        if command.starts_with("eval ") || command.starts_with("export ") {
            run_shell(&script, &lab)?;
            environment.push(command.clone());
            cluster = Some(Cluster::connect(&lab).await?);
        } else if command.starts_with("kubectl get") && command.ends_with(" -w") {
            watch_until_replicating(&command, &script, &lab)?;
            // Everything runs now: the lab's processes, the operator's and the worker's.
            family = descendants(up.child.id() as i32);
            let cache = ferry_harness::cache_dir();
            let allowed = [lab.as_path(), &cache, &bin, Path::new("/usr"), Path::new("/bin")];
            check_paths(family.get(1..).unwrap_or(&[]), &allowed)?;
            checked.push("watch");
        } else if command.contains("INSERT INTO") {
            let (source, target) = (
                lab_port(&lab, "FERRY_LAB_SOURCE_PORT")?,
                lab_port(&lab, "FERRY_LAB_TARGET_PORT")?,
            );
            let before = shop(source).await?.0;
            run_shell(&script, &lab)?;
            let expected = shop(source).await?;
            ensure!(expected.0 == before + 1, "{command} inserted no row");
            let deadline = Instant::now() + STEP;
            while shop(target).await? != expected {
                if Instant::now() > deadline {
                    let describe = cluster.as_ref().context("no eval")?.describe().await;
                    bail!("the inserted row did not reach TiDB within {STEP:?}\n{describe}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            checked.push("replicated");
        } else {
            let output = run_shell(&script, &lab)?;
            let cluster = cluster.as_ref().context("a kubectl command before the eval line")?;
            check_effect(&command, &output, cluster, &mut up, &lab, &family).await?;
            checked.push(effect_name(&command));
        }
        eprintln!("{command}: {:.1?}", started.elapsed());
    }
    for step in ["watch", "replicated", "paused", "resumed", "restarted", "deleted", "down"] {
        ensure!(
            checked.contains(&step),
            "the README's try-out does not show {step:?}: {checked:?}"
        );
    }
    Ok(())
}

fn effect_name(command: &str) -> &'static str {
    if command.contains(r#""paused":true"#) {
        "paused"
    } else if command.contains(r#""paused":false"#) {
        "resumed"
    } else if command.contains("restartRequest") {
        "restarted"
    } else if command.starts_with("kubectl delete") {
        "deleted"
    } else if command.ends_with("ferry-lab down") {
        "down"
    } else if command.starts_with("tail ") {
        "logs"
    } else {
        "ran"
    }
}

/// Checks what a command of the try-out is for, once it succeeded with `output`.
async fn check_effect(
    command: &str,
    output: &str,
    cluster: &Cluster,
    up: &mut Up,
    lab: &Path,
    family: &[Process],
) -> anyhow::Result<()> {
    match effect_name(command) {
        "paused" => {
            cluster
                .wait("the job is Paused without a worker", |job, workers| {
                    status(job).is_some_and(|s| s.phase == Some(Phase::Paused))
                        && workers.is_empty()
                })
                .await
        }
        "resumed" => cluster.wait("the job replicates again", |job, _| replicating(job)).await,
        "restarted" => {
            let requested = cluster.jobs.get(JOB).await?.spec.restart_request;
            ensure!(requested.is_some(), "{command} set no restart request");
            cluster
                .wait("a new worker runs after the restart request", |job, workers| {
                    status(job).is_some_and(|s| s.last_restart_request == requested)
                        && replicating(job)
                        && !workers.is_empty()
                })
                .await
        }
        "deleted" => {
            cluster
                .wait("the job and its worker are gone", |job, workers| {
                    job.is_none() && workers.is_empty()
                })
                .await
        }
        "logs" => {
            ensure!(!output.trim().is_empty(), "{command} printed nothing");
            Ok(())
        }
        "down" => {
            let status = up.wait_exit(Duration::from_secs(60))?;
            ensure!(status.success(), "ferry-lab up ended with {status}:\n{}", up.stderr());
            ensure!(family.len() > 5, "too few of the lab's processes were seen: {family:?}");
            let left: Vec<&Process> =
                family.iter().filter(|p| process(p.pid).as_ref() == Some(*p)).collect();
            ensure!(left.is_empty(), "processes of the lab still run after `down`: {left:?}");
            ensure!(!lab.exists(), "{} is still there after `down`", lab.display());
            let home_cache = &cluster.home_cache;
            ensure!(!home_cache.exists(), "kubectl or helm cached into {}", home_cache.display());
            Ok(())
        }
        _ => Ok(()),
    }
}
