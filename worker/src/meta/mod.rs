//! Ferry's checkpoints on the target, in the `ferry_meta` schema: the crash-safety contract of
//! both stages. Every statement on `ferry_meta` is in this module:
//! - [`schema`]: the tables, the schema version and the forward migrations ([`ensure`]);
//! - [`full`]: the copy's snapshot, chunk plan, tables' read positions and deferred indexes;
//! - [`incremental`]: the replication watermark and the transactions applied above it.
//!
//! Every row is keyed by the job id (`namespace/name`), so jobs may share a target.

pub mod full;
pub mod incremental;
pub mod schema;

pub use schema::{CURRENT_VERSION, MetaError, ensure};

/// Ferry's own schema on the target.
pub const META_SCHEMA: &str = "ferry_meta";

/// Characters of the `job` column of every `ferry_meta` table: a job id is `namespace/name`,
/// at most 63 + 1 + 253 characters in Kubernetes, so a whole id always fits and two jobs never
/// share a checkpoint (the CREATE statements spell this number out).
pub const JOB_KEY_CHARS: u64 = 320;
