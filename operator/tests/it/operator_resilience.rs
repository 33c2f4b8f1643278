//! The operator when things go wrong, on the harness's real control plane (etcd,
//! kube-apiserver, kube-controller-manager; pods run as local processes by its node agent),
//! Ferry installed from `deploy/`: a leader replica killed or shut down, more jobs than the
//! namespace may run, and a Secret with a wrong password that is then fixed.
//!
//! Needs the Kubernetes binaries (`dev/build-go-tools.sh kube`); fails, not skips, without them.

use crate::cluster;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use cluster::{
    Cluster, Install, ONE_CLUSTER_AT_A_TIME, OPERATOR_NAMESPACE, create_secret, job_object,
    local_pid, metric, operator_pods, phase, process_ended, reason, source_object, wait_for,
};
use ferry_crds::job::MigrationMode::Full;
use ferry_crds::job::Tier::Small;
use ferry_crds::job::{MigrationJob, Phase};
use ferry_crds::source::MigrationSource;
use ferry_harness::{MariaDb, SqlServer};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

const STEP: Duration = Duration::from_secs(120);
/// The operator's Lease timing (operator/src/run.rs): a holder renews every 5 s, a standby
/// tries every 5 s, and a Lease not renewed for 15 s is free.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const LEASE_RENEW: Duration = Duration::from_secs(5);
const LEASE: &str = "ferry-operator";
const JOB_RECONCILES: &str = "ferry_reconciles_total{controller=\"job\"}";
const SOURCE_RECONCILES: &str = "ferry_reconciles_total{controller=\"source\"}";

/// A MariaDB source with `shop.items` and user `ferry` (password `src-pw`), and a MariaDB
/// target with user `ferry` (password `dst-pw`).
async fn databases() -> anyhow::Result<(MariaDb, MariaDb)> {
    let (source, target) = (MariaDb::source().await?, MariaDb::target().await?);
    cluster::prepare_shop(&source, &target).await?;
    Ok((source, target))
}

/// Secrets `source` and `target`, MigrationSource `src`, and waits until it is Ready.
async fn ready_source(
    cluster: &Cluster,
    namespace: &str,
    source: &MariaDb,
) -> anyhow::Result<Api<MigrationSource>> {
    cluster.create_namespace(namespace).await?;
    create_secret(&cluster.client, namespace, "source", "src-pw").await?;
    create_secret(&cluster.client, namespace, "target", "dst-pw").await?;
    let sources: Api<MigrationSource> = Api::namespaced(cluster.client.clone(), namespace);
    sources.create(&PostParams::default(), &source_object(source.port())).await?;
    wait_for(
        "the MigrationSource becomes Ready",
        STEP,
        || async { Ok(source_ready(&sources.get("src").await?).filter(|r| *r).map(|_| ())) },
        async || format!("{:#?}", sources.get("src").await.ok().and_then(|s| s.status)),
    )
    .await?;
    Ok(sources)
}

/// The status of the source's Ready condition.
fn source_ready(source: &MigrationSource) -> Option<bool> {
    let conditions = source.status.as_ref()?.conditions.iter();
    conditions.into_iter().find(|c| c.type_ == "Ready").map(|c| c.status == "True")
}

async fn lease(client: &Client) -> anyhow::Result<LeaseSpec> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    leases.get(LEASE).await?.spec.context("the Lease has no spec")
}

/// Waits until `replicas` operator replicas serve metrics and exactly one of them, `holder`,
/// says it leads (`ferry_leader 1`); the standbys have reconciled nothing. Every replica is
/// ready (`/readyz`): the leader with both controllers running, a standby waiting for the lease.
async fn only_leader(cluster: &Cluster, holder: &str, replicas: usize) -> anyhow::Result<()> {
    let seen = StdMutex::new(String::new());
    wait_for(
        &format!("{replicas} operator replicas, {holder} alone leading, all ready"),
        STEP,
        || async {
            let pods = operator_pods(&cluster.client).await?;
            let mut leaders = Vec::new();
            let mut unready = Vec::new();
            for pod in &pods {
                let name = pod.name_any();
                let Some(page) = cluster.operator_metrics(&name).await else { return Ok(None) };
                let Some((status, readyz)) = cluster.operator_page(&name, "/readyz").await else {
                    return Ok(None);
                };
                let version =
                    format!("ferry_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
                ensure!(metric(&page, &version) == Some(1.0), "{name} lacks {version}:\n{page}");
                match metric(&page, "ferry_leader") {
                    Some(1.0) => {
                        leaders.push(name.clone());
                        if status != 200 || !readyz.contains("[+]controller job: running") {
                            unready.push(format!("{name}: {status} {readyz}"));
                        }
                    }
                    Some(_) => {
                        let reconciles = metric(&page, JOB_RECONCILES);
                        ensure!(reconciles.is_none(), "standby {name} reconciled: {reconciles:?}");
                        if status != 200 || !readyz.contains("standing by") {
                            unready.push(format!("{name}: {status} {readyz}"));
                        }
                    }
                    None => return Ok(None),
                }
            }
            *seen.lock().unwrap() = format!(
                "replicas {pods:?}, leading: {leaders:?}, not ready: {unready:?}",
                pods = pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
            );
            Ok((pods.len() == replicas && leaders == [holder] && unready.is_empty()).then_some(()))
        },
        async || seen.lock().unwrap().clone(),
    )
    .await
}

/// Waits until the leader's metrics show the completed job `name` of `namespace` by its
/// `namespace` and `migrationjob` labels, with the rows it copied as a counter.
async fn completed_job_metrics(
    cluster: &Cluster,
    leader: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    let labels = format!("namespace=\"{namespace}\",migrationjob=\"{name}\"");
    let status = format!("ferry_job_status{{{labels},stage=\"Completed\",phase=\"Completed\"}}");
    let rows = format!("ferry_job_copied_rows_total{{{labels}}}");
    let last = StdMutex::new(String::new());
    wait_for(
        &format!("the leader's metrics show {namespace}/{name} completed"),
        STEP,
        || async {
            let page = cluster.operator_metrics(leader).await.context("operator metrics")?;
            let done = metric(&page, &status) == Some(1.0)
                && metric(&page, &rows).is_some_and(|n| n > 0.0)
                && metric(
                    &page,
                    &format!("ferry_jobs{{namespace=\"{namespace}\",phase=\"Completed\"}}"),
                )
                .is_some_and(|n| n >= 1.0);
            *last.lock().unwrap() = page;
            Ok(done.then_some(()))
        },
        async || last.lock().unwrap().clone(),
    )
    .await
}

/// Events about the object `name` in `namespace`.
async fn events_about(client: &Client, namespace: &str, name: &str) -> anyhow::Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let all = events.list(&ListParams::default()).await?.items;
    Ok(all
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect())
}

/// How many times an event was reported (a repeated event is one object with a series).
fn occurrences(event: &Event) -> i32 {
    event.series.as_ref().map(|s| s.count).or(event.deprecated_count).unwrap_or(1).max(1)
}

/// Two replicas from deploy/ (its default): exactly one holds the Lease and reconciles. The
/// leader killed with SIGKILL cannot release the Lease; another replica takes it once it
/// expires and runs a new job. A leader stopped with SIGTERM (its pod deleted) releases the
/// Lease as it exits, and another replica takes it far sooner than expiry would allow.
#[tokio::test]
async fn leader_failover_on_sigkill_and_quick_handover_on_sigterm() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (source, target) = databases().await?;
    let cluster = Cluster::local_with(Install::Kustomize).await?;
    let client = cluster.client.clone();
    let namespace = "failover";
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);

    let first = wait_for(
        "an operator replica takes the Lease",
        STEP,
        || async { Ok(lease(&client).await.ok().and_then(|l| l.holder_identity)) },
        async || cluster.describe(namespace, "none").await,
    )
    .await?;
    only_leader(&cluster, &first, 2).await?;
    ready_source(&cluster, namespace, &source).await?;

    // SIGKILL. The node agent, like a kubelet, would restart the killed process in the same pod
    // (same POD_NAME, so same Lease identity) and it would resume its own Lease at once: that
    // is a restart, not a failover. Deleting the pod at once (grace 0) models the leader's node
    // going away: its process never comes back, and a ReplicaSet replacement starts as a
    // standby beside the other replica; either may take the Lease.
    let before = lease(&client).await?;
    let renewed = before.renew_time.clone().context("renewTime")?.0;
    let pid = local_pid(&client, OPERATOR_NAMESPACE, &first).await.context("leader process")?;
    let killed_at = Instant::now();
    let kill = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status()?;
    ensure!(kill.success(), "kill -KILL {pid}");
    pods.delete(&first, &DeleteParams::default().grace_period(0)).await?;
    wait_for(
        "the killed leader's process ends",
        Duration::from_secs(10),
        || async { Ok(process_ended(pid).then_some(())) },
        async || String::new(),
    )
    .await?;
    let held = lease(&client).await?.holder_identity;
    assert_eq!(held.as_deref(), Some(first.as_str()), "a killed leader cannot release its Lease");

    let deadline = LEASE_DURATION + LEASE_RENEW + Duration::from_secs(10);
    let after = wait_for(
        "another replica takes the expired Lease",
        deadline,
        || async {
            let spec = lease(&client).await?;
            Ok(spec.holder_identity.as_ref().is_some_and(|h| *h != first).then_some(spec))
        },
        async || cluster.describe(namespace, "none").await,
    )
    .await?;
    let took = killed_at.elapsed();
    let second = after.holder_identity.clone().context("holder")?;
    let acquired = after.acquire_time.clone().context("acquireTime")?.0;
    let waited = acquired.as_millisecond() - renewed.as_millisecond();
    eprintln!(
        "SIGKILL: {second} took the Lease {took:?} after the kill, {waited} ms after renewal"
    );
    assert!(
        waited >= LEASE_DURATION.as_millis() as i64,
        "the Lease was taken {waited} ms after its last renewal, before it expired"
    );
    assert_eq!(after.lease_transitions, before.lease_transitions.map(|t| t + 1));
    only_leader(&cluster, &second, 2).await?;

    // The new leader runs a job created after the failover: its worker is sized by the tier,
    // the copy completes, and the operator's events name the new leader as their reporter.
    // The new leader runs it to the end.
    cluster
        .run_job(namespace, &job_object("after-failover", Full, Small, target.port()), STEP)
        .await?;
    let workers = cluster.worker_pods(namespace, "after-failover").await?;
    let container = &workers.first().and_then(|p| p.spec.as_ref()).context("worker")?.containers[0];
    let limits = container.resources.as_ref().and_then(|r| r.limits.clone()).context("limits")?;
    assert_eq!((limits["cpu"].0.as_str(), limits["memory"].0.as_str()), ("1", "1Gi"), "small");
    let events = events_about(&client, namespace, "after-failover").await?;
    let created = events.iter().find(|e| e.reason.as_deref() == Some("WorkerCreated"));
    let reporter = created.and_then(|e| e.reporting_instance.as_deref());
    assert_eq!(reporter, Some(second.as_str()), "{events:#?}");
    let (mut source_conn, mut target_conn) = (source.conn().await?, target.conn().await?);
    ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "shop").await?;

    // SIGTERM: deleting the leader's pod sends it SIGTERM; it finishes its reconciles and
    // releases the Lease (holderIdentity cleared), which a watch on the Lease sees.
    let history = Arc::new(StdMutex::new(Vec::<(Instant, Option<String>)>::new()));
    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let config = watcher::Config::default().fields(&format!("metadata.name={LEASE}"));
    let recorder = tokio::spawn({
        let history = history.clone();
        watcher(leases, config).applied_objects().for_each(move |lease| {
            let holder = lease.ok().and_then(|l| l.spec?.holder_identity);
            history.lock().unwrap().push((Instant::now(), holder));
            async {}
        })
    });
    wait_for(
        "the Lease watch starts",
        Duration::from_secs(30),
        || async { Ok((!history.lock().unwrap().is_empty()).then_some(())) },
        async || String::new(),
    )
    .await?;
    let stopped_at = Instant::now();
    pods.delete(&second, &DeleteParams::default()).await?;
    let third = wait_for(
        "another replica takes the released Lease",
        LEASE_DURATION,
        || async {
            let holder = lease(&client).await?.holder_identity;
            Ok(holder.filter(|h| *h != second))
        },
        async || format!("{:?}", history.lock().unwrap()),
    )
    .await?;
    let took = stopped_at.elapsed();
    recorder.abort();
    let released = history
        .lock()
        .unwrap()
        .iter()
        .find(|(at, holder)| *at >= stopped_at && holder.is_none())
        .map(|(at, _)| at.duration_since(stopped_at));
    eprintln!("SIGTERM: {third} took the Lease {took:?} after the signal; released {released:?}");
    let released = released.context("the leader did not release the Lease on SIGTERM")?;
    // Unreleased, the Lease (renewed at most 5 s before the signal) would be free only 10 s
    // after it; released, a standby takes it at its next try, within 5 s.
    assert!(released < Duration::from_secs(5), "released {released:?} after SIGTERM");
    assert!(
        took < LEASE_DURATION - LEASE_RENEW,
        "a standby took the released Lease only {took:?} after SIGTERM"
    );
    Ok(())
}

/// With `--max-jobs-per-namespace=1`, a second job waits with the JobLimitExceeded reason and
/// no worker, without reconciling over and over, and starts as soon as the first is deleted.
#[tokio::test]
async fn job_limit_holds_a_job_back_until_the_first_is_deleted() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let (source, target) = databases().await?;
    let args = vec!["--max-jobs-per-namespace=1".to_string()];
    let cluster = Cluster::local_with(Install::KustomizeWith { replicas: 1, args }).await?;
    let client = cluster.client.clone();
    let namespace = "limited";
    ready_source(&cluster, namespace, &source).await?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), namespace);
    cluster.run_job(namespace, &job_object("first", Full, Small, target.port()), STEP).await?;

    // A finished job still counts: the second waits, saying why.
    jobs.create(&PostParams::default(), &job_object("second", Full, Small, target.port())).await?;
    let key = (namespace, "second");
    let job = cluster
        .wait_job(key, "the second job is held back by the limit", STEP, |j| {
            reason(j, "Ready") == Some("JobLimitExceeded")
        })
        .await?;
    let ready = job.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let message = ready.map(|c| c.message.as_str()).unwrap_or_default();
    assert!(message.contains("at most 1 run") && message.contains("--max-jobs-per-namespace"));
    assert_eq!(phase(&job), Some(Phase::Pending));
    assert!(cluster.worker_pods(namespace, "second").await?.is_empty(), "no worker when held");
    let events = events_about(&client, namespace, "second").await?;
    let limit = |events: &[Event]| -> Vec<Event> {
        let held = events.iter().filter(|e| e.reason.as_deref() == Some("JobLimitExceeded"));
        held.cloned().collect()
    };
    let held = limit(&events);
    assert!(
        held.iter().any(|e| e.note.as_deref().is_some_and(|n| n.contains("at most 1 run"))),
        "{events:#?}"
    );

    // No hot loop: over 10 s the waiting job is reconciled a handful of times at most (it
    // checks again every 30 s) and its event is not repeated.
    let leader = lease(&client).await?.holder_identity.context("leader")?;
    // Both controllers: the source's status changes wake the jobs that use it.
    let reconciles = async || {
        let page = cluster.operator_metrics(&leader).await.context("operator metrics")?;
        let job = metric(&page, JOB_RECONCILES).context("no job reconcile count")?;
        Ok::<_, anyhow::Error>(job + metric(&page, SOURCE_RECONCILES).unwrap_or(0.0))
    };
    let versions = async || -> anyhow::Result<Vec<Option<String>>> {
        let list = jobs.list(&ListParams::default()).await?.items;
        Ok(list.iter().map(|j| j.metadata.resource_version.clone()).collect())
    };
    let (start, before) = (reconciles().await?, versions().await?);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (more, after) = (reconciles().await? - start, versions().await?);
    eprintln!("reconciles in 10 s while held back: {more}; versions {before:?} -> {after:?}");
    assert!(
        more <= 3.0,
        "{more} reconciles in 10 s while the job waits; versions {before:?} -> {after:?}\n{}\n{}",
        cluster.describe(namespace, "first").await,
        cluster.describe(namespace, "second").await
    );
    let held = limit(&events_about(&client, namespace, "second").await?);
    let times: i32 = held.iter().map(occurrences).sum();
    assert_eq!(times, 1, "JobLimitExceeded reported {times} times: {held:#?}");
    assert!(cluster.worker_pods(namespace, "second").await?.is_empty(), "still no worker");

    // Deleting the first job frees the place; the second starts without waiting for its next
    // periodic check (30 s), and completes.
    let first_uid = cluster.job(namespace, "first").await?.and_then(|j| j.uid()).context("uid")?;
    assert!(checkpoint_rows(&target, &first_uid).await? > 0, "the copy is keyed by the UID");
    jobs.delete("first", &DeleteParams::default()).await?;
    wait_for(
        "the first job is gone",
        STEP,
        || async { Ok(cluster.job(namespace, "first").await?.is_none().then_some(())) },
        async || cluster.describe(namespace, "first").await,
    )
    .await?;
    let freed = Instant::now();
    wait_for(
        "the second job gets a worker",
        Duration::from_secs(15),
        || async {
            Ok((!cluster.worker_pods(namespace, "second").await?.is_empty()).then_some(()))
        },
        async || cluster.describe(namespace, "second").await,
    )
    .await?;
    eprintln!("the second job's worker came {:?} after the first job was gone", freed.elapsed());
    assert_eq!(checkpoint_rows(&target, &first_uid).await?, 0, "deletion left the checkpoints");
    cluster.wait_completed(key, STEP).await?;
    completed_job_metrics(&cluster, &leader, namespace, "second").await?;

    // A job created again under a deleted job's name is a new job: it copies again (into a
    // target emptied since), where resuming the old one's checkpoint would copy nothing.
    jobs.delete("second", &DeleteParams::default()).await?;
    target.exec("DROP DATABASE shop").await?;
    wait_for(
        "the second job is gone",
        STEP,
        || async { Ok(cluster.job(namespace, "second").await?.is_none().then_some(())) },
        async || cluster.describe(namespace, "second").await,
    )
    .await?;
    cluster.run_job(namespace, &job_object("first", Full, Small, target.port()), STEP).await?;
    let copied = target.query_strings("SELECT COUNT(*) FROM shop.items").await?;
    assert_eq!(copied, [Some("3".to_string())], "the new job copied afresh");
    Ok(())
}

/// Rows of `ferry_meta` on the target keyed by `key`, and its registration.
async fn checkpoint_rows(target: &MariaDb, key: &str) -> anyhow::Result<u64> {
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM ferry_meta.full_snapshot WHERE job = '{key}') + \
         (SELECT COUNT(*) FROM ferry_meta.jobs WHERE id = '{key}')"
    );
    let count = target.query_strings(&sql).await?;
    let count = count.first().cloned().flatten().context("a count")?;
    Ok(count.parse()?)
}

/// A source whose Secret holds a wrong password is not Ready, with a reason naming
/// authentication. Fixing the Secret alone (the MigrationSource untouched) makes it Ready
/// within 20 s: the Secret's change triggers the check, where the periodic one would come
/// 60 s after the failed check (300 s, --source-recheck-seconds, once Ready). Neither
/// password shows in the source, the events or the operator's log.
#[tokio::test]
async fn fixing_the_secret_rechecks_the_source_at_once() -> anyhow::Result<()> {
    const WRONG: &str = "wrong-Pw-7c1e";
    const RIGHT: &str = "right-Pw-93fa";
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let source = MariaDb::source().await?;
    source.create_user("ferry", RIGHT, "SELECT, REPLICATION CLIENT").await?;
    let install = Install::KustomizeWith { replicas: 1, args: Vec::new() };
    let cluster = Cluster::local_with(install).await?;
    let client = cluster.client.clone();
    let namespace = "rotation";
    cluster.create_namespace(namespace).await?;
    create_secret(&client, namespace, "source", WRONG).await?;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), namespace);
    sources.create(&PostParams::default(), &source_object(source.port())).await?;
    let describe = async || format!("{:#?}", sources.get("src").await.ok().and_then(|s| s.status));

    let refused = wait_for(
        "the source with a wrong password is not Ready",
        STEP,
        || async { Ok(Some(sources.get("src").await?).filter(|s| source_ready(s) == Some(false))) },
        describe,
    )
    .await?;
    let status = refused.status.as_ref().context("status")?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").context("Ready")?;
    assert_eq!(ready.reason, "AuthenticationFailed", "{ready:?}");
    assert!(ready.message.contains("check the user and the password"), "{ready:?}");

    let mut data = std::collections::BTreeMap::new();
    data.insert("password".to_string(), ByteString(RIGHT.as_bytes().to_vec()));
    let fix = Patch::Merge(json!({"data": data}));
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch("source", &PatchParams::default(), &fix)
        .await?;
    let fixed_at = Instant::now();
    let ready = wait_for(
        "the source becomes Ready after its Secret is fixed",
        Duration::from_secs(20),
        || async { Ok(Some(sources.get("src").await?).filter(|s| source_ready(s) == Some(true))) },
        describe,
    )
    .await?;
    eprintln!("Ready {:?} after the Secret was fixed", fixed_at.elapsed());
    assert_eq!(ready.metadata.generation, refused.metadata.generation, "the spec was not touched");

    let events = events_about(&client, namespace, "src").await?;
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    for expected in ["AuthenticationFailed", "Connected"] {
        assert!(reasons.contains(&expected), "no {expected} event: {reasons:?}");
    }
    let all_events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut seen = vec![
        ("the MigrationSource", serde_json::to_string(&ready)?),
        ("the events", serde_json::to_string(&all_events.list(&ListParams::default()).await?)?),
    ];
    for pod in operator_pods(&client).await? {
        seen.push(("the operator log", cluster.logs(OPERATOR_NAMESPACE, &pod.name_any()).await));
    }
    for (what, text) in &seen {
        ensure!(!text.is_empty(), "{what}: nothing to look at");
        for password in [WRONG, RIGHT] {
            assert!(!text.contains(password), "{what} shows a password");
        }
    }
    Ok(())
}
