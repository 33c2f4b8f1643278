//! Volumes written as files under the pod's root, and the paths that name them rewritten.

use super::*;

/// `<root>/<absolute path>`.
pub(super) fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Rewrites a value that names a path under one of `mounts` (alone or after `=`) to the local
/// path under `root`.
pub(super) fn rewrite_path(value: &str, root: &Path, mounts: &[String]) -> String {
    let is_under = |v: &str| {
        mounts.iter().any(|m| !m.is_empty() && (v == m || v.starts_with(&format!("{m}/"))))
    };
    if is_under(value) {
        return under(root, value).display().to_string();
    }
    if let Some((flag, path)) = value.split_once('=')
        && is_under(path)
    {
        return format!("{flag}={}", under(root, path).display());
    }
    value.to_string()
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    // Write then rename, so a reader never sees half a token.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).map_err(io_err(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io_err(format!("write {}", path.display())))
}

/// Writes the files of one volume into `path`.
pub(super) async fn materialize_volume(
    ctx: &Ctx,
    pod: &Pod,
    namespace: &str,
    sa: &str,
    volume: &Volume,
    path: &Path,
) -> std::result::Result<(), Prepare> {
    type Items = Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>;
    let write_items = |data: &BTreeMap<String, Vec<u8>>, items: &Items, dir: &Path| {
        let pairs: Vec<(String, String)> = match items {
            Some(items) => items.iter().map(|i| (i.key.clone(), i.path.clone())).collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, rel) in pairs {
            let Some(bytes) = data.get(&key) else { continue };
            let file = dir.join(rel.trim_start_matches('/'));
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("create a volume directory"))?;
            }
            write_file(&file, bytes)?;
        }
        Ok::<(), HarnessError>(())
    };
    let read = async |kind, name: &str, optional: Option<bool>| {
        let optional = optional.unwrap_or(false);
        object_data(ctx, kind, namespace, name, optional, ReadFor::Volume).await
    };
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().unwrap_or_default();
        let data = read(DataObject::Secret, name, secret.optional).await?;
        write_items(&data, &secret.items, path)?;
    } else if let Some(map) = &volume.config_map {
        let data = read(DataObject::ConfigMap, &map.name, map.optional).await?;
        write_items(&data, &map.items, path)?;
    } else if volume.empty_dir.is_some() {
        // The directory itself is the volume.
    } else if let Some(projected) = &volume.projected {
        for source in projected.sources.iter().flatten() {
            if let Some(secret) = &source.secret {
                let data = read(DataObject::Secret, &secret.name, secret.optional).await?;
                write_items(&data, &secret.items, path)?;
            }
            if let Some(map) = &source.config_map {
                let data = read(DataObject::ConfigMap, &map.name, map.optional).await?;
                write_items(&data, &map.items, path)?;
            }
            if let Some(downward) = &source.downward_api {
                for item in downward.items.iter().flatten() {
                    if let Some(field) = &item.field_ref {
                        let value = field_value(pod, &field.field_path);
                        let file = path.join(item.path.trim_start_matches('/'));
                        write_file(&file, value.as_bytes())?;
                    }
                }
            }
            if let Some(token) = &source.service_account_token {
                let t = request_token(ctx, pod, namespace, sa).await?;
                write_file(&path.join(&token.path), t.as_bytes())?;
            }
        }
    } else {
        return Err(Prepare::Fail(
            "UnsupportedVolume".into(),
            format!(
                "volume {}: only secret, configMap, emptyDir and projected are supported",
                volume.name
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_paths_under_mounts() {
        let root = Path::new("/tmp/p/root");
        let mounts = vec!["/etc/ferry".to_string()];
        assert_eq!(
            rewrite_path("/etc/ferry/job.yaml", root, &mounts),
            "/tmp/p/root/etc/ferry/job.yaml"
        );
        assert_eq!(rewrite_path("--f=/etc/ferry", root, &mounts), "--f=/tmp/p/root/etc/ferry");
        assert_eq!(rewrite_path("/etc/ferryx", root, &mounts), "/etc/ferryx");
        assert_eq!(rewrite_path("plain", root, &mounts), "plain");
    }
}
