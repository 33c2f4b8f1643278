//! Ferry's checkpoints on the target, in the `ferry_meta` schema: the crash-safety contract of
//! both stages. Every statement on `ferry_meta` is in this module:
//! - [`schema`]: the tables, the schema version and the forward migrations ([`ensure`]);
//! - [`full`]: the copy's snapshot, chunk plan, tables' read positions and deferred indexes;
//! - [`incremental`]: the replication watermark and the transactions applied above it;
//! - [`backfill`]: the selection replication runs under and the tables added to it being copied;
//! - [`jobs`]: the registry that gives each job its checkpoint key.
//!
//! Every row is keyed by the job's checkpoint key (its Kubernetes UID, or the id `ferry migrate`
//! registered for its manifest), so jobs may share a target and a job recreated under an old
//! name starts fresh.

pub mod backfill;
pub mod full;
pub mod incremental;
pub mod jobs;
pub mod schema;

pub use schema::{CURRENT_VERSION, MetaError, ensure};

/// Ferry's own schema on the target.
pub const META_SCHEMA: &str = "ferry_meta";

/// Characters of the `job` column of every `ferry_meta` table and of the names in
/// `ferry_meta.jobs`: a `namespace/name` is at most 63 + 1 + 253 characters in Kubernetes (and
/// keyed rows of earlier versions), so a whole name always fits and two jobs never share a
/// checkpoint; a longer CLI name is refused, never cut (the CREATE statements spell this out).
pub const JOB_KEY_CHARS: u64 = 320;
