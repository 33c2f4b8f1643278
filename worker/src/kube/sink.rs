//! [`KubeSink`]: publishes the worker's part of the status to the MigrationJob's status
//! subresource by server-side apply.

// `::kube` is the crate; `crate::kube` is this module's parent.
use ::kube::Api;
use ::kube::api::{Patch, PatchParams};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ferry_crds::API_VERSION;
use ferry_crds::contract::observe_generation;
use ferry_crds::job::{MigrationJob, MigrationJobStatus};
use futures::future::BoxFuture;
use serde_json::json;

use super::{FIELD_MANAGER, OPERATOR_CONDITIONS};
use crate::report::StatusSink;

/// Applies the status of one MigrationJob. Failures are returned to the reporter, which logs
/// them and carries on: the next publish sends the whole worker status again.
pub struct KubeSink {
    api: Api<MigrationJob>,
    name: String,
    generation: ObservedGeneration,
}

impl KubeSink {
    /// `generation`: the job's `metadata.generation` the worker has acted on, written on each
    /// of its conditions.
    pub fn new(
        api: Api<MigrationJob>,
        name: impl Into<String>,
        generation: ObservedGeneration,
    ) -> Self {
        Self { api, name: name.into(), generation }
    }
}

/// The newest `metadata.generation` of its MigrationJob the worker has read and acted on
/// (requests included); shared by the request watcher, which updates it, and the sink.
#[derive(Clone, Debug, Default)]
pub struct ObservedGeneration(Arc<AtomicI64>);

impl ObservedGeneration {
    pub fn new(generation: Option<i64>) -> Self {
        let this = Self::default();
        this.observed(generation);
        this
    }

    /// The worker acts on the spec of `generation` (never goes back); whether that is newer.
    pub fn observed(&self, generation: Option<i64>) -> bool {
        generation.is_some_and(|g| self.0.fetch_max(g, Ordering::Relaxed) < g)
    }

    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|g| *g > 0)
    }
}

/// The fields of `status` the worker owns (see the module documentation of `kube`), its
/// conditions marked with `generation`.
pub fn worker_fields(status: &MigrationJobStatus, generation: Option<i64>) -> MigrationJobStatus {
    let mut conditions: Vec<_> = status
        .conditions
        .iter()
        .filter(|c| !OPERATOR_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    observe_generation(&mut conditions, generation);
    MigrationJobStatus {
        stage: status.stage,
        phase: None,
        conditions,
        precheck: status.precheck.clone(),
        full: status.full.clone(),
        incremental: status.incremental.clone(),
        cutover: status.cutover.clone(),
        verification: status.verification.clone(),
        validation: status.validation.clone(),
        position: status.position.clone(),
        last_error: status.last_error.clone(),
        ddl_handled: status.ddl_handled.clone(),
        last_restart_request: None,
        worker_pod: None,
        observed_generation: None,
    }
}

impl StatusSink for KubeSink {
    fn publish<'a>(&'a self, status: &'a MigrationJobStatus) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = json!({
                "apiVersion": API_VERSION,
                "kind": "MigrationJob",
                "metadata": { "name": self.name },
                "status": worker_fields(status, self.generation.get()),
            });
            // Forced: the worker is the only writer of these fields; a conflict can only come
            // from a person editing the status by hand.
            let params = PatchParams::apply(FIELD_MANAGER).force();
            self.api
                .patch_status(&self.name, &params, &Patch::Apply(&body))
                .await
                .map(|_| ())
                .map_err(|e| format!("apply the status of MigrationJob {}: {e}", self.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::set_condition;
    use ferry_crds::job::{Phase, Stage};

    #[test]
    fn the_worker_never_sends_operator_fields() {
        let mut status = MigrationJobStatus {
            stage: Some(Stage::Full),
            phase: Some(Phase::Failed),
            worker_pod: Some("pod".into()),
            last_restart_request: Some("r1".into()),
            observed_generation: Some(3),
            position: Some("mysql-bin.000001:4".into()),
            ..Default::default()
        };
        set_condition(&mut status.conditions, "Ready", false, "Failed", "x");
        set_condition(&mut status.conditions, "Failed", true, "Error", "x");
        set_condition(&mut status.conditions, "Prechecked", true, "Passed", "ok");
        let sent = worker_fields(&status, Some(7));
        assert_eq!(sent.stage, Some(Stage::Full));
        assert_eq!(sent.position.as_deref(), Some("mysql-bin.000001:4"));
        assert_eq!(sent.phase, None);
        assert_eq!(sent.worker_pod, None);
        assert_eq!(sent.last_restart_request, None);
        assert_eq!(sent.observed_generation, None);
        let types: Vec<&str> = sent.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Prechecked"]);
        assert_eq!(sent.conditions[0].observed_generation, Some(7));
    }

    #[test]
    fn the_observed_generation_only_moves_forward() {
        let generation = ObservedGeneration::new(None);
        assert_eq!(generation.get(), None);
        assert!(generation.observed(Some(3)));
        assert!(!generation.observed(Some(2)));
        assert!(!generation.observed(Some(3)));
        assert!(!generation.observed(None));
        assert_eq!(generation.get(), Some(3));
    }
}
