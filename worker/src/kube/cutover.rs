//! The operator's cutover: for a new `spec.cutover.request` (see [`super::requests`]) the worker
//! runs [`crate::cutover`] beside replication, reporting each step in `status.cutover`. Once
//! the cutover is recorded, replication completes the job at the final position (stage
//! Completed; the operator then sets phase Completed); a cutover that fails says why in
//! `status.cutover` and replication goes on.

use std::time::Duration;

use chrono::Utc;
use ferry_crds::cutover::{CutoverState, CutoverStatus};

use crate::config::JobConfig;
use crate::cutover::{self, Options};
use crate::report::StatusReporter;
use crate::verify;

/// Runs the cutover `request` with `config.cutover`'s settings and reports it in
/// `status.cutover`; a failure is reported there and replication goes on.
pub async fn run_request(config: &JobConfig, reporter: &StatusReporter, request: String) {
    tracing::info!(request = %request, "cutover requested");
    let options = Options {
        quiet_for: config.cutover.quiet_for,
        timeout: config.cutover.timeout,
        verify: verify::Options {
            concurrency: config.concurrency.max(1),
            settle_timeout: Duration::from_secs(5),
            catch_up_timeout: config.cutover.timeout,
            only: None,
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
