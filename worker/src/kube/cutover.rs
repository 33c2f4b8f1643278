//! The operator's cutover: the worker polls its MigrationJob for a new `spec.cutover.request`
//! and runs [`crate::cutover`] for it beside replication, reporting each step in
//! `status.cutover`. Once the cutover is recorded, replication completes the job at the final
//! position (stage Completed; the operator then sets phase Completed); a cutover that fails
//! says why in `status.cutover` and replication goes on.

use std::sync::Arc;
use std::time::Duration;

use ::kube::Api;
use chrono::Utc;
use ferry_crds::cutover::{CutoverState, CutoverStatus};
use ferry_crds::job::MigrationJob;

use crate::config::{CutoverSettings, JobConfig};
use crate::cutover::{self, Options};
use crate::report::StatusReporter;
use crate::verify;

/// How often the MigrationJob is read for a new request.
const POLL: Duration = Duration::from_secs(2);

/// Watches for cutover requests until dropped. `acted` is the request already handled (by an
/// earlier run of the worker), which is not run again.
pub async fn watch(
    api: Api<MigrationJob>,
    name: String,
    config: JobConfig,
    reporter: Arc<StatusReporter>,
    mut acted: Option<String>,
) {
    loop {
        tokio::time::sleep(POLL).await;
        let spec = match api.get(&name).await {
            Ok(job) => job.spec.cutover,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the MigrationJob for a cutover request");
                continue;
            }
        };
        let settings = CutoverSettings::from_spec(spec.as_ref());
        let Some(request) = settings.request.clone().filter(|r| Some(r) != acted.as_ref()) else {
            continue;
        };
        acted = Some(request.clone());
        let config = JobConfig { cutover: settings, ..config.clone() };
        run_request(&config, &reporter, request).await;
    }
}

async fn run_request(config: &JobConfig, reporter: &StatusReporter, request: String) {
    tracing::info!(request = %request, "cutover requested");
    let options = Options {
        quiet_for: config.cutover.quiet_for,
        timeout: config.cutover.timeout,
        verify: verify::Options {
            concurrency: config.concurrency.max(1),
            settle_timeout: Duration::from_secs(5),
            catch_up_timeout: config.cutover.timeout,
        },
    };
    let set = |state: CutoverState, position: Option<String>, message: String| {
        reporter.update(|s| {
            s.cutover = Some(CutoverStatus {
                request: request.clone(),
                state,
                position,
                message: Some(message),
                time: Utc::now().to_rfc3339(),
            });
        });
    };
    set(CutoverState::Waiting, None, "starting".into());
    reporter.publish().await;
    let progress = |state, step: &str| set(state, None, step.to_string());
    match cutover::run(config, &options, progress).await {
        Ok(done) => {
            let position = cutover::describe(&done.position);
            let message =
                format!("the target equals the source at {position} ({}); completing", done.quiet);
            set(CutoverState::Verifying, Some(position), message);
        }
        Err(error) => {
            tracing::warn!(error = %error, "cutover failed; replication goes on");
            let message = format!("{error}; then set a new spec.cutover.request");
            set(CutoverState::Failed, None, message);
        }
    }
    reporter.publish().await;
}
