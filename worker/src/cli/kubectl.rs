//! `kubectl ferry`: the `ferry` binary installed as `kubectl-ferry` (or run as `ferry kubectl`)
//! works on MigrationJobs in a cluster. It reads the kubeconfig as kubectl does (`KUBECONFIG`,
//! `~/.kube/config`, in-cluster; `--kubeconfig`, `--context`, `-n`) and only patches the spec
//! fields the operator and worker already act on: `paused`, `restartRequest`,
//! `verify.request`.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{SecondsFormat, Utc};
use ferry_crds::job::{MigrationJob, MigrationJobStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

use super::precheck::render_table;

/// `kubectl ferry`: status and control of MigrationJobs.
#[derive(clap::Parser)]
#[command(name = "kubectl ferry", bin_name = "kubectl ferry", version)]
pub struct Plugin {
    #[command(flatten)]
    args: Args,
}

#[derive(clap::Args)]
pub struct Args {
    /// Namespace of the job (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Stage, phase, conditions, the progress line and the precheck table of a job.
    Status { name: String },
    /// Stop the job's worker, keeping its checkpoint (spec.paused=true).
    Pause { name: String },
    /// Start a paused job again from its checkpoint (spec.paused=false).
    Resume { name: String },
    /// Resume a failed job from its checkpoint with a new worker (a new spec.restartRequest).
    Restart { name: String },
    /// Compare every selected table of source and target while the job runs (a new
    /// spec.verify.request); the result shows in `status`.
    Verify { name: String },
    /// The log of the job's worker pod.
    Logs {
        name: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<i64>,
    },
}

/// Why a plugin command failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the cluster: {0}")]
    Client(#[source] kube::Error),
    #[error("MigrationJob {namespace}/{name}: {source}")]
    Job { namespace: String, name: String, source: kube::Error },
    #[error("MigrationJob {0} has no worker pod now (status.workerPod is empty)")]
    NoWorker(String),
    #[error("cannot read the log of pod {pod}: {source}")]
    Logs { pod: String, source: kube::Error },
}

/// The `kubectl-ferry` entry: parses the arguments as the plugin's.
pub async fn main_as_plugin() -> ExitCode {
    use clap::Parser as _;
    let plugin = Plugin::parse();
    crate::logging::init(false);
    finish(run(plugin.args).await)
}

/// The exit code of a plugin command, its error printed.
pub fn finish(result: Result<ExitCode, PluginError>) -> ExitCode {
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

/// Runs one plugin command.
pub async fn run(args: Args) -> Result<ExitCode, PluginError> {
    let (client, default_namespace) = connect(&args).await?;
    let namespace = args.namespace.clone().unwrap_or(default_namespace);
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), &namespace);
    let job_error = |name: &str| {
        let (namespace, name) = (namespace.clone(), name.to_string());
        move |source| PluginError::Job { namespace, name, source }
    };
    match args.command {
        Command::Status { name } => {
            let job = jobs.get(&name).await.map_err(job_error(&name))?;
            print!("{}", describe(&job, Utc::now()));
        }
        Command::Pause { name } => {
            patch_spec(&jobs, &name, json!({"paused": true})).await.map_err(job_error(&name))?;
            println!("migrationjob.ferry.dev/{name} paused");
        }
        Command::Resume { name } => {
            patch_spec(&jobs, &name, json!({"paused": false})).await.map_err(job_error(&name))?;
            println!("migrationjob.ferry.dev/{name} resumed");
        }
        Command::Restart { name } => {
            let request = now_request();
            let spec = json!({"restartRequest": request});
            patch_spec(&jobs, &name, spec).await.map_err(job_error(&name))?;
            println!("migrationjob.ferry.dev/{name} restart requested ({request})");
        }
        Command::Verify { name } => {
            let request = now_request();
            let spec = json!({"verify": {"request": request}});
            patch_spec(&jobs, &name, spec).await.map_err(job_error(&name))?;
            println!("migrationjob.ferry.dev/{name} verification requested ({request})");
        }
        Command::Logs { name, tail } => {
            let job = jobs.get(&name).await.map_err(job_error(&name))?;
            let pod = job.status.and_then(|s| s.worker_pod).ok_or(PluginError::NoWorker(name))?;
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            let params = LogParams { tail_lines: tail, ..LogParams::default() };
            let log = pods
                .logs(&pod, &params)
                .await
                .map_err(|source| PluginError::Logs { pod: pod.clone(), source })?;
            print!("{log}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A client and the default namespace, from the kubeconfig as kubectl reads it.
async fn connect(args: &Args) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions { context: args.context.clone(), ..Default::default() };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| PluginError::Kubeconfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(file, &options).await.map_err(|e| e.to_string())
        }
        (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|e| e.to_string()),
        (None, None) => Config::infer().await.map_err(|e| e.to_string()),
    }
    .map_err(PluginError::Kubeconfig)?;
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(PluginError::Client)?;
    Ok((client, namespace))
}

/// A merge patch of `spec` (only the fields given change).
async fn patch_spec(
    jobs: &Api<MigrationJob>,
    name: &str,
    spec: serde_json::Value,
) -> kube::Result<MigrationJob> {
    let patch = json!({ "spec": spec });
    jobs.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await
}

/// A request value: the time now, as the CRD's documentation suggests.
fn now_request() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What `status` prints: the job's stage, phase and conditions, its progress line (as
/// `ferry migrate` prints it), the last error and the precheck table.
pub fn describe(job: &MigrationJob, now: chrono::DateTime<Utc>) -> String {
    let status = job.status.clone().unwrap_or_default();
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut out = format!(
        "MigrationJob {}/{}: stage {}, phase {}\n",
        job.namespace().unwrap_or_default(),
        job.name_any(),
        show(status.stage.map(|s| format!("{s:?}"))),
        show(status.phase.map(|p| format!("{p:?}"))),
    );
    out.push_str(&format!("Conditions: {}\n", conditions(&status)));
    let created = job.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let elapsed = created.map(|c| (now.timestamp() - c).max(0) as u64).unwrap_or(0);
    let line = crate::progress::describe(&status, std::time::Duration::from_secs(elapsed));
    out.push_str(&format!("Progress: {line}\n"));
    if let Some(pod) = &status.worker_pod {
        out.push_str(&format!("Worker: {pod}\n"));
    }
    if let Some(error) = &status.last_error {
        out.push_str(&format!("Last error ({:?}): {}\n", error.stage, error.message));
    }
    if !status.precheck.is_empty() {
        out.push_str("\nPrecheck:\n");
        out.push_str(&render_table(&status.precheck));
    }
    out
}

/// `Ready=True, Completed=False, ...` in the order the status lists them.
fn conditions(status: &MigrationJobStatus) -> String {
    if status.conditions.is_empty() {
        return "-".into();
    }
    let each = status.conditions.iter().map(|c| format!("{}={}", c.type_, c.status));
    each.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_conditions_progress_and_the_precheck_table() {
        let job: MigrationJob = serde_json::from_value(json!({
            "apiVersion": "ferry.dev/v1alpha1", "kind": "MigrationJob",
            "metadata": {"name": "copy", "namespace": "shop",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"sourceRef": {"name": "src"}, "mode": "Full",
                     "target": {"host": "tidb", "user": "root",
                                "passwordSecretRef": {"name": "t", "key": "password"}}},
            "status": {
                "stage": "Full", "phase": "Running", "workerPod": "copy-worker-1",
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Running", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:01Z"},
                    {"type": "Completed", "status": "False", "reason": "NotCompleted",
                     "message": "", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
                "full": {"tablesDone": 1, "tablesTotal": 4, "rows": 1000, "bytes": 2097152,
                         "bytesPerSecond": 1048576, "percent": "25.0%"},
                "precheck": [{"name": "binlog_format", "result": "Warning",
                              "observed": "MIXED", "remedy": "set ROW"}],
            },
        }))
        .expect("job");
        let now = "2026-01-01T00:01:05Z".parse().expect("time");
        let text = describe(&job, now);
        assert!(text.starts_with("MigrationJob shop/copy: stage Full, phase Running\n"), "{text}");
        assert!(text.contains("Conditions: Ready=True, Completed=False\n"), "{text}");
        assert!(text.contains("Progress: Copy: 1000 rows, 2.0 MiB, tables 1/4 (25.0%)"), "{text}");
        assert!(text.contains("Time: 1m05s"), "{text}");
        assert!(text.contains("Warning  binlog_format MIXED"), "{text}");
        assert!(text.contains("fix: set ROW"), "{text}");
        assert!(text.is_ascii(), "{text}");
    }

    /// The krew manifest installs this binary under the name `main` recognizes as the plugin,
    /// at the workspace's version.
    #[test]
    fn the_krew_manifest_installs_the_binary_as_kubectl_ferry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/krew/ferry.yaml");
        let text = std::fs::read_to_string(path).expect("deploy/krew/ferry.yaml");
        let manifest: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
        assert_eq!(manifest["kind"], "Plugin");
        assert_eq!(manifest["metadata"]["name"], "ferry");
        let version = format!("v{}", env!("CARGO_PKG_VERSION"));
        assert_eq!(manifest["spec"]["version"], version.as_str());
        let platforms = manifest["spec"]["platforms"].as_array().expect("platforms");
        assert!(!platforms.is_empty());
        for platform in platforms {
            assert_eq!(platform["bin"], "kubectl-ferry", "{platform}");
            assert_eq!(platform["files"][0], json!({"from": "ferry", "to": "kubectl-ferry"}));
            let uri = platform["uri"].as_str().unwrap_or_default();
            assert!(uri.contains(&format!("/{version}/")), "{uri}");
        }
    }
}
