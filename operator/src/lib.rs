//! Ferry's control plane. `source_controller` checks MigrationSources; `job_controller` runs
//! each MigrationJob's worker pod, sized by its tier (`tiers`, `worker_pod`), following the
//! pure rules in `decisions`; `leader` makes two replicas safe; `metrics` serves Prometheus.
//! The worker reports its own progress into the MigrationJob status (`ferry_worker::kube`).

pub mod context;
pub mod decisions;
pub mod error;
pub mod job_controller;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod secrets;
pub mod source_check;
pub mod source_controller;
pub mod tiers;
pub mod worker_pod;
