//! Binlog replication: stream, decode, apply in parallel, checkpoint with the data.

use ferry_crds::job::BinlogPosition;

use crate::engine::JobContext;

/// Why replication stopped.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    #[error("binlog replication is not implemented yet")]
    NotImplemented,
}

impl IncrementalError {
    pub fn retryable(&self) -> bool {
        false
    }
}

/// Replays the binlog from the checkpoint, else from `start`, else from the source's current
/// position, until `ctx.cancel` fires.
pub async fn run(_ctx: &JobContext, _start: Option<BinlogPosition>) -> crate::Result<()> {
    Err(IncrementalError::NotImplemented.into())
}
