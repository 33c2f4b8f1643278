//! Ferry on a Kubernetes cluster, for the end-to-end tests. Either the harness's own control
//! plane (etcd, kube-apiserver and kube-controller-manager, real) with its node agent running
//! the pods as local processes under the RBAC of their ServiceAccounts, Ferry installed from
//! `deploy/` or with the Helm chart ([`Install`]); or an existing cluster named by
//! `FERRY_E2E_KUBECONFIG` where Ferry is installed already (the kind suite, `harness/kind/`).

pub mod scenario;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use ferry_crds::job::{MigrationJob, MigrationMode, Phase, Tier};
use ferry_crds::source::{MigrationSource, SourceType};
use ferry_harness::kube_harness::{
    ControlPlane, KUBE_VERSION, LocalBinaries, NodeAgent, NodeAgentOptions, go_tool,
};
use ferry_harness::manifest;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

/// Namespace of the operator in `deploy/` and of the chart's release.
pub use ferry_harness::kube_harness::OPERATOR_NAMESPACE;

/// Every test that runs a control plane, operators and workers holds this for its whole run:
/// one such cluster at a time in the test binary, on small machines.
pub static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// How Ferry is installed on the harness's cluster.
pub enum Install {
    /// `kubectl apply --server-side -k deploy/`, as the README says.
    Kustomize,
    /// deploy/ with `replicas` operator replicas and `args` added to the operator's arguments,
    /// as a user's kustomize overlay would.
    KustomizeWith { replicas: i32, args: Vec<String> },
    /// `helm install ferry charts/ferry` with these `--set` values on top of the ones the
    /// harness needs (see `ferry_harness::kube_harness::install::helm_install`).
    Helm(Vec<String>),
}

/// A cluster with Ferry installed.
pub struct Cluster {
    pub client: Client,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    local: Option<Local>,
}

/// The harness's control plane (kept running while the cluster lives) and node agent.
struct Local {
    _plane: ControlPlane,
    agent: NodeAgent,
}

impl Cluster {
    /// The cluster of `FERRY_E2E_KUBECONFIG` when set, else a new local one.
    pub async fn from_env_or_local() -> anyhow::Result<Self> {
        match std::env::var_os("FERRY_E2E_KUBECONFIG") {
            Some(path) => Self::external(PathBuf::from(path)).await,
            None => Self::local().await,
        }
    }

    async fn external(kubeconfig: PathBuf) -> anyhow::Result<Self> {
        let config = Kubeconfig::read_from(&kubeconfig)
            .with_context(|| format!("read FERRY_E2E_KUBECONFIG {}", kubeconfig.display()))?;
        let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
        let client = Client::try_from(config)?;
        Ok(Self { client, kubeconfig, kubectl: PathBuf::from("kubectl"), local: None })
    }

    /// Starts the harness's control plane and node agent and installs Ferry from `deploy/`
    /// with `kubectl apply -k`, as the README says.
    pub async fn local() -> anyhow::Result<Self> {
        Self::local_with(Install::Kustomize).await
    }

    /// Starts the harness's control plane and node agent and installs Ferry as `install` says.
    pub async fn local_with(install: Install) -> anyhow::Result<Self> {
        let binaries = LocalBinaries {
            operator: env!("CARGO_BIN_EXE_ferry-operator").into(),
            worker: ferry_binary()?,
        };
        let plane = ControlPlane::start().await?;
        let options = binaries.node_agent_options(NodeAgentOptions::default());
        let agent = NodeAgent::start_with(&plane, options).await?;
        let client = plane.client().await?;
        let cluster = Self {
            client,
            kubeconfig: plane.kubeconfig().to_path_buf(),
            kubectl: go_tool("kubectl", KUBE_VERSION)?,
            local: Some(Local { _plane: plane, agent }),
        };
        match install {
            Install::Kustomize => cluster.kustomize_install(None, &[])?,
            Install::KustomizeWith { replicas, args } => {
                cluster.kustomize_install(Some(replicas), &args)?
            }
            Install::Helm(set) => {
                // The chart puts a Role in each watched namespace: they must exist first.
                for namespace in watched_namespaces(&set) {
                    cluster.create_namespace(&namespace).await?;
                }
                ferry_harness::kube_harness::install::helm_install(&cluster.kubeconfig, &set)?
            }
        }
        Ok(cluster)
    }

    /// `kubectl kustomize deploy/` applied server-side (what `kubectl apply --server-side -k`
    /// does), its operator Deployment adjusted first, so that no rollout follows the install:
    /// the replicas run as processes of one host here, so each serves its metrics on a free
    /// port (`--metrics-addr=127.0.0.1:0`, logged at start); `replicas` and `args` as given.
    fn kustomize_install(&self, replicas: Option<i32>, args: &[String]) -> anyhow::Result<()> {
        let rendered = self.kubectl(&["kustomize", "deploy/"])?;
        let mut out = Vec::new();
        let mut patched = false;
        for document in serde_yaml::Deserializer::from_str(&rendered) {
            let mut object: serde_json::Value = serde::Deserialize::deserialize(document)?;
            if object["kind"] == "Deployment" && object["metadata"]["name"] == "ferry-operator" {
                if let Some(replicas) = replicas {
                    object["spec"]["replicas"] = json!(replicas);
                }
                let container = &mut object["spec"]["template"]["spec"]["containers"][0];
                let list = container["args"].as_array_mut().context("operator args")?;
                let metrics = list
                    .iter()
                    .position(|a| a.as_str().is_some_and(|a| a.starts_with("--metrics-addr=")))
                    .context("the operator Deployment has no --metrics-addr argument")?;
                list[metrics] = json!("--metrics-addr=127.0.0.1:0");
                list.extend(args.iter().map(|a| json!(a)));
                // FERRY_E2E_OPERATOR_LOG (a FERRY_LOG filter) makes the operator log more.
                if let Ok(filter) = std::env::var("FERRY_E2E_OPERATOR_LOG") {
                    let env = container["env"].as_array_mut().context("operator env")?;
                    env.push(json!({"name": "FERRY_LOG", "value": filter}));
                }
                patched = true;
            }
            out.push(serde_yaml::to_string(&object)?);
        }
        ensure!(patched, "deploy/ renders no ferry-operator Deployment");
        let manifest = out.join("---\n");
        self.kubectl_with_input(&["apply", "--server-side", "-f", "-"], Some(&manifest))?;
        Ok(())
    }

    /// Whether the cluster is the harness's own, its pods local processes.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubectl binary the cluster is driven with.
    pub fn kubectl_path(&self) -> &Path {
        &self.kubectl
    }

    /// Runs kubectl on the cluster from the repository root and returns its output.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.kubectl_with_input(args, None)
    }

    /// Runs kubectl with `input` on its standard input.
    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
        use std::io::Write as _;
        let mut child = Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("run {}", self.kubectl.display()))?;
        let mut stdin = child.stdin.take().context("kubectl stdin")?;
        stdin.write_all(input.unwrap_or_default().as_bytes())?;
        drop(stdin);
        let out = child.wait_with_output()?;
        ensure!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a namespace unless it exists.
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if namespaces.get_opt(name).await?.is_none() {
            let namespace = Namespace {
                metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
                ..Namespace::default()
            };
            namespaces.create(&PostParams::default(), &namespace).await?;
        }
        Ok(())
    }

    /// A pod's log: the node agent's file locally, the API elsewhere.
    pub async fn logs(&self, namespace: &str, pod: &str) -> String {
        if let Some(local) = &self.local {
            return local.agent.logs(namespace, pod);
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = LogParams { tail_lines: Some(200), ..LogParams::default() };
        pods.logs(pod, &params).await.unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Operator logs, the job's status and its worker's log, for failure messages.
    pub async fn describe(&self, namespace: &str, job: &str) -> String {
        let mut out = String::new();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), OPERATOR_NAMESPACE);
        for pod in pods.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
            let log = self.logs(OPERATOR_NAMESPACE, &pod.name_any()).await;
            out.push_str(&format!("--- operator pod {}\n{}\n", pod.name_any(), tail(&log, 4000)));
        }
        let jobs: Api<MigrationJob> = Api::namespaced(self.client.clone(), namespace);
        if let Ok(Some(j)) = jobs.get_opt(job).await {
            let status = serde_json::to_string_pretty(&j.status).unwrap_or_default();
            out.push_str(&format!("--- job {job} status\n{status}\n"));
            if let Some(pod) = j.status.and_then(|s| s.worker_pod) {
                let log = self.logs(namespace, &pod).await;
                out.push_str(&format!("--- worker {pod}\n{}\n", tail(&log, 6000)));
            }
        }
        out
    }

    pub async fn job(&self, namespace: &str, name: &str) -> anyhow::Result<Option<MigrationJob>> {
        Ok(Api::<MigrationJob>::namespaced(self.client.clone(), namespace).get_opt(name).await?)
    }

    /// Creates `job` in `namespace` and waits until it ends; fails unless it completed.
    pub async fn run_job(
        &self,
        namespace: &str,
        job: &MigrationJob,
        timeout: Duration,
    ) -> anyhow::Result<MigrationJob> {
        let jobs: Api<MigrationJob> = Api::namespaced(self.client.clone(), namespace);
        jobs.create(&PostParams::default(), job).await?;
        self.wait_completed((namespace, &job.name_any()), timeout).await
    }

    /// Waits until the job ends; fails unless it completed.
    pub async fn wait_completed(
        &self,
        (namespace, name): (&str, &str),
        timeout: Duration,
    ) -> anyhow::Result<MigrationJob> {
        let ended = self
            .wait_job((namespace, name), &format!("job {name} ends"), timeout, |j| {
                matches!(phase(j), Some(Phase::Completed | Phase::Failed))
            })
            .await?;
        ensure!(
            phase(&ended) == Some(Phase::Completed),
            "job {name} failed\n{}",
            self.describe(namespace, name).await
        );
        Ok(ended)
    }

    /// Waits until the job satisfies `done`.
    pub async fn wait_job(
        &self,
        (namespace, name): (&str, &str),
        what: &str,
        timeout: Duration,
        done: impl Fn(&MigrationJob) -> bool,
    ) -> anyhow::Result<MigrationJob> {
        wait_for(
            what,
            timeout,
            || async { Ok(self.job(namespace, name).await?.filter(|j| done(j))) },
            async || self.describe(namespace, name).await,
        )
        .await
    }

    /// The worker pods of a job (`<job>-worker-<attempt>`).
    pub async fn worker_pods(&self, namespace: &str, job: &str) -> anyhow::Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let all = pods
            .list(&ListParams::default().labels("app.kubernetes.io/name=ferry-worker"))
            .await?
            .items;
        let prefix = format!("{job}-worker-");
        Ok(all.into_iter().filter(|p| p.name_any().starts_with(&prefix)).collect())
    }
}

/// The namespaces of a `watchNamespaces={a,b}` chart value among `set`.
fn watched_namespaces(set: &[String]) -> Vec<String> {
    let list = set.iter().find_map(|v| v.strip_prefix("watchNamespaces={")?.strip_suffix('}'));
    list.map(|l| l.split(',').map(String::from).collect()).unwrap_or_default()
}

/// The last `max` characters of `text`.
fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    &text[start..]
}

/// The `ferry` binary the worker pods run, built now so that they run the current code. It is
/// built with the features `cargo test --workspace` (dev/test.sh) uses, so there it is a no-op.
fn ferry_binary() -> anyhow::Result<PathBuf> {
    ferry_harness::workspace::build(Path::new(env!("CARGO")), &repo_root())?;
    let dir =
        Path::new(env!("CARGO_BIN_EXE_ferry-operator")).parent().expect("target dir").to_path_buf();
    Ok(dir.join("ferry"))
}

/// Polls `check` until it returns `Some`, failing after `timeout` with `describe()`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
    describe: impl AsyncFn() -> String,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {timeout:?}\n{}", describe().await);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The reason of a condition of the job.
pub fn reason<'a>(job: &'a MigrationJob, type_: &str) -> Option<&'a str> {
    job.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| c.reason.as_str())
}

pub fn phase(job: &MigrationJob) -> Option<Phase> {
    job.status.as_ref().and_then(|s| s.phase)
}

/// The process id of a pod's container run by the node agent (`local-process://PID`).
pub async fn local_pid(client: &Client, namespace: &str, pod: &str) -> Option<i32> {
    let pod = Api::<Pod>::namespaced(client.clone(), namespace).get_opt(pod).await.ok()??;
    let id = pod.status?.container_statuses?.first()?.container_id.clone()?;
    id.trim_start_matches("local-process://").parse().ok()
}

/// Whether a process has exited (gone, or a zombie not yet reaped).
pub fn process_ended(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z ")
}

/// The operator's pods that are not being deleted, by name.
pub async fn operator_pods(client: &Client) -> anyhow::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let params = ListParams::default().labels("app.kubernetes.io/name=ferry-operator");
    let mut list = pods.list(&params).await?.items;
    list.retain(|p| p.metadata.deletion_timestamp.is_none());
    list.sort_by_key(|p| p.name_any());
    Ok(list)
}

impl Cluster {
    /// The metrics page of an operator replica, from the address it logged at start (each one
    /// binds a free port here, see [`Cluster::kustomize_install`]); `None` before it serves.
    pub async fn operator_metrics(&self, pod: &str) -> Option<String> {
        let (status, body) = self.operator_page(pod, "/metrics").await?;
        (status == 200).then_some(body)
    }

    /// The HTTP status and body of `path` (`/metrics`, `/readyz`) on an operator replica.
    pub async fn operator_page(&self, pod: &str, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let log = self.logs(OPERATOR_NAMESPACE, pod).await;
        let line = log.lines().rev().find(|l| l.contains("serving metrics"))?;
        let rest = &line[line.find("127.0.0.1:")?..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))?;
        let mut stream = tokio::net::TcpStream::connect(&rest[..end]).await.ok()?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }
}

/// The value of the sample `name` (with its labels, as exposed) in a metrics page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A Secret `name` with the key `password`.
pub async fn create_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<()> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &manifest::password_secret(name, password))
        .await?;
    Ok(())
}

/// MigrationSource `src`: MariaDB on this host's `port`, user `ferry`, password in Secret `source`.
pub fn source_object(port: u16) -> MigrationSource {
    manifest::source("src", SourceType::MariaDB, port, "ferry", "source")
}

/// MigrationJob `name` copying database `shop` from `src` into this host's `target_port` as
/// user `ferry`, password in Secret `target`.
pub fn job_object(name: &str, mode: MigrationMode, tier: Tier, target_port: u16) -> MigrationJob {
    let target = manifest::target(target_port, "ferry", "target");
    manifest::job_of_databases(name, "src", target, mode, tier, &["shop"])
}

/// Prepares a source and a target for the Full jobs of the tests: user `ferry` on the source
/// (password `src-pw`, the privileges a copy needs) with `shop.items`, and on the target
/// (password `dst-pw`).
pub async fn prepare_shop(
    source: &ferry_harness::MariaDb,
    target: &impl ferry_harness::SqlServer,
) -> anyhow::Result<()> {
    use ferry_harness::SqlServer;
    let privileges = "SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, REPLICATION CLIENT";
    source.create_user("ferry", "src-pw", privileges).await?;
    target.create_user("ferry", "dst-pw", "ALL PRIVILEGES").await?;
    source
        .exec(
            "CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40)); \
             INSERT INTO shop.items VALUES (1, 'anchor'), (2, 'buoy'), (3, 'cleat')",
        )
        .await?;
    Ok(())
}
