//! Status reporting: the Pod status a kubelet would write while a process runs and after it ends.

use super::*;

pub(super) async fn patch_pod_status(api: &Api<Pod>, name: &str, status: serde_json::Value) {
    let patch = json!({ "status": status });
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch)).await
    {
        tracing::warn!(pod = %name, "status update failed: {e}");
    }
}

pub(super) fn conditions(ready: bool) -> serde_json::Value {
    let t = now();
    let s = |b: bool| if b { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
        {"type": "Initialized", "status": "True", "lastTransitionTime": t},
        {"type": "ContainersReady", "status": s(ready), "lastTransitionTime": t},
        {"type": "Ready", "status": s(ready), "lastTransitionTime": t},
    ])
}

pub(super) fn container_name_image(pod: &Pod) -> (String, String) {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .unwrap_or_default()
}

pub(super) fn running_status(
    container: &Container,
    start_time: &str,
    started_at: &str,
    restarts: i32,
    last_state: Option<serde_json::Value>,
    pid: i32,
) -> serde_json::Value {
    json!({
        "phase": "Running",
        "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": start_time,
        "conditions": conditions(true),
        "containerStatuses": [{
            "name": container.name,
            "image": container.image.clone().unwrap_or_default(),
            "imageID": "",
            "containerID": format!("local-process://{pid}"),
            "ready": true, "started": true, "restartCount": restarts,
            "state": {"running": {"startedAt": started_at}},
            "lastState": last_state.unwrap_or_else(|| json!({})),
        }],
        "reason": null, "message": null,
    })
}

pub(super) fn waiting_status(
    pod: &Pod,
    reason: &str,
    message: &str,
    restarts: i32,
) -> serde_json::Value {
    let (name, image) = container_name_image(pod);
    let running = restarts > 0;
    json!({
        "phase": if running { "Running" } else { "Pending" },
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "conditions": conditions(false),
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": restarts,
            "state": {"waiting": {"reason": reason, "message": message}},
        }],
    })
}

pub(super) fn terminal_status(
    pod: &Pod,
    start_time: Option<&str>,
    reason: &str,
    message: &str,
    code: i32,
    run: Option<(&str, Option<i32>, i32, &Container)>,
) -> serde_json::Value {
    let (name, image) = container_name_image(pod);
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let mut terminated = json!({
        "exitCode": code, "reason": reason, "finishedAt": now(),
    });
    if !message.is_empty() {
        terminated["message"] = json!(message);
    }
    let mut restarts = 0;
    if let Some((started_at, signal, r, _)) = run {
        terminated["startedAt"] = json!(started_at);
        if let Some(sig) = signal {
            terminated["signal"] = json!(sig);
        }
        restarts = r;
    }
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "conditions": conditions(false),
        "containerStatuses": [{
            "name": name, "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": restarts,
            "state": {"terminated": terminated},
        }],
    });
    if let Some(start) = start_time {
        status["startTime"] = json!(start);
    }
    if run.is_none() {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    status
}
