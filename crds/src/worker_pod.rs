//! Where and how a job's worker pod is scheduled: image pull secrets, node selector,
//! tolerations, affinity, priority class, extra annotations and labels. The operator has
//! defaults for every job (the chart's `worker.podTemplate`, its `--worker-pod-template` file);
//! a job's `spec.workerPod` overrides them as [`WorkerPodTemplate::merged_over`] says.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, LocalObjectReference, Toleration};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Scheduling and metadata of a worker pod. Merged over the operator's defaults: the job's
/// `nodeSelector`, `annotations` and `labels` entries win over the defaults' entries of the same
/// key, `imagePullSecrets` and `tolerations` are added to the defaults', `affinity` and
/// `priorityClassName` replace the defaults' when set. Labels and annotations the operator
/// itself sets on the pod (`app.kubernetes.io/*`, `ferry.dev/*`) cannot be overridden.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPodTemplate {
    /// Secrets (in the job's namespace) to pull the worker image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Labels a node must have to run the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the worker tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod affinity of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the worker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub priority_class_name: Option<String>,
    /// Extra annotations on the worker pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Extra labels on the worker pod.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl WorkerPodTemplate {
    /// `self` (a job's) over `defaults` (the operator's), by the rule of the type's documentation.
    pub fn merged_over(&self, defaults: &WorkerPodTemplate) -> WorkerPodTemplate {
        let union = |defaults: &BTreeMap<String, String>, job: &BTreeMap<String, String>| {
            let mut all = defaults.clone();
            all.extend(job.iter().map(|(k, v)| (k.clone(), v.clone())));
            all
        };
        WorkerPodTemplate {
            image_pull_secrets: appended(&defaults.image_pull_secrets, &self.image_pull_secrets),
            node_selector: union(&defaults.node_selector, &self.node_selector),
            tolerations: appended(&defaults.tolerations, &self.tolerations),
            affinity: self.affinity.clone().or_else(|| defaults.affinity.clone()),
            priority_class_name: self
                .priority_class_name
                .clone()
                .or_else(|| defaults.priority_class_name.clone()),
            annotations: union(&defaults.annotations, &self.annotations),
            labels: union(&defaults.labels, &self.labels),
        }
    }
}

/// `defaults`, then the job's items that are not among them.
fn appended<T: Clone + PartialEq>(defaults: &[T], job: &[T]) -> Vec<T> {
    let mut all = defaults.to_vec();
    all.extend(job.iter().filter(|t| !defaults.contains(t)).cloned());
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(value: serde_json::Value) -> WorkerPodTemplate {
        serde_json::from_value(value).expect("template")
    }

    #[test]
    fn the_job_wins_per_key_adds_to_lists_and_replaces_the_rest() {
        let defaults = template(json!({
            "imagePullSecrets": [{"name": "registry"}],
            "nodeSelector": {"pool": "migrations", "zone": "a"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [
                    {"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}},
            "priorityClassName": "low",
            "labels": {"team": "data", "cost": "shared"},
        }));
        let job = template(json!({
            "imagePullSecrets": [{"name": "registry"}, {"name": "mirror"}],
            "nodeSelector": {"zone": "b"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "priorityClassName": "high",
            "annotations": {"note": "x"},
            "labels": {"cost": "shop"},
        }));
        let merged = job.merged_over(&defaults);
        let secrets: Vec<_> = merged.image_pull_secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(secrets, ["registry", "mirror"]);
        assert_eq!(merged.node_selector["zone"], "b");
        assert_eq!(merged.node_selector["pool"], "migrations");
        let keys: Vec<_> = merged.tolerations.iter().filter_map(|t| t.key.as_deref()).collect();
        assert_eq!(keys, ["dedicated", "spot"]);
        assert_eq!(merged.affinity, defaults.affinity, "kept when the job sets none");
        assert_eq!(merged.priority_class_name.as_deref(), Some("high"));
        assert_eq!(merged.labels["cost"], "shop");
        assert_eq!(merged.labels["team"], "data");
        assert_eq!(merged.annotations["note"], "x");
        assert_eq!(WorkerPodTemplate::default().merged_over(&defaults), defaults);
    }
}
