//! Reading the Secrets a resource references, with a readable problem for each missing key.

use std::collections::BTreeMap;

use ferry_crds::SecretKeyRef;
use ferry_worker::manifest::Secret as ManifestSecret;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::{Result, kube_err};

/// The referenced Secrets that exist, and what is missing.
pub struct Loaded {
    pub secrets: Vec<ManifestSecret>,
    pub problems: Vec<String>,
    /// Each referenced Secret's name and resourceVersion (`None`: not found), by name.
    pub versions: Vec<(String, Option<String>)>,
}

/// Reads every Secret named in `refs` (namespace `namespace`).
pub async fn load(client: &Client, namespace: &str, refs: &[&SecretKeyRef]) -> Result<Loaded> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut found: BTreeMap<String, Option<BTreeMap<String, Vec<u8>>>> = BTreeMap::new();
    let mut versions = Vec::new();
    for r in refs {
        if found.contains_key(&r.name) {
            continue;
        }
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(kube_err(format!("read Secret {namespace}/{}", r.name)))?;
        versions.push((
            r.name.clone(),
            secret.as_ref().and_then(|s| s.metadata.resource_version.clone()),
        ));
        let data =
            secret.map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect());
        found.insert(r.name.clone(), data);
    }
    let mut problems = Vec::new();
    for r in refs {
        match found.get(&r.name) {
            Some(Some(data)) if data.contains_key(&r.key) => {}
            Some(Some(_)) => problems.push(format!("Secret {} has no key {}", r.name, r.key)),
            _ => problems.push(format!("Secret {} not found in namespace {namespace}", r.name)),
        }
    }
    problems.dedup();
    let secrets = found
        .into_iter()
        .filter_map(|(name, data)| {
            Some(ManifestSecret { namespace: namespace.to_string(), name, data: data? })
        })
        .collect();
    versions.sort();
    Ok(Loaded { secrets, problems, versions })
}
