//! Ferry on a real control plane: installed with `kubectl apply -k deploy/` (or `helm install`
//! of charts/ferry) on the harness's etcd, kube-apiserver and kube-controller-manager, its operator replicas and worker pods run
//! as local processes by the harness's node agent with exactly the RBAC of their
//! ServiceAccounts, migrating between real MariaDB and TiDB servers.
//!
//! `example_migration_end_to_end` also runs against an existing cluster (the kind suite,
//! `harness/kind/run.sh`): set `FERRY_E2E_KUBECONFIG`, `FERRY_E2E_SOURCE_URL` /
//! `FERRY_E2E_TARGET_URL` (how this process reaches the servers, `mysql://root:PW@HOST:PORT`),
//! `FERRY_E2E_TARGET_KIND` and `FERRY_E2E_SOURCE_ADDRESS` / `FERRY_E2E_TARGET_ADDRESS` (how
//! pods reach them, `HOST:PORT`).
//!
//! Needs the Kubernetes binaries (`dev/build-go-tools.sh kube`) and, for the Helm test, helm
//! (`dev/install-helm.sh`); fails, not skips, without them.

use crate::cluster;

use std::time::Duration;

use anyhow::Context as _;
use cluster::scenario::{self, Database};
use cluster::{
    Cluster, Install, ONE_CLUSTER_AT_A_TIME, OPERATOR_NAMESPACE, create_secret, job_object, phase,
    reason, source_object, wait_for,
};
use ferry_crds::cutover::{CutoverSpec, CutoverState};
use ferry_crds::job::MigrationMode::{Full, FullAndIncremental};
use ferry_crds::job::Tier::{Medium, Small};
use ferry_crds::job::{MigrationJob, Phase, Stage};
use ferry_crds::source::{MigrationSource, SourceType};
use ferry_crds::verification::VerificationState;
use ferry_harness::{ExternalServer, MariaDb, MySql, TiDb};
use ferry_harness::{SqlServer, manifest};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mysql_async::prelude::Queryable;
use serde_json::json;

const STEP: Duration = Duration::from_secs(120);

#[tokio::test]
async fn example_migration_end_to_end() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::from_env_or_local().await?;
    let namespace = "ferry-example";
    match ExternalServer::from_env("FERRY_E2E_SOURCE")? {
        Some(source) => {
            let target = ExternalServer::from_env("FERRY_E2E_TARGET")?
                .context("FERRY_E2E_SOURCE_URL is set but FERRY_E2E_TARGET_URL is not")?;
            let source = in_cluster(&source, "FERRY_E2E_SOURCE_ADDRESS")?;
            let target = in_cluster(&target, "FERRY_E2E_TARGET_ADDRESS")?;
            scenario::example_migration(&cluster, namespace, source, target).await
        }
        None => {
            let (source, target) = (MariaDb::source().await?, MariaDb::target().await?);
            let source =
                Database { server: &source, host: "127.0.0.1".into(), port: source.port() };
            let target =
                Database { server: &target, host: "127.0.0.1".into(), port: target.port() };
            scenario::example_migration(&cluster, namespace, source, target).await
        }
    }
}

/// Ferry installed with `helm install` of charts/ferry runs the example migration through
/// replication, pause, resume, restart and delete. Values set on the command line reach the
/// operator: the small tier's resources and concurrency show on the worker pod, the worker pull
/// policy too, and the operator logs as text. `helm uninstall` keeps the CRDs.
#[tokio::test]
async fn example_migration_installed_with_helm() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let values = [
        "tiers.small.cpuLimit=1500m",
        "tiers.small.memoryLimit=768Mi",
        "tiers.small.concurrency=3",
        "logFormat=text",
    ];
    let cluster = Cluster::local_with(Install::Helm(values.map(String::from).to_vec())).await?;
    let kubeconfig = format!("--kubeconfig={}", cluster.kubeconfig().display());
    let helm = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([kubeconfig.as_str(), "--namespace", OPERATOR_NAMESPACE]);
        ferry_harness::chart::helm_run(&all)
    };
    let status: serde_json::Value =
        serde_json::from_str(&helm(&["status", "ferry", "-o", "json"])?)?;
    assert_eq!(status["info"]["status"], "deployed", "{status}");

    let (source, target) = (MariaDb::source().await?, MariaDb::target().await?);
    let source = Database { server: &source, host: "127.0.0.1".into(), port: source.port() };
    let target = Database { server: &target, host: "127.0.0.1".into(), port: target.port() };
    let worker = scenario::Worker {
        cpu_limit: "1500m",
        memory_limit: "768Mi",
        concurrency: 3,
        pull_policy: Some("Never"),
    };
    scenario::example_migration_expecting(&cluster, "ferry-helm", source, target, &worker).await?;

    // The replica holds the chart's Lease and logs as the values say.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), OPERATOR_NAMESPACE);
    let lease = leases.get("ferry-operator").await?;
    let holder = lease.spec.and_then(|s| s.holder_identity).context("lease holder")?;
    let log = cluster.logs(OPERATOR_NAMESPACE, &holder).await;
    let first = log.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(!first.starts_with('{') && log.contains("became the leader"), "{first}\n{log}");

    helm(&["uninstall", "ferry"])?;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    for name in ["migrationjobs.ferry.dev", "migrationsources.ferry.dev"] {
        assert!(crds.get_opt(name).await?.is_some(), "helm uninstall removed {name}");
    }
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), OPERATOR_NAMESPACE);
    wait_for(
        "helm uninstall stops the operator",
        STEP,
        || async { Ok(pods.list(&ListParams::default()).await?.items.is_empty().then_some(())) },
        async || String::new(),
    )
    .await
}

/// The address pods reach `server` at, from `variable` (`HOST:PORT`).
fn in_cluster<'a>(
    server: &'a ExternalServer,
    variable: &str,
) -> anyhow::Result<Database<'a, ExternalServer>> {
    let address = std::env::var(variable).with_context(|| format!("{variable} is not set"))?;
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("{variable}={address} is not HOST:PORT"))?;
    Ok(Database {
        server,
        host: host.to_string(),
        port: port.parse().with_context(|| format!("{variable}: port"))?,
    })
}

/// What only the harness's cluster shows: leader election between two replicas, source facts,
/// a Full job into TiDB with the medium tier, a job with a missing Secret, and the worker's
/// RBAC.
#[tokio::test]
async fn operator_from_deploy_reconciles_sources_jobs_and_rbac() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let namespace = "shop";
    let (source, target, mysql) = tokio::join!(MariaDb::source(), TiDb::start(), MySql::source());
    let (source, target, mysql) = (source?, target?, mysql?);
    cluster::prepare_shop(&source, &target).await?;
    let cluster = Cluster::local().await?;
    let client = cluster.client.clone();
    cluster.create_namespace(namespace).await?;

    let leases: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let holder = wait_for(
        "an operator replica takes the leader lease",
        Duration::from_secs(90),
        || async {
            Ok(leases.get_opt("ferry-operator").await?.and_then(|l| l.spec?.holder_identity))
        },
        async || cluster.describe(namespace, "none").await,
    )
    .await?;
    assert!(holder.starts_with("ferry-operator-"), "holder {holder}");

    create_secret(&client, namespace, "source", "src-pw").await?;
    create_secret(&client, namespace, "target", "dst-pw").await?;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), namespace);
    sources.create(&PostParams::default(), &source_object(source.port())).await?;
    let src = wait_for(
        "the MigrationSource becomes Ready",
        STEP,
        || async {
            let s = sources.get("src").await?;
            let ready = s.status.as_ref().is_some_and(|st| {
                st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            });
            Ok(ready.then_some(s))
        },
        async || format!("{:#?}", sources.get("src").await.ok().and_then(|s| s.status)),
    )
    .await?;
    let status = src.status.context("source status")?;
    assert_eq!(status.flavor.as_deref(), Some("MariaDB"));
    assert_eq!(status.binlog.as_ref().and_then(|b| b.format.clone()).as_deref(), Some("ROW"));

    // A job whose target Secret does not exist waits, saying which Secret is missing.
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), namespace);
    let mut broken = job_object("broken", Full, Small, target.port());
    broken.spec.target.password_secret_ref.name = "no-such-secret".into();
    jobs.create(&PostParams::default(), &broken).await?;
    let job = cluster
        .wait_job((namespace, "broken"), "job broken reports the missing Secret", STEP, |j| {
            reason(j, "Ready") == Some("SecretMissing")
        })
        .await?;
    let ready = job.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    assert!(ready.is_some_and(|c| c.message.contains("no-such-secret")), "{ready:?}");
    assert!(cluster.worker_pods(namespace, "broken").await?.is_empty());

    // A Full job into TiDB: the worker is sized by the medium tier and completes the copy.
    let job =
        cluster.run_job(namespace, &job_object("copy", Full, Medium, target.port()), STEP).await?;
    assert_eq!(job.status.as_ref().and_then(|s| s.stage), Some(Stage::Completed));
    // `kubectl wait --for=condition=Completed` gates on this condition.
    let conditions = job.status.as_ref().map(|s| s.conditions.clone()).unwrap_or_default();
    let completed = conditions.iter().find(|c| c.type_ == "Completed");
    assert_eq!(completed.map(|c| c.status.as_str()), Some("True"), "{conditions:?}");
    let pods = cluster.worker_pods(namespace, "copy").await?;
    let container =
        &pods.first().and_then(|p| p.spec.as_ref()).context("worker pod")?.containers[0];
    let limits = container.resources.as_ref().and_then(|r| r.limits.clone()).context("limits")?;
    assert_eq!((limits["cpu"].0.as_str(), limits["memory"].0.as_str()), ("2", "2Gi"), "medium");
    assert!(container.args.clone().unwrap_or_default().join(" ").contains("--concurrency 8"));
    let (mut source_conn, mut target_conn) = (source.conn().await?, target.conn().await?);
    ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "shop").await?;

    worker_rbac_is_limited_to_its_job(&cluster, namespace).await?;
    mysql_source_replicates(&cluster, &mysql, &target).await
}

/// A MySQL 9.7 source (MigrationSource type SelfManaged): the operator reads it as MySQL, and a
/// FullAndIncremental job copies it into TiDB, then replicates and reports its binlog position.
async fn mysql_source_replicates(
    cluster: &Cluster,
    mysql: &MySql,
    target: &TiDb,
) -> anyhow::Result<()> {
    let namespace = "mysql";
    let client = cluster.client.clone();
    cluster.create_namespace(namespace).await?;
    let privileges = "SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, REPLICATION CLIENT";
    mysql.create_user("ferry", "mysql-pw", privileges).await?;
    mysql
        .exec(
            "CREATE DATABASE orders; CREATE TABLE orders.lines (id INT PRIMARY KEY, \
             item VARCHAR(40), qty INT, doc JSON); \
             INSERT INTO orders.lines VALUES (1, 'rope', 2, '{\"m\": 5}'), (2, 'chain', 1, NULL)",
        )
        .await?;
    create_secret(&client, namespace, "source", "mysql-pw").await?;
    create_secret(&client, namespace, "target", "dst-pw").await?;
    let mut source = source_object(mysql.port());
    source.spec.source_type = SourceType::SelfManaged;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), namespace);
    sources.create(&PostParams::default(), &source).await?;
    let mut job = job_object("replicate", FullAndIncremental, Small, target.port());
    job.spec.objects = Some(manifest::only_databases(&["orders"]));
    job.spec.cutover = Some(CutoverSpec {
        caught_up_lag: "5s".into(),
        caught_up_for: "2s".into(),
        ..CutoverSpec::default()
    });
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), namespace);
    jobs.create(&PostParams::default(), &job).await?;

    let key = (namespace, "replicate");
    cluster
        .wait_job(key, "the MySQL job reaches Incremental", STEP, |j| {
            j.status.as_ref().and_then(|s| s.stage) == Some(Stage::Incremental)
                && phase(j) == Some(Phase::Running)
        })
        .await?;
    let flavor = sources.get("src").await?.status.and_then(|s| s.flavor);
    assert_eq!(flavor.as_deref(), Some("MySQL"));
    mysql
        .exec(
            "INSERT INTO orders.lines VALUES (3, 'shackle', 4, '[1, 2]'); \
             UPDATE orders.lines SET qty = qty + 1, doc = JSON_SET(doc, '$.m', 6) WHERE id = 1; \
             DELETE FROM orders.lines WHERE id = 2",
        )
        .await?;
    let same = || async {
        let (mut source_conn, mut target_conn) = (mysql.conn().await?, target.conn().await?);
        let same =
            ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "orders").await;
        Ok(same.ok())
    };
    wait_for("the MySQL source's changes arrive", STEP, same, async || {
        cluster.describe(namespace, "replicate").await
    })
    .await?;
    let job = cluster
        .wait_job(key, "the MySQL job reports its binlog position", STEP, |j| {
            let applied = j.status.as_ref().and_then(|s| s.incremental.as_ref()?.applied.clone());
            applied.is_some_and(|a| a.file.is_some_and(|f| f.starts_with("mysql-bin.")))
        })
        .await?;
    let position = job.status.and_then(|s| s.position).unwrap_or_default();
    assert!(position.starts_with("mysql-bin."), "status.position {position:?}");
    cut_over(cluster, &jobs, mysql, target).await
}

/// `kubectl wait --for=condition=CaughtUp`, then a cutover request once the source is
/// read-only: the job completes at the source's final position with the target equal.
async fn cut_over(
    cluster: &Cluster,
    jobs: &Api<MigrationJob>,
    mysql: &MySql,
    target: &TiDb,
) -> anyhow::Result<()> {
    let key = ("mysql", "replicate");
    cluster.wait_job(key, "condition CaughtUp", STEP, |j| condition_true(j, "CaughtUp")).await?;
    verify_requests(cluster, jobs, target).await?;
    mysql.exec("SET GLOBAL super_read_only = ON").await?;
    let mut conn = mysql.conn().await?;
    // File, Position, and three more columns.
    let head: Option<mysql_async::Row> = conn.query_first("SHOW BINARY LOG STATUS").await?;
    let head = head.and_then(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)));
    let (file, pos) = head.context("the MySQL source's binlog position")?;
    let request = json!({"spec": {"cutover": {"request": "cut-1"}}});
    jobs.patch("replicate", &PatchParams::default(), &Patch::Merge(&request)).await?;
    let job = cluster
        .wait_job(key, "the cutover completes the job", STEP, |j| {
            phase(j) == Some(Phase::Completed)
        })
        .await?;
    mysql.exec("SET GLOBAL super_read_only = OFF; SET GLOBAL read_only = OFF").await?;
    let status = job.status.context("status")?;
    assert_eq!(status.stage, Some(Stage::Completed));
    assert_eq!(status.position, Some(format!("{file}:{pos}")), "{:#?}", status.cutover);
    let cutover = status.cutover.context("status.cutover")?;
    assert_eq!((cutover.request.as_str(), cutover.state), ("cut-1", CutoverState::Completed));
    let (mut source_conn, mut target_conn) = (mysql.conn().await?, target.conn().await?);
    ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "orders").await?;
    Ok(())
}

/// `spec.verify.request` finds a target row that differs, by key, and once it is repaired a
/// new request finds the tables equal; `Verified` follows.
async fn verify_requests(
    cluster: &Cluster,
    jobs: &Api<MigrationJob>,
    target: &TiDb,
) -> anyhow::Result<()> {
    let key = ("mysql", "replicate");
    let verify = async |request: &str| -> anyhow::Result<MigrationJob> {
        let patch = json!({"spec": {"verify": {"request": request}}});
        jobs.patch("replicate", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        cluster
            .wait_job(key, &format!("verification {request} finishes"), STEP, |j| {
                let v = j.status.as_ref().and_then(|s| s.verification.as_ref());
                v.is_some_and(|v| v.request == request && v.state != VerificationState::Running)
            })
            .await
    };
    target.exec("UPDATE orders.lines SET qty = 99 WHERE id = 3").await?;
    let job = verify("v-1").await?;
    assert!(!condition_true(&job, "Verified"));
    let status = job.status.and_then(|s| s.verification).context("status.verification")?;
    assert_eq!(status.state, VerificationState::Different, "{status:#?}");
    let lines = status.tables.first().context("a differing table")?;
    assert_eq!((lines.table.as_str(), lines.different, lines.missing), ("lines", 1, 0));
    assert_eq!(lines.sample_keys, ["different: 3"], "{status:#?}");
    assert!(status.position.is_some_and(|p| p.starts_with("mysql-bin.")));
    target.exec("UPDATE orders.lines SET qty = 4 WHERE id = 3").await?;
    let job = verify("v-2").await?;
    assert!(condition_true(&job, "Verified"), "{:#?}", job.status);
    let status = job.status.and_then(|s| s.verification).context("status.verification")?;
    assert_eq!(
        (status.state, status.tables_done, status.rows_compared),
        (VerificationState::Equal, 1, 2)
    );
    Ok(())
}

fn condition_true(job: &MigrationJob, type_: &str) -> bool {
    let conditions = job.status.iter().flat_map(|s| &s.conditions);
    conditions.into_iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The worker's ServiceAccount reads its own job and writes its status, and nothing else.
async fn worker_rbac_is_limited_to_its_job(
    cluster: &Cluster,
    namespace: &str,
) -> anyhow::Result<()> {
    let worker = client_as(cluster, namespace, "ferry-worker-copy").await?;
    let own: Api<MigrationJob> = Api::namespaced(worker.clone(), namespace);
    own.get("copy").await.context("the worker reads its own job")?;
    let status = json!({"apiVersion": "ferry.dev/v1alpha1", "kind": "MigrationJob",
                        "status": {"position": "mysql-bin.000001:4"}});
    own.patch_status("copy", &PatchParams::apply("rbac-test").force(), &Patch::Apply(&status))
        .await
        .context("the worker patches its own status")?;
    let spec = Patch::Merge(json!({"spec": {"paused": true}}));
    assert!(forbidden(own.patch("copy", &PatchParams::default(), &spec).await), "spec");
    assert!(forbidden(own.get("broken").await), "another job");
    assert!(forbidden(own.list(&ListParams::default()).await), "list jobs");
    let secrets: Api<Secret> = Api::namespaced(worker.clone(), namespace);
    assert!(forbidden(secrets.get("source").await), "secrets");
    let pods: Api<Pod> = Api::namespaced(worker.clone(), namespace);
    assert!(forbidden(pods.list(&ListParams::default()).await), "pods");
    let sources: Api<MigrationSource> = Api::namespaced(worker, namespace);
    assert!(forbidden(sources.list(&ListParams::default()).await), "list sources");
    Ok(())
}

/// A client authenticated as a ServiceAccount, with a token from the TokenRequest API.
async fn client_as(cluster: &Cluster, namespace: &str, account: &str) -> anyhow::Result<Client> {
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), namespace);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}}))?;
    let answer: TokenRequest =
        accounts.create_subresource("token", account, &PostParams::default(), &request).await?;
    let token = answer.status.context("token status")?.token;
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig())?;
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info = AuthInfo { token: Some(token.into()), ..Default::default() };
    Ok(Client::try_from(config)?)
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(ref e)) if e.code == 403)
}
