//! The worker inside a Kubernetes pod: `ferry worker --namespace NS --job NAME` reads its
//! MigrationJob and MigrationSource from the API server and the credentials from the files the
//! operator mounts from the Secrets, runs the engine, and reports into the MigrationJob status
//! subresource with server-side apply under its own field manager ([`FIELD_MANAGER`]).
//!
//! Status fields have one writer each. The worker owns what only it can know: `stage`,
//! `precheck`, `full`, `incremental`, `position`, `lastError` and the conditions it adds
//! (such as `Prechecked`). The operator owns `phase`, `workerPod`, `lastRestartRequest`,
//! `observedGeneration` and the conditions in [`OPERATOR_CONDITIONS`], which it derives from the
//! pod's state and the worker's report; [`worker_fields`] strips those from what the worker
//! applies, so neither side ever overwrites the other.

mod sink;
mod worker;

pub use sink::{KubeSink, worker_fields};
pub use worker::{Args, SECRETS_DIR_ENV, run, secret_file};

/// Field manager of the worker's server-side applies.
pub const FIELD_MANAGER: &str = "ferry-worker";

/// Condition types the operator writes; the worker leaves them alone.
pub const OPERATOR_CONDITIONS: [&str; 3] = ["Ready", "Failed", "Paused"];

/// Where the operator mounts the referenced Secret keys, as `<dir>/<secret>/<key>`.
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/ferry/secrets";

/// Exit code of a worker whose job failed with an error that a retry cannot fix; the operator
/// does not restart it. Other failures exit with 1 and are retried with a backoff.
pub const EXIT_NOT_RETRYABLE: u8 = 3;
