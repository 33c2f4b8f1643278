//! Ferry's Kubernetes API, group `ferry.dev`, version `v1alpha1`.
//!
//! `MigrationSource` describes a MySQL-compatible server to migrate from; `MigrationJob` says what
//! to move where and carries the progress the worker reports. The operator, the worker and the
//! standalone `ferry` command all speak these types. `contract` holds what the operator and its
//! workers agree on (condition ownership, exit codes, the secrets directory); `crd` turns the
//! types into the CustomResourceDefinitions (their validation rules are declared on the fields)
//! and `validation` checks a document against those definitions without an API server.

pub mod common;
pub mod contract;
pub mod crd;
pub mod cutover;
pub mod job;
pub mod selection;
pub mod source;
pub mod validation;
pub mod verification;
pub mod worker_pod;

pub use common::{SecretKeyRef, TlsConfig, TlsMode};
pub use job::{MigrationJob, MigrationJobSpec, MigrationJobStatus};
pub use source::{MigrationSource, MigrationSourceSpec, MigrationSourceStatus};

/// API group of every Ferry resource.
pub const GROUP: &str = "ferry.dev";
/// API version of every Ferry resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "ferry.dev/v1alpha1";
pub use selection::{SYSTEM_SCHEMAS, Selection, is_system_schema};
