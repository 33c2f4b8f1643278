//! The operator's Prometheus metrics, kept in a `prometheus-client` registry and served in the
//! OpenMetrics text format by `server` (with `/healthz` and `/readyz`, see `crate::health`).
//!
//! Label names avoid Prometheus' target labels: a MigrationJob is `migrationjob` (a `job`
//! label would be renamed `exported_job` at scrape). Its `namespace` is the MigrationJob's; the
//! chart's ServiceMonitor sets `honorLabels: true` so it is kept rather than renamed
//! `exported_namespace` (docs/monitoring.md).

mod jobs;
pub mod server;

use std::sync::Arc;
use std::time::Instant;

use ferry_crds::job::{MigrationJobStatus, Phase};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use self::jobs::JobCollector;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type Histograms = Family<ControllerLabels, Histogram, fn() -> Histogram>;

/// Reconciles take from milliseconds (nothing to do) to tens of seconds (a source check that
/// waits for its connect timeout).
fn reconcile_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

struct Inner {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Histograms,
    leader: Gauge,
    jobs: Arc<JobCollector>,
}

/// The operator's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "ferry_reconciles",
            "Reconciles started, by controller",
            reconciles.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "ferry_reconcile_errors",
            "Failed reconciles, by controller and kind of error",
            errors.clone(),
        );
        let durations = Histograms::new_with_constructor(reconcile_histogram);
        registry.register(
            "ferry_reconcile_duration_seconds",
            "Time a reconcile took, by controller",
            durations.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "ferry_leader",
            "1 while this replica holds the leader lease and runs the controllers, 0 on a standby",
            leader.clone(),
        );
        let build = Info::new(BuildLabels { version: env!("CARGO_PKG_VERSION") });
        registry.register("ferry_build", "The operator's version", build);
        let jobs = Arc::new(JobCollector::default());
        registry.register_collector(Box::new(jobs.clone()));
        Self { inner: Arc::new(Inner { registry, reconciles, errors, durations, leader, jobs }) }
    }

    /// Makes the controller's reconcile and error series exist at 0 from its start, so that
    /// `rate()` sees its first increase.
    pub fn controller_started(&self, controller: &'static str) {
        let labels = ControllerLabels { controller };
        let _ = self.inner.reconciles.get_or_create(&labels);
        let _ = self.inner.durations.get_or_create(&labels);
    }

    /// Counts a reconcile; the returned guard records its duration when dropped.
    pub fn reconcile_started(&self, controller: &'static str) -> ReconcileTimer {
        self.inner.reconciles.get_or_create(&ControllerLabels { controller }).inc();
        ReconcileTimer { metrics: self.clone(), controller, start: Instant::now() }
    }

    pub fn reconcile_error(&self, controller: &'static str, error: &'static str) {
        self.inner.errors.get_or_create(&ErrorLabels { controller, error }).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// Records a job's phase and the progress its worker reported.
    pub fn observe_job(
        &self,
        namespace: &str,
        name: &str,
        phase: Phase,
        status: &MigrationJobStatus,
    ) {
        self.inner.jobs.observe(namespace, name, phase, status);
    }

    pub fn forget_job(&self, namespace: &str, name: &str) {
        self.inner.jobs.forget(namespace, name);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }
}

/// Records a reconcile's duration when dropped (also when the reconcile fails or is cancelled).
pub struct ReconcileTimer {
    metrics: Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let labels = ControllerLabels { controller: self.controller };
        let seconds = self.start.elapsed().as_secs_f64();
        self.metrics.inner.durations.get_or_create(&labels).observe(seconds);
    }
}

#[cfg(test)]
mod tests;
