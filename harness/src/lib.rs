//! Test harness: throwaway real servers and tools to compare their content.
//!
//! Every server runs from its own temporary directory on a free loopback port and is killed and
//! removed when its handle drops, so tests can run side by side and leave nothing behind.

pub mod certs;
pub mod chart;
pub mod compare;
pub mod external;
pub mod fault;
#[path = "kube/mod.rs"]
pub mod kube_harness;
pub mod manifest;
pub mod mariadb;
pub mod mysql;
pub mod podman;
mod ports;
mod ready;
pub mod source;
pub mod tidb;
pub mod workspace;

pub use compare::database_digests;
pub use compare::{CompareOptions, Flavour, TableDigest, assert_same_tables, compare_databases};
pub use compare::{quote, table_digest, table_rows};
pub use external::ExternalServer;
pub use fault::{Direction, FaultProxy, Faults};
pub use manifest::JobManifest;
pub use mariadb::{MariaDb, MariaDbOptions, Role};
pub use mysql::{MySql, MySqlOptions};
pub use ports::Placement;
pub use source::{Source, SourceKind};
pub use tidb::{SqlServer, TIDB_VERSION, Target, TargetKind, TiDb, start_target};

/// Errors of the harness; tests usually just `?` them.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{0}")]
    Start(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("SQL failed: {0}")]
    Sql(#[from] mysql_async::Error),
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// Where built or initialized artifacts are cached between runs: `$FERRY_CACHE_DIR`, else
/// `~/.cache/ferry`.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_CACHE_DIR") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    std::path::PathBuf::from(home).join(".cache/ferry")
}
