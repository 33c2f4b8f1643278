//! The harness's and the deployment's integration tests, one binary (`cargo test --workspace
//! --locked --test it`; one file: `-- helm_chart::`).
//!
//! The tests share this process but no state: each starts its own servers, control planes and
//! labs on free ports in its own directories, and passes environment variables only to the
//! processes it starts.

mod argocd_health;
mod compare;
mod control_plane;
mod harness;
mod helm_chart;
mod kind_suite;
mod lab_readme;
mod monitoring;
mod mysql;
mod tidb;
