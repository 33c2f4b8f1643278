//! The operator's integration tests, one binary (`cargo test --workspace --locked --test it`;
//! one file: `-- operator_e2e::`).
//!
//! The tests that run a control plane with operators and workers (`operator_e2e`,
//! `operator_resilience`) hold `cluster::ONE_CLUSTER_AT_A_TIME` for their whole run, so one such
//! cluster runs at a time in this process.

mod cluster;

mod edits;
mod faults;
mod image;
mod operator_e2e;
mod operator_resilience;
mod plugin;
mod source_readiness;
mod watch_namespaces;
