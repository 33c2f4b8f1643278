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

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals the process group we created for a pod;
        // it touches no memory.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

async fn register_node(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "ferry.dev/node-agent": "true",
            },
        },
    }))
    .map_err(|e| HarnessError::Start(format!("build the Node: {e}")))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(kube_err(format!("register node {name}"))(e)),
    }
    let now = now();
    let status = json!({
        "status": {
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "NodeAgentReady",
                "message": "ferry node agent runs pods as local processes",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "ferry node agent", "containerRuntimeVersion": "local-process://0",
                "kubeletVersion": super::KUBE_VERSION, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
            },
        }
    });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(kube_err(format!("set the status of node {name}")))?;
    Ok(())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Binds unscheduled pods to the agent's node.
async fn bind_loop(ctx: Arc<Ctx>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let mut config = watcher::Config::default().fields("spec.nodeName=");
    if let Some(selector) = &ctx.options.bind_selector {
        config = config.labels(selector);
    }
    let mut stream = watcher(pods, config).default_backoff().applied_objects().boxed();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!("watching unscheduled pods: {e}");
                continue;
            }
        };
        let scheduler = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            || !matches!(scheduler, None | Some("default-scheduler"))
        {
            continue;
        }
        if let Err(e) = bind(&ctx, &pod).await {
            tracing::warn!(pod = %pod.name_any(), "binding failed: {e}");
        }
    }
}

async fn bind(ctx: &Ctx, pod: &Pod) -> Result<()> {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(ctx.options.node_name.clone()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %format!("{namespace}/{name}"), "bound to the node");
            Ok(())
        }
        // Already bound (a watch event that raced with our own binding).
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(kube_err(format!("bind pod {namespace}/{name}"))(e)),
    }
}

/// Runs the pods bound to the agent's node.
async fn run_loop(ctx: Arc<Ctx>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.options.node_name));
    let mut stream = watcher(pods, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                on_pod(&ctx, pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                // Gone (force-deleted, or our own final delete): kill at once.
                if let Some(task) = take_task(&ctx, &pod) {
                    task.cancel.cancel();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("watching the node's pods: {e}"),
        }
    }
}

fn take_task(ctx: &Ctx, pod: &Pod) -> Option<PodTask> {
    let uid = pod.metadata.uid.as_deref()?;
    ctx.pods.lock().ok()?.remove(uid)
}

fn on_pod(ctx: &Arc<Ctx>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    let Ok(mut pods) = ctx.pods.lock() else { return };
    if pod.metadata.deletion_timestamp.is_some() {
        // Graceful deletion: stop the process (if any), then remove the object.
        let task = pods.remove(&uid);
        drop(pods);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Some(task) = task {
                task.cancel.cancel();
                let _ = task.handle.await;
            }
            finalize_delete(&ctx, &pod).await;
        });
        return;
    }
    let finished = ctx.finished.lock().map(|f| f.contains(&uid)).unwrap_or(false);
    if finished || pods.contains_key(&uid) || phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(run_pod(ctx.clone(), pod, cancel.clone()));
    pods.insert(uid, PodTask { cancel, handle });
}

async fn finalize_delete(ctx: &Ctx, pod: &Pod) {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %pod.name_any(), "final delete failed: {e}"),
    }
}

/// Why a pod could not start yet (kept Pending) or at all (Failed).
enum Prepare {
    Retry(String, String),
    Fail(String, String),
}

impl From<HarnessError> for Prepare {
    fn from(e: HarnessError) -> Self {
        Prepare::Retry("CreateContainerConfigError".into(), e.to_string())
    }
}

/// Everything a pod's process needs, prepared on this machine.
struct Prepared {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    log: PathBuf,
    container: Container,
}

async fn run_pod(ctx: Arc<Ctx>, pod: Pod, cancel: CancellationToken) {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let id = format!("{namespace}/{name}");
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = ctx.pods_dir.join(format!("{namespace}_{name}_{uid}"));

    // Prepare (retrying while Secrets or ConfigMaps are missing).
    let (prepared, token_refresher) = loop {
        match prepare(&ctx, &pod, &dir).await {
            Ok(ready) => break ready,
            Err(Prepare::Fail(reason, message)) => {
                tracing::warn!(pod = %id, "cannot run: {reason}: {message}");
                let status = terminal_status(&pod, None, &reason, &message, 1, None);
                patch_pod_status(&api, &name, status).await;
                remove_task(&ctx, &uid);
                return;
            }
            Err(Prepare::Retry(reason, message)) => {
                tracing::info!(pod = %id, "waiting: {reason}: {message}");
                patch_pod_status(&api, &name, waiting_status(&pod, &reason, &message, 0)).await;
                tokio::select! {
                    _ = cancel.cancelled() => { remove_task(&ctx, &uid); return; }
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };

    let policy =
        pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0) as u64;
    let mut restarts = 0;
    let mut backoff = Duration::from_secs(1);
    let start_time = now();
    let mut last_terminated: Option<serde_json::Value> = None;
    loop {
        let started_at = now();
        let mut child = match spawn(&prepared) {
            Ok(child) => child,
            Err(message) => {
                let status =
                    terminal_status(&pod, Some(&start_time), "StartError", &message, 128, None);
                patch_pod_status(&api, &name, status).await;
                break;
            }
        };
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        if let Ok(mut groups) = ctx.groups.lock() {
            groups.insert(pgid);
        }
        tracing::info!(pod = %id, pid = pgid, argv = ?prepared.argv, "started");
        let running = running_status(
            &prepared.container,
            &start_time,
            &started_at,
            restarts,
            last_terminated.clone(),
            pgid,
        );
        patch_pod_status(&api, &name, running).await;

        let exit = tokio::select! {
            status = child.wait() => status.ok(),
            _ = cancel.cancelled() => {
                kill_group(pgid, libc::SIGTERM);
                let waited = tokio::time::timeout(Duration::from_secs(grace), child.wait()).await;
                if waited.is_err() {
                    kill_group(pgid, libc::SIGKILL);
                    let _ = child.wait().await;
                }
                // Any stragglers of the group.
                kill_group(pgid, libc::SIGKILL);
                if let Ok(mut groups) = ctx.groups.lock() {
                    groups.remove(&pgid);
                }
                tracing::info!(pod = %id, "stopped: the pod was deleted");
                break;
            }
        };
        // The main process ended; the rest of its group goes with it, as in a container.
        kill_group(pgid, libc::SIGKILL);
        if let Ok(mut groups) = ctx.groups.lock() {
            groups.remove(&pgid);
        }
        let (code, signal) = match exit {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => (code, None),
                (None, Some(sig)) => (128 + sig, Some(sig)),
                (None, None) => (-1, None),
            },
            None => (-1, None),
        };
        let reason = if code == 0 { "Completed" } else { "Error" };
        let message = if code == 0 { String::new() } else { tail(&prepared.log, 2048) };
        tracing::info!(pod = %id, code, "exited");
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            let status = terminal_status(
                &pod,
                Some(&start_time),
                reason,
                &message,
                code,
                Some((&started_at, signal, restarts, &prepared.container)),
            );
            patch_pod_status(&api, &name, status).await;
            break;
        }
        last_terminated = Some(json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now(),
            "message": message,
        }}));
        restarts += 1;
        let mut waiting = waiting_status(
            &pod,
            "CrashLoopBackOff",
            &format!("back-off {backoff:?} restarting the process"),
            restarts,
        );
        if let Some(last) = &last_terminated {
            waiting["containerStatuses"][0]["lastState"] = last.clone();
        }
        patch_pod_status(&api, &name, waiting).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    token_refresher.abort();
    remove_task(&ctx, &uid);
}

fn remove_task(ctx: &Ctx, uid: &str) {
    if let Ok(mut finished) = ctx.finished.lock() {
        finished.insert(uid.to_string());
    }
    if let Ok(mut pods) = ctx.pods.lock() {
        pods.remove(uid);
    }
}

fn spawn(prepared: &Prepared) -> std::result::Result<tokio::process::Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&prepared.log)
        .map_err(|e| format!("open {}: {e}", prepared.log.display()))?;
    let err = log.try_clone().map_err(|e| format!("open {}: {e}", prepared.log.display()))?;
    let Some((program, args)) = prepared.argv.split_first() else {
        return Err("empty command".into());
    };
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&prepared.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    command.spawn().map_err(|e| format!("start {program}: {e}"))
}

async fn prepare(
    ctx: &Ctx,
    pod: &Pod,
    dir: &Path,
) -> std::result::Result<(Prepared, JoinHandle<()>), Prepare> {
    let fail = |reason: &str, message: String| Prepare::Fail(reason.into(), message);
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let spec = pod.spec.clone().ok_or_else(|| fail("NoSpec", "the pod has no spec".into()))?;
    let container = spec
        .containers
        .first()
        .cloned()
        .ok_or_else(|| fail("NoContainer", "the pod has no container".into()))?;
    let root = dir.join("root");
    let volumes_dir = dir.join("volumes");
    let logs = dir.join("logs");
    for d in [&root, &volumes_dir, &logs, &dir.join("home")] {
        std::fs::create_dir_all(d).map_err(io_err(format!("create {}", d.display())))?;
    }

    // Service account token, bound to the pod, refreshed by a task.
    let sa_name = spec.service_account_name.clone().unwrap_or_else(|| "default".into());
    let sa_dir = under(&root, SA_DIR);
    std::fs::create_dir_all(&sa_dir).map_err(io_err("create the service account directory"))?;
    let token_file = sa_dir.join("token");
    let token = request_token(ctx, pod, &namespace, &sa_name).await?;
    write_file(&token_file, token.as_bytes())?;
    write_file(&sa_dir.join("ca.crt"), &ctx.ca_pem)?;
    write_file(&sa_dir.join("namespace"), namespace.as_bytes())?;
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        ctx.apiserver_port,
        &ctx.pki.ca_cert,
        User::TokenFile {
            name: &format!("system:serviceaccount:{namespace}:{sa_name}"),
            file: &token_file,
        },
    )?;

    // Volumes.
    let mut volume_paths = HashMap::new();
    for volume in spec.volumes.iter().flatten() {
        let path = volumes_dir.join(&volume.name);
        std::fs::create_dir_all(&path).map_err(io_err(format!("create {}", path.display())))?;
        materialize_volume(ctx, pod, &namespace, &sa_name, volume, &path).await?;
        volume_paths.insert(volume.name.clone(), path);
    }
    let mut mount_paths = vec![SA_DIR.to_string()];
    for mount in container.volume_mounts.iter().flatten() {
        let source = volume_paths.get(&mount.name).ok_or_else(|| {
            fail("VolumeNotFound", format!("volume {} is not in the pod", mount.name))
        })?;
        let target = under(&root, &mount.mount_path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("create a mount point"))?;
        }
        match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                std::fs::copy(source.join(sub), &target)
                    .map_err(io_err(format!("copy subPath {sub} to {}", target.display())))?;
            }
            None => {
                // The admission-injected kube-api-access volume replaces the service
                // account directory written above (it holds the same files).
                if target.is_dir() && !target.is_symlink() {
                    std::fs::remove_dir_all(&target)
                        .map_err(io_err(format!("replace {}", target.display())))?;
                } else {
                    let _ = std::fs::remove_file(&target);
                }
                std::os::unix::fs::symlink(source, &target)
                    .map_err(io_err(format!("link {}", target.display())))?;
            }
        }
        mount_paths.push(mount.mount_path.trim_end_matches('/').to_string());
    }
    let rewrite = |value: &str| rewrite_path(value, &root, &mount_paths);

    // Environment.
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    if let Some(path) = std::env::var_os("PATH") {
        set(&mut env, "PATH".into(), path.to_string_lossy().into_owned());
    }
    set(&mut env, "HOME".into(), dir.join("home").display().to_string());
    set(&mut env, "HOSTNAME".into(), pod.name_any());
    set(&mut env, "KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into());
    set(&mut env, "KUBERNETES_SERVICE_PORT".into(), ctx.apiserver_port.to_string());
    set(&mut env, "KUBECONFIG".into(), kubeconfig.display().to_string());
    set(&mut env, "FERRY_ROOT_PREFIX".into(), root.display().to_string());
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(secret) = &from.secret_ref {
            let optional = secret.optional.unwrap_or(false);
            secret_data(ctx, &namespace, &secret.name, optional).await?
        } else if let Some(map) = &from.config_map_ref {
            let optional = map.optional.unwrap_or(false);
            config_map_data(ctx, &namespace, &map.name, optional).await?
        } else {
            BTreeMap::new()
        };
        for (k, v) in data {
            set(&mut env, format!("{prefix}{k}"), rewrite(&v));
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            expand(value, &env)
        } else if let Some(from) = &var.value_from {
            if let Some(key) = &from.secret_key_ref {
                let optional = key.optional.unwrap_or(false);
                let data = secret_data(ctx, &namespace, &key.name, optional).await?;
                match data.get(&key.key) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(Prepare::Retry(
                            "CreateContainerConfigError".into(),
                            format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                key.key, key.name
                            ),
                        ));
                    }
                }
            } else if let Some(key) = &from.config_map_key_ref {
                let optional = key.optional.unwrap_or(false);
                let data = config_map_data(ctx, &namespace, &key.name, optional).await?;
                match data.get(&key.key) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(Prepare::Retry(
                            "CreateContainerConfigError".into(),
                            format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                key.key, key.name
                            ),
                        ));
                    }
                }
            } else if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path)
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, var.name.clone(), rewrite(&value));
    }

    // Command.
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    if argv.is_empty() {
        let image = container.image.clone().unwrap_or_default();
        let image_name = image_name(&image);
        argv = ctx.options.images.get(image_name).cloned().ok_or_else(|| {
            fail(
                "NoCommand",
                format!(
                    "container {} has no command and image {image} has none registered with \
                     the node agent (images are not pulled)",
                    container.name
                ),
            )
        })?;
    }
    argv.extend(container.args.clone().unwrap_or_default());
    let mut argv: Vec<String> = argv.iter().map(|a| rewrite(&expand(a, &env))).collect();
    if let Some(local) = argv.first().and_then(|a| ctx.options.executables.get(a)) {
        argv[0] = local.display().to_string();
    }
    let cwd = match container.working_dir.as_deref().filter(|d| !d.is_empty()) {
        Some(wd) => {
            let cwd = under(&root, wd);
            std::fs::create_dir_all(&cwd).map_err(io_err("create the working directory"))?;
            cwd
        }
        None => root.clone(),
    };
    let log = logs.join(format!("{}.log", container.name));

    let refresher = {
        let client = ctx.client.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TOKEN_REFRESH).await;
                match request_token_with(&client, &pod, &namespace, &sa_name).await {
                    Ok(token) => {
                        if let Err(e) = write_file(&token_file, token.as_bytes()) {
                            tracing::warn!("refresh a pod token: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("refresh a pod token: {e}"),
                }
            }
        })
    };
    Ok((Prepared { argv, env, cwd, log, container }, refresher))
}

/// `<root>/<absolute path>`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Rewrites a value that names a path under one of `mounts` (alone or after `=`) to the local
/// path under `root`.
fn rewrite_path(value: &str, root: &Path, mounts: &[String]) -> String {
    let is_under = |v: &str| {
        mounts.iter().any(|m| !m.is_empty() && (v == m || v.starts_with(&format!("{m}/"))))
    };
    if is_under(value) {
        return under(root, value).display().to_string();
    }
    if let Some((flag, path)) = value.split_once('=')
        && is_under(path)
    {
        return format!("{flag}={}", under(root, path).display());
    }
    value.to_string()
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes, anything else
/// stays as written.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The repository part of an image reference: `reg/x/worker:v1@sha256:..` -> `reg/x/worker`.
fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

fn field_value(pod: &Pod, path: &str) -> String {
    match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        other => {
            let key = other
                .strip_prefix("metadata.labels['")
                .map(|k| (k, true))
                .or_else(|| other.strip_prefix("metadata.annotations['").map(|k| (k, false)));
            match key {
                Some((k, labels)) => {
                    let k = k.trim_end_matches("']");
                    let map = if labels { pod.labels() } else { pod.annotations() };
                    map.get(k).cloned().unwrap_or_default()
                }
                None => String::new(),
            }
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    // Write then rename, so a reader never sees half a token.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).map_err(io_err(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io_err(format!("write {}", path.display())))
}

async fn request_token(
    ctx: &Ctx,
    pod: &Pod,
    namespace: &str,
    sa: &str,
) -> std::result::Result<String, Prepare> {
    request_token_with(&ctx.client, pod, namespace, sa).await.map_err(|e| {
        Prepare::Retry("CreateContainerConfigError".into(), format!("service account token: {e}"))
    })
}

async fn request_token_with(
    client: &Client,
    pod: &Pod,
    namespace: &str,
    sa: &str,
) -> std::result::Result<String, kube::Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let answer: TokenRequest =
        accounts.create_subresource("token", sa, &PostParams::default(), &request).await?;
    Ok(answer.status.map(|s| s.token).unwrap_or_default())
}

async fn secret_data(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
    optional: bool,
) -> std::result::Result<BTreeMap<String, String>, Prepare> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    match secrets.get_opt(name).await {
        Ok(Some(secret)) => {
            let mut data: BTreeMap<String, String> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            // stringData is write-only, but merge it in case a client reads it back.
            data.extend(secret.string_data.unwrap_or_default());
            Ok(data)
        }
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(Prepare::Retry(
            "CreateContainerConfigError".into(),
            format!("secret \"{name}\" not found"),
        )),
        Err(e) => Err(Prepare::Retry("CreateContainerConfigError".into(), e.to_string())),
    }
}

async fn config_map_data(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
    optional: bool,
) -> std::result::Result<BTreeMap<String, String>, Prepare> {
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    match maps.get_opt(name).await {
        Ok(Some(map)) => Ok(map.data.unwrap_or_default()),
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => Err(Prepare::Retry(
            "CreateContainerConfigError".into(),
            format!("configmap \"{name}\" not found"),
        )),
        Err(e) => Err(Prepare::Retry("CreateContainerConfigError".into(), e.to_string())),
    }
}

/// Writes the files of one volume into `path`.
async fn materialize_volume(
    ctx: &Ctx,
    pod: &Pod,
    namespace: &str,
    sa: &str,
    volume: &Volume,
    path: &Path,
) -> std::result::Result<(), Prepare> {
    type Items = Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>;
    let write_items = |data: &BTreeMap<String, Vec<u8>>, items: &Items, dir: &Path| {
        let pairs: Vec<(String, String)> = match items {
            Some(items) => items.iter().map(|i| (i.key.clone(), i.path.clone())).collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, rel) in pairs {
            let Some(bytes) = data.get(&key) else { continue };
            let file = dir.join(rel.trim_start_matches('/'));
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("create a volume directory"))?;
            }
            write_file(&file, bytes)?;
        }
        Ok::<(), HarnessError>(())
    };
    let secret_bytes = |name: String, optional: bool| async move {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
        match secrets.get_opt(&name).await {
            Ok(Some(s)) => Ok(s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect::<BTreeMap<_, _>>()),
            Ok(None) if optional => Ok(BTreeMap::new()),
            Ok(None) => Err(Prepare::Retry(
                "ContainerCreating".into(),
                format!("MountVolume.SetUp failed: secret \"{name}\" not found"),
            )),
            Err(e) => Err(Prepare::Retry("ContainerCreating".into(), e.to_string())),
        }
    };
    let map_bytes = |name: String, optional: bool| async move {
        let data = config_map_data(ctx, namespace, &name, optional).await?;
        Ok::<_, Prepare>(
            data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect::<BTreeMap<_, _>>(),
        )
    };
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let data = secret_bytes(name, secret.optional.unwrap_or(false)).await?;
        write_items(&data, &secret.items, path)?;
    } else if let Some(map) = &volume.config_map {
        let data = map_bytes(map.name.clone(), map.optional.unwrap_or(false)).await?;
        write_items(&data, &map.items, path)?;
    } else if volume.empty_dir.is_some() {
        // The directory itself is the volume.
    } else if let Some(projected) = &volume.projected {
        for source in projected.sources.iter().flatten() {
            if let Some(secret) = &source.secret {
                let data =
                    secret_bytes(secret.name.clone(), secret.optional.unwrap_or(false)).await?;
                write_items(&data, &secret.items, path)?;
            }
            if let Some(map) = &source.config_map {
                let data = map_bytes(map.name.clone(), map.optional.unwrap_or(false)).await?;
                write_items(&data, &map.items, path)?;
            }
            if let Some(downward) = &source.downward_api {
                for item in downward.items.iter().flatten() {
                    if let Some(field) = &item.field_ref {
                        let value = field_value(pod, &field.field_path);
                        let file = path.join(item.path.trim_start_matches('/'));
                        write_file(&file, value.as_bytes())?;
                    }
                }
            }
            if let Some(token) = &source.service_account_token {
                let t = request_token(ctx, pod, namespace, sa).await?;
                write_file(&path.join(&token.path), t.as_bytes())?;
            }
        }
    } else {
        return Err(Prepare::Fail(
            "UnsupportedVolume".into(),
            format!(
                "volume {}: only secret, configMap, emptyDir and projected are supported",
                volume.name
            ),
        ));
    }
    Ok(())
}

async fn patch_pod_status(api: &Api<Pod>, name: &str, status: serde_json::Value) {
    let patch = json!({ "status": status });
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await
    {
        tracing::warn!(pod = %name, "status update failed: {e}");
    }
}

fn conditions(ready: bool) -> serde_json::Value {
    let t = now();
    let s = |b: bool| if b { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
        {"type": "Initialized", "status": "True", "lastTransitionTime": t},
        {"type": "ContainersReady", "status": s(ready), "lastTransitionTime": t},
        {"type": "Ready", "status": s(ready), "lastTransitionTime": t},
    ])
}

fn container_name_image(pod: &Pod) -> (String, String) {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .unwrap_or_default()
}

fn running_status(
    container: &Container,
    start_time: &str,
    started_at: &str,
    restarts: i32,
    last_state: Option<serde_json::Value>,
    pid: i32,
) -> serde_json::Value {
    json!({
        "phase": "Running",
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": start_time,
        "conditions": conditions(true),
        "containerStatuses": [{
            "name": container.name,
            "image": container.image.clone().unwrap_or_default(),
            "imageID": "",
            "containerID": format!("local-process://{pid}"),
            "ready": true, "started": true, "restartCount": restarts,
            "state": {"running": {"startedAt": started_at}},
            "lastState": last_state.unwrap_or_else(|| json!({})),
        }],
        "reason": null, "message": null,
    })
}

fn waiting_status(pod: &Pod, reason: &str, message: &str, restarts: i32) -> serde_json::Value {
    let (name, image) = container_name_image(pod);
    let running = restarts > 0;
    json!({
        "phase": if running { "Running" } else { "Pending" },
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "conditions": conditions(false),
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": restarts,
            "state": {"waiting": {"reason": reason, "message": message}},
        }],
    })
}

fn terminal_status(
    pod: &Pod,
    start_time: Option<&str>,
    reason: &str,
    message: &str,
    code: i32,
    run: Option<(&str, Option<i32>, i32, &Container)>,
) -> serde_json::Value {
    let (name, image) = container_name_image(pod);
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let mut terminated = json!({
        "exitCode": code, "reason": reason, "finishedAt": now(),
    });
    if !message.is_empty() {
        terminated["message"] = json!(message);
    }
    let mut restarts = 0;
    if let Some((started_at, signal, r, _)) = run {
        terminated["startedAt"] = json!(started_at);
        if let Some(sig) = signal {
            terminated["signal"] = json!(sig);
        }
        restarts = r;
    }
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "conditions": conditions(false),
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": restarts,
            "state": {"terminated": terminated},
        }],
    });
    if let Some(start) = start_time {
        status["startTime"] = json!(start);
    }
    if run.is_none() {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_kubernetes() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y$(B)$$(A)$", &env), "x1y$(B)$(A)$");
    }

    #[test]
    fn rewrites_paths_under_mounts() {
        let root = Path::new("/tmp/p/root");
        let mounts = vec!["/etc/ferry".to_string()];
        assert_eq!(
            rewrite_path("/etc/ferry/job.yaml", root, &mounts),
            "/tmp/p/root/etc/ferry/job.yaml"
        );
        assert_eq!(rewrite_path("--f=/etc/ferry", root, &mounts), "--f=/tmp/p/root/etc/ferry");
        assert_eq!(rewrite_path("/etc/ferryx", root, &mounts), "/etc/ferryx");
        assert_eq!(rewrite_path("plain", root, &mounts), "plain");
    }

    #[test]
    fn image_names_drop_tag_and_digest() {
        assert_eq!(image_name("ghcr.io/x/worker:v1"), "ghcr.io/x/worker");
        assert_eq!(image_name("localhost:5000/worker"), "localhost:5000/worker");
        assert_eq!(image_name("worker@sha256:abc"), "worker");
    }
}
