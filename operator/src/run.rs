//! Starting and stopping the operator: settings, leader election, both controllers, graceful
//! shutdown on SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::context::{Context, Settings};
use crate::health::Health;
use crate::job::decisions::Backoff;
use crate::job::pod::PodSettings;
use crate::job::tiers::Tiers;
use crate::leader::{self, LeaseSettings};
use crate::metrics::{self, Metrics};
use crate::scope::WatchScope;
use crate::{job, source};

/// Command-line settings of `ferry-operator`.
#[derive(clap::Parser, Debug)]
#[command(name = "ferry-operator", version, about = "Ferry's Kubernetes operator")]
pub struct Options {
    /// Print the CustomResourceDefinitions the operator serves and exit.
    #[arg(long)]
    pub print_crds: bool,
    /// Image of the worker pods (the `ferry` image).
    #[arg(long, env = "FERRY_WORKER_IMAGE", default_value = "ghcr.io/ferry-dev/ferry:latest")]
    pub worker_image: String,
    /// imagePullPolicy of the worker pods.
    #[arg(long, env = "FERRY_WORKER_IMAGE_PULL_POLICY")]
    pub worker_image_pull_policy: Option<String>,
    /// YAML file mapping each tier to CPU, memory and concurrency (default: built in).
    #[arg(long, env = "FERRY_TIERS_FILE")]
    pub tiers: Option<PathBuf>,
    /// YAML file with the scheduling and metadata of every worker pod (imagePullSecrets,
    /// nodeSelector, tolerations, affinity, priorityClassName, annotations, labels); a job's
    /// spec.workerPod is merged over it.
    #[arg(long, env = "FERRY_WORKER_POD_TEMPLATE_FILE")]
    pub worker_pod_template: Option<PathBuf>,
    /// Watch only these namespaces (comma-separated), needing RBAC in them only; empty: every
    /// namespace.
    #[arg(long, env = "FERRY_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Most MigrationJobs that run per namespace.
    #[arg(long, default_value_t = 100)]
    pub max_jobs_per_namespace: usize,
    /// How often a MigrationSource is checked again, in seconds.
    #[arg(long, default_value_t = 300)]
    pub source_recheck_seconds: u64,
    /// Least time between two progress updates of a worker.
    #[arg(long, default_value = "5s")]
    pub worker_status_interval: String,
    /// First retry delay after a retryable worker failure, in seconds; doubles per failure.
    #[arg(long, default_value_t = 10)]
    pub backoff_seconds: u64,
    /// Longest retry delay, in seconds.
    #[arg(long, default_value_t = 300)]
    pub max_backoff_seconds: u64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Take a Lease before reconciling, so that only one replica acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "ferry-system")]
    pub lease_namespace: String,
    #[arg(long, default_value = "ferry-operator")]
    pub lease_name: String,
    /// This replica's name in the Lease (default: the pod name or the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tiers(#[from] crate::job::tiers::TiersError),
    #[error(transparent)]
    PodTemplate(#[from] crate::job::pod::PodTemplateError),
    #[error("cannot create a Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    Client(#[source] kube::Error),
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Kube(#[from] crate::error::Error),
    #[error("lost the leader lease; exiting so that only one replica acts")]
    LostLeadership,
    #[error("the {0} controller stopped on its own; exiting so that the pod is restarted")]
    ControllerStopped(&'static str),
}

fn identity(options: &Options) -> String {
    options.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

/// Runs until SIGTERM or Ctrl-C (then finishes the reconciles in flight and releases the lease).
pub async fn run(options: Options) -> Result<(), RunError> {
    let tiers = match &options.tiers {
        Some(path) => Tiers::load(path)?,
        None => Tiers::default(),
    };
    let template = match &options.worker_pod_template {
        Some(path) => crate::job::pod::load_template(path)?,
        None => Default::default(),
    };
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let shutdown = CancellationToken::new();
    let metrics = Metrics::default();
    let health = Health::default();
    stop_on_signals(shutdown.clone(), health.clone());
    let addr = options.metrics_addr;
    let bound = metrics::server::serve(addr, metrics.clone(), health.clone(), shutdown.clone())
        .await
        .map_err(|source| RunError::Metrics { addr, source })?;
    tracing::info!(%bound, "serving metrics");
    let lease = LeaseSettings {
        namespace: options.lease_namespace.clone(),
        name: options.lease_name.clone(),
        identity: identity(&options),
        duration: Duration::from_secs(15),
        renew: Duration::from_secs(5),
    };
    let leadership = if options.leader_elect {
        match leader::acquire(client.clone(), lease.clone(), &shutdown).await? {
            Some(l) => Some(l),
            None => return Ok(()),
        }
    } else {
        None
    };
    metrics.set_leader(true);
    health.leading();
    let settings = Settings {
        pod: PodSettings {
            image: options.worker_image.clone(),
            image_pull_policy: options.worker_image_pull_policy.clone(),
            tiers,
            status_interval: options.worker_status_interval.clone(),
            template,
        },
        max_jobs_per_namespace: options.max_jobs_per_namespace,
        source_recheck: Duration::from_secs(options.source_recheck_seconds),
        backoff: Backoff {
            base: Duration::from_secs(options.backoff_seconds),
            max: Duration::from_secs(options.max_backoff_seconds),
            ..Backoff::default()
        },
        scope: WatchScope::new(options.watch_namespaces.clone()),
    };
    tracing::info!(scope = ?settings.scope.watched(), "watching namespaces");
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        metrics.clone(),
        health.clone(),
        lease.identity.clone(),
    ));
    let stop = shutdown.child_token();
    let lost = leadership.as_ref().map(|l| l.lost.clone()).unwrap_or_default();
    let watch_lost = {
        let (lost, stop) = (lost.clone(), stop.clone());
        tokio::spawn(async move {
            lost.cancelled().await;
            stop.cancel();
        })
    };
    let controllers = tokio::join!(
        supervise(
            source::controller::CONTROLLER,
            source::controller::run(ctx.clone(), stop.clone()),
            (&health, &metrics),
            &stop
        ),
        supervise(
            job::controller::CONTROLLER,
            job::controller::run(ctx.clone(), stop.clone()),
            (&health, &metrics),
            &stop
        ),
    );
    health.shutting_down();
    watch_lost.abort();
    metrics.set_leader(false);
    if lost.is_cancelled() {
        return Err(RunError::LostLeadership);
    }
    // A controller that stopped on its own: give the lease up below and exit with an error, so
    // that a standby (or this pod, restarted) takes over.
    let stopped = [controllers.0, controllers.1].into_iter().find_map(Result::err);
    if let Some(l) = leadership {
        l.release(client, &lease).await;
    }
    if let Some(controller) = stopped {
        return Err(RunError::ControllerStopped(controller));
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs one controller, marked running in `/readyz` and its metrics while it does. A controller
/// that returns before `stop` has stopped on its own: it stops the other one too and is
/// named in the error.
async fn supervise(
    name: &'static str,
    controller: impl Future<Output = ()>,
    (health, metrics): (&Health, &Metrics),
    stop: &CancellationToken,
) -> Result<(), &'static str> {
    health.controller_running(name);
    metrics.controller_started(name);
    controller.await;
    health.controller_stopped(name);
    if stop.is_cancelled() {
        return Ok(());
    }
    tracing::error!(controller = name, "controller stopped on its own; stopping the operator");
    stop.cancel();
    Err(name)
}

fn stop_on_signals(shutdown: CancellationToken, health: Health) {
    tokio::spawn(async move {
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!("cannot watch for SIGTERM: {e}");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down: finishing the reconciles in flight");
        health.shutting_down();
        shutdown.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_controller_that_stops_on_its_own_fails_readiness_and_stops_the_other() {
        let (health, metrics, stop) =
            (Health::default(), Metrics::default(), CancellationToken::new());
        health.leading();
        let other = {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        };
        let (dead, alive) = tokio::join!(
            supervise("source", async {}, (&health, &metrics), &stop),
            supervise("job", other, (&health, &metrics), &stop),
        );
        assert_eq!(dead, Err("source"));
        assert_eq!(alive, Ok(()), "the job controller was stopped, not failed");
        let readiness = health.readiness();
        assert!(!readiness.ready, "{readiness:?}");
        assert!(readiness.report.contains("[-]controller source: stopped"), "{readiness:?}");
    }

    #[tokio::test]
    async fn controllers_stopped_by_shutdown_are_no_error() {
        let (health, metrics, stop) =
            (Health::default(), Metrics::default(), CancellationToken::new());
        stop.cancel();
        let outcome = supervise("job", async {}, (&health, &metrics), &stop).await;
        assert_eq!(outcome, Ok(()));
    }
}
