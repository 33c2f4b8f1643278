//! The MigrationJob reconciler: observes the job, its worker pods and its references, asks
//! `decisions::decide` what to do, does it, and applies the operator's part of the status.

use std::sync::Arc;
use std::time::Duration;

use ferry_crds::contract::{OPERATOR_CONDITIONS, observe_generation, set_condition};
use ferry_crds::job::{MigrationJob, MigrationJobStatus, Phase};
use ferry_crds::source::MigrationSource;
use ferry_crds::{API_VERSION, SecretKeyRef};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Error as FinalizerError, Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::decisions::{
    self, Action as Do, Decision, EventKind, Gate, JobView, NewWorker, ReportedError,
};
use super::pod::{self, ATTEMPT_ANNOTATION, job_secret_refs, newest, observe, selector};
use crate::context::{Context, FIELD_MANAGER};
use crate::error::{Error, Result, kube_err};
use crate::scope;
use crate::source::secret_refs;

pub const CONTROLLER: &str = "job";
/// Finalizer that stops the worker before a MigrationJob goes away.
pub const FINALIZER: &str = "ferry.dev/stop-worker";
/// Reconcile at least this often, to refresh metrics and catch anything a watch missed.
const RESYNC: Duration = Duration::from_secs(300);

/// Runs the controller until `shutdown`, once per watched namespace.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let scope = ctx.settings.scope.clone();
    scope::run_each(&scope, shutdown, |namespace, stop| run_in(ctx.clone(), stop, namespace)).await;
}

/// The controller for the jobs of `namespace` (`None`: every namespace).
async fn run_in(ctx: Arc<Context>, shutdown: CancellationToken, namespace: Option<String>) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let controller =
        Controller::new(scope::api::<MigrationJob>(&client, ns), watcher::Config::default());
    let by_source = controller.store();
    let by_secret = controller.store();
    let held_back = controller.store();
    let pods = watcher::Config::default().labels("app.kubernetes.io/name=ferry-worker");
    controller
        .owns(scope::api::<Pod>(&client, ns), pods)
        .watches(
            scope::api::<MigrationSource>(&client, ns),
            watcher::Config::default(),
            move |source| {
                let (ns, name) = (source.namespace(), source.name_any());
                by_source
                    .state()
                    .into_iter()
                    .filter(|j| j.namespace() == ns && j.spec.source_ref.name == name)
                    .map(|j| ObjectRef::from_obj(&*j))
                    .collect::<Vec<_>>()
            },
        )
        .watches(scope::api::<Secret>(&client, ns), watcher::Config::default(), move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            by_secret
                .state()
                .into_iter()
                .filter(|j| j.namespace() == ns && job_secret_refs(j).any(|r| r.name == name))
                .map(|j| ObjectRef::from_obj(&*j))
                .collect::<Vec<_>>()
        })
        // A job going away frees a place under the job limit: the jobs it holds back check at
        // once rather than at their next BLOCKED_RECHECK.
        .watches(scope::api::<MigrationJob>(&client, ns), watcher::Config::default(), {
            move |gone| {
                if gone.metadata.deletion_timestamp.is_none() {
                    return Vec::new();
                }
                let ns = gone.namespace();
                let waiting = held_back.state().into_iter();
                let waiting = waiting.filter(|j| j.namespace() == ns && held_back_by_limit(j));
                waiting.map(|j| ObjectRef::from_obj(&*j)).collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

const JOB_LIMIT_EXCEEDED: &str = "JobLimitExceeded";

/// Whether the job waits for a place under --max-jobs-per-namespace.
fn held_back_by_limit(job: &MigrationJob) -> bool {
    let mut conditions = job.status.iter().flat_map(|s| &s.conditions);
    conditions.any(|c| c.type_ == "Ready" && c.reason == JOB_LIMIT_EXCEEDED)
}

fn error_policy(_job: Arc<MigrationJob>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(CONTROLLER, error.metric_label());
    // Waiting for a worker to stop is expected during deletion: checked again soon, quietly.
    if matches!(error, Error::Finalizer { .. } | Error::WorkerStillRunning(..)) {
        tracing::info!(controller = CONTROLLER, "{error}");
        return Action::requeue(Duration::from_secs(2));
    }
    tracing::warn!(controller = CONTROLLER, "reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(job: Arc<MigrationJob>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started(CONTROLLER);
    let namespace = job.namespace().ok_or_else(|| Error::Unnamed(job.name_any()))?;
    let api: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let object = format!("MigrationJob {namespace}/{}", job.name_any());
    finalizer(&api, FINALIZER, job, |event| async {
        match event {
            Finalizer::Apply(job) => apply(&job, &namespace, &ctx).await,
            Finalizer::Cleanup(job) => cleanup(&job, &namespace, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        // The reconcile's own error keeps its label in the error metric.
        FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => inner,
        other => Error::Finalizer { object, message: other.to_string() },
    })
}

/// The job's worker pods, oldest first.
async fn worker_pods(job: &MigrationJob, namespace: &str, ctx: &Context) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&selector(job)))
        .await
        .map_err(kube_err(format!("list the worker pods of {}", job.name_any())))?;
    Ok(list.items)
}

async fn apply(cached: &MigrationJob, namespace: &str, ctx: &Context) -> Result<Action> {
    // The informer's copy can trail this controller's own status writes (a recorded restart
    // request, say); deciding on it could act twice, so decide on the stored object.
    let jobs: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), namespace);
    let name = cached.name_any();
    let Some(job) = jobs
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("read MigrationJob {namespace}/{name}")))?
    else {
        return Ok(Action::await_change());
    };
    let job = &job;
    let pods = worker_pods(job, namespace, ctx).await?;
    let current = newest(&pods).map(observe);
    let gate = gate(job, namespace, ctx).await?;
    let status = job.status.clone().unwrap_or_default();
    let previous_reason =
        status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.clone());
    let now = Timestamp::now().as_second();
    let d = decisions::decide(
        &view(job),
        &gate,
        current.as_ref(),
        status.phase,
        &ctx.settings.backoff,
        now,
    );
    tracing::debug!(job = %job.name_any(), ?d, "decided");
    let worker_pod = execute(job, namespace, &d, &pods, ctx).await?;
    apply_status(job, namespace, &d, worker_pod, ctx).await?;
    if let Some(kind) = decisions::transition_event(status.phase, previous_reason.as_deref(), &d) {
        ctx.event(&job.object_ref(&()), kind, d.reason, "Reconcile", d.message.clone()).await;
    }
    ctx.metrics.observe_job(namespace, &job.name_any(), d.phase, &status);
    Ok(Action::requeue(d.requeue.unwrap_or(RESYNC)))
}

/// What decisions need from the MigrationJob.
pub fn view(job: &MigrationJob) -> JobView {
    let status = job.status.clone().unwrap_or_default();
    JobView {
        paused: job.spec.paused,
        tier: job.spec.tier,
        restart_request: job.spec.restart_request.clone(),
        last_restart_request: status.last_restart_request,
        stage: status.stage,
        last_error: status.last_error.map(|e| ReportedError {
            time: e.time.parse::<Timestamp>().ok().map(|t| t.as_second()),
            message: e.message,
            retryable: e.retryable,
        }),
    }
}

/// Whether a worker may start: job limit, source present and Ready, every Secret key present.
async fn gate(job: &MigrationJob, namespace: &str, ctx: &Context) -> Result<Gate> {
    let limit = ctx.settings.max_jobs_per_namespace;
    let jobs: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), namespace);
    let mut all = jobs
        .list(&ListParams::default())
        .await
        .map_err(kube_err(format!("list MigrationJobs in {namespace}")))?
        .items;
    all.sort_by_key(|j| (j.metadata.creation_timestamp.clone().map(|t| t.0), j.name_any()));
    if all.iter().position(|j| j.name_any() == job.name_any()).is_some_and(|i| i >= limit) {
        let message = format!(
            "namespace {namespace} has {} MigrationJobs and at most {limit} run (operator setting \
             --max-jobs-per-namespace); delete finished jobs or raise the limit",
            all.len()
        );
        return Ok(Gate::Blocked { reason: JOB_LIMIT_EXCEEDED, message });
    }
    let sources: Api<MigrationSource> = Api::namespaced(ctx.client.clone(), namespace);
    let name = &job.spec.source_ref.name;
    let Some(source) = sources
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read MigrationSource {namespace}/{name}")))?
    else {
        let message = format!(
            "MigrationSource {name} not found in namespace {namespace}; create it or fix spec.sourceRef"
        );
        return Ok(Gate::Blocked { reason: "SourceNotFound", message });
    };
    let ready =
        source.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    if ready.is_none_or(|c| c.status != "True") {
        let why = ready.map(|c| c.message.clone()).unwrap_or_else(|| "not checked yet".into());
        let message = format!("MigrationSource {name} is not Ready: {why}");
        return Ok(Gate::Blocked { reason: "SourceNotReady", message });
    }
    let refs: Vec<&SecretKeyRef> = job_secret_refs(job).collect();
    let loaded = crate::secrets::load(&ctx.client, namespace, &refs).await?;
    if !loaded.problems.is_empty() {
        let message = format!("{}; create it or fix spec.target", loaded.problems.join("; "));
        return Ok(Gate::Blocked { reason: "SecretMissing", message });
    }
    Ok(Gate::Open)
}

/// Carries out the decision; returns the name of the worker pod the job has now.
async fn execute(
    job: &MigrationJob,
    namespace: &str,
    d: &Decision,
    pods: &[Pod],
    ctx: &Context,
) -> Result<Option<String>> {
    let current =
        newest(pods).filter(|p| p.metadata.deletion_timestamp.is_none()).map(|p| p.name_any());
    match &d.action {
        Do::Nothing => Ok(current),
        Do::DeleteWorkers => {
            delete_pods(job, namespace, pods, ctx).await?;
            Ok(None)
        }
        Do::Create(new) => {
            let name = create_worker(job, namespace, new, ctx).await?;
            let older: Vec<Pod> =
                pods.iter().filter(|p| attempt(p) < new.attempt).cloned().collect();
            delete_pods(job, namespace, &older, ctx).await?;
            Ok(Some(name))
        }
    }
}

fn attempt(pod: &Pod) -> u32 {
    pod.annotations().get(ATTEMPT_ANNOTATION).and_then(|a| a.parse().ok()).unwrap_or(0)
}

async fn delete_pods(
    job: &MigrationJob,
    namespace: &str,
    pods: &[Pod],
    ctx: &Context,
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for pod in pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        let name = pod.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                let note = format!("deleted worker pod {name}");
                ctx.event(
                    &job.object_ref(&()),
                    EventKind::Normal,
                    "WorkerDeleted",
                    "DeleteWorker",
                    note,
                )
                .await;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("delete worker pod {namespace}/{name}"))(e)),
        }
    }
    Ok(())
}

async fn create_worker(
    job: &MigrationJob,
    namespace: &str,
    new: &NewWorker,
    ctx: &Context,
) -> Result<String> {
    ensure_rbac(job, namespace, ctx).await?;
    let sources: Api<MigrationSource> = Api::namespaced(ctx.client.clone(), namespace);
    let source_name = &job.spec.source_ref.name;
    let source = sources
        .get(source_name)
        .await
        .map_err(kube_err(format!("read MigrationSource {namespace}/{source_name}")))?;
    let pod = pod::worker_pod(job, &secret_refs(&source), new, &ctx.settings.pod);
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            let tier = super::tiers::tier_name(job.spec.tier);
            let note = format!("created worker pod {name} (tier {tier}, attempt {})", new.attempt);
            ctx.event(
                &job.object_ref(&()),
                EventKind::Normal,
                "WorkerCreated",
                "CreateWorker",
                note,
            )
            .await;
        }
        // Created by an earlier reconcile whose status write did not land.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(kube_err(format!("create worker pod {namespace}/{name}"))(e)),
    }
    Ok(name)
}

/// The worker's ServiceAccount, Role and RoleBinding, applied (idempotent).
async fn ensure_rbac(job: &MigrationJob, namespace: &str, ctx: &Context) -> Result<()> {
    let (account, role, binding) = pod::worker_rbac(job);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = account.name_any();
    let what = |kind: &str| format!("apply the worker {kind} {namespace}/{name}");
    Api::<ServiceAccount>::namespaced(ctx.client.clone(), namespace)
        .patch(&name, &params, &Patch::Apply(&account))
        .await
        .map_err(kube_err(what("ServiceAccount")))?;
    Api::<Role>::namespaced(ctx.client.clone(), namespace)
        .patch(&name, &params, &Patch::Apply(&role))
        .await
        .map_err(kube_err(what("Role")))?;
    Api::<RoleBinding>::namespaced(ctx.client.clone(), namespace)
        .patch(&name, &params, &Patch::Apply(&binding))
        .await
        .map_err(kube_err(what("RoleBinding")))?;
    Ok(())
}

/// The operator's fields of the status (see `ferry_crds::contract` for who owns what).
pub fn operator_status(
    previous: &MigrationJobStatus,
    d: &Decision,
    worker_pod: Option<String>,
    generation: Option<i64>,
) -> MigrationJobStatus {
    let mut conditions: Vec<_> = previous
        .conditions
        .iter()
        .filter(|c| OPERATOR_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let ready = matches!(d.phase, Phase::Running | Phase::Completed);
    set_condition(&mut conditions, "Ready", ready, d.reason, d.message.clone());
    let failed = d.failed || d.phase == Phase::Failed;
    let (reason, message) =
        if failed { (d.reason, d.message.clone()) } else { ("NoError", String::new()) };
    set_condition(&mut conditions, "Failed", failed, reason, message);
    let paused = d.phase == Phase::Paused;
    let (reason, message) =
        if paused { (d.reason, d.message.clone()) } else { ("NotPaused", String::new()) };
    set_condition(&mut conditions, "Paused", paused, reason, message);
    // What `kubectl wait --for=condition=Completed` gates on: Ready is also true while a job
    // still copies or replicates.
    let completed = d.phase == Phase::Completed;
    let (reason, message) =
        if completed { (d.reason, d.message.clone()) } else { ("NotCompleted", String::new()) };
    set_condition(&mut conditions, "Completed", completed, reason, message);
    observe_generation(&mut conditions, generation);
    let recorded = match &d.action {
        Do::Create(NewWorker { restart_request: Some(r), .. }) => Some(r.clone()),
        _ => previous.last_restart_request.clone(),
    };
    MigrationJobStatus {
        phase: Some(d.phase),
        conditions,
        worker_pod,
        last_restart_request: recorded,
        observed_generation: generation,
        ..Default::default()
    }
}

async fn apply_status(
    job: &MigrationJob,
    namespace: &str,
    d: &Decision,
    worker_pod: Option<String>,
    ctx: &Context,
) -> Result<()> {
    let previous = job.status.clone().unwrap_or_default();
    let status = operator_status(&previous, d, worker_pod, job.meta().generation);
    let body = json!({"apiVersion": API_VERSION, "kind": "MigrationJob", "status": status});
    let api: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        &job.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(kube_err(format!(
        "apply the status of MigrationJob {namespace}/{}",
        job.name_any()
    )))?;
    Ok(())
}

/// Deletion: stop every worker pod and wait until they are gone, then delete the job's rows of
/// `ferry_meta` on the target (the migrated tables stay); the ServiceAccount, Role and
/// RoleBinding go with the job through their owner reference.
async fn cleanup(job: &MigrationJob, namespace: &str, ctx: &Context) -> Result<Action> {
    let pods = worker_pods(job, namespace, ctx).await?;
    if pods.is_empty() {
        forget_checkpoints(job, namespace, ctx).await?;
        ctx.metrics.forget_job(namespace, &job.name_any());
        return Ok(Action::await_change());
    }
    delete_pods(job, namespace, &pods, ctx).await?;
    Err(Error::WorkerStillRunning(pods.len(), job.name_any()))
}

/// How long a deletion keeps trying to reach the target to delete the job's checkpoints; then
/// they are left (a job created again under the name starts fresh all the same, and deletes
/// them).
const FORGET_FOR: Duration = Duration::from_secs(300);

/// Deletes the job's rows of `ferry_meta` on its target; gives up, with a Warning event, when
/// the target stays out of reach for [`FORGET_FOR`] (a namespace being deleted may have lost
/// the Secrets already).
async fn forget_checkpoints(job: &MigrationJob, namespace: &str, ctx: &Context) -> Result<()> {
    let Some(uid) = job.uid() else { return Ok(()) };
    // Only a worker writes checkpoints: a job that never had one (no pod, no stage reported)
    // has none to delete, and its target may well be wrong.
    if job.status.as_ref().is_none_or(|s| s.worker_pod.is_none() && s.stage.is_none()) {
        return Ok(());
    }
    let name = format!("{namespace}/{}", job.name_any());
    let refs: Vec<&SecretKeyRef> = job_secret_refs(job).collect();
    let loaded = crate::secrets::load(&ctx.client, namespace, &refs).await?;
    let outcome = match ferry_worker::manifest::target_endpoint(loaded.secrets, job) {
        None => {
            Err(format!("the target's credentials are missing: {}", loaded.problems.join("; ")))
        }
        Some(endpoint) => forget_on(&endpoint, uid, &name).await.map_err(|e| e.to_string()),
    };
    let object = job.object_ref(&());
    let deleted_at = job.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    let give_up = deleted_at.map(|t| t + FORGET_FOR);
    match outcome {
        Ok(rows) => {
            let note = format!(
                "deleted the job's {rows} rows of ferry_meta on the target; the migrated tables stay"
            );
            ctx.event(&object, EventKind::Normal, "CheckpointsDeleted", "Delete", note).await;
            Ok(())
        }
        Err(problem) if give_up.is_some_and(|t| Timestamp::now() < t) => {
            let give_up = give_up.map(|t| t.to_string()).unwrap_or_default();
            Err(Error::Checkpoints { job: name, problem, give_up })
        }
        Err(problem) => {
            let note = format!(
                "could not delete the job's rows of ferry_meta on the target ({problem}); they \
                 stay there, unused (a new job of the same name starts fresh). Delete them with \
                 DELETE FROM ferry_meta.<table> WHERE job = '{}' in each ferry_meta table",
                job.uid().unwrap_or_default()
            );
            ctx.event(&object, EventKind::Warning, "CheckpointsKept", "Delete", note).await;
            Ok(())
        }
    }
}

async fn forget_on(
    endpoint: &ferry_worker::config::Endpoint,
    uid: String,
    name: &str,
) -> ferry_worker::Result<u64> {
    let mut conn = ferry_worker::connect::connect(endpoint, "target").await?;
    let owner = ferry_worker::meta::jobs::Owner::Kubernetes { uid };
    let deleted = ferry_worker::meta::jobs::forget(&mut conn, &owner, name).await;
    drop(conn.disconnect().await);
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_status_keeps_worker_conditions_out_and_records_restarts() {
        let mut previous =
            MigrationJobStatus { last_restart_request: Some("r0".into()), ..Default::default() };
        set_condition(&mut previous.conditions, "Prechecked", true, "Passed", "ok");
        let d = Decision {
            action: Do::Create(NewWorker {
                attempt: 1,
                failures: 0,
                restart_request: Some("r1".into()),
            }),
            phase: Phase::Pending,
            reason: "Restarting",
            message: "restart".into(),
            failed: false,
            requeue: None,
        };
        let s = operator_status(&previous, &d, Some("copy-worker-1".into()), Some(4));
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Failed", "Paused", "Completed"]);
        assert!(s.conditions.iter().all(|c| c.type_ != "Completed" || c.status == "False"));
        assert_eq!(s.last_restart_request.as_deref(), Some("r1"));
        assert_eq!(s.observed_generation, Some(4));
        let generations: Vec<_> = s.conditions.iter().map(|c| c.observed_generation).collect();
        assert_eq!(generations, [Some(4); 4], "every condition says which spec it is about");
        assert_eq!(s.stage, None, "the stage belongs to the worker");
        let d = Decision {
            action: Do::Nothing,
            phase: Phase::Failed,
            reason: "Failed",
            failed: true,
            ..d
        };
        let s = operator_status(&previous, &d, None, None);
        assert_eq!(s.last_restart_request.as_deref(), Some("r0"));
        let failed = s.conditions.iter().find(|c| c.type_ == "Failed").expect("Failed condition");
        assert_eq!((failed.status.as_str(), failed.reason.as_str()), ("True", "Failed"));
        let d = Decision { phase: Phase::Completed, reason: "Completed", failed: false, ..d };
        let s = operator_status(&previous, &d, None, None);
        let done = s.conditions.iter().find(|c| c.type_ == "Completed").expect("Completed");
        assert_eq!((done.status.as_str(), done.reason.as_str()), ("True", "Completed"));
    }
}
