//! Scheduling: the agent's Node, and binding unscheduled pods to it as kube-scheduler would.

use super::*;

pub(super) async fn register_node(client: &Client, name: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "ferry.dev/node-agent": "true",
            },
        },
    }))
    .map_err(|e| HarnessError::Start(format!("build the Node: {e}")))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(kube_err(format!("register node {name}"))(e)),
    }
    let now = now();
    let status = json!({
        "status": {
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "NodeAgentReady",
                "message": "ferry node agent runs pods as local processes",
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "ferry node agent", "containerRuntimeVersion": "local-process://0",
                "kubeletVersion": crate::kube_harness::KUBE_VERSION, "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": std::env::consts::ARCH,
            },
        }
    });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(kube_err(format!("set the status of node {name}")))?;
    Ok(())
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Binds unscheduled pods to the agent's node.
pub(super) async fn bind_loop(ctx: Arc<Ctx>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let mut config = watcher::Config::default().fields("spec.nodeName=");
    if let Some(selector) = &ctx.options.bind_selector {
        config = config.labels(selector);
    }
    let mut stream = watcher(pods, config).default_backoff().applied_objects().boxed();
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(pod) => pod,
            Err(e) => {
                tracing::warn!("watching unscheduled pods: {e}");
                continue;
            }
        };
        let scheduler = pod.spec.as_ref().and_then(|s| s.scheduler_name.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            || !matches!(scheduler, None | Some("default-scheduler"))
        {
            continue;
        }
        if let Err(e) = bind(&ctx, &pod).await {
            tracing::warn!(pod = %pod.name_any(), "binding failed: {e}");
        }
    }
}

pub(super) async fn bind(ctx: &Ctx, pod: &Pod) -> Result<()> {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(ctx.options.node_name.clone()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => {
            tracing::info!(pod = %format!("{namespace}/{name}"), "bound to the node");
            Ok(())
        }
        // Already bound (a watch event that raced with our own binding).
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(kube_err(format!("bind pod {namespace}/{name}"))(e)),
    }
}
