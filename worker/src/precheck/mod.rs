//! Prechecks of source and target before a job starts.

use crate::engine::JobContext;

/// Why the precheck could not run or did not pass.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    #[error("precheck failed: {0}")]
    Failed(String),
}

/// Runs the checks the job's mode needs, records them in the status and fails when an item
/// fails. Not built yet: records nothing and passes.
pub async fn run(_ctx: &JobContext) -> crate::Result<()> {
    Ok(())
}
