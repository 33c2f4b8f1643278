//! MigrationJobs: `controller` observes a job, its worker pods and its references, asks the pure
//! rules in `decisions` what to do and does it; `pod` builds the worker pod and its RBAC objects,
//! sized by the tier settings in `tiers`.

pub mod controller;
pub mod decisions;
pub mod pod;
pub mod tiers;
