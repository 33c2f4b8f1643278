//! Ferry's control plane, in three parts:
//! - `source`: the MigrationSource controller, which checks each source with the worker's own
//!   judgement of binlog readiness (`ferry_worker::precheck`) and writes its conditions;
//! - `job`: the MigrationJob controller, which runs each job's worker pod, sized by its tier,
//!   following the pure rules in `job::decisions`;
//! - shared by both: `context` (client, settings, events, metrics), `run` (start and stop),
//!   `leader` (two replicas stay safe), `scope` (the namespaces watched), `metrics` (Prometheus), `health` (readiness), `secrets`,
//!   `error`.
//!
//! What the operator and its workers agree on (who writes which condition, exit codes, where the
//! credentials are mounted) lives in `ferry_crds::contract`; the worker reports its own
//! progress into the MigrationJob status.

pub mod context;
pub mod error;
pub mod events;
pub mod health;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod scope;
pub mod secrets;
pub mod source;
