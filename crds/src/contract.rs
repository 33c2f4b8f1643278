//! The contract between the operator and the worker it starts: who writes which status
//! conditions, how a worker's exit code reads, and where the credentials are mounted. Both
//! sides take these from here, so neither can drift from the other.
//!
//! Status fields have one writer each. The worker owns what only it can know (`stage`,
//! `precheck`, `full`, `incremental`, `cutover`, `verification`, `validation`, `position`, `lastError` and
//! conditions such as `Prechecked`, `CaughtUp` and `Verified`); the operator owns `phase`, `workerPod`, `lastRestartRequest`,
//! `observedGeneration` and the conditions in [`OPERATOR_CONDITIONS`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types the operator writes; the worker leaves them alone.
pub const OPERATOR_CONDITIONS: [&str; 4] = ["Ready", "Failed", "Paused", "Completed"];

/// Where the operator mounts the referenced Secret keys, as `<dir>/<secret>/<key>`.
pub const SECRETS_DIR: &str = "/var/run/ferry/secrets";

/// Environment variable naming the directory the Secret keys are mounted in.
pub const SECRETS_DIR_ENV: &str = "FERRY_SECRETS_DIR";

/// Exit code of a worker whose job failed with an error that a retry cannot fix; the operator
/// does not restart it. Other failures exit with 1 and are retried with a backoff.
pub const EXIT_NOT_RETRYABLE: u8 = 3;

/// Sets a condition of `type_`, keeping its transition time when the status does not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.last_transition_time = now();
        }
        existing.status = status;
        existing.reason = reason.to_string();
        existing.message = message;
        return;
    }
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        last_transition_time: now(),
        observed_generation: None,
    });
}

/// Records on every condition the `metadata.generation` of the spec its writer has acted on, as
/// Kubernetes' own conditions do: a client tells a condition about the current spec from one
/// about an older spec (`kubectl wait` after an edit) by comparing it with the generation.
/// `None` (a writer that has not read the job) leaves the conditions as they are.
pub fn observe_generation(conditions: &mut [Condition], generation: Option<i64>) {
    if generation.is_none() {
        return;
    }
    for condition in conditions {
        condition.observed_generation = generation;
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}
