//! Ferry installed on the harness's control plane the way users install it, with
//! `helm install` of `charts/ferry`, its pods run by the node agent from local binaries. Shared
//! by `ferry-lab up` and the operator's end-to-end tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;

use super::NodeAgentOptions;
use crate::{HarnessError, Result};

/// The operator image of the chart and of `deploy/`; the node agent runs a local
/// `ferry-operator` for it.
pub const OPERATOR_IMAGE: &str = "ghcr.io/ferry-dev/ferry-operator";
/// Where the worker image has `ferry`: the command of the worker pods the operator creates,
/// which the node agent replaces with a local `ferry` (nothing is written there).
pub const WORKER_BINARY: &str = "/usr/local/bin/ferry";
/// Release name and namespace, as the README installs the chart.
pub const RELEASE: &str = crate::chart::RELEASE;
pub const OPERATOR_NAMESPACE: &str = crate::chart::NAMESPACE;
/// The Lease the operator takes before it reconciles (the chart's `leaderElection.leaseName`).
pub const LEASE_NAME: &str = "ferry-operator";

/// Local binaries that stand in for Ferry's two images.
#[derive(Debug, Clone)]
pub struct LocalBinaries {
    /// `ferry-operator`, run for the operator image.
    pub operator: PathBuf,
    /// `ferry`, run where a worker pod's command is [`WORKER_BINARY`].
    pub worker: PathBuf,
}

impl LocalBinaries {
    /// `ferry-operator` and `ferry` in `dir` (a cargo target directory's `debug/`), which must
    /// exist.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let binaries = Self { operator: dir.join("ferry-operator"), worker: dir.join("ferry") };
        for (path, package) in
            [(&binaries.operator, "ferry-operator"), (&binaries.worker, "ferry-worker")]
        {
            if !path.is_file() {
                return Err(HarnessError::Start(format!(
                    "{} does not exist: build it with `cargo build -p {package} --bin {}`",
                    path.display(),
                    path.file_name().unwrap_or_default().to_string_lossy(),
                )));
            }
        }
        Ok(binaries)
    }

    /// Node agent options that run these binaries for Ferry's pods.
    pub fn node_agent_options(&self, options: NodeAgentOptions) -> NodeAgentOptions {
        options
            .image(OPERATOR_IMAGE, vec![self.operator.display().to_string()])
            .executable(WORKER_BINARY, &self.worker)
    }
}

/// `helm install ferry charts/ferry` into [`OPERATOR_NAMESPACE`], adjusted for the node agent
/// with values alone: one replica (replicas are processes of this one host, and the chart's
/// metrics port is a fixed number) on a free metrics port, and pull policy Never, since the
/// agent pulls no image (it maps the operator image and the worker's command to local
/// binaries, see [`LocalBinaries`]). `set` adds `--set` values.
pub fn helm_install(kubeconfig: &Path, set: &[String]) -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(crate::io_err("find a free port for the operator's metrics"))?
        .port();
    let mut values = vec![
        format!("image.repository={OPERATOR_IMAGE}"),
        "image.pullPolicy=Never".to_string(),
        "worker.image.pullPolicy=Never".to_string(),
        "replicaCount=1".to_string(),
        format!("metrics.port={port}"),
    ];
    values.extend(set.iter().cloned());
    let kubeconfig = format!("--kubeconfig={}", kubeconfig.display());
    let mut args = vec!["install", RELEASE, "charts/ferry", kubeconfig.as_str()];
    args.extend(["--namespace", OPERATOR_NAMESPACE, "--create-namespace"]);
    for value in &values {
        args.extend(["--set", value.as_str()]);
    }
    crate::chart::helm_run(&args)?;
    Ok(())
}

/// Waits until an operator replica holds the leader Lease (it reconciles from then on) and
/// returns its name.
pub async fn wait_for_operator(client: &Client, timeout: Duration) -> Result<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let deadline = Instant::now() + timeout;
    loop {
        let lease = leases.get_opt(LEASE_NAME).await.ok().flatten();
        if let Some(holder) = lease.and_then(|l| l.spec?.holder_identity) {
            return Ok(holder);
        }
        if Instant::now() > deadline {
            return Err(HarnessError::Start(format!(
                "no operator replica took the Lease {OPERATOR_NAMESPACE}/{LEASE_NAME} within \
                 {timeout:?}: see the operator pod's log"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
