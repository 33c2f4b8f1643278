//! MigrationSources: `controller` checks each source when it or its Secrets change and at an
//! interval (`schedule` keeps its own status writes from triggering checks), `check` connects and
//! judges it with the worker's precheck items.

use ferry_crds::source::MigrationSource;
use ferry_crds::{SecretKeyRef, TlsConfig};

pub mod check;
pub mod controller;
pub mod schedule;

/// Every Secret key a source references.
pub fn secret_refs(source: &MigrationSource) -> Vec<&SecretKeyRef> {
    std::iter::once(&source.spec.password_secret_ref)
        .chain(source.spec.tls.iter().flat_map(TlsConfig::secret_refs))
        .collect()
}
