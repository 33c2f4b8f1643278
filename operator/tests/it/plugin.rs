//! `kubectl ferry` on the harness's real control plane, run by kubectl itself as users run it
//! (the `ferry` binary on PATH as `kubectl-ferry`, the kubeconfig from KUBECONFIG): `status`
//! shows a replicating job's conditions, progress line and precheck table; `pause`, `resume`,
//! `restart` and `verify` act through the spec, and `kubectl wait` returns on the conditions a
//! cutover script gates on (CaughtUp, Paused, Ready, Verified), each naming its generation.

use crate::cluster;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, ensure};
use cluster::{
    Cluster, ONE_CLUSTER_AT_A_TIME, create_secret, job_object, phase, source_object, wait_for,
};
use ferry_crds::job::{MigrationJob, MigrationMode, Phase, Stage, Tier};
use ferry_crds::source::MigrationSource;
use ferry_harness::MariaDb;
use kube::api::{Api, PostParams};

const STEP: Duration = Duration::from_secs(120);
const NAMESPACE: &str = "plugin";
const JOB: &str = "sync";

/// kubectl with a directory holding `kubectl-ferry` (a link to the `ferry` binary) first on
/// PATH, as after `kubectl krew install ferry`.
struct Kubectl<'a> {
    cluster: &'a Cluster,
    plugins: PathBuf,
}

impl<'a> Kubectl<'a> {
    fn new(cluster: &'a Cluster) -> anyhow::Result<Self> {
        let plugins = std::env::temp_dir().join(format!("ferry-plugins-{}", std::process::id()));
        std::fs::create_dir_all(&plugins)?;
        let link = plugins.join("kubectl-ferry");
        if link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link)?;
        }
        std::os::unix::fs::symlink(ferry_binary(), &link)?;
        Ok(Self { cluster, plugins })
    }

    /// `kubectl ARGS` (`kubectl ferry ...` runs the plugin); its standard output. Run without
    /// blocking: the node agent runs pods on this test's runtime meanwhile.
    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let path = std::env::var("PATH").unwrap_or_default();
        let out = tokio::process::Command::new(self.cluster.kubectl_path())
            .args(args)
            .env("PATH", format!("{}:{path}", self.plugins.display()))
            .env("KUBECONFIG", self.cluster.kubeconfig())
            .output()
            .await
            .with_context(|| format!("run kubectl {args:?}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "kubectl {args:?}: {stdout}{stderr}");
        Ok(stdout.into_owned())
    }

    /// `kubectl ferry COMMAND sync -n plugin`.
    async fn ferry(&self, command: &str) -> anyhow::Result<String> {
        self.run(&["ferry", command, JOB, "-n", NAMESPACE]).await
    }

    /// `kubectl wait --for=condition=...` on the job, its output.
    async fn wait(&self, condition: &str) -> anyhow::Result<String> {
        let timeout = format!("--timeout={}s", STEP.as_secs());
        let target = format!("migrationjob/{JOB}");
        let args = ["wait", condition, &timeout, "-n", NAMESPACE, &target];
        match self.run(&args).await {
            Ok(out) => Ok(out),
            Err(e) => anyhow::bail!("{e}\n{}", self.cluster.describe(NAMESPACE, JOB).await),
        }
    }
}

impl Drop for Kubectl<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.plugins);
    }
}

/// The `ferry` binary the harness built for the worker pods.
fn ferry_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_ferry-operator")).parent().expect("target dir");
    dir.join("ferry")
}

#[tokio::test]
async fn kubectl_ferry_shows_and_controls_a_replicating_job() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (source, target) = tokio::join!(MariaDb::source(), MariaDb::target());
    let (source, target) = (source?, target?);
    cluster::prepare_shop(&source, &target).await?;
    let cluster = Cluster::local().await?;
    let client = cluster.client.clone();
    cluster.create_namespace(NAMESPACE).await?;
    create_secret(&client, NAMESPACE, "source", "src-pw").await?;
    create_secret(&client, NAMESPACE, "target", "dst-pw").await?;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), NAMESPACE);
    sources.create(&PostParams::default(), &source_object(source.port())).await?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), NAMESPACE);
    let job = job_object(JOB, MigrationMode::FullAndIncremental, Tier::Small, target.port());
    jobs.create(&PostParams::default(), &job).await?;
    let kubectl = Kubectl::new(&cluster)?;

    // What a cutover script waits for: replication caught up.
    kubectl.wait("--for=condition=Ready").await?;
    kubectl.wait("--for=condition=CaughtUp").await?;
    let status = kubectl.ferry("status").await?;
    for expected in [
        "MigrationJob plugin/sync: stage Incremental, phase Running",
        "CaughtUp=True",
        "Progress: Applied: ",
        "Precheck:",
        "RESULT   ITEM",
        "binlog_format",
    ] {
        assert!(status.contains(expected), "no {expected:?} in kubectl ferry status:\n{status}");
    }
    // The same command as `ferry kubectl`, with the kubeconfig given as a flag.
    let out = tokio::process::Command::new(ferry_binary())
        .args(["kubectl", "status", JOB, "-n", NAMESPACE, "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .output()
        .await?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("stage Incremental"), "{out:?}");

    // Pause: the worker stops and the Paused condition is about the paused spec.
    assert!(kubectl.ferry("pause").await?.contains("paused"));
    kubectl.wait("--for=condition=Paused").await?;
    let paused = cluster.job(NAMESPACE, JOB).await?.context("the job")?;
    assert!(paused.spec.paused);
    assert_eq!(condition_generation(&paused, "Paused"), paused.metadata.generation);
    cluster
        .wait_job((NAMESPACE, JOB), "the worker is gone", STEP, |j| phase(j) == Some(Phase::Paused))
        .await?;
    assert!(cluster.worker_pods(NAMESPACE, JOB).await?.is_empty(), "no worker while paused");

    // Resume: replication runs again.
    assert!(kubectl.ferry("resume").await?.contains("resumed"));
    kubectl.wait("--for=condition=Paused=false").await?;
    let running = cluster
        .wait_job((NAMESPACE, JOB), "the job replicates again", STEP, |j| {
            phase(j) == Some(Phase::Running)
                && j.status.as_ref().and_then(|s| s.stage) == Some(Stage::Incremental)
        })
        .await?;
    assert!(!running.spec.paused);
    assert_eq!(condition_generation(&running, "Ready"), running.metadata.generation);

    // Restart: a new worker pod (same name, attempt 1 again) for the request the plugin wrote.
    let before = worker_uid(&cluster).await?;
    kubectl.ferry("restart").await?;
    cluster
        .wait_job((NAMESPACE, JOB), "the restart request is acted on", STEP, |j| {
            let status = j.status.as_ref();
            j.spec.restart_request.is_some()
                && status.and_then(|s| s.last_restart_request.as_ref())
                    == j.spec.restart_request.as_ref()
        })
        .await?;
    wait_for(
        "a new worker pod runs the restarted job",
        STEP,
        || async {
            let uid = worker_uid(&cluster).await?;
            let job = cluster.job(NAMESPACE, JOB).await?;
            let running = job.as_ref().and_then(phase) == Some(Phase::Running);
            Ok((running && uid.is_some() && uid != before).then_some(()))
        },
        async || cluster.describe(NAMESPACE, JOB).await,
    )
    .await?;

    // Verify: the worker compares source and target and reports Verified.
    kubectl.ferry("verify").await?;
    kubectl.wait("--for=condition=Verified").await?;
    let verified = cluster.job(NAMESPACE, JOB).await?.context("the job")?;
    assert_eq!(condition_generation(&verified, "Verified"), verified.metadata.generation);
    Ok(())
}

/// The UID of the job's worker pod, if one exists.
async fn worker_uid(cluster: &Cluster) -> anyhow::Result<Option<String>> {
    let pods = cluster.worker_pods(NAMESPACE, JOB).await?;
    let live = pods.into_iter().find(|p| p.metadata.deletion_timestamp.is_none());
    Ok(live.and_then(|p| p.metadata.uid))
}

fn condition_generation(job: &MigrationJob, type_: &str) -> Option<i64> {
    let conditions = job.status.as_ref()?.conditions.iter();
    conditions.clone().find(|c| c.type_ == type_)?.observed_generation
}
