//! Requests on a running job: the worker polls its MigrationJob for a new
//! `spec.cutover.request` or `spec.verify.request` and acts on it beside the job, in the same
//! task (the verify they run holds borrows across awaits that a spawned task could not).

use std::sync::Arc;
use std::time::Duration;

use ::kube::Api;
use ferry_crds::Selection;
use ferry_crds::job::{MigrationJob, MigrationJobStatus};
use tokio_util::sync::CancellationToken;

use super::ObservedGeneration;
use crate::config::{CutoverSettings, JobConfig};
use crate::report::StatusReporter;

/// How often the MigrationJob is read for a new request.
const POLL: Duration = Duration::from_secs(2);

/// The request values already acted on, which are not run again.
#[derive(Debug, Clone, Default)]
pub struct Acted {
    pub cutover: Option<String>,
    pub verify: Option<String>,
}

impl Acted {
    /// What an earlier run of the worker acted on, as its status says.
    pub fn from_status(status: &MigrationJobStatus) -> Self {
        Self {
            cutover: status.cutover.as_ref().map(|c| c.request.clone()),
            verify: status.verification.as_ref().map(|v| v.request.clone()),
        }
    }
}

/// What to cancel when the job's selection is edited: `edited` says so, `run` stops the run.
pub struct OnEdit {
    pub edited: CancellationToken,
    pub run: CancellationToken,
}

/// Watches for requests until dropped; cutover requests only when the job replicates. Stops the
/// run once the job's objects, routes or filters differ from the run's.
pub async fn watch(
    api: Api<MigrationJob>,
    name: String,
    config: JobConfig,
    (reporter, generation): (Arc<StatusReporter>, ObservedGeneration),
    mut acted: Acted,
    on_edit: OnEdit,
) {
    loop {
        tokio::time::sleep(POLL).await;
        let (spec, read) = match api.get(&name).await {
            Ok(job) => (job.spec, job.metadata.generation),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the MigrationJob for requests");
                continue;
            }
        };
        if !on_edit.edited.is_cancelled() && Selection::of(&spec) != config.selection {
            tracing::info!("spec.objects, routes or filters changed: stopping at a checkpoint");
            on_edit.edited.cancel();
            on_edit.run.cancel();
        }
        // The requests of this spec are acted on from here: what the worker reports while
        // doing so is about this generation. Published at once, so that `kubectl wait` on a
        // worker condition after an edit need not wait for the next progress report.
        if generation.observed(read) {
            reporter.publish().await;
        }
        let verify = spec.verify.and_then(|v| v.request);
        if let Some(request) = verify.filter(|r| Some(r) != acted.verify.as_ref()) {
            acted.verify = Some(request.clone());
            super::verification::run_request(&config, &reporter, request).await;
        }
        let settings = CutoverSettings::from_spec(spec.cutover.as_ref());
        let cutover = settings.request.clone().filter(|_| config.mode.replicates());
        if let Some(request) = cutover.filter(|r| Some(r) != acted.cutover.as_ref()) {
            acted.cutover = Some(request.clone());
            let config = JobConfig { cutover: settings, ..config.clone() };
            super::cutover::run_request(&config, &reporter, request).await;
        }
    }
}
