//! The engine's error: one variant per stage, each saying whether a retry may help.

use crate::connect::ConnectError;
use crate::manifest::ManifestError;

/// Anything that stops a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Precheck(#[from] crate::precheck::PrecheckError),
    #[error(transparent)]
    Meta(#[from] crate::meta::MetaError),
    #[error(transparent)]
    Full(#[from] crate::full::FullError),
    #[error(transparent)]
    Incremental(#[from] crate::incremental::IncrementalError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error(transparent)]
    Cutover(#[from] crate::cutover::CutoverError),
    #[error("{context}: {source}")]
    Sql { context: String, source: mysql_async::Error },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether running the job again may succeed without the user changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Manifest(_) => false,
            Self::Precheck(e) => e.retryable(),
            Self::Connect(e) => e.retryable(),
            // A checkpoint layout from a newer Ferry stays newer.
            Self::Meta(_) => false,
            Self::Full(e) => e.retryable(),
            Self::Incremental(e) => e.retryable(),
            Self::Verify(_) => false,
            Self::Cutover(_) => false,
            Self::Sql { source, .. } => {
                crate::connect::transient(source) || crate::connect::out_of_space(source)
            }
            Self::Io { .. } => true,
        }
    }
}

/// Adds context to SQL errors: `conn.query_drop(sql).await.sql("create table x")?`.
pub trait SqlContext<T> {
    fn sql(self, context: impl Into<String>) -> Result<T>;
}

impl<T> SqlContext<T> for std::result::Result<T, mysql_async::Error> {
    fn sql(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Sql { context: context.into(), source })
    }
}
