//! The worker pod of a job, and the ServiceAccount, Role and RoleBinding that let it read its
//! own MigrationJob and MigrationSource and write its own status, nothing else.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_crds::contract::{SECRETS_DIR, SECRETS_DIR_ENV};
use ferry_crds::job::MigrationJob;
use ferry_crds::worker_pod::WorkerPodTemplate;
use ferry_crds::{GROUP, SecretKeyRef, TlsConfig};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, KeyToPath, Pod, PodSecurityContext,
    PodSpec, ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretProjection,
    SecurityContext, ServiceAccount, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::decisions::{NewWorker, PodState, Worker};
use super::tiers::{Tiers, parse_tier, tier_name};

/// Label with the MigrationJob's UID on every object made for it (names can exceed the 63
/// characters a label value allows; UIDs cannot).
pub const JOB_UID_LABEL: &str = "ferry.dev/job-uid";
pub const ATTEMPT_ANNOTATION: &str = "ferry.dev/attempt";
pub const FAILURES_ANNOTATION: &str = "ferry.dev/failures";
pub const TIER_ANNOTATION: &str = "ferry.dev/tier";
/// The `ferry` binary in the worker image.
pub const WORKER_BINARY: &str = "/usr/local/bin/ferry";
/// Time the worker gets after SIGTERM to save its checkpoint.
pub const GRACE_PERIOD_SECONDS: i64 = 60;

/// How worker pods are built, from the operator's settings.
#[derive(Clone, Debug)]
pub struct PodSettings {
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub tiers: Tiers,
    /// `--status-interval` of the worker.
    pub status_interval: String,
    /// Scheduling and metadata of every worker pod, under each job's `spec.workerPod`.
    pub template: WorkerPodTemplate,
}

/// Why a worker pod template file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PodTemplateError {
    #[error("cannot read the worker pod template {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "the worker pod template {path} is not valid: {message}; it takes imagePullSecrets, \
         nodeSelector, tolerations, affinity, priorityClassName, annotations and labels"
    )]
    Invalid { path: String, message: String },
}

/// The fields of a worker pod template file (a misspelled one is an error, not ignored).
const TEMPLATE_FIELDS: [&str; 7] = [
    "imagePullSecrets",
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "annotations",
    "labels",
];

/// Reads the operator's default worker pod template (YAML, the chart's `worker.podTemplate`).
pub fn load_template(path: &Path) -> Result<WorkerPodTemplate, PodTemplateError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|source| PodTemplateError::Read { path: shown.clone(), source })?;
    let invalid = |message: String| PodTemplateError::Invalid { path: shown.clone(), message };
    let value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if value.is_null() {
        return Ok(WorkerPodTemplate::default());
    }
    let keys = value.as_mapping().ok_or_else(|| invalid("not a mapping".into()))?.keys();
    for key in keys {
        let key = key.as_str().unwrap_or_default();
        if !TEMPLATE_FIELDS.contains(&key) {
            return Err(invalid(format!("unknown field `{key}`")));
        }
    }
    serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// `<job>-worker-<attempt>`, shortened so that it stays a valid 63-character host name.
pub fn pod_name(job: &str, attempt: u32) -> String {
    let suffix = format!("-worker-{attempt}");
    let keep = 63usize.saturating_sub(suffix.len());
    let base: String = job.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

/// The worker ServiceAccount of a job (also the name of its Role and RoleBinding).
pub fn service_account_name(job: &str) -> String {
    let name = format!("ferry-worker-{job}");
    name.chars().take(253).collect()
}

fn labels(job: &MigrationJob) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "ferry-worker".into()),
        ("app.kubernetes.io/part-of".into(), "ferry".into()),
        ("app.kubernetes.io/managed-by".into(), "ferry-operator".into()),
        (JOB_UID_LABEL.into(), job.uid().unwrap_or_default()),
    ])
}

/// `extra` (a pod template's), then the operator's own entries, which win.
fn with_extra(
    extra: &BTreeMap<String, String>,
    own: BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let mut all = extra.clone();
    all.extend(own);
    Some(all)
}

/// Name, namespace, labels and the controller reference of an object made for a job: garbage
/// collection removes the pod, the ServiceAccount, the Role and the RoleBinding with the job,
/// and pod events requeue the job.
fn metadata(job: &MigrationJob, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: job.namespace(),
        labels: Some(labels(job)),
        owner_references: job.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// Label selector of the objects made for a job.
pub fn selector(job: &MigrationJob) -> String {
    format!("{JOB_UID_LABEL}={}", job.uid().unwrap_or_default())
}

/// The worker pod for `new`.
pub fn worker_pod(
    job: &MigrationJob,
    source_refs: &[&SecretKeyRef],
    new: &NewWorker,
    settings: &PodSettings,
) -> Pod {
    let name = job.name_any();
    let template = match &job.spec.worker_pod {
        Some(own) => own.merged_over(&settings.template),
        None => settings.template.clone(),
    };
    let annotations = BTreeMap::from([
        (ATTEMPT_ANNOTATION.to_string(), new.attempt.to_string()),
        (FAILURES_ANNOTATION.to_string(), new.failures.to_string()),
        (TIER_ANNOTATION.to_string(), tier_name(job.spec.tier).to_string()),
    ]);
    let refs: Vec<&SecretKeyRef> =
        source_refs.iter().copied().chain(job_secret_refs(job)).collect();
    let secrets = Volume {
        name: "secrets".into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o440),
            sources: Some(secret_sources(&refs)),
        }),
        ..Volume::default()
    };
    let tmp = Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let metadata = metadata(job, pod_name(&name, new.attempt));
    Pod {
        metadata: ObjectMeta {
            annotations: with_extra(&template.annotations, annotations),
            labels: with_extra(&template.labels, metadata.labels.clone().unwrap_or_default()),
            ..metadata
        },
        spec: Some(PodSpec {
            image_pull_secrets: Some(template.image_pull_secrets).filter(|s| !s.is_empty()),
            node_selector: Some(template.node_selector).filter(|s| !s.is_empty()),
            tolerations: Some(template.tolerations).filter(|t| !t.is_empty()),
            affinity: template.affinity,
            priority_class_name: template.priority_class_name,
            restart_policy: Some("Never".into()),
            service_account_name: Some(service_account_name(&name)),
            automount_service_account_token: Some(true),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(GRACE_PERIOD_SECONDS),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                run_as_group: Some(65532),
                fs_group: Some(65532),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![worker_container(job, settings)],
            volumes: Some(vec![secrets, tmp]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

/// The `ferry worker` container: arguments, resources of the tier, the Secret keys as files.
fn worker_container(job: &MigrationJob, settings: &PodSettings) -> Container {
    let tier = settings.tiers.get(job.spec.tier);
    let mut args = vec![
        "worker".to_string(),
        "--namespace".into(),
        job.namespace().unwrap_or_default(),
        "--job".into(),
        job.name_any(),
        "--concurrency".into(),
        tier.concurrency.to_string(),
        "--status-interval".into(),
        settings.status_interval.clone(),
    ];
    // The worker checks that the job it reads is this one, not a new job of the same name.
    if let Some(uid) = job.uid() {
        args.extend(["--job-uid".into(), uid]);
    }
    let env = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.to_string())),
            ("memory".to_string(), Quantity(memory.to_string())),
        ])
    };
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    Container {
        name: "worker".into(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        command: Some(vec![WORKER_BINARY.into()]),
        args: Some(args),
        env: Some(vec![env(SECRETS_DIR_ENV, SECRETS_DIR), env("FERRY_LOG_FORMAT", "json")]),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&tier.cpu_request, &tier.memory_request)),
            limits: Some(quantities(&tier.cpu_limit, &tier.memory_limit)),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![mount("secrets", SECRETS_DIR, true), mount("tmp", "/tmp", false)]),
        ..Container::default()
    }
}

/// Secret keys the job itself references (target password and TLS).
pub fn job_secret_refs(job: &MigrationJob) -> impl Iterator<Item = &SecretKeyRef> {
    let target = &job.spec.target;
    std::iter::once(&target.password_secret_ref)
        .chain(target.tls.iter().flat_map(TlsConfig::secret_refs))
}

/// One projected source per Secret, each key at `<secret>/<key>`, as the worker reads them.
fn secret_sources(refs: &[&SecretKeyRef]) -> Vec<VolumeProjection> {
    let mut by_secret: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in refs {
        let keys = by_secret.entry(&r.name).or_default();
        if !keys.contains(&r.key.as_str()) {
            keys.push(&r.key);
        }
    }
    by_secret
        .into_iter()
        .map(|(secret, keys)| {
            let items = keys
                .iter()
                .map(|k| KeyToPath {
                    key: k.to_string(),
                    path: format!("{secret}/{k}"),
                    ..KeyToPath::default()
                })
                .collect();
            VolumeProjection {
                secret: Some(SecretProjection {
                    name: secret.to_string(),
                    items: Some(items),
                    ..SecretProjection::default()
                }),
                ..VolumeProjection::default()
            }
        })
        .collect()
}

/// The worker's ServiceAccount, Role and RoleBinding: get on its own MigrationJob and
/// MigrationSource, get and patch on its own MigrationJob's status (`resourceNames`).
pub fn worker_rbac(job: &MigrationJob) -> (ServiceAccount, Role, RoleBinding) {
    let name = service_account_name(&job.name_any());
    let job_name = job.name_any();
    let rule = |resource: &str, object: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![GROUP.into()]),
        resources: Some(vec![resource.into()]),
        resource_names: Some(vec![object.into()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    let account = ServiceAccount { metadata: metadata(job, name.clone()), ..Default::default() };
    let role = Role {
        metadata: metadata(job, name.clone()),
        rules: Some(vec![
            rule("migrationjobs", &job_name, &["get"]),
            rule("migrationjobs/status", &job_name, &["get", "patch"]),
            rule("migrationsources", &job.spec.source_ref.name, &["get"]),
        ]),
    };
    let binding = RoleBinding {
        metadata: metadata(job, name.clone()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name,
            namespace: job.namespace(),
            ..Subject::default()
        }]),
    };
    (account, role, binding)
}

/// What decisions need to know about a worker pod.
pub fn observe(pod: &Pod) -> Worker {
    let annotation = |key: &str| pod.annotations().get(key).cloned();
    let number = |key: &str| annotation(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    let status = pod.status.as_ref();
    let container = status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
    let terminated = container.and_then(|c| c.state.as_ref()).and_then(|s| s.terminated.as_ref());
    let state = if pod.metadata.deletion_timestamp.is_some() {
        PodState::Terminating
    } else {
        match status.and_then(|s| s.phase.as_deref()) {
            Some("Running") => PodState::Running,
            Some("Succeeded") => PodState::Succeeded,
            Some("Failed") => PodState::Failed,
            _ => PodState::Pending,
        }
    };
    let seconds = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| t.0.as_second();
    Worker {
        name: pod.name_any(),
        attempt: number(ATTEMPT_ANNOTATION),
        failures: number(FAILURES_ANNOTATION),
        tier: annotation(TIER_ANNOTATION).and_then(|t| parse_tier(&t)),
        state,
        created: pod.metadata.creation_timestamp.as_ref().map(seconds),
        started: status.and_then(|s| s.start_time.as_ref()).map(seconds),
        finished: terminated.and_then(|t| t.finished_at.as_ref()).map(seconds),
        exit_code: terminated.map(|t| t.exit_code),
        message: terminated
            .and_then(|t| t.message.clone().or_else(|| t.reason.clone()))
            .or_else(|| status.and_then(|s| s.message.clone())),
    }
}

/// The newest of a job's pods (highest attempt, then newest).
pub fn newest(pods: &[Pod]) -> Option<&Pod> {
    pods.iter().max_by_key(|p| {
        let attempt: u32 =
            p.annotations().get(ATTEMPT_ANNOTATION).and_then(|a| a.parse().ok()).unwrap_or(0);
        (attempt, p.metadata.creation_timestamp.clone().map(|t| t.0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crds::job::Tier;
    use serde_json::json;

    fn job(tier: Tier) -> MigrationJob {
        let mut job: MigrationJob = serde_json::from_value(json!({
            "apiVersion": "ferry.dev/v1alpha1",
            "kind": "MigrationJob",
            "metadata": {"name": "copy", "namespace": "shop", "uid": "0000-1111"},
            "spec": {
                "sourceRef": {"name": "src"},
                "target": {
                    "host": "tidb", "port": 4000, "user": "root",
                    "passwordSecretRef": {"name": "target", "key": "password"},
                    "tls": {"mode": "ServerAuth", "caSecretRef": {"name": "target", "key": "ca.pem"}},
                },
                "mode": "Full",
            },
        }))
        .expect("job");
        job.spec.tier = tier;
        job
    }

    fn settings() -> PodSettings {
        PodSettings {
            image: "ghcr.io/ferry/ferry:1".into(),
            image_pull_policy: None,
            tiers: Tiers::default(),
            status_interval: "5s".into(),
            template: WorkerPodTemplate::default(),
        }
    }

    #[test]
    fn the_pod_template_is_merged_and_cannot_override_the_operators_metadata() {
        let mut settings = settings();
        settings.template = serde_json::from_value(json!({
            "imagePullSecrets": [{"name": "registry"}],
            "nodeSelector": {"pool": "migrations"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "batch",
            "labels": {"team": "data"},
        }))
        .expect("defaults");
        let mut job = job(Tier::Small);
        job.spec.worker_pod = Some(
            serde_json::from_value(json!({
                "nodeSelector": {"zone": "b"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}},
                "priorityClassName": "urgent",
                "annotations": {"ferry.dev/attempt": "99", "owner": "shop"},
                "labels": {"app.kubernetes.io/name": "mine", "cost": "shop"},
            }))
            .expect("job template"),
        );
        let new = NewWorker { attempt: 1, failures: 0, restart_request: None };
        let pod = worker_pod(&job, &[], &new, &settings);
        let spec = pod.spec.as_ref().expect("spec");
        let pull: Vec<_> = spec.image_pull_secrets.iter().flatten().map(|s| &s.name).collect();
        assert_eq!(pull, ["registry"]);
        let selector = spec.node_selector.clone().unwrap_or_default();
        assert_eq!(
            selector,
            BTreeMap::from([("pool".into(), "migrations".into()), ("zone".into(), "b".into())])
        );
        assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(1));
        assert!(spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref()).is_some());
        assert_eq!(spec.priority_class_name.as_deref(), Some("urgent"));
        let labels = pod.labels();
        assert_eq!(labels["app.kubernetes.io/name"], "ferry-worker", "the operator's label wins");
        assert_eq!((labels["team"].as_str(), labels["cost"].as_str()), ("data", "shop"));
        let annotations = pod.annotations();
        assert_eq!(annotations[ATTEMPT_ANNOTATION], "1", "the operator's annotation wins");
        assert_eq!(annotations["owner"], "shop");
        // Without any template the pod has none of these fields.
        let plain =
            worker_pod(&super::tests::job(Tier::Small), &[], &new, &super::tests::settings());
        let spec = plain.spec.expect("spec");
        assert_eq!(
            (spec.image_pull_secrets, spec.node_selector, spec.tolerations),
            (None, None, None)
        );
        assert_eq!((spec.affinity, spec.priority_class_name), (None, None));
    }

    #[test]
    fn a_template_file_with_a_misspelled_field_is_refused() {
        let path =
            std::env::temp_dir().join(format!("ferry-worker-pod-{}.yaml", std::process::id()));
        std::fs::write(&path, "nodeSelector: {pool: a}\ntoleration: []\n").expect("write");
        let error = load_template(&path).expect_err("misspelled").to_string();
        assert!(error.contains("unknown field `toleration`"), "{error}");
        std::fs::write(&path, "nodeSelector: {pool: a}\npriorityClassName: low\n").expect("write");
        let template = load_template(&path).expect("valid");
        assert_eq!(template.priority_class_name.as_deref(), Some("low"));
        std::fs::write(&path, "{}\n").expect("write");
        assert_eq!(load_template(&path).expect("empty"), WorkerPodTemplate::default());
        std::fs::remove_file(&path).expect("remove");
    }

    #[test]
    fn the_pod_is_sized_by_the_tier_and_gets_credentials_as_files() {
        let new = NewWorker { attempt: 2, failures: 1, restart_request: None };
        let source_password = SecretKeyRef { name: "source".into(), key: "password".into() };
        let pod = worker_pod(&job(Tier::Large), &[&source_password], &new, &settings());
        assert_eq!(pod.metadata.name.as_deref(), Some("copy-worker-2"));
        let spec = pod.spec.as_ref().expect("spec");
        let c = &spec.containers[0];
        let resources = c.resources.as_ref().expect("resources");
        let limits = resources.limits.as_ref().expect("limits");
        assert_eq!(limits["cpu"].0, "4");
        assert_eq!(limits["memory"].0, "4Gi");
        assert_eq!(resources.requests.as_ref().expect("requests")["cpu"].0, "2");
        let args = c.args.clone().unwrap_or_default().join(" ");
        assert!(
            args.contains("--concurrency 16") && args.contains("--job-uid 0000-1111"),
            "{args}"
        );
        // No credential in arguments or plain environment values.
        let text = serde_json::to_string(&pod).expect("json");
        assert!(!text.contains("secretKeyRef"), "env from secrets is not used: {text}");
        let volumes = spec.volumes.as_ref().expect("volumes");
        let projected = volumes[0].projected.as_ref().expect("projected");
        let paths: Vec<String> = projected
            .sources
            .iter()
            .flatten()
            .flat_map(|s| s.secret.as_ref().and_then(|s| s.items.clone()).unwrap_or_default())
            .map(|i| i.path)
            .collect();
        assert_eq!(paths, ["source/password", "target/password", "target/ca.pem"]);
        let security = c.security_context.as_ref().expect("security context");
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.service_account_name.as_deref(), Some("ferry-worker-copy"));
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("MigrationJob", Some(true)));
    }

    #[test]
    fn observing_a_pod_reads_back_what_was_written() {
        let new = NewWorker { attempt: 3, failures: 2, restart_request: None };
        let pod = worker_pod(&job(Tier::Medium), &[], &new, &settings());
        let w = observe(&pod);
        assert_eq!((w.attempt, w.failures, w.tier), (3, 2, Some(Tier::Medium)));
        assert_eq!(w.state, PodState::Pending);
    }

    #[test]
    fn names_stay_valid_host_names() {
        let long = "a".repeat(80);
        let name = pod_name(&long, 12);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("-worker-12"));
    }

    #[test]
    fn the_worker_role_names_only_its_own_objects() {
        let (_, role, binding) = worker_rbac(&job(Tier::Small));
        let rules = role.rules.expect("rules");
        for rule in &rules {
            assert!(rule.resource_names.as_ref().is_some_and(|n| n.len() == 1), "{rule:?}");
            assert!(rule.verbs.iter().all(|v| v == "get" || v == "patch"), "{rule:?}");
        }
        let status = rules
            .iter()
            .find(|r| r.resources.as_deref() == Some(&["migrationjobs/status".to_string()][..]));
        assert_eq!(status.and_then(|r| r.resource_names.clone()), Some(vec!["copy".to_string()]));
        assert_eq!(binding.role_ref.name, "ferry-worker-copy");
    }
}
