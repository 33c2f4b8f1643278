//! The existing-data copy: consistent snapshot, schema, parallel chunked copy, checkpoints.

use ferry_crds::job::BinlogPosition;

use crate::engine::JobContext;

/// Why the copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum FullError {
    #[error("the existing-data copy is not implemented yet")]
    NotImplemented,
}

impl FullError {
    pub fn retryable(&self) -> bool {
        false
    }
}

/// Copies the selected objects and returns the binlog position of the snapshot they were read
/// at. Resumes from the checkpoint in the target's `ferry_meta`; returns at once if done.
pub async fn run(_ctx: &JobContext) -> crate::Result<BinlogPosition> {
    Err(FullError::NotImplemented.into())
}
