//! Kubernetes faults while a FullAndIncremental job runs on the harness's real control plane:
//! the worker pod is deleted at random instants (as an eviction or a node loss does, grace 0),
//! during the copy and during replication under writes. The operator must start a new worker
//! that resumes from the checkpoint, and the target must end equal to the source.
//! `FERRY_FAULT_RUNS=N` deletes N more times during replication; `FERRY_FAULT_SEED` replays.

use crate::cluster;

use std::time::{Duration, Instant};

use cluster::{
    Cluster, Install, ONE_CLUSTER_AT_A_TIME, create_secret, job_object, source_object, wait_for,
};
use ferry_crds::job::{MigrationJob, MigrationMode, Stage, Tier};
use ferry_crds::source::MigrationSource;
use ferry_harness::{MariaDb, SqlServer};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};

const STEP: Duration = Duration::from_secs(180);
/// Rows in `shop.items`, so that the copy lasts long enough to be interrupted.
const ROWS: u32 = 300_000;
/// Deletions during replication in the short form.
const REPLICATION_DELETIONS: u32 = 2;

/// A small xorshift generator: the instants come from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn seed() -> u64 {
    std::env::var("FERRY_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_0201)
}

fn extra_deletions() -> u32 {
    std::env::var("FERRY_FAULT_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn worker_pods_deleted_at_random_instants_lose_nothing() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let seed = seed();
    eprintln!("worker pod deletion run with FERRY_FAULT_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let (source, target) = (MariaDb::source().await?, MariaDb::target().await?);
    cluster::prepare_shop(&source, &target).await?;
    source
        .exec(&format!(
            "INSERT INTO shop.items SELECT seq, CONCAT('item ', seq) FROM shop.seq_4_to_{ROWS}"
        ))
        .await?;
    let install = Install::KustomizeWith { replicas: 1, args: Vec::new() };
    let cluster = Cluster::local_with(install).await?;
    let client = cluster.client.clone();
    let namespace = "faults";
    cluster.create_namespace(namespace).await?;
    create_secret(&client, namespace, "source", "src-pw").await?;
    create_secret(&client, namespace, "target", "dst-pw").await?;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), namespace);
    sources.create(&PostParams::default(), &source_object(source.port())).await?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), namespace);
    let job = job_object("moving", MigrationMode::FullAndIncremental, Tier::Small, target.port());
    jobs.create(&PostParams::default(), &job).await?;
    let key = (namespace, "moving");
    let stage_is = |stage: Stage| {
        move |j: &MigrationJob| j.status.as_ref().and_then(|s| s.stage) == Some(stage)
    };

    // During the copy: once it runs, at a random instant.
    cluster.wait_job(key, "the copy starts", STEP, stage_is(Stage::Full)).await?;
    let mut deleted = vec![delete_worker(&cluster, namespace, &mut rng).await?];
    cluster.wait_job(key, "replication starts", STEP * 2, stage_is(Stage::Incremental)).await?;

    // During replication, with rows written before and after each deletion.
    let mut next_id = ROWS + 1;
    for _ in 0..REPLICATION_DELETIONS + extra_deletions() {
        next_id = write_rows(&source, next_id, 50).await?;
        deleted.push(delete_worker(&cluster, namespace, &mut rng).await?);
        next_id = write_rows(&source, next_id, 50).await?;
    }
    let same = || async {
        let (mut source_conn, mut target_conn) = (source.conn().await?, target.conn().await?);
        Ok(ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "shop").await.ok())
    };
    let started = Instant::now();
    wait_for("the target equals the source", STEP, same, async || {
        cluster.describe(namespace, "moving").await
    })
    .await?;
    eprintln!(
        "seed {seed}: deleted worker pods {deleted:?}; equal {:?} after the last deletion, {} rows",
        started.elapsed(),
        next_id - 1
    );
    jobs.delete("moving", &DeleteParams::default()).await?;
    Ok(())
}

/// Waits for the job's running worker pod, lets it work a random moment, deletes it at once
/// (grace 0) and waits until a new worker (the same name may come back: another uid) runs.
/// Returns the deleted pod's name.
async fn delete_worker(
    cluster: &Cluster,
    namespace: &str,
    rng: &mut Rng,
) -> anyhow::Result<String> {
    let running_worker = || async {
        let pods = cluster.worker_pods(namespace, "moving").await?;
        Ok(pods.into_iter().find(running).map(|p| (p.name_any(), p.uid())))
    };
    let describe = async || cluster.describe(namespace, "moving").await;
    let (victim, uid) = wait_for("a running worker pod", STEP, running_worker, describe).await?;
    tokio::time::sleep(Duration::from_millis(200 + rng.below(3000))).await;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    pods.delete(&victim, &DeleteParams::default().grace_period(0)).await?;
    let replaced = || async {
        let pods = cluster.worker_pods(namespace, "moving").await?;
        Ok(pods.iter().any(|p| p.uid() != uid && running(p)).then_some(()))
    };
    wait_for("a new worker pod replaces the deleted one", STEP, replaced, describe).await?;
    Ok(victim)
}

fn running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Inserts `count` rows from `first` and updates some older ones; returns the next free id.
async fn write_rows(source: &MariaDb, first: u32, count: u32) -> anyhow::Result<u32> {
    let mut sql = String::new();
    for id in first..first + count {
        sql.push_str(&format!(
            "INSERT INTO shop.items VALUES ({id}, 'new {id}'); \
             UPDATE shop.items SET name = CONCAT(name, '+') WHERE id = {};",
            id % ROWS + 1
        ));
    }
    source.exec(&sql).await?;
    Ok(first + count)
}
