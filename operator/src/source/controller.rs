//! The MigrationSource reconciler: connects with the referenced credentials, records the
//! server's version, flavor and binary log settings, and sets the Ready condition (the server
//! answered) and the BinlogReady condition (it can feed binlog replication). It checks again
//! every `source_recheck` and whenever one of the Secrets changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_crds::API_VERSION;
use ferry_crds::contract::set_condition;
use ferry_crds::source::{MigrationSource, MigrationSourceStatus};
use ferry_worker::manifest::Manifest;
use ferry_worker::precheck::BinlogReadiness;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::check::{self, ConditionValue, binlog_ready};
use super::schedule::{Inputs, SourceChecks};
use super::secret_refs;
use crate::context::{Context, FIELD_MANAGER};
use crate::error::{Error, Result, kube_err};
use crate::events::EventKind;
use crate::scope;
use crate::secrets::Loaded;

pub const CONTROLLER: &str = "source";

/// What a reconcile of a source uses: the shared context and the record of past checks, which
/// only this controller keeps.
struct SourceContext {
    shared: Arc<Context>,
    checks: SourceChecks,
}

/// Runs the controller until `shutdown`, once per watched namespace (sharing the record of
/// checks).
pub async fn run(shared: Arc<Context>, shutdown: CancellationToken) {
    let scope = shared.settings.scope.clone();
    let ctx = Arc::new(SourceContext { shared, checks: SourceChecks::default() });
    scope::run_each(&scope, shutdown, |namespace, stop| run_in(ctx.clone(), stop, namespace)).await;
}

/// The controller for the sources of `namespace` (`None`: every namespace).
async fn run_in(ctx: Arc<SourceContext>, shutdown: CancellationToken, namespace: Option<String>) {
    let client = &ctx.shared.client;
    let sources: Api<MigrationSource> = scope::api(client, namespace.as_deref());
    let secrets: Api<Secret> = scope::api(client, namespace.as_deref());
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

fn error_policy(_source: Arc<MigrationSource>, error: &Error, ctx: Arc<SourceContext>) -> Action {
    tracing::warn!(controller = CONTROLLER, "reconcile failed: {error}");
    ctx.shared.metrics.reconcile_error(CONTROLLER, error.metric_label());
    Action::requeue(Duration::from_secs(15))
}

/// Outcome of one check: the Ready condition, and the binlog readiness when connected.
struct Outcome {
    ready: ConditionValue,
    readiness: Option<BinlogReadiness>,
}

async fn reconcile(source: Arc<MigrationSource>, source_ctx: Arc<SourceContext>) -> Result<Action> {
    let ctx = &source_ctx.shared;
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let namespace = source.namespace().ok_or_else(|| Error::Unnamed(source.name_any()))?;
    let loaded = crate::secrets::load(&ctx.client, &namespace, &secret_refs(&source)).await?;
    let key = (namespace.clone(), source.name_any());
    let inputs = Inputs { generation: source.meta().generation, secrets: loaded.versions.clone() };
    if let Some(wait) = source_ctx.checks.wait(&key, &inputs, Instant::now()) {
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
    let ready = &outcome.ready;
    if was_ready != Some(ready.status) {
        let kind = if ready.status { EventKind::Normal } else { EventKind::Warning };
        ctx.event(&source.object_ref(&()), kind, ready.reason, "Check", ready.message.clone())
            .await;
    }
    let recheck = if ready.status { ctx.settings.source_recheck } else { NOT_READY_RECHECK };
    source_ctx.checks.record(key, inputs, Instant::now(), recheck);
    Ok(Action::requeue(recheck))
}

/// How often a source that is not Ready is checked again when nothing changes.
const NOT_READY_RECHECK: Duration = Duration::from_secs(60);

async fn check(source: &MigrationSource, namespace: &str, loaded: Loaded) -> Outcome {
    let not_ready = |reason, message| Outcome {
        ready: ConditionValue { status: false, reason, message },
        readiness: None,
    };
    if !loaded.problems.is_empty() {
        let message = format!("{}; create it or fix the reference", loaded.problems.join("; "));
        return not_ready("SecretMissing", message);
    }
    let endpoint = Manifest::from_objects(loaded.secrets, vec![source.clone()], Vec::new())
        .ok()
        .and_then(|m| m.source_endpoint(namespace, &source.name_any()));
    let Some(endpoint) = endpoint else {
        return not_ready("SecretMissing", "the referenced Secrets could not be resolved".into());
    };
    match check::check(&endpoint, source.spec.source_type).await {
        Ok(readiness) => {
            let message = format!(
                "connected to {} ({} {})",
                endpoint.describe(),
                readiness.version.flavor,
                readiness.version.text
            );
            let ready = ConditionValue { status: true, reason: "Connected", message };
            Outcome { ready, readiness: Some(readiness) }
        }
        Err(e) => not_ready(e.reason(), e.to_string()),
    }
}

fn new_status(
    source: &MigrationSource,
    previous: MigrationSourceStatus,
    outcome: &Outcome,
) -> MigrationSourceStatus {
    let mut status = previous;
    let ready = &outcome.ready;
    set_condition(
        &mut status.conditions,
        "Ready",
        ready.status,
        ready.reason,
        ready.message.clone(),
    );
    if let Some(readiness) = &outcome.readiness {
        status.server_version = Some(readiness.version.text.clone());
        status.flavor = Some(readiness.version.flavor.to_string());
        status.binlog = Some(readiness.binlog.clone());
        let binlog = binlog_ready(readiness);
        set_condition(
            &mut status.conditions,
            "BinlogReady",
            binlog.status,
            binlog.reason,
            binlog.message,
        );
    }
    status.last_check_time = Some(k8s_openapi::jiff::Timestamp::now().to_string());
    status.observed_generation = source.meta().generation;
    status
}

fn condition_status(status: &MigrationSourceStatus, type_: &str) -> Option<bool> {
    status.conditions.iter().find(|c| c.type_ == type_).map(|c| c.status == "True")
}
