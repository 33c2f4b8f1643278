//! A node agent that runs Pods as local processes, in place of a scheduler and a kubelet.
//!
//! What it imitates:
//! - **Node and scheduling.** It registers a Node (default name [`DEFAULT_NODE_NAME`], Ready,
//!   address 127.0.0.1) and binds every unscheduled Pod (optionally only those matching a label
//!   selector) to it through the `pods/binding` subresource, as kube-scheduler would. It then
//!   runs the Pods whose `spec.nodeName` is its node.
//! - **The first container.** Its `command` + `args` run as a local process (after Kubernetes'
//!   `$(VAR)` expansion), in the container's `workingDir` or the pod's directory. When `command`
//!   is empty, the command registered for the image with [`NodeAgentOptions::image`] runs; when
//!   `command[0]` is registered with [`NodeAgentOptions::executable`], the local path runs
//!   instead. Without either, the pod fails with reason `NoCommand`.
//! - **Environment.** `env` (`value`, `valueFrom.secretKeyRef`, `configMapKeyRef`, `fieldRef`)
//!   and `envFrom` (Secrets, ConfigMaps), plus `KUBERNETES_SERVICE_HOST`/`_PORT`, `HOSTNAME`,
//!   and `PATH` of the agent (an image's PATH does not exist here). A missing Secret or key
//!   keeps the pod Pending with reason `CreateContainerConfigError` until it appears.
//! - **Volumes.** `secret`, `configMap`, `emptyDir` and `projected` (secret, configMap,
//!   serviceAccountToken) volumes are written as files under the pod's directory; each mount
//!   path appears under the pod's root, `<pod dir>/root/<mountPath>` (`subPath` copies one file).
//!   The process learns the root from `FERRY_ROOT_PREFIX`, and every argument and env value
//!   that names a path under a mount path (`/etc/x/y`, or `--flag=/etc/x/y`) is rewritten to the
//!   local path before the process starts.
//! - **Service account.** A token for the pod's service account, bound to the pod, comes from
//!   the TokenRequest API and is refreshed every hour; it is written to
//!   `<root>/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}`, and
//!   `KUBECONFIG` points at a kubeconfig (`<pod dir>/kubeconfig`) that reads that token file. So
//!   the process talks to the API server with exactly the RBAC permissions of its service
//!   account.
//! - **Status.** Running (with the Ready conditions, pod IP 127.0.0.1 and a running container
//!   state), Succeeded or Failed with the exit code, reason `Completed`/`Error` and, on failure,
//!   the end of the output as the termination message. `restartPolicy` Always and OnFailure
//!   restart the process with a back-off (container state `CrashLoopBackOff`, `restartCount`).
//! - **Deletion.** A Pod marked for deletion gets SIGTERM to its process group, SIGKILL after
//!   its grace period, then the agent removes the Pod object (as a kubelet does). A Pod that
//!   vanishes has its process group killed at once. Dropping the agent kills every process.
//!
//! What it does not do: pull or look at images (no filesystem isolation: the process sees this
//! machine's files), namespaces, cgroups or resource limits, networking (every pod shares the
//! host's loopback; Services and cluster DNS do not resolve), probes, init and sidecar
//! containers (only the first container runs; init containers are ignored), `kubectl logs` and
//! `exec` (output goes to `<pod dir>/logs/<container>.log`, see [`NodeAgent::log_path`]),
//! downward API volumes, hostPath/PVC volumes, resource field refs, security contexts (processes
//! run as this user), and node heartbeats (the control plane runs without the node lifecycle
//! controller instead).

mod binding;
mod environment;
mod status;
mod supervise;
mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::{CommandExt as _, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Container, Node, ObjectReference, Pod, Secret, ServiceAccount, Volume,
};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::control_plane::{ControlPlane, User, kube_err, tail, write_kubeconfig};
use crate::{HarnessError, Result, io_err};

use binding::*;
use environment::*;
use status::*;
use supervise::*;
use volumes::*;

/// Name of the node the agent registers unless told otherwise.
pub const DEFAULT_NODE_NAME: &str = "ferry-node";

/// Where service-account files live in a real container.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const TOKEN_LIFETIME_SECONDS: i64 = 24 * 3600;
const TOKEN_REFRESH: Duration = Duration::from_secs(3600);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How the agent behaves.
#[derive(Debug, Clone)]
pub struct NodeAgentOptions {
    /// Name of the Node it registers and runs pods for.
    pub node_name: String,
    /// Label selector (e.g. `app.kubernetes.io/part-of=ferry`) of the unscheduled pods it binds
    /// to its node; `None` binds every unscheduled pod (there is no other scheduler).
    pub bind_selector: Option<String>,
    /// Command to run for an image whose container has no `command`, by image name without
    /// tag or digest (`ghcr.io/x/ferry-worker`).
    pub images: HashMap<String, Vec<String>>,
    /// Local programs that replace `command[0]` (e.g. `/usr/local/bin/ferry-worker` ->
    /// `target/debug/ferry-worker`).
    pub executables: HashMap<String, PathBuf>,
    /// Where the pods' directories go (created if missing, left in place on drop); `None`: a
    /// temporary directory removed on drop.
    pub pods_dir: Option<PathBuf>,
}

impl Default for NodeAgentOptions {
    fn default() -> Self {
        Self {
            node_name: DEFAULT_NODE_NAME.to_string(),
            bind_selector: None,
            images: HashMap::new(),
            executables: HashMap::new(),
            pods_dir: None,
        }
    }
}

impl NodeAgentOptions {
    /// Runs `command` for containers of `image` (name without tag) that have no `command`.
    pub fn image(mut self, image: impl Into<String>, command: Vec<String>) -> Self {
        self.images.insert(image.into(), command);
        self
    }

    /// Runs `local` where a container's `command[0]` is `path`.
    pub fn executable(mut self, path: impl Into<String>, local: impl Into<PathBuf>) -> Self {
        self.executables.insert(path.into(), local.into());
        self
    }

    /// Keeps the pods' directories (logs, volumes) in `dir` rather than a temporary one.
    pub fn pods_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.pods_dir = Some(dir.into());
        self
    }
}

/// Shared state of the agent's tasks.
struct Ctx {
    client: Client,
    options: NodeAgentOptions,
    pods_dir: PathBuf,
    ca_pem: Vec<u8>,
    apiserver_port: u16,
    pki: super::certs::Pki,
    /// Process groups of running pods, killed when the agent drops.
    groups: Mutex<HashSet<i32>>,
    /// UIDs of pods whose process ended for good: never started again, even if a stale watch
    /// event still shows them Running.
    finished: Mutex<HashSet<String>>,
    /// Running pod tasks by pod UID.
    pods: Mutex<HashMap<String, PodTask>>,
}

struct PodTask {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// A running node agent. Dropping it stops watching and kills every pod process (the Pod
/// objects stay as they are).
pub struct NodeAgent {
    ctx: Arc<Ctx>,
    tasks: Vec<JoinHandle<()>>,
    node_name: String,
    /// The temporary pods directory, removed on drop (none when the options named one).
    _dir: Option<tempfile::TempDir>,
}

impl NodeAgent {
    /// Starts an agent for `plane` with default options.
    pub async fn start(plane: &ControlPlane) -> Result<Self> {
        Self::start_with(plane, NodeAgentOptions::default()).await
    }

    /// Registers the node and starts watching pods. Must run inside a tokio runtime that lives
    /// as long as the agent.
    pub async fn start_with(plane: &ControlPlane, options: NodeAgentOptions) -> Result<Self> {
        let client = plane.client().await?;
        let (pods_dir, dir) = match &options.pods_dir {
            Some(pods_dir) => {
                std::fs::create_dir_all(pods_dir)
                    .map_err(io_err(format!("create {}", pods_dir.display())))?;
                (pods_dir.clone(), None)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("ferry-node-")
                    .tempdir()
                    .map_err(io_err("create the node agent directory"))?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let ca_pem = std::fs::read(&plane.pki().ca_cert).map_err(io_err("read the CA"))?;
        let port = plane.apiserver_port();
        register_node(&client, &options.node_name).await?;
        let node_name = options.node_name.clone();
        let ctx = Arc::new(Ctx {
            client,
            options,
            pods_dir,
            ca_pem,
            apiserver_port: port,
            pki: plane.pki().clone(),
            groups: Mutex::new(HashSet::new()),
            pods: Mutex::new(HashMap::new()),
            finished: Mutex::new(HashSet::new()),
        });
        let tasks = vec![tokio::spawn(bind_loop(ctx.clone())), tokio::spawn(run_loop(ctx.clone()))];
        tracing::info!(node = %node_name, dir = %ctx.pods_dir.display(), "node agent started");
        Ok(Self { ctx, tasks, node_name, _dir: dir })
    }

    /// The Node this agent runs pods for.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The directory holding every pod's files (`<namespace>_<name>_<uid>/`).
    pub fn pods_dir(&self) -> &Path {
        &self.ctx.pods_dir
    }

    /// The output (stdout and stderr) of a pod's container, if the pod ran here. With several
    /// pods of that name over time, the newest.
    pub fn log_path(&self, namespace: &str, pod: &str) -> Option<PathBuf> {
        let prefix = format!("{namespace}_{pod}_");
        let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.ctx.pods_dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        dirs.sort();
        let dir = dirs.pop()?.1.join("logs");
        std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).next()
    }

    /// The output of a pod's container as text ("" if it never ran here).
    pub fn logs(&self, namespace: &str, pod: &str) -> String {
        self.log_path(namespace, pod)
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

impl Drop for NodeAgent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Ok(pods) = self.ctx.pods.lock() {
            for task in pods.values() {
                task.cancel.cancel();
                task.handle.abort();
            }
        }
        if let Ok(groups) = self.ctx.groups.lock() {
            for &pgid in groups.iter() {
                kill_group(pgid, libc::SIGKILL);
            }
        }
    }
}
