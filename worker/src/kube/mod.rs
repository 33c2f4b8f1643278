//! The worker inside a Kubernetes pod: `ferry worker --namespace NS --job NAME` reads its
//! MigrationJob and MigrationSource from the API server and the credentials from the files the
//! operator mounts from the Secrets, runs the engine, and reports into the MigrationJob status
//! subresource with server-side apply under its own field manager ([`FIELD_MANAGER`]).
//!
//! Status fields have one writer each. The worker owns what only it can know: `stage`,
//! `precheck`, `full`, `incremental`, `position`, `lastError` and the conditions it adds
//! (such as `Prechecked`). The operator owns `phase`, `workerPod`, `lastRestartRequest`,
//! `observedGeneration` and the conditions in [`OPERATOR_CONDITIONS`] (the contract lives in
//! `ferry_crds::contract`), which it derives from the pod's state and the worker's report; [`worker_fields`] strips those from what the worker
//! applies, so neither side ever overwrites the other.

mod cutover;
mod requests;
mod sink;
mod verification;
mod worker;

pub use sink::{KubeSink, ObservedGeneration, worker_fields};
pub use worker::{Args, run, secret_file};

/// Field manager of the worker's server-side applies.
pub const FIELD_MANAGER: &str = "ferry-worker";

/// Where the operator mounts the referenced Secret keys (see `ferry_crds::contract`).
pub use ferry_crds::contract::SECRETS_DIR as DEFAULT_SECRETS_DIR;
pub use ferry_crds::contract::{EXIT_NOT_RETRYABLE, OPERATOR_CONDITIONS, SECRETS_DIR_ENV};
