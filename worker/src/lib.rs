//! Ferry's data plane: the engine that prechecks, copies existing data and replays the binlog,
//! and the standalone `ferry` command around it.
//!
//! The engine knows nothing about Kubernetes: it takes a [`config::JobConfig`] and reports
//! through [`report::StatusReporter`], whose sinks are a file, the console or (in a worker pod)
//! the MigrationJob status.

pub mod cli;
pub mod config;
pub mod connect;
pub mod cutover;
pub mod engine;
pub mod error;
pub mod flavor;
pub mod full;
pub mod incremental;
pub mod kube;
pub mod logging;
pub mod manifest;
pub mod meta;
pub mod precheck;
pub mod progress;
pub mod report;
pub mod rewrite;
pub mod sql;
pub mod stall;
pub mod verify;

pub use error::{Error, Result};
