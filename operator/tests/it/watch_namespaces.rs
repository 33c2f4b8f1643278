//! The chart's `watchNamespaces` and worker pod template on the harness's real control plane:
//! the operator, installed with `helm install` to watch one namespace, runs a job there and
//! ignores one in another namespace, holding Roles in the watched namespace only; the worker
//! pod carries the chart's pod template with the job's `spec.workerPod` merged over it; and
//! `kubectl wait` returns on the job's Ready and Completed conditions, each condition naming
//! the generation it is about.

use crate::cluster;

use std::time::Duration;

use anyhow::Context as _;
use cluster::{
    Cluster, Install, ONE_CLUSTER_AT_A_TIME, OPERATOR_NAMESPACE, create_secret, job_object, phase,
    source_object,
};
use ferry_crds::job::{MigrationJob, MigrationMode, Phase, Tier};
use ferry_crds::source::MigrationSource;
use ferry_harness::MariaDb;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const STEP: Duration = Duration::from_secs(120);
const WATCHED: &str = "shop";
const UNWATCHED: &str = "elsewhere";

#[tokio::test]
async fn the_operator_acts_in_watched_namespaces_only_and_workers_follow_the_pod_template()
-> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (source, target) = tokio::join!(MariaDb::source(), MariaDb::target());
    let (source, target) = (source?, target?);
    cluster::prepare_shop(&source, &target).await?;
    let values = [
        "watchNamespaces={shop}",
        "worker.podTemplate.imagePullSecrets[0].name=registry",
        "worker.podTemplate.nodeSelector.pool=migrations",
        "worker.podTemplate.tolerations[0].key=dedicated",
        "worker.podTemplate.tolerations[0].operator=Exists",
        "worker.podTemplate.priorityClassName=ferry-batch",
        "worker.podTemplate.labels.team=data",
        "worker.podTemplate.labels.cost=shared",
        "worker.podTemplate.annotations.note=from-the-chart",
    ];
    let cluster = Cluster::local_with(Install::Helm(values.map(String::from).to_vec())).await?;
    let client = cluster.client.clone();
    // The Priority admission plugin refuses pods naming a PriorityClass that does not exist.
    cluster.kubectl_with_input(
        &["apply", "-f", "-"],
        Some("apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: ferry-batch}\nvalue: 1000\n"),
    )?;
    cluster.create_namespace(UNWATCHED).await?;

    // The job in the unwatched namespace is created first: by the time the watched one has
    // completed, the operator has had all that time to touch it.
    create_job(&client, UNWATCHED, "ignored", target.port(), source.port(), None).await?;
    let override_ = json!({
        "nodeSelector": {"zone": "b"},
        "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [
                {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}},
        "labels": {"cost": "shop", "app.kubernetes.io/name": "not-ferry"},
        "annotations": {"ferry.dev/attempt": "99"},
    });
    create_job(&client, WATCHED, "copy", target.port(), source.port(), Some(override_)).await?;

    let ready = "--for=condition=Ready";
    kubectl_wait(&cluster, WATCHED, "copy", ready).await?;
    kubectl_wait(&cluster, WATCHED, "copy", "--for=condition=Completed").await?;
    let job = cluster.job(WATCHED, "copy").await?.context("job copy")?;
    assert_eq!(phase(&job), Some(Phase::Completed), "{}", cluster.describe(WATCHED, "copy").await);
    every_condition_names_the_generation(&job)?;
    worker_pod_follows_the_template(&cluster).await?;

    // Nothing happened to the job in the unwatched namespace, and the operator could not even
    // read its Secrets.
    let ignored = cluster.job(UNWATCHED, "ignored").await?.context("job ignored")?;
    assert!(ignored.status.is_none(), "{:?}", ignored.status);
    assert!(ignored.finalizers().is_empty(), "{:?}", ignored.finalizers());
    assert!(cluster.worker_pods(UNWATCHED, "ignored").await?.is_empty());
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), UNWATCHED);
    assert!(sources.get("src").await?.status.is_none(), "the source there is not checked");
    assert_eq!(operator_can(&cluster, &["get", "secrets", "-n", WATCHED])?, "yes");
    assert_eq!(operator_can(&cluster, &["get", "secrets", "-n", UNWATCHED])?, "no");
    assert_eq!(operator_can(&cluster, &["list", "secrets", "--all-namespaces"])?, "no");
    Ok(())
}

/// `kubectl auth can-i` for the operator's ServiceAccount: `yes` or `no`.
fn operator_can(cluster: &Cluster, request: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(cluster.kubectl_path())
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .args(["auth", "can-i"])
        .args(request)
        .arg(format!("--as=system:serviceaccount:{OPERATOR_NAMESPACE}:ferry-operator"))
        .output()?;
    // Exit status 1 with `no` is an answer, not a failure.
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {request:?}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(answer)
}

/// Secrets, MigrationSource `src` and a Full MigrationJob `name` in `namespace`, with
/// `worker_pod` as its spec.workerPod.
async fn create_job(
    client: &Client,
    namespace: &str,
    name: &str,
    target_port: u16,
    source_port: u16,
    worker_pod: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    create_secret(client, namespace, "source", "src-pw").await?;
    create_secret(client, namespace, "target", "dst-pw").await?;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), namespace);
    sources.create(&PostParams::default(), &source_object(source_port)).await?;
    let mut job = job_object(name, MigrationMode::Full, Tier::Small, target_port);
    job.spec.worker_pod = worker_pod.map(serde_json::from_value).transpose()?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), namespace);
    jobs.create(&PostParams::default(), &job).await?;
    Ok(())
}

/// `kubectl wait` on a condition of a job, as a user gating a pipeline on it would. Run
/// without blocking: the node agent runs pods on this test's runtime meanwhile.
async fn kubectl_wait(
    cluster: &Cluster,
    namespace: &str,
    job: &str,
    condition: &str,
) -> anyhow::Result<String> {
    let target = format!("migrationjob/{job}");
    let timeout = format!("--timeout={}s", STEP.as_secs());
    let out = tokio::process::Command::new(cluster.kubectl_path())
        .arg(format!("--kubeconfig={}", cluster.kubeconfig().display()))
        .args(["wait", condition, &timeout, "-n", namespace, target.as_str()])
        .output()
        .await?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!(
            "kubectl wait {condition}: {stderr}\n{}",
            cluster.describe(namespace, job).await
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Each condition, the operator's and the worker's, says which generation it describes.
fn every_condition_names_the_generation(job: &MigrationJob) -> anyhow::Result<()> {
    let generation = job.metadata.generation.context("metadata.generation")?;
    let conditions = job.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    for type_ in ["Ready", "Completed", "Failed", "Paused", "Prechecked"] {
        let condition = conditions.iter().find(|c| c.type_ == type_);
        let observed = condition.and_then(|c| c.observed_generation);
        assert_eq!(observed, Some(generation), "{type_}: {conditions:#?}");
    }
    Ok(())
}

/// The worker pod carries the chart's template with the job's spec.workerPod merged over it,
/// and the operator's own labels and annotations.
async fn worker_pod_follows_the_template(cluster: &Cluster) -> anyhow::Result<()> {
    let pods = cluster.worker_pods(WATCHED, "copy").await?;
    let pod = pods.first().context("the worker pod of copy")?;
    let spec = pod.spec.as_ref().context("pod spec")?;
    let pull: Vec<_> = spec.image_pull_secrets.iter().flatten().map(|s| s.name.as_str()).collect();
    assert_eq!(pull, ["registry"]);
    let selector = serde_json::to_value(&spec.node_selector)?;
    assert_eq!(selector, json!({"pool": "migrations", "zone": "b"}));
    let tolerations: Vec<_> =
        spec.tolerations.iter().flatten().filter_map(|t| t.key.as_deref()).collect();
    // The chart's, then the job's; the API's DefaultTolerationSeconds adds its own after them.
    assert_eq!(tolerations[..2], ["dedicated", "spot"], "{tolerations:?}");
    let affinity = serde_json::to_value(&spec.affinity)?;
    let weight = &affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(weight["weight"], 10, "{affinity}");
    assert_eq!(spec.priority_class_name.as_deref(), Some("ferry-batch"));
    assert_eq!(spec.priority, Some(1000), "the API resolved the PriorityClass");
    let labels = pod.labels();
    assert_eq!(labels.get("team").map(String::as_str), Some("data"));
    assert_eq!(labels.get("cost").map(String::as_str), Some("shop"), "the job's value wins");
    assert_eq!(labels["app.kubernetes.io/name"], "ferry-worker", "the operator's label stays");
    let annotations = pod.annotations();
    assert_eq!(annotations.get("note").map(String::as_str), Some("from-the-chart"));
    assert_eq!(annotations["ferry.dev/attempt"], "1", "the operator's annotation stays");
    Ok(())
}
