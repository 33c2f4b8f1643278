//! A real control plane (etcd, kube-apiserver, kube-controller-manager): Ferry's CRDs install,
//! the API server enforces their schema and CEL rules, the status subresource works, and the
//! node agent runs pods (and Jobs' pods) as local processes. These tests fail (not skip) when
//! the Kubernetes binaries are missing: run `dev/build-go-tools.sh`.

use std::time::{Duration, Instant};

use ferry_crds::{MigrationJob, MigrationSource};
use ferry_harness::kube_harness::{ControlPlane, ControlPlaneOptions, NodeAgent};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde_json::{Value, json};

fn source_manifest(name: &str, tls: Option<Value>) -> Value {
    let mut spec = json!({
        "type": "MariaDB",
        "host": "127.0.0.1",
        "port": 3306,
        "user": "ferry",
        "passwordSecretRef": {"name": "source", "key": "password"},
    });
    if let Some(tls) = tls {
        spec["tls"] = tls;
    }
    json!({
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "MigrationSource",
        "metadata": {"name": name},
        "spec": spec,
    })
}

fn job_manifest(name: &str, mode: &str, port: i64) -> Value {
    json!({
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "MigrationJob",
        "metadata": {"name": name},
        "spec": {
            "displayName": "shop_copy",
            "sourceRef": {"name": "src"},
            "target": {
                "host": "127.0.0.1",
                "port": port,
                "user": "root",
                "passwordSecretRef": {"name": "target", "key": "password"},
            },
            "mode": mode,
            "objects": {"databases": ["shop"]},
        },
    })
}

/// `kubectl create -f -` for any kind: the raw document goes to the API server unchanged.
async fn create_raw<K: Resource<DynamicType = ()>>(
    client: &Client,
    doc: Value,
) -> Result<DynamicObject, kube::Error> {
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let object: DynamicObject = serde_json::from_value(doc).map_err(kube::Error::SerdeError)?;
    api.create(&PostParams::default(), &object).await
}

fn rejection(result: Result<DynamicObject, kube::Error>) -> String {
    match result {
        Ok(object) => panic!("accepted: {object:?}"),
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            e.message
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn crds_install_validate_and_take_status() -> anyhow::Result<()> {
    let started = Instant::now();
    let plane = ControlPlane::start().await?;
    eprintln!("control plane ready after {:?}: {:?}", started.elapsed(), plane.start_times());
    let crds_started = Instant::now();
    plane.install_crds().await?;
    eprintln!("CRDs established after {:?}", crds_started.elapsed());
    let client = plane.client().await?;

    // Valid objects are accepted, through the typed API as well.
    create_raw::<MigrationSource>(&client, source_manifest("src", None)).await?;
    create_raw::<MigrationJob>(&client, job_manifest("copy", "Full", 4000)).await?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), "default");
    let job = jobs.get("copy").await?;
    assert_eq!(job.spec.target.port, 4000);
    assert_eq!(job.spec.safe_mode_duration, "60s", "schema defaults apply");
    let sources: Api<MigrationSource> = Api::namespaced(client.clone(), "default");
    assert_eq!(sources.list(&Default::default()).await?.items.len(), 1);

    // The schema rejects an unknown mode and a port out of range.
    let message =
        rejection(create_raw::<MigrationJob>(&client, job_manifest("bad", "Sideways", 4000)).await);
    assert!(message.contains("spec.mode"), "{message}");
    let message =
        rejection(create_raw::<MigrationJob>(&client, job_manifest("bad", "Full", 70000)).await);
    assert!(message.contains("spec.target.port"), "{message}");

    // CEL: ServerAuth without a CA.
    let tls = json!({"mode": "ServerAuth"});
    let message =
        rejection(create_raw::<MigrationSource>(&client, source_manifest("tls", Some(tls))).await);
    assert!(message.contains("tls.mode ServerAuth and Mutual need caSecretRef"), "{message}");

    // CEL transition rule: the mode of an existing job cannot change.
    let patch = json!({"spec": {"mode": "Incremental"}});
    let err = jobs
        .patch("copy", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("mode is immutable");
    let kube::Error::Api(status) = err else { panic!("unexpected error: {err}") };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(status.message.contains("mode cannot change once set"), "{}", status.message);
    // A mutable field can change.
    let patch = json!({"spec": {"paused": true}});
    let job = jobs.patch("copy", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    assert!(job.spec.paused);

    // The status subresource: written through /status, ignored through the main resource.
    let status = json!({"status": {
        "stage": "Full", "phase": "Running", "position": "mysql-bin.000001:4",
        "full": {"tablesDone": 1, "tablesTotal": 2, "rows": 10, "bytes": 100,
                 "bytesPerSecond": 5, "percent": "50%"},
    }});
    let job = jobs.patch_status("copy", &PatchParams::default(), &Patch::Merge(&status)).await?;
    let written = job.status.expect("status written");
    assert_eq!(written.position.as_deref(), Some("mysql-bin.000001:4"));
    assert_eq!(written.full.map(|f| f.tables_done), Some(1));
    let ignored = json!({"status": {"position": "elsewhere:1"}});
    let job = jobs.patch("copy", &PatchParams::default(), &Patch::Merge(&ignored)).await?;
    assert_eq!(job.status.and_then(|s| s.position).as_deref(), Some("mysql-bin.000001:4"));
    // A status that breaks the schema is refused too.
    let bad = json!({"status": {"phase": "Dancing"}});
    let err = jobs.patch_status("copy", &PatchParams::default(), &Patch::Merge(&bad)).await;
    assert!(matches!(err, Err(kube::Error::Api(ref e)) if e.code == 422), "{err:?}");
    Ok(())
}

async fn wait_for_pod(
    pods: &Api<Pod>,
    name: &str,
    timeout: Duration,
    done: impl Fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(pod) = pods.get_opt(name).await?
            && done(&pod)
        {
            return Ok(pod);
        }
        if Instant::now() > deadline {
            let pod = pods.get_opt(name).await?;
            anyhow::bail!(
                "pod {name} not as expected within {timeout:?}: {:#?}",
                pod.map(|p| p.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn exit_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    Some(statuses.first()?.state.as_ref()?.terminated.as_ref()?.exit_code)
}

#[tokio::test]
async fn node_agent_runs_pods_as_processes() -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    let agent = NodeAgent::start(&plane).await?;
    let client = plane.client().await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds"},
        "stringData": {"password": "s3cret", "ca.pem": "PEM TEXT"},
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;

    // A pod that reads a Secret through env and a volume, and exits 3.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "fails"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main",
                "image": "example.com/whatever:1",
                "command": ["/bin/sh", "-c"],
                // $1 is a path under the mount: the agent rewrites it to the local file.
                "args": ["echo \"X=$X POD=$POD_NAME\"; cat \"$1\"; echo; \
                          cat \"$FERRY_ROOT_PREFIX/etc/creds/password\"; echo; exit 3",
                         "sh", "/etc/creds/ca.pem"],
                "env": [
                    {"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds", "readOnly": true}],
            }],
            "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let pod =
        wait_for_pod(&pods, "fails", Duration::from_secs(30), |p| phase(p) == "Failed").await?;
    assert_eq!(exit_code(&pod), Some(3));
    assert_eq!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()), Some(agent.node_name()));
    let logs = agent.logs("default", "fails");
    assert!(logs.contains("X=s3cret POD=fails"), "{logs}");
    assert!(logs.contains("PEM TEXT"), "the mount path is rewritten: {logs}");
    let terminated = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    let message = terminated
        .and_then(|c| c.first()?.state.as_ref()?.terminated.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(message.contains("X=s3cret"), "the output is the termination message: {message}");

    // A pod that talks to the API server with its service account's token: it is authenticated
    // as that account and RBAC denies what the account was not granted.
    let script = r#"
        sa=$FERRY_ROOT_PREFIX/var/run/secrets/kubernetes.io/serviceaccount
        api=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
        auth="Authorization: Bearer $(cat $sa/token)"
        curl -sS --cacert $sa/ca.crt -H "$auth" -H 'Content-Type: application/json' -X POST \
          -d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}' \
          $api/apis/authentication.k8s.io/v1/selfsubjectreviews
        echo
        code=$(curl -s -o /dev/null -w '%{http_code}' --cacert $sa/ca.crt -H "$auth" $api/api/v1/namespaces/default/secrets)
        echo "secrets: $code"
        grep -q tokenFile "$KUBECONFIG" && echo kubeconfig-ok
    "#;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "whoami"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "x", "command": ["/bin/sh", "-c", script]}],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let pod =
        wait_for_pod(&pods, "whoami", Duration::from_secs(30), |p| phase(p) == "Succeeded").await?;
    assert_eq!(exit_code(&pod), Some(0));
    let logs = agent.logs("default", "whoami");
    assert!(logs.contains("system:serviceaccount:default:default"), "{logs}");
    assert!(logs.contains("secrets: 403"), "{logs}");
    assert!(logs.contains("kubeconfig-ok"), "{logs}");

    // A long-running pod is Running, and deleting it kills the process and removes the pod.
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper"},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": "x", "command": ["sleep", "300"]}],
        },
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let pod =
        wait_for_pod(&pods, "sleeper", Duration::from_secs(30), |p| phase(p) == "Running").await?;
    let container_id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref()?.first()?.container_id.clone())
        .unwrap_or_default();
    let pid: i32 = container_id.trim_start_matches("local-process://").parse()?;
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} runs");
    pods.delete("sleeper", &DeleteParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pods.get_opt("sleeper").await?.is_some() {
        assert!(Instant::now() < deadline, "the deleted pod stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(stat.is_empty() || stat.contains(") Z "), "process {pid} survived: {stat}");
    Ok(())
}

#[tokio::test]
async fn jobs_run_through_the_controller_manager_and_the_agent() -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    let _agent = NodeAgent::start(&plane).await?;
    plane.create_namespace("work").await?;
    let client = plane.client().await?;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "work");
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "x", "command": ["/bin/true"]}],
            }},
        },
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = jobs.get("once").await?;
        if job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) == 1 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "job not complete: {:#?}", job.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Deleting the Job in the foreground removes its pod through the garbage collector.
    jobs.delete("once", &DeleteParams::foreground()).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "work");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pods.list(&Default::default()).await?.items.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "the job's pod was not collected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn the_api_server_alone_serves_crds_and_rbac() -> anyhow::Result<()> {
    let started = Instant::now();
    let plane = ControlPlane::start_with(ControlPlaneOptions { controller_manager: false }).await?;
    eprintln!("etcd + kube-apiserver ready after {:?}", started.elapsed());
    plane.install_crds().await?;
    let client = plane.client().await?;
    let version = client.apiserver_version().await?;
    assert_eq!(format!("v{}.{}", version.major, version.minor), "v1.34", "{version:?}");
    // RBAC is on: the bootstrap roles exist.
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client);
    assert!(roles.get_opt("cluster-admin").await?.is_some());
    assert!(plane.kubeconfig().exists());
    Ok(())
}

#[tokio::test]
async fn ferry_lab_comes_up_and_goes_down() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let state = tempfile::tempdir()?;
    let lab = env!("CARGO_BIN_EXE_ferry-lab");
    let mut up = std::process::Command::new(lab)
        .arg("up")
        .env("FERRY_LAB_DIR", state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = up.stdout.take().expect("piped stdout");
    let banner = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Stop with") {
                break;
            }
        }
        text
    });
    let banner = match tokio::time::timeout(Duration::from_secs(180), banner).await {
        Ok(text) => text?,
        Err(_) => {
            let _ = up.kill();
            anyhow::bail!("ferry-lab up printed no banner within 180s");
        }
    };
    assert!(banner.contains("TiDB target") && banner.contains("kubeconfig"), "{banner}");
    let kubeconfig = state.path().join("kubeconfig");
    let config = kube::config::Kubeconfig::read_from(&kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
            .await?;
    let client = Client::try_from(config)?;
    let jobs: Api<MigrationJob> = Api::namespaced(client, "default");
    assert!(jobs.list(&Default::default()).await?.items.is_empty());

    let down =
        std::process::Command::new(lab).arg("down").env("FERRY_LAB_DIR", state.path()).output()?;
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let status = up.wait()?;
    assert!(status.success(), "ferry-lab up ended with {status}");
    assert!(!state.path().join("ferry-lab.pid").exists());
    Ok(())
}

/// A pod shaped like the operator's worker pods: its own service account with a Role, Secret
/// keys in a projected volume found through an env var that names the mount path (rewritten
/// to the local directory), an emptyDir, a non-root security context (ignored here) and a
/// status written through the API with the pod's token.
#[tokio::test]
async fn a_worker_shaped_pod_reads_its_secrets_and_writes_job_status() -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    plane.install_crds().await?;
    let agent = NodeAgent::start(&plane).await?;
    let client = plane.client().await?;
    let apply = |kind: &str| PatchParams::apply(&format!("test-{kind}")).force();
    let objects = [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "target"},
               "stringData": {"password": "tidb-pw"}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "worker"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "worker"},
               "rules": [{"apiGroups": ["ferry.dev"], "resources": ["migrationjobs/status"],
                          "verbs": ["get", "patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "worker"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "worker"},
               "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": "default"}]}),
    ];
    for doc in objects {
        let object: DynamicObject = serde_json::from_value(doc.clone())?;
        let gvk = kube::core::GroupVersionKind::try_from(object.types.as_ref().expect("typed"))?;
        let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
        api.patch(
            &object.metadata.name.clone().unwrap_or_default(),
            &apply(&gvk.kind),
            &Patch::Apply(&object),
        )
        .await?;
    }
    create_raw::<MigrationSource>(&client, source_manifest("src", None)).await?;
    create_raw::<MigrationJob>(&client, job_manifest("copy", "Full", 4000)).await?;

    let script = r#"
        set -e
        pw=$(cat "$FERRY_SECRETS_DIR/target/password")
        echo "password: $pw"
        sa=$FERRY_ROOT_PREFIX/var/run/secrets/kubernetes.io/serviceaccount
        api=https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
        curl -sSf --cacert $sa/ca.crt -H "Authorization: Bearer $(cat $sa/token)" \
          -H 'Content-Type: application/merge-patch+json' -X PATCH \
          -d '{"status":{"phase":"Running","position":"from-the-pod"}}' \
          $api/apis/ferry.dev/v1alpha1/namespaces/$(cat $sa/namespace)/migrationjobs/copy/status >/dev/null
        echo patched
    "#;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ferry-worker-copy", "labels": {"app.kubernetes.io/name": "ferry-worker"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": "worker",
            "automountServiceAccountToken": true,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532},
            "containers": [{
                "name": "worker",
                "image": "ghcr.io/ferry/ferry:1",
                "command": ["/bin/sh", "-c", script],
                "env": [{"name": "FERRY_SECRETS_DIR", "value": "/var/run/ferry/secrets"}],
                "volumeMounts": [
                    {"name": "secrets", "mountPath": "/var/run/ferry/secrets", "readOnly": true},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }],
            "volumes": [
                {"name": "secrets", "projected": {"defaultMode": 0o440, "sources": [
                    {"secret": {"name": "target", "items": [{"key": "password", "path": "target/password"}]}},
                ]}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await?;
    let pod = wait_for_pod(&pods, "ferry-worker-copy", Duration::from_secs(30), |p| {
        matches!(phase(p), "Succeeded" | "Failed")
    })
    .await?;
    let logs = agent.logs("default", "ferry-worker-copy");
    assert_eq!(exit_code(&pod), Some(0), "{logs}");
    assert!(logs.contains("password: tidb-pw") && logs.contains("patched"), "{logs}");
    let jobs: Api<MigrationJob> = Api::namespaced(client, "default");
    let status = jobs.get_status("copy").await?.status.expect("status written by the pod");
    assert_eq!(status.position.as_deref(), Some("from-the-pod"));
    Ok(())
}
