//! A real Kubernetes control plane as local processes: etcd (Debian's `etcd-server`),
//! kube-apiserver and kube-controller-manager (built by `dev/build-go-tools.sh`).
//!
//! Each [`ControlPlane`] has its own temporary directory (etcd data, certificates, kubeconfigs,
//! logs), listens on free loopback ports, authenticates with client certificates and service
//! account tokens, authorizes with `Node,RBAC`, and is killed and removed on drop. There is no
//! scheduler and no kubelet: [`super::NodeAgent`] plays both for Ferry's pods.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::certs::{ADMIN_USER, Pki};
use crate::ready::Starting;
use crate::{HarnessError, Result, io_err, ports::free_port};

/// The `k8s.io/kubernetes` version `dev/build-go-tools.sh` builds (its `KUBE_VERSION`; a test
/// checks the two agree).
pub const KUBE_VERSION: &str = "v1.34.4";

/// The service CIDR the API server allocates ClusterIPs from. Nothing routes it.
pub const SERVICE_CIDR: &str = "10.0.0.0/24";

const ETCD: &str = "/usr/bin/etcd";
const START_TIMEOUT: Duration = Duration::from_secs(90);
const START_ATTEMPTS: usize = 3;

/// What to start besides etcd and the API server.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Run kube-controller-manager: service accounts of new namespaces, garbage collection of
    /// owned objects, Jobs, ReplicaSets. Without it, pods cannot be created (their service
    /// account never appears). Default: true.
    pub controller_manager: bool,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self { controller_manager: true }
    }
}

/// How long each component took to become ready.
#[derive(Debug, Clone, Default)]
pub struct StartTimes {
    pub etcd: Duration,
    pub apiserver: Duration,
    pub controller_manager: Option<Duration>,
}

/// A child process killed on drop, with its output in a log file.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Result<Self> {
        let out = std::fs::File::create(&log).map_err(io_err(format!("create {name} log")))?;
        let err = out.try_clone().map_err(io_err(format!("open {name} log")))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io_err(format!("start {name}")))?;
        Ok(Self { name, child, log })
    }

    /// Fails if the process has exited, with the end of its log.
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(HarnessError::Start(format!(
                "{} exited with {status}; its log:\n{}",
                self.name,
                self.log_tail()
            ))),
            _ => Ok(()),
        }
    }

    fn log_tail(&self) -> String {
        tail(&self.log, 6000)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Throwaway state: no clean shutdown needed. Reap it so its ports are free on return.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn tail(path: &Path, bytes: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(bytes);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    text[start..].to_string()
}

/// A running control plane. Dropping it kills every process and removes its directory.
pub struct ControlPlane {
    // Fields drop in order: controllers before the API server before etcd, then the directory.
    controller_manager: Option<Process>,
    apiserver: Process,
    etcd: Process,
    pki: Pki,
    apiserver_port: u16,
    etcd_port: u16,
    kubeconfig: PathBuf,
    start_times: StartTimes,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// etcd, kube-apiserver and kube-controller-manager.
    pub async fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// Starts the components `options` ask for, retrying on other ports if one was taken.
    pub async fn start_with(options: ControlPlaneOptions) -> Result<Self> {
        let apiserver = super::go_tool("kube-apiserver", KUBE_VERSION)?;
        let controller_manager = if options.controller_manager {
            Some(super::go_tool("kube-controller-manager", KUBE_VERSION)?)
        } else {
            None
        };
        if !Path::new(ETCD).exists() {
            return Err(HarnessError::Start(format!(
                "{ETCD} is missing: install Debian's etcd-server (dev/setup.sh does)"
            )));
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&apiserver, controller_manager.as_deref()).await {
                Ok(plane) => return Ok(plane),
                Err(e) => {
                    tracing::warn!("control plane did not start, retrying: {e}");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn start_once(apiserver_bin: &Path, kcm_bin: Option<&Path>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-kube-")
            .tempdir()
            .map_err(io_err("create control plane directory"))?;
        let pki = Pki::generate(&dir.path().join("pki"))?;
        let path = |name: &str| dir.path().join(name);
        let s = |p: &Path| p.display().to_string();
        let mut times = StartTimes::default();

        // etcd
        let started = Instant::now();
        let etcd_port = free_port().map_err(io_err("find a free port"))?;
        let peer_port = free_port().map_err(io_err("find a free port"))?;
        let client_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Process::spawn(
            "etcd",
            Command::new(ETCD)
                .current_dir(dir.path())
                .args(["--name", "default", "--data-dir", &s(&path("etcd"))])
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &format!("default={peer_url}")])
                .args(["--log-level", "warn", "--logger", "zap"]),
            path("etcd.log"),
        )?;
        wait_etcd(&mut etcd, etcd_port).await?;
        times.etcd = started.elapsed();

        // kube-apiserver
        let started = Instant::now();
        let apiserver_port = free_port().map_err(io_err("find a free port"))?;
        let mut apiserver = Process::spawn(
            "kube-apiserver",
            Command::new(apiserver_bin)
                .current_dir(dir.path())
                .arg(format!("--etcd-servers={client_url}"))
                .arg(format!("--secure-port={apiserver_port}"))
                .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
                .arg(format!("--cert-dir={}", s(&path("apiserver-certs"))))
                .arg(format!("--tls-cert-file={}", s(&pki.apiserver_cert)))
                .arg(format!("--tls-private-key-file={}", s(&pki.apiserver_key)))
                .arg(format!("--client-ca-file={}", s(&pki.ca_cert)))
                .arg("--authorization-mode=Node,RBAC")
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                .arg(format!("--service-account-key-file={}", s(&pki.service_account_pub)))
                .arg(format!("--service-account-signing-key-file={}", s(&pki.service_account_key)))
                .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                .arg("--allow-privileged=true")
                .arg("--profiling=false")
                .arg("--v=1"),
            path("kube-apiserver.log"),
        )?;
        let kubeconfig = path("admin.kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            apiserver_port,
            &pki.ca_cert,
            User::Cert { name: ADMIN_USER, cert: &pki.admin_cert, key: &pki.admin_key },
        )?;
        let client = client_from(&kubeconfig).await?;
        wait_apiserver(&mut apiserver, &client).await?;
        times.apiserver = started.elapsed();

        // kube-controller-manager
        let controller_manager = match kcm_bin {
            None => None,
            Some(bin) => {
                let started = Instant::now();
                let kcm_kubeconfig = path("controller-manager.kubeconfig");
                write_kubeconfig(
                    &kcm_kubeconfig,
                    apiserver_port,
                    &pki.ca_cert,
                    User::Cert {
                        name: "system:kube-controller-manager",
                        cert: &pki.controller_manager_cert,
                        key: &pki.controller_manager_key,
                    },
                )?;
                let kcm_port = free_port().map_err(io_err("find a free port"))?;
                let kc = s(&kcm_kubeconfig);
                let mut kcm = Process::spawn(
                    "kube-controller-manager",
                    Command::new(bin)
                        .current_dir(dir.path())
                        .arg(format!("--kubeconfig={kc}"))
                        .arg(format!("--authentication-kubeconfig={kc}"))
                        .arg(format!("--authorization-kubeconfig={kc}"))
                        .arg(format!("--secure-port={kcm_port}"))
                        .arg("--bind-address=127.0.0.1")
                        .arg(format!("--cert-dir={}", s(&path("controller-manager-certs"))))
                        .arg("--leader-elect=false")
                        .arg("--use-service-account-credentials=true")
                        .arg(format!(
                            "--service-account-private-key-file={}",
                            s(&pki.service_account_key)
                        ))
                        .arg(format!("--root-ca-file={}", s(&pki.ca_cert)))
                        .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
                        // The node agent's node sends no heartbeats; without these two
                        // controllers nothing marks it NotReady and evicts its pods.
                        .arg("--controllers=*,-node-lifecycle-controller,-node-ipam-controller")
                        .arg("--v=1"),
                    path("kube-controller-manager.log"),
                )?;
                // Ready when it has made the default namespace's service account.
                wait_service_account(&client, "default", "default", Some(&mut kcm)).await?;
                times.controller_manager = Some(started.elapsed());
                Some(kcm)
            }
        };

        tracing::info!(
            port = apiserver_port,
            etcd = ?times.etcd,
            apiserver = ?times.apiserver,
            controller_manager = ?times.controller_manager,
            "control plane ready"
        );
        Ok(Self {
            controller_manager,
            apiserver,
            etcd,
            pki,
            apiserver_port,
            etcd_port,
            kubeconfig,
            start_times: times,
            dir,
        })
    }

    /// The admin kubeconfig (user `ferry-admin`, group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    pub fn apiserver_port(&self) -> u16 {
        self.apiserver_port
    }

    /// etcd's client URL.
    pub fn etcd_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.etcd_port)
    }

    /// The certificates and keys.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The control plane's own directory (etcd data, PKI, kubeconfigs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How long each component took to start.
    pub fn start_times(&self) -> &StartTimes {
        &self.start_times
    }

    /// The end of each component's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let procs = [Some(&self.etcd), Some(&self.apiserver), self.controller_manager.as_ref()];
        for p in procs.into_iter().flatten() {
            out.push_str(&format!("--- {}\n{}\n", p.name, p.log_tail()));
        }
        out
    }

    /// A new admin client. Create one per tokio runtime.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// Writes a kubeconfig that authenticates with the bearer token in `token_file` (read on
    /// every use by kubectl and kube-rs, so the file can be refreshed).
    pub fn write_token_kubeconfig(&self, path: &Path, user: &str, token_file: &Path) -> Result<()> {
        write_kubeconfig(
            path,
            self.apiserver_port,
            &self.pki.ca_cert,
            User::TokenFile { name: user, file: token_file },
        )
    }

    /// Applies Ferry's CustomResourceDefinitions (`ferry_crds::crd::all()`) with server-side
    /// apply and waits until the API server serves them.
    pub async fn install_crds(&self) -> Result<()> {
        let client = self.client().await?;
        install_crds(&client).await
    }

    /// Creates a namespace and waits for its `default` service account (pods need it).
    pub async fn create_namespace(&self, name: &str) -> Result<()> {
        let client = self.client().await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
            ..Default::default()
        };
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(kube_err(format!("create namespace {name}"))(e)),
        }
        if self.controller_manager.is_some() {
            wait_service_account(&client, name, "default", None).await?;
        }
        Ok(())
    }
}

/// Applies every Ferry CRD and waits until each is Established.
pub async fn install_crds(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("ferry-harness").force();
    let mut names = Vec::new();
    for crd in ferry_crds::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(kube_err(format!("apply CRD {name}")))?;
        names.push(name);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = crds.get(&name).await.map_err(kube_err(format!("read CRD {name}")))?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Start(format!("CRD {name} not established in 30s")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

pub(crate) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> HarnessError {
    let what = what.into();
    move |e| HarnessError::Start(format!("{what}: {e}"))
}

async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let config = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| HarnessError::Start(format!("read {}: {e}", kubeconfig.display())))?;
    let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|e| HarnessError::Start(format!("load {}: {e}", kubeconfig.display())))?;
    Client::try_from(config).map_err(kube_err("create a Kubernetes client"))
}

pub(crate) enum User<'a> {
    Cert { name: &'a str, cert: &'a Path, key: &'a Path },
    TokenFile { name: &'a str, file: &'a Path },
}

/// Writes a kubeconfig for the API server on `port`. Certificates are embedded, so the file
/// can be copied elsewhere; a token file is referenced by path.
pub(crate) fn write_kubeconfig(path: &Path, port: u16, ca: &Path, user: User<'_>) -> Result<()> {
    let read = |p: &Path| -> Result<String> {
        let bytes = std::fs::read(p).map_err(io_err(format!("read {}", p.display())))?;
        Ok(BASE64.encode(bytes))
    };
    let (name, user) = match user {
        User::Cert { name, cert, key } => (
            name,
            serde_json::json!({
                "client-certificate-data": read(cert)?,
                "client-key-data": read(key)?,
            }),
        ),
        User::TokenFile { name, file } => {
            (name, serde_json::json!({ "tokenFile": file.display().to_string() }))
        }
    };
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "ferry-test",
            "cluster": {
                "server": format!("https://127.0.0.1:{port}"),
                "certificate-authority-data": read(ca)?,
            },
        }],
        "users": [{ "name": name, "user": user }],
        "contexts": [{
            "name": "ferry-test",
            "context": { "cluster": "ferry-test", "user": name, "namespace": "default" },
        }],
        "current-context": "ferry-test",
    });
    let yaml = serde_yaml::to_string(&config)
        .map_err(|e| HarnessError::Start(format!("serialize kubeconfig: {e}")))?;
    std::fs::write(path, yaml).map_err(io_err(format!("write {}", path.display())))
}

/// Waits until the etcd we started (not another test's on the same port) reports itself healthy.
async fn wait_etcd(etcd: &mut Process, port: u16) -> Result<()> {
    let log = etcd.log.clone();
    let starting =
        Starting { program: "etcd", child: &mut etcd.child, port, timeout: START_TIMEOUT };
    let healthy = async || {
        http_get(port, "/health").await.is_ok_and(|body| body.contains("\"health\":\"true\""))
    };
    starting.wait_until_own_socket_answers(healthy, || tail(&log, 6000)).await
}

/// A plain HTTP/1.0 GET on loopback, for etcd's health endpoint.
async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut body))
        .await
        .map_err(|_| std::io::Error::other("timeout"))??;
    Ok(body)
}

async fn wait_apiserver(apiserver: &mut Process, client: &Client) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        apiserver.check_alive()?;
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| HarnessError::Start(format!("build the readiness request: {e}")))?;
        let last = match client.request_text(request).await {
            Ok(text) if text.trim() == "ok" => return Ok(()),
            Ok(text) => text,
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(HarnessError::Start(format!(
                "kube-apiserver not ready within {START_TIMEOUT:?} (last answer: {last}); its \
                 log:\n{}",
                apiserver.log_tail()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a service account exists (the controller manager creates `default` in every
/// namespace).
async fn wait_service_account(
    client: &Client,
    namespace: &str,
    name: &str,
    mut process: Option<&mut Process>,
) -> Result<()> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(p) = process.as_deref_mut() {
            p.check_alive()?;
        }
        if accounts.get_opt(name).await.ok().flatten().is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = process.map(|p| p.log_tail()).unwrap_or_default();
            return Err(HarnessError::Start(format!(
                "service account {namespace}/{name} did not appear within {START_TIMEOUT:?}; \
                 is kube-controller-manager running?\n{log}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
