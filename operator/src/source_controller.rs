//! The MigrationSource reconciler: connects with the referenced credentials, records the
//! server's version, flavor and binary log settings, and sets the Ready condition (the server
//! answered) and the BinlogReady condition (it can feed binlog replication). It checks again
//! every `source_recheck` and whenever one of the Secrets changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_crds::source::{MigrationSource, MigrationSourceStatus};
use ferry_crds::{API_VERSION, SecretKeyRef, TlsConfig};
use ferry_worker::manifest::Manifest;
use ferry_worker::report::set_condition;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::context::{Context, FIELD_MANAGER};
use crate::decisions::EventKind;
use crate::error::{Error, Result, kube_err};
use crate::secrets::Loaded;
use crate::source_check::{self, binlog_problems};

const CONTROLLER: &str = "source";

/// Runs the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let sources: Api<MigrationSource> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let controller = Controller::new(sources, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(secrets, watcher::Config::default(), move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            store
                .state()
                .into_iter()
                .filter(|s| s.namespace() == ns && secret_refs(s).iter().any(|r| r.name == name))
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// Every Secret key a source references.
pub fn secret_refs(source: &MigrationSource) -> Vec<&SecretKeyRef> {
    std::iter::once(&source.spec.password_secret_ref)
        .chain(source.spec.tls.iter().flat_map(TlsConfig::secret_refs))
        .collect()
}

fn error_policy(_source: Arc<MigrationSource>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(controller = CONTROLLER, "reconcile failed: {error}");
    ctx.metrics.reconcile_error(CONTROLLER, error.metric_label());
    Action::requeue(Duration::from_secs(15))
}

/// Outcome of one check: (Ready status, reason, message), facts when connected.
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
    facts: Option<source_check::ServerFacts>,
}

/// What a check of a source was made with: its spec and the versions of its Secrets.
#[derive(Clone, Debug, PartialEq)]
struct Inputs {
    generation: Option<i64>,
    secrets: Vec<(String, Option<String>)>,
}

/// The last check of each source (by namespace and name): its inputs, when, and the interval
/// to the next. A reconcile that finds the same inputs before the next check is due checks
/// nothing; without this, each check's own status write (lastCheckTime) would trigger the next
/// check at once, a hot loop of connections to the source.
#[derive(Default)]
pub struct SourceChecks(Mutex<HashMap<(String, String), LastCheck>>);

struct LastCheck {
    inputs: Inputs,
    at: Instant,
    every: Duration,
}

impl SourceChecks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), LastCheck>> {
        // A poisoned lock only means another reconcile panicked between two plain writes.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long until the next check is due, if the last one was made with `inputs`.
    fn wait(&self, key: &(String, String), inputs: &Inputs, now: Instant) -> Option<Duration> {
        let checks = self.lock();
        let last = checks.get(key)?;
        let left = last.every.checked_sub(now.saturating_duration_since(last.at))?;
        (last.inputs == *inputs && !left.is_zero()).then_some(left)
    }

    /// Records a check; forgets sources not checked for twice their interval (deleted ones).
    fn record(&self, key: (String, String), inputs: Inputs, now: Instant, every: Duration) {
        let mut checks = self.lock();
        checks.retain(|_, last| now.saturating_duration_since(last.at) < last.every * 2);
        checks.insert(key, LastCheck { inputs, at: now, every });
    }
}

async fn reconcile(source: Arc<MigrationSource>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciled(CONTROLLER);
    let namespace = source.namespace().ok_or_else(|| Error::Unnamed(source.name_any()))?;
    let loaded = crate::secrets::load(&ctx.client, &namespace, &secret_refs(&source)).await?;
    let key = (namespace.clone(), source.name_any());
    let inputs = Inputs { generation: source.meta().generation, secrets: loaded.versions.clone() };
    if let Some(wait) = ctx.source_checks.wait(&key, &inputs, Instant::now()) {
        return Ok(Action::requeue(wait));
    }
    let outcome = check(&source, &namespace, loaded).await;
    let previous = source.status.clone().unwrap_or_default();
    let was_ready = condition_status(&previous, "Ready");
    let status = new_status(&source, previous, &outcome);
    let api: Api<MigrationSource> = Api::namespaced(ctx.client.clone(), &namespace);
    let body = json!({"apiVersion": API_VERSION, "kind": "MigrationSource", "status": status});
    api.patch_status(
        &source.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(kube_err(format!(
        "apply the status of MigrationSource {namespace}/{}",
        source.name_any()
    )))?;
    if was_ready != Some(outcome.ready) {
        let kind = if outcome.ready { EventKind::Normal } else { EventKind::Warning };
        ctx.event(&source.object_ref(&()), kind, outcome.reason, "Check", outcome.message.clone())
            .await;
    }
    let recheck = if outcome.ready { ctx.settings.source_recheck } else { NOT_READY_RECHECK };
    ctx.source_checks.record(key, inputs, Instant::now(), recheck);
    Ok(Action::requeue(recheck))
}

/// How often a source that is not Ready is checked again when nothing changes.
const NOT_READY_RECHECK: Duration = Duration::from_secs(60);

async fn check(source: &MigrationSource, namespace: &str, loaded: Loaded) -> Outcome {
    if !loaded.problems.is_empty() {
        let message = format!("{}; create it or fix the reference", loaded.problems.join("; "));
        return Outcome { ready: false, reason: "SecretMissing", message, facts: None };
    }
    let endpoint = Manifest::from_objects(loaded.secrets, vec![source.clone()], Vec::new())
        .ok()
        .and_then(|m| m.source_endpoint(namespace, &source.name_any()));
    let Some(endpoint) = endpoint else {
        let message = "the referenced Secrets could not be resolved".to_string();
        return Outcome { ready: false, reason: "SecretMissing", message, facts: None };
    };
    match source_check::check(&endpoint).await {
        Ok(facts) => {
            let message = format!(
                "connected to {} ({} {})",
                endpoint.describe(),
                facts.flavor,
                facts.version
            );
            Outcome { ready: true, reason: "Connected", message, facts: Some(facts) }
        }
        Err(e) => Outcome { ready: false, reason: e.reason(), message: e.to_string(), facts: None },
    }
}

fn new_status(
    source: &MigrationSource,
    previous: MigrationSourceStatus,
    outcome: &Outcome,
) -> MigrationSourceStatus {
    let mut status = previous;
    set_condition(
        &mut status.conditions,
        "Ready",
        outcome.ready,
        outcome.reason,
        outcome.message.clone(),
    );
    if let Some(facts) = &outcome.facts {
        status.server_version = Some(facts.version.clone());
        status.flavor = Some(facts.flavor.clone());
        status.binlog = Some(facts.binlog.clone());
        let problems = binlog_problems(facts, source.spec.source_type);
        let (ok, reason, message) = if problems.is_empty() {
            (true, "BinlogReady", "binary log settings allow replication".to_string())
        } else {
            (false, "BinlogSettings", format!("{} (full copies still work)", problems.join("; ")))
        };
        set_condition(&mut status.conditions, "BinlogReady", ok, reason, message);
    }
    status.last_check_time = Some(k8s_openapi::jiff::Timestamp::now().to_string());
    status.observed_generation = source.meta().generation;
    status
}

fn condition_status(status: &MigrationSourceStatus, type_: &str) -> Option<bool> {
    status.conditions.iter().find(|c| c.type_ == type_).map(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_checked_again_when_due_or_when_its_spec_or_secrets_change() {
        let checks = SourceChecks::default();
        let key = ("shop".to_string(), "src".to_string());
        let inputs =
            Inputs { generation: Some(1), secrets: vec![("source".into(), Some("41".into()))] };
        let start = Instant::now();
        assert_eq!(checks.wait(&key, &inputs, start), None, "never checked");
        checks.record(key.clone(), inputs.clone(), start, Duration::from_secs(60));
        // The reconcile that the check's own status write triggers.
        let soon = start + Duration::from_secs(1);
        assert_eq!(checks.wait(&key, &inputs, soon), Some(Duration::from_secs(59)));
        let rotated =
            Inputs { secrets: vec![("source".into(), Some("42".into()))], ..inputs.clone() };
        assert_eq!(checks.wait(&key, &rotated, soon), None, "Secret changed");
        let edited = Inputs { generation: Some(2), ..inputs.clone() };
        assert_eq!(checks.wait(&key, &edited, soon), None, "spec changed");
        assert_eq!(checks.wait(&key, &inputs, start + Duration::from_secs(60)), None, "due");
        // A source not checked for twice its interval is forgotten.
        let other = ("shop".to_string(), "other".to_string());
        checks.record(
            other,
            inputs.clone(),
            start + Duration::from_secs(120),
            Duration::from_secs(60),
        );
        assert_eq!(checks.lock().len(), 1);
    }
}
