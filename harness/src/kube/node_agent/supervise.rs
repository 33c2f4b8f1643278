//! Process supervision: one task per pod that prepares, starts, restarts with back-off and
//! stops its process, and removes the Pod once it is deleted.

use super::*;

pub(super) fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals the process group we created for a pod;
        // it touches no memory.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Runs the pods bound to the agent's node.
pub(super) async fn run_loop(ctx: Arc<Ctx>) {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let config =
        watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.options.node_name));
    let mut stream = watcher(pods, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                on_pod(&ctx, pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                // Gone (force-deleted, or our own final delete): kill at once.
                if let Some(task) = take_task(&ctx, &pod) {
                    task.cancel.cancel();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("watching the node's pods: {e}"),
        }
    }
}

pub(super) fn take_task(ctx: &Ctx, pod: &Pod) -> Option<PodTask> {
    let uid = pod.metadata.uid.as_deref()?;
    ctx.pods.lock().ok()?.remove(uid)
}

pub(super) fn on_pod(ctx: &Arc<Ctx>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else { return };
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    let Ok(mut pods) = ctx.pods.lock() else { return };
    if pod.metadata.deletion_timestamp.is_some() {
        // Graceful deletion: stop the process (if any), then remove the object.
        let task = pods.remove(&uid);
        drop(pods);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Some(task) = task {
                task.cancel.cancel();
                let _ = task.handle.await;
            }
            finalize_delete(&ctx, &pod).await;
        });
        return;
    }
    let finished = ctx.finished.lock().map(|f| f.contains(&uid)).unwrap_or(false);
    if finished || pods.contains_key(&uid) || phase == "Succeeded" || phase == "Failed" {
        return;
    }
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(run_pod(ctx.clone(), pod, cancel.clone()));
    pods.insert(uid, PodTask { cancel, handle });
}

pub(super) async fn finalize_delete(ctx: &Ctx, pod: &Pod) {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&pod.name_any(), &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => tracing::warn!(pod = %pod.name_any(), "final delete failed: {e}"),
    }
}

pub(super) async fn run_pod(ctx: Arc<Ctx>, pod: Pod, cancel: CancellationToken) {
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let name = pod.name_any();
    let id = format!("{namespace}/{name}");
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = ctx.pods_dir.join(format!("{namespace}_{name}_{uid}"));

    // Prepare (retrying while Secrets or ConfigMaps are missing).
    let (prepared, token_refresher) = loop {
        match prepare(&ctx, &pod, &dir).await {
            Ok(ready) => break ready,
            Err(Prepare::Fail(reason, message)) => {
                tracing::warn!(pod = %id, "cannot run: {reason}: {message}");
                let status = terminal_status(&pod, None, &reason, &message, 1, None);
                patch_pod_status(&api, &name, status).await;
                remove_task(&ctx, &uid);
                return;
            }
            Err(Prepare::Retry(reason, message)) => {
                tracing::info!(pod = %id, "waiting: {reason}: {message}");
                patch_pod_status(&api, &name, waiting_status(&pod, &reason, &message, 0)).await;
                tokio::select! {
                    _ = cancel.cancelled() => { remove_task(&ctx, &uid); return; }
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    };

    let policy =
        pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30)
        .max(0) as u64;
    let mut restarts = 0;
    let mut backoff = Duration::from_secs(1);
    let start_time = now();
    let mut last_terminated: Option<serde_json::Value> = None;
    loop {
        let started_at = now();
        let mut child = match spawn(&prepared) {
            Ok(child) => child,
            Err(message) => {
                let status =
                    terminal_status(&pod, Some(&start_time), "StartError", &message, 128, None);
                patch_pod_status(&api, &name, status).await;
                break;
            }
        };
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        if let Ok(mut groups) = ctx.groups.lock() {
            groups.insert(pgid);
        }
        tracing::info!(pod = %id, pid = pgid, argv = ?prepared.argv, "started");
        let running = running_status(
            &prepared.container,
            &start_time,
            &started_at,
            restarts,
            last_terminated.clone(),
            pgid,
        );
        patch_pod_status(&api, &name, running).await;

        let exit = tokio::select! {
            status = child.wait() => status.ok(),
            _ = cancel.cancelled() => {
                kill_group(pgid, libc::SIGTERM);
                let waited = tokio::time::timeout(Duration::from_secs(grace), child.wait()).await;
                if waited.is_err() {
                    kill_group(pgid, libc::SIGKILL);
                    let _ = child.wait().await;
                }
                // Any stragglers of the group.
                kill_group(pgid, libc::SIGKILL);
                if let Ok(mut groups) = ctx.groups.lock() {
                    groups.remove(&pgid);
                }
                tracing::info!(pod = %id, "stopped: the pod was deleted");
                break;
            }
        };
        // The main process ended; the rest of its group goes with it, as in a container.
        kill_group(pgid, libc::SIGKILL);
        if let Ok(mut groups) = ctx.groups.lock() {
            groups.remove(&pgid);
        }
        let (code, signal) = match exit {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => (code, None),
                (None, Some(sig)) => (128 + sig, Some(sig)),
                (None, None) => (-1, None),
            },
            None => (-1, None),
        };
        let reason = if code == 0 { "Completed" } else { "Error" };
        let message = if code == 0 { String::new() } else { tail(&prepared.log, 2048) };
        tracing::info!(pod = %id, code, "exited");
        let restart = match policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            let status = terminal_status(
                &pod,
                Some(&start_time),
                reason,
                &message,
                code,
                Some((&started_at, signal, restarts, &prepared.container)),
            );
            patch_pod_status(&api, &name, status).await;
            break;
        }
        last_terminated = Some(json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now(),
            "message": message,
        }}));
        restarts += 1;
        let mut waiting = waiting_status(
            &pod,
            "CrashLoopBackOff",
            &format!("back-off {backoff:?} restarting the process"),
            restarts,
        );
        if let Some(last) = &last_terminated {
            waiting["containerStatuses"][0]["lastState"] = last.clone();
        }
        patch_pod_status(&api, &name, waiting).await;
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    token_refresher.abort();
    remove_task(&ctx, &uid);
}

pub(super) fn remove_task(ctx: &Ctx, uid: &str) {
    if let Ok(mut finished) = ctx.finished.lock() {
        finished.insert(uid.to_string());
    }
    if let Ok(mut pods) = ctx.pods.lock() {
        pods.remove(uid);
    }
}

pub(super) fn spawn(prepared: &Prepared) -> std::result::Result<tokio::process::Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&prepared.log)
        .map_err(|e| format!("open {}: {e}", prepared.log.display()))?;
    let err = log.try_clone().map_err(|e| format!("open {}: {e}", prepared.log.display()))?;
    let Some((program, args)) = prepared.argv.split_first() else {
        return Err("empty command".into());
    };
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&prepared.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    command.spawn().map_err(|e| format!("start {program}: {e}"))
}
