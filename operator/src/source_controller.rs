//! The MigrationSource reconciler: connects with the referenced credentials, records the
//! server's version, flavor and binary log settings, and sets the Ready condition (the server
//! answered) and the BinlogReady condition (it can feed binlog replication). It checks again
//! every `source_recheck` and whenever one of the Secrets changes.

use std::sync::Arc;
use std::time::Duration;

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

async fn reconcile(source: Arc<MigrationSource>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciled(CONTROLLER);
    let namespace = source.namespace().ok_or_else(|| Error::Unnamed(source.name_any()))?;
    let outcome = check(&source, &namespace, &ctx).await?;
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
    let recheck = if outcome.ready { ctx.settings.source_recheck } else { Duration::from_secs(60) };
    Ok(Action::requeue(recheck))
}

async fn check(source: &MigrationSource, namespace: &str, ctx: &Context) -> Result<Outcome> {
    let loaded = crate::secrets::load(&ctx.client, namespace, &secret_refs(source)).await?;
    if !loaded.problems.is_empty() {
        let message = format!("{}; create it or fix the reference", loaded.problems.join("; "));
        return Ok(Outcome { ready: false, reason: "SecretMissing", message, facts: None });
    }
    let endpoint = Manifest::from_objects(loaded.secrets, vec![source.clone()], Vec::new())
        .ok()
        .and_then(|m| m.source_endpoint(namespace, &source.name_any()));
    let Some(endpoint) = endpoint else {
        let message = "the referenced Secrets could not be resolved".to_string();
        return Ok(Outcome { ready: false, reason: "SecretMissing", message, facts: None });
    };
    Ok(match source_check::check(&endpoint).await {
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
    })
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
