//! An edit of a replicating MigrationJob's `spec.objects` on the harness's real control plane:
//! the worker notices it, stops at a checkpoint and runs again with the new spec, copying the
//! table the edit added while it replicates; the target ends equal to the source.
//!
//! Needs the Kubernetes binaries (`dev/build-go-tools.sh kube`); fails, not skips, without them.

use crate::cluster;

use std::time::Duration;

use cluster::{
    Cluster, ONE_CLUSTER_AT_A_TIME, create_secret, job_object, phase, source_object, wait_for,
};
use ferry_crds::job::{MigrationJob, MigrationMode, Phase, Stage, Tier};
use ferry_crds::source::MigrationSource;
use ferry_harness::{MariaDb, SqlServer};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const STEP: Duration = Duration::from_secs(180);

#[tokio::test]
async fn an_edit_of_objects_copies_the_added_table_while_replicating() -> anyhow::Result<()> {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::from_env_or_local().await?;
    let (source, target) = (MariaDb::source().await?, MariaDb::target().await?);
    cluster::prepare_shop(&source, &target).await?;
    source
        .exec(
            "USE shop; CREATE TABLE shop.extra (id INT PRIMARY KEY, v INT); \
             INSERT INTO shop.extra SELECT seq, seq FROM seq_1_to_5000",
        )
        .await?;
    let namespace = "edits";
    let client = cluster.client.clone();
    cluster.create_namespace(namespace).await?;
    create_secret(&client, namespace, "source", "src-pw").await?;
    create_secret(&client, namespace, "target", "dst-pw").await?;
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), namespace);
    sources.create(&PostParams::default(), &source_object(source.port())).await?;
    let mut job =
        job_object("edited", MigrationMode::FullAndIncremental, Tier::Small, target.port());
    job.spec.objects =
        serde_json::from_value(json!({"tables": [{"database": "shop", "table": "items"}]}))?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), namespace);
    jobs.create(&PostParams::default(), &job).await?;
    let key = (namespace, "edited");
    cluster
        .wait_job(key, "the job replicates", STEP, |j| {
            j.status.as_ref().and_then(|s| s.stage) == Some(Stage::Incremental)
                && phase(j) == Some(Phase::Running)
        })
        .await?;
    let tables: Vec<String> = target
        .query_strings(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'",
        )
        .await?
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(tables, vec!["items".to_string()], "only the selected table is copied");

    let patch = json!({"spec": {"objects": {"databases": ["shop"]}}});
    jobs.patch("edited", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    source
        .exec(
            "INSERT INTO shop.items VALUES (4, 'davit'); UPDATE shop.extra SET v = -v WHERE id % 7 = 0; \
             DELETE FROM shop.extra WHERE id % 11 = 0; INSERT INTO shop.extra VALUES (9001, 1)",
        )
        .await?;
    let same = || async {
        let (mut source_conn, mut target_conn) = (source.conn().await?, target.conn().await?);
        let same =
            ferry_harness::assert_same_tables(&mut source_conn, &mut target_conn, "shop").await;
        Ok(same.ok())
    };
    wait_for("the added table is copied and replicated", STEP, same, async || {
        cluster.describe(namespace, "edited").await
    })
    .await?;
    let job = jobs.get("edited").await?;
    assert_eq!(phase(&job), Some(Phase::Running), "the job runs on after the edit");
    Ok(())
}
