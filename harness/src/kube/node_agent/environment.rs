//! A pod's process prepared: its command, environment (values, Secrets, ConfigMaps, field
//! references), service-account token and kubeconfig, and the data of the objects it reads.

use super::*;

/// Why a pod could not start yet (kept Pending) or at all (Failed).
pub(super) enum Prepare {
    Retry(String, String),
    Fail(String, String),
}

impl From<HarnessError> for Prepare {
    fn from(e: HarnessError) -> Self {
        Prepare::Retry("CreateContainerConfigError".into(), e.to_string())
    }
}

/// Everything a pod's process needs, prepared on this machine.
pub(super) struct Prepared {
    pub(super) argv: Vec<String>,
    pub(super) env: Vec<(String, String)>,
    pub(super) cwd: PathBuf,
    pub(super) log: PathBuf,
    pub(super) container: Container,
}

pub(super) async fn prepare(
    ctx: &Ctx,
    pod: &Pod,
    dir: &Path,
) -> std::result::Result<(Prepared, JoinHandle<()>), Prepare> {
    let fail = |reason: &str, message: String| Prepare::Fail(reason.into(), message);
    let namespace = pod.namespace().unwrap_or_else(|| "default".into());
    let spec = pod.spec.clone().ok_or_else(|| fail("NoSpec", "the pod has no spec".into()))?;
    let container = spec
        .containers
        .first()
        .cloned()
        .ok_or_else(|| fail("NoContainer", "the pod has no container".into()))?;
    let root = dir.join("root");
    let volumes_dir = dir.join("volumes");
    let logs = dir.join("logs");
    for d in [&root, &volumes_dir, &logs, &dir.join("home")] {
        std::fs::create_dir_all(d).map_err(io_err(format!("create {}", d.display())))?;
    }

    // Service account token, bound to the pod, refreshed by a task.
    let sa_name = spec.service_account_name.clone().unwrap_or_else(|| "default".into());
    let sa_dir = under(&root, SA_DIR);
    std::fs::create_dir_all(&sa_dir).map_err(io_err("create the service account directory"))?;
    let token_file = sa_dir.join("token");
    let token = request_token(ctx, pod, &namespace, &sa_name).await?;
    write_file(&token_file, token.as_bytes())?;
    write_file(&sa_dir.join("ca.crt"), &ctx.ca_pem)?;
    write_file(&sa_dir.join("namespace"), namespace.as_bytes())?;
    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        ctx.apiserver_port,
        &ctx.pki.ca_cert,
        User::TokenFile {
            name: &format!("system:serviceaccount:{namespace}:{sa_name}"),
            file: &token_file,
        },
    )?;

    // Volumes.
    let mut volume_paths = HashMap::new();
    for volume in spec.volumes.iter().flatten() {
        let path = volumes_dir.join(&volume.name);
        std::fs::create_dir_all(&path).map_err(io_err(format!("create {}", path.display())))?;
        materialize_volume(ctx, pod, &namespace, &sa_name, volume, &path).await?;
        volume_paths.insert(volume.name.clone(), path);
    }
    let mut mount_paths = vec![SA_DIR.to_string()];
    for mount in container.volume_mounts.iter().flatten() {
        let source = volume_paths.get(&mount.name).ok_or_else(|| {
            fail("VolumeNotFound", format!("volume {} is not in the pod", mount.name))
        })?;
        let target = under(&root, &mount.mount_path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("create a mount point"))?;
        }
        match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                std::fs::copy(source.join(sub), &target)
                    .map_err(io_err(format!("copy subPath {sub} to {}", target.display())))?;
            }
            None => {
                // The admission-injected kube-api-access volume replaces the service
                // account directory written above (it holds the same files).
                if target.is_dir() && !target.is_symlink() {
                    std::fs::remove_dir_all(&target)
                        .map_err(io_err(format!("replace {}", target.display())))?;
                } else {
                    let _ = std::fs::remove_file(&target);
                }
                std::os::unix::fs::symlink(source, &target)
                    .map_err(io_err(format!("link {}", target.display())))?;
            }
        }
        mount_paths.push(mount.mount_path.trim_end_matches('/').to_string());
    }
    let rewrite = |value: &str| rewrite_path(value, &root, &mount_paths);

    // Environment.
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    if let Some(path) = std::env::var_os("PATH") {
        set(&mut env, "PATH".into(), path.to_string_lossy().into_owned());
    }
    set(&mut env, "HOME".into(), dir.join("home").display().to_string());
    set(&mut env, "HOSTNAME".into(), pod.name_any());
    set(&mut env, "KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into());
    set(&mut env, "KUBERNETES_SERVICE_PORT".into(), ctx.apiserver_port.to_string());
    set(&mut env, "KUBECONFIG".into(), kubeconfig.display().to_string());
    set(&mut env, "FERRY_ROOT_PREFIX".into(), root.display().to_string());
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let data = if let Some(secret) = &from.secret_ref {
            let optional = secret.optional.unwrap_or(false);
            env_data(ctx, DataObject::Secret, &namespace, &secret.name, optional).await?
        } else if let Some(map) = &from.config_map_ref {
            let optional = map.optional.unwrap_or(false);
            env_data(ctx, DataObject::ConfigMap, &namespace, &map.name, optional).await?
        } else {
            BTreeMap::new()
        };
        for (k, v) in data {
            set(&mut env, format!("{prefix}{k}"), rewrite(&v));
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            expand(value, &env)
        } else if let Some(from) = &var.value_from {
            let reference = match (&from.secret_key_ref, &from.config_map_key_ref) {
                (Some(k), _) => Some((DataObject::Secret, &k.name, &k.key, k.optional)),
                (None, Some(k)) => Some((DataObject::ConfigMap, &k.name, &k.key, k.optional)),
                (None, None) => None,
            };
            if let Some((kind, name, key, optional)) = reference {
                match env_key(ctx, kind, &namespace, name, key, optional.unwrap_or(false)).await? {
                    Some(value) => value,
                    None => continue,
                }
            } else if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path)
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut env, var.name.clone(), rewrite(&value));
    }

    // Command.
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    if argv.is_empty() {
        let image = container.image.clone().unwrap_or_default();
        let image_name = image_name(&image);
        argv = ctx.options.images.get(image_name).cloned().ok_or_else(|| {
            fail(
                "NoCommand",
                format!(
                    "container {} has no command and image {image} has none registered with \
                     the node agent (images are not pulled)",
                    container.name
                ),
            )
        })?;
    }
    argv.extend(container.args.clone().unwrap_or_default());
    let mut argv: Vec<String> = argv.iter().map(|a| rewrite(&expand(a, &env))).collect();
    if let Some(local) = argv.first().and_then(|a| ctx.options.executables.get(a)) {
        argv[0] = local.display().to_string();
    }
    let cwd = match container.working_dir.as_deref().filter(|d| !d.is_empty()) {
        Some(wd) => {
            let cwd = under(&root, wd);
            std::fs::create_dir_all(&cwd).map_err(io_err("create the working directory"))?;
            cwd
        }
        None => root.clone(),
    };
    let log = logs.join(format!("{}.log", container.name));

    let refresher = {
        let client = ctx.client.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TOKEN_REFRESH).await;
                match request_token_with(&client, &pod, &namespace, &sa_name).await {
                    Ok(token) => {
                        if let Err(e) = write_file(&token_file, token.as_bytes()) {
                            tracing::warn!("refresh a pod token: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("refresh a pod token: {e}"),
                }
            }
        })
    };
    Ok((Prepared { argv, env, cwd, log, container }, refresher))
}

/// Kubernetes' `$(VAR)` expansion: defined variables are replaced, `$$` escapes, anything else
/// stays as written.
pub(super) fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().find(|(k, _)| k == &inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The repository part of an image reference: `reg/x/worker:v1@sha256:..` -> `reg/x/worker`.
pub(super) fn image_name(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => &image[..i],
        _ => image,
    }
}

pub(super) fn field_value(pod: &Pod, path: &str) -> String {
    match path {
        "metadata.name" => pod.name_any(),
        "metadata.namespace" => pod.namespace().unwrap_or_default(),
        "metadata.uid" => pod.metadata.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        other => {
            let key = other
                .strip_prefix("metadata.labels['")
                .map(|k| (k, true))
                .or_else(|| other.strip_prefix("metadata.annotations['").map(|k| (k, false)));
            match key {
                Some((k, labels)) => {
                    let k = k.trim_end_matches("']");
                    let map = if labels { pod.labels() } else { pod.annotations() };
                    map.get(k).cloned().unwrap_or_default()
                }
                None => String::new(),
            }
        }
    }
}

pub(super) async fn request_token(
    ctx: &Ctx,
    pod: &Pod,
    namespace: &str,
    sa: &str,
) -> std::result::Result<String, Prepare> {
    request_token_with(&ctx.client, pod, namespace, sa).await.map_err(|e| {
        Prepare::Retry("CreateContainerConfigError".into(), format!("service account token: {e}"))
    })
}

pub(super) async fn request_token_with(
    client: &Client,
    pod: &Pod,
    namespace: &str,
    sa: &str,
) -> std::result::Result<String, kube::Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let answer: TokenRequest =
        accounts.create_subresource("token", sa, &PostParams::default(), &request).await?;
    Ok(answer.status.map(|s| s.token).unwrap_or_default())
}

/// The kinds of object whose keys a pod reads.
#[derive(Clone, Copy)]
pub(super) enum DataObject {
    Secret,
    ConfigMap,
}

/// What reads an object's keys; says how a missing object keeps the pod waiting, as a kubelet
/// reports it.
#[derive(Clone, Copy)]
pub(super) enum ReadFor {
    /// `env` and `envFrom`: reason `CreateContainerConfigError`.
    Environment,
    /// A volume: reason `ContainerCreating`, with the mount's error.
    Volume,
}

/// The keys and values of a Secret (`data`, and `stringData` should a client read it back) or a
/// ConfigMap (`data`). A missing object is empty when `optional`, else keeps the pod Pending
/// until it appears.
pub(super) async fn object_data(
    ctx: &Ctx,
    kind: DataObject,
    namespace: &str,
    name: &str,
    optional: bool,
    read_for: ReadFor,
) -> std::result::Result<BTreeMap<String, Vec<u8>>, Prepare> {
    let reason = match read_for {
        ReadFor::Environment => "CreateContainerConfigError",
        ReadFor::Volume => "ContainerCreating",
    };
    let found = match kind {
        DataObject::Secret => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
            secrets.get_opt(name).await.map(|s| {
                s.map(|s| {
                    let data = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0));
                    let strings = s.string_data.unwrap_or_default().into_iter();
                    data.chain(strings.map(|(k, v)| (k, v.into_bytes()))).collect()
                })
            })
        }
        DataObject::ConfigMap => {
            let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
            maps.get_opt(name).await.map(|m| {
                let data = m.map(|m| m.data.unwrap_or_default().into_iter());
                data.map(|d| d.map(|(k, v)| (k, v.into_bytes())).collect())
            })
        }
    };
    match found {
        Ok(Some(data)) => Ok(data),
        Ok(None) if optional => Ok(BTreeMap::new()),
        Ok(None) => {
            let kind = match kind {
                DataObject::Secret => "secret",
                DataObject::ConfigMap => "configmap",
            };
            let missing = format!("{kind} \"{name}\" not found");
            let message = match read_for {
                ReadFor::Environment => missing,
                ReadFor::Volume => format!("MountVolume.SetUp failed: {missing}"),
            };
            Err(Prepare::Retry(reason.into(), message))
        }
        Err(e) => Err(Prepare::Retry(reason.into(), e.to_string())),
    }
}

/// The value of `key` in the Secret or ConfigMap `name`, for an `env` entry; `None` when it is
/// missing and `optional`.
async fn env_key(
    ctx: &Ctx,
    kind: DataObject,
    namespace: &str,
    name: &str,
    key: &str,
    optional: bool,
) -> std::result::Result<Option<String>, Prepare> {
    let mut data = env_data(ctx, kind, namespace, name, optional).await?;
    match data.remove(key) {
        Some(value) => Ok(Some(value)),
        None if optional => Ok(None),
        None => {
            let kind = match kind {
                DataObject::Secret => "Secret",
                DataObject::ConfigMap => "ConfigMap",
            };
            Err(Prepare::Retry(
                "CreateContainerConfigError".into(),
                format!("couldn't find key {key} in {kind} {namespace}/{name}"),
            ))
        }
    }
}

/// [`object_data`] for the environment, values as text.
async fn env_data(
    ctx: &Ctx,
    kind: DataObject,
    namespace: &str,
    name: &str,
    optional: bool,
) -> std::result::Result<BTreeMap<String, String>, Prepare> {
    let data = object_data(ctx, kind, namespace, name, optional, ReadFor::Environment).await?;
    Ok(data.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_kubernetes() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y$(B)$$(A)$", &env), "x1y$(B)$(A)$");
    }

    #[test]
    fn image_names_drop_tag_and_digest() {
        assert_eq!(image_name("ghcr.io/x/worker:v1"), "ghcr.io/x/worker");
        assert_eq!(image_name("localhost:5000/worker"), "localhost:5000/worker");
        assert_eq!(image_name("worker@sha256:abc"), "worker");
    }
}
