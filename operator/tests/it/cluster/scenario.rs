//! What a user does with Ferry on a cluster, as one test that runs unchanged on the harness's
//! control plane and on a kind cluster: apply the FullAndIncremental example (pointed at the
//! test's servers), watch the copy reach replication, write to the source and see it on the
//! target, pause, resume, restart and delete.

use std::time::Duration;

use anyhow::Context as _;
use ferry_crds::job::{MigrationJob, Phase, Stage};
use ferry_crds::source::MigrationSource;
use ferry_harness::SqlServer;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::{Cluster, local_pid, phase, process_ended, reason, repo_root, wait_for};

/// A server and the address pods in the cluster reach it at.
pub struct Database<'a, S> {
    pub server: &'a S,
    pub host: String,
    pub port: u16,
}

const EXAMPLE: &str = "deploy/examples/full-and-incremental.yaml";
const SOURCE_PASSWORD: &str = "src-Pw-1";
const TARGET_PASSWORD: &str = "dst-Pw-1";
const STEP: Duration = Duration::from_secs(120);

/// The example's objects with hosts, ports and passwords replaced by the test's, TLS off.
fn example_manifest<S, T>(source: &Database<S>, target: &Database<T>) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo_root().join(EXAMPLE))?;
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let mut object: Value = serde::Deserialize::deserialize(document)?;
        match object["kind"].as_str() {
            Some("Secret") => {
                let password = match object["metadata"]["name"].as_str() {
                    Some("app-mariadb") => SOURCE_PASSWORD,
                    _ => TARGET_PASSWORD,
                };
                object["stringData"] = json!({"password": password});
            }
            Some("MigrationSource") => {
                object["spec"]["host"] = json!(source.host);
                object["spec"]["port"] = json!(source.port);
            }
            Some("MigrationJob") => {
                let target_spec = &mut object["spec"]["target"];
                target_spec["host"] = json!(target.host);
                target_spec["port"] = json!(target.port);
                target_spec["user"] = json!("ferry");
                target_spec["tls"].take();
            }
            other => anyhow::bail!("{EXAMPLE} has an unexpected {other:?}"),
        }
        strip_nulls(&mut object);
        out.push(serde_yaml::to_string(&object)?);
    }
    Ok(out.join("---\n"))
}

fn strip_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        map.values_mut().for_each(strip_nulls);
    }
}

async fn count(server: &impl SqlServer, sql: &str) -> anyhow::Result<i64> {
    let rows = server.query_strings(sql).await?;
    let first = rows.first().cloned().flatten().context("no count")?;
    Ok(first.parse()?)
}

/// Waits until the target holds exactly the source's rows of `shop`.
async fn wait_same<S: SqlServer, T: SqlServer>(
    cluster: &Cluster,
    (namespace, job): (&str, &str),
    source: &S,
    target: &T,
    what: &str,
) -> anyhow::Result<()> {
    // Polls the whole comparison (a matching row count may come before the last update).
    let same = || async {
        let (mut source_conn, mut target_conn) = (source.conn().await?, target.conn().await?);
        Ok(ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "shop").await.ok())
    };
    let waited = wait_for(what, STEP, same, async || cluster.describe(namespace, job).await).await;
    if waited.is_err() {
        // The difference itself says more than "not within".
        let (mut source_conn, mut target_conn) = (source.conn().await?, target.conn().await?);
        ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "shop").await?;
    }
    waited
}

/// How the example job's worker pod must look: the `small` tier in force (the example's), and
/// the image pull policy when the installation sets one.
pub struct Worker {
    pub cpu_limit: &'static str,
    pub memory_limit: &'static str,
    pub concurrency: usize,
    pub pull_policy: Option<&'static str>,
}

impl Default for Worker {
    /// The built-in and deploy/ small tier.
    fn default() -> Self {
        Self { cpu_limit: "1", memory_limit: "1Gi", concurrency: 4, pull_policy: None }
    }
}

/// The example FullAndIncremental job end to end in `namespace`.
pub async fn example_migration<S: SqlServer, T: SqlServer>(
    cluster: &Cluster,
    namespace: &str,
    source: Database<'_, S>,
    target: Database<'_, T>,
) -> anyhow::Result<()> {
    example_migration_expecting(cluster, namespace, source, target, &Worker::default()).await
}

/// [`example_migration`], its worker pod as `worker` says.
pub async fn example_migration_expecting<S: SqlServer, T: SqlServer>(
    cluster: &Cluster,
    namespace: &str,
    source: Database<'_, S>,
    target: Database<'_, T>,
    worker: &Worker,
) -> anyhow::Result<()> {
    let (src, dst) = (source.server, target.server);
    src.create_user(
        "ferry",
        SOURCE_PASSWORD,
        "SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, REPLICATION CLIENT",
    )
    .await?;
    dst.create_user("ferry", TARGET_PASSWORD, "ALL PRIVILEGES").await?;
    src.exec(
        "CREATE DATABASE shop; \
         CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2)); \
         INSERT INTO shop.items VALUES (1, 'anchor', 99.50), (2, 'buoy', 12.00), (3, 'cleat', 4.25)",
    )
    .await?;
    cluster.create_namespace(namespace).await?;
    let manifest = example_manifest(&source, &target)?;
    cluster.kubectl_with_input(&["apply", "-n", namespace, "-f", "-"], Some(&manifest))?;

    let sources: Api<MigrationSource> = Api::namespaced(cluster.client.clone(), namespace);
    let jobs: Api<MigrationJob> = Api::namespaced(cluster.client.clone(), namespace);
    let job_name = "app-to-tidb";
    let key = (namespace, job_name);
    wait_for(
        "the example MigrationSource becomes Ready",
        STEP,
        || async {
            let ready = sources.get("app-mariadb").await?.status.is_some_and(|st| {
                st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            });
            Ok(ready.then_some(()))
        },
        async || cluster.describe(namespace, job_name).await,
    )
    .await?;

    // The copy is done and replication runs; the worker is sized by the small tier.
    let job = cluster
        .wait_job(key, "the example job reaches Incremental", STEP, |j| {
            j.status.as_ref().and_then(|s| s.stage) == Some(Stage::Incremental)
                && phase(j) == Some(Phase::Running)
        })
        .await?;
    let pod_name = job.status.as_ref().and_then(|s| s.worker_pod.clone()).context("workerPod")?;
    let pods = cluster.worker_pods(namespace, job_name).await?;
    let pod = pods.iter().find(|p| p.name_any() == pod_name).context("the worker pod")?;
    let container = &pod.spec.as_ref().context("pod spec")?.containers[0];
    let limits = container.resources.as_ref().and_then(|r| r.limits.clone()).context("limits")?;
    assert_eq!(
        (limits["cpu"].0.as_str(), limits["memory"].0.as_str()),
        (worker.cpu_limit, worker.memory_limit),
        "small tier"
    );
    let args = container.args.clone().unwrap_or_default().join(" ");
    assert!(args.contains(&format!("--concurrency {}", worker.concurrency)), "{args}");
    if let Some(policy) = worker.pull_policy {
        assert_eq!(container.image_pull_policy.as_deref(), Some(policy), "worker pull policy");
    }
    assert!(!serde_json::to_string(pod)?.contains(SOURCE_PASSWORD), "no password in the pod");
    wait_same(cluster, key, src, dst, "the copy matches the source").await?;

    // Changes on the source arrive; status and `kubectl get` show where replication is.
    src.exec(
        "INSERT INTO shop.items VALUES (4, 'davit', 310.00), (5, 'ensign', 25.10); \
         UPDATE shop.items SET price = 89.99 WHERE id = 1; DELETE FROM shop.items WHERE id = 2",
    )
    .await?;
    wait_same(cluster, key, src, dst, "replicated changes arrive").await?;
    let job = cluster
        .wait_job(key, "the job reports its replication position", STEP, |j| {
            j.status.as_ref().and_then(|s| s.incremental.as_ref()).is_some_and(|i| {
                i.applied.is_some() && i.source_head.is_some() && i.lag_seconds.is_some()
            })
        })
        .await?;
    assert!(job.status.as_ref().and_then(|s| s.position.as_ref()).is_some(), "status.position");
    let table = cluster.kubectl(&["get", "migrationjobs", "-n", namespace])?;
    let header = table.lines().next().unwrap_or_default();
    for column in ["STAGE", "PHASE", "PROGRESS", "LAG"] {
        assert!(header.contains(column), "kubectl get migrationjobs lacks {column}:\n{table}");
    }
    assert!(table.contains("Incremental") && table.contains("Running"), "{table}");

    pause_and_resume(cluster, key, &jobs, &pod_name, src, dst).await?;
    restart(cluster, key, &jobs).await?;
    if cluster.is_local() {
        crashed_worker_is_replaced(cluster, key, src, dst).await?;
    }
    transitions_are_events(cluster, key).await?;
    delete(cluster, key, &jobs).await
}

/// A worker killed with SIGKILL (no report, no clean checkpoint) is replaced after a backoff,
/// and replication continues from the checkpoint.
async fn crashed_worker_is_replaced<S: SqlServer, T: SqlServer>(
    cluster: &Cluster,
    key: (&str, &str),
    src: &S,
    dst: &T,
) -> anyhow::Result<()> {
    let (namespace, job_name) = key;
    let job = cluster.job(namespace, job_name).await?.context("the job")?;
    let Some(pod_name) = job.status.and_then(|s| s.worker_pod) else {
        anyhow::bail!("no worker pod\n{}", cluster.describe(namespace, job_name).await);
    };
    let pid = wait_for(
        "the worker process runs",
        STEP,
        || async { Ok(local_pid(&cluster.client, namespace, &pod_name).await) },
        async || cluster.describe(namespace, job_name).await,
    )
    .await?;
    let killed = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status()?;
    anyhow::ensure!(killed.success(), "kill -KILL {pid}");
    src.exec("INSERT INTO shop.items VALUES (7, 'gaff', 17.00)").await?;
    cluster
        .wait_job(key, "a new worker replaces the killed one", STEP, |j| {
            let status = j.status.as_ref();
            status.and_then(|s| s.worker_pod.as_deref()).is_some_and(|p| p != pod_name)
                && phase(j) == Some(Phase::Running)
        })
        .await?;
    wait_same(cluster, key, src, dst, "changes after the crash arrive").await
}

/// The operator records each transition as an Event on the job.
async fn transitions_are_events(cluster: &Cluster, key: (&str, &str)) -> anyhow::Result<()> {
    let (namespace, job_name) = key;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(cluster.client.clone(), namespace);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(job_name))
        .filter_map(|e| e.reason)
        .collect();
    for expected in ["Paused", "Restarting"] {
        assert!(reasons.iter().any(|r| r == expected), "no {expected} event in {reasons:?}");
    }
    Ok(())
}

/// Pausing stops the worker; changes made meanwhile arrive after resuming.
async fn pause_and_resume<S: SqlServer, T: SqlServer>(
    cluster: &Cluster,
    key: (&str, &str),
    jobs: &Api<MigrationJob>,
    pod_name: &str,
    src: &S,
    dst: &T,
) -> anyhow::Result<()> {
    let (namespace, job_name) = key;
    let pid = match cluster.is_local() {
        true => local_pid(&cluster.client, namespace, pod_name).await,
        false => None,
    };
    let pause = |paused: bool| Patch::Merge(json!({"spec": {"paused": paused}}));
    jobs.patch(job_name, &PatchParams::default(), &pause(true)).await?;
    let job = cluster
        .wait_job(key, "the job is Paused", STEP, |j| phase(j) == Some(Phase::Paused))
        .await?;
    assert_eq!(reason(&job, "Paused"), Some("Paused"));
    assert!(cluster.worker_pods(namespace, job_name).await?.is_empty(), "no worker while paused");
    if let Some(pid) = pid {
        assert!(process_ended(pid), "the worker process {pid} stopped");
    }

    src.exec("INSERT INTO shop.items VALUES (6, 'fender', 42.00); UPDATE shop.items SET name = 'ANCHOR' WHERE id = 1").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sql = "SELECT COUNT(*) FROM shop.items WHERE id = 6";
    assert_eq!(count(dst, sql).await?, 0, "nothing is applied while paused");

    jobs.patch(job_name, &PatchParams::default(), &pause(false)).await?;
    let job = cluster
        .wait_job(key, "the job resumes replication", STEP, |j| {
            phase(j) == Some(Phase::Running)
                && j.status.as_ref().and_then(|s| s.stage) == Some(Stage::Incremental)
        })
        .await?;
    assert_eq!(reason(&job, "Paused"), Some("NotPaused"));
    wait_same(cluster, key, src, dst, "changes made while paused arrive").await
}

/// A restart request replaces the worker with one that resumes the same job.
async fn restart(
    cluster: &Cluster,
    key: (&str, &str),
    jobs: &Api<MigrationJob>,
) -> anyhow::Result<()> {
    let (namespace, job_name) = key;
    let request = Patch::Merge(json!({"spec": {"restartRequest": "r1"}}));
    jobs.patch(job_name, &PatchParams::default(), &request).await?;
    let job = cluster
        .wait_job(key, "the restart request is acted on", STEP, |j| {
            let status = j.status.as_ref();
            status.and_then(|s| s.last_restart_request.as_deref()) == Some("r1")
                && status.and_then(|s| s.worker_pod.as_ref()).is_some()
        })
        .await?;
    let pod_name = job.status.and_then(|s| s.worker_pod).context("worker after the restart")?;
    let pods = cluster.worker_pods(namespace, job_name).await?;
    let pod = pods.iter().find(|p| p.name_any() == pod_name).context("the restarted worker")?;
    let args = pod.spec.as_ref().context("spec")?.containers[0].args.clone().unwrap_or_default();
    // A restart only resumes (overwriting conflicts is spec.overwriteConflictsAt); the worker
    // is told which job it runs, by UID.
    assert!(!args.iter().any(|a| a.contains("replace")), "{args:?}");
    let uid = job.metadata.uid.clone().context("the job's UID")?;
    assert!(args.windows(2).any(|w| w[0] == "--job-uid" && w[1] == uid), "{args:?}");
    Ok(())
}

/// Deleting the job stops its worker and removes what the operator made for it.
async fn delete(
    cluster: &Cluster,
    key: (&str, &str),
    jobs: &Api<MigrationJob>,
) -> anyhow::Result<()> {
    let (namespace, job_name) = key;
    jobs.delete(job_name, &DeleteParams::default()).await?;
    wait_for(
        "the job and its worker are gone",
        STEP,
        || async {
            let gone = cluster.job(namespace, job_name).await?.is_none()
                && cluster.worker_pods(namespace, job_name).await?.is_empty();
            Ok(gone.then_some(()))
        },
        async || cluster.describe(namespace, job_name).await,
    )
    .await
}
