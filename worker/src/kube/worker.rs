//! `ferry worker --namespace NS --job NAME`: runs one MigrationJob inside its worker pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ::kube::{Api, Client};
use ferry_crds::job::MigrationJob;
use ferry_crds::source::MigrationSource;
use ferry_crds::{SecretKeyRef, TlsConfig};
use tokio_util::sync::CancellationToken;

use super::{
    DEFAULT_SECRETS_DIR, EXIT_NOT_RETRYABLE, KubeSink, ObservedGeneration, SECRETS_DIR_ENV,
};
use crate::config::{JobConfig, Owner, parse_duration};
use crate::engine::{self, JobContext, Outcome};
use crate::manifest::{Manifest, Secret};
use crate::meta::jobs;
use crate::report::StatusReporter;

#[derive(clap::Args)]
pub struct Args {
    /// Namespace of the MigrationJob.
    #[arg(long, env = "FERRY_JOB_NAMESPACE")]
    namespace: String,
    /// Name of the MigrationJob.
    #[arg(long, env = "FERRY_JOB_NAME")]
    job: String,
    /// Directory holding the referenced Secret keys as `<secret>/<key>` files.
    #[arg(long, env = SECRETS_DIR_ENV, default_value = DEFAULT_SECRETS_DIR)]
    secrets_dir: PathBuf,
    /// Connections for copying and applying (the operator sets it from the tier).
    #[arg(long)]
    concurrency: Option<usize>,
    /// UID of the MigrationJob the pod was made for: a job of the same name with another UID is
    /// a new job, which this pod must not run.
    #[arg(long, env = "FERRY_JOB_UID")]
    job_uid: Option<String>,
    /// Least time between two status updates that are not stage changes or errors.
    #[arg(long, default_value = "5s", value_parser = duration)]
    status_interval: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration such as 5s or 1m"))
}

/// Why the worker could not start the job.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("cannot create a Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    Client(#[source] ::kube::Error),
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: ::kube::Error,
    },
    #[error(
        "cannot read Secret key {name}/{key} from {path}: {source}; the operator mounts every \
         referenced key there, so the Secret may have changed since the pod started"
    )]
    SecretFile { name: String, key: String, path: String, source: std::io::Error },
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(
        "MigrationJob {name} has UID {found}, not {expected} this pod was made for: the job was \
         deleted and created again, and the operator starts a new worker for the new one"
    )]
    Replaced { name: String, expected: String, found: String },
    #[error("MigrationJob {0} has no UID")]
    NoUid(String),
    #[error("cannot find the job's checkpoints on the target: {0}")]
    Identify(#[source] Box<crate::Error>),
}

/// Runs the job until it completes, fails, or SIGTERM asks it to stop (the checkpoint is kept).
/// Exit codes: 0 completed or stopped, 1 failed (retryable), 3 failed (not retryable). An edit of
/// the job's `objects`, `routes` or `filters` stops the run at a checkpoint and starts it again
/// with the new spec, which copies the tables the edit added (see
/// [`crate::incremental::backfill`]).
pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let signals = CancellationToken::new();
    // SIGTERM (pod deletion: pause, restart, job deletion) stops the job at a checkpoint.
    engine::stop_on_signals(signals.clone());
    loop {
        let edited = CancellationToken::new();
        let code = run_once(&args, &signals, &edited).await?;
        if !edited.is_cancelled() || signals.is_cancelled() {
            return Ok(code);
        }
        tracing::info!("the job's selection changed: running it again with the new spec");
    }
}

/// One run with the spec as it is now; `edited` is cancelled (and the run stopped) when the
/// selection changes.
async fn run_once(
    args: &Args,
    signals: &CancellationToken,
    edited: &CancellationToken,
) -> crate::Result<ExitCode> {
    let (config, job, api) = match setup(args).await {
        Ok(parts) => parts,
        Err(e) => {
            tracing::error!(job = %format!("{}/{}", args.namespace, args.job), "{e}");
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Start from what earlier runs reported (progress survives a pause), without the error
    // that stopped the last run: this run has not failed.
    let mut previous = job.status.clone().unwrap_or_default();
    previous.last_error = None;
    let acted = super::requests::Acted::from_status(&previous);
    let generation = ObservedGeneration::new(job.metadata.generation);
    let sink = KubeSink::new(api.clone(), args.job.clone(), generation.clone());
    let reporter = Arc::new(
        StatusReporter::new(vec![Box::new(sink)], args.status_interval).with_status(previous),
    );
    let cancel = signals.child_token();
    let on_edit = super::requests::OnEdit { edited: edited.clone(), run: cancel.clone() };
    let requests = super::requests::watch(
        api,
        args.job.clone(),
        config.clone(),
        (reporter.clone(), generation),
        acted,
        on_edit,
    );
    let ctx = JobContext { config, reporter, cancel };
    let result = tokio::select! {
        result = engine::run(&ctx) => result,
        () = requests => unreachable!("requests are watched until the job ends"),
    };
    match result {
        Ok(Outcome::Completed) => eprintln!("job {} completed", ctx.config.id),
        Ok(Outcome::Stopped) => eprintln!("job {} stopped; the checkpoint is saved", ctx.config.id),
        Err(error) => {
            eprintln!("error: {error}");
            let code = if error.retryable() { 1 } else { EXIT_NOT_RETRYABLE };
            return Ok(ExitCode::from(code));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn setup(args: &Args) -> Result<(JobConfig, MigrationJob, Api<MigrationJob>), SetupError> {
    let client = Client::try_default().await.map_err(SetupError::Client)?;
    let jobs: Api<MigrationJob> = Api::namespaced(client.clone(), &args.namespace);
    let job = jobs.get(&args.job).await.map_err(|source| SetupError::Read {
        what: format!("MigrationJob {}/{}", args.namespace, args.job),
        source,
    })?;
    let sources: Api<MigrationSource> = Api::namespaced(client, &args.namespace);
    let source_name = &job.spec.source_ref.name;
    let source = sources.get(source_name).await.map_err(|source| SetupError::Read {
        what: format!("MigrationSource {}/{source_name}", args.namespace),
        source,
    })?;
    let secrets = read_secrets(&args.secrets_dir, &args.namespace, &job, &source)?;
    let manifest = Manifest::from_objects(secrets, vec![source], vec![job.clone()])?;
    let mut config = manifest.job_config(Some(&args.job))?;
    if let Some(concurrency) = args.concurrency {
        config.concurrency = concurrency.max(1);
    }
    let name = format!("{}/{}", args.namespace, args.job);
    let uid = job.metadata.uid.clone().ok_or_else(|| SetupError::NoUid(name.clone()))?;
    if let Some(expected) = args.job_uid.as_ref().filter(|e| **e != uid) {
        return Err(SetupError::Replaced { name, expected: expected.clone(), found: uid });
    }
    config.owner = Owner::Kubernetes { uid };
    jobs::identify(&mut config, true).await.map_err(|e| SetupError::Identify(Box::new(e)))?;
    Ok((config, job, jobs))
}

/// Every Secret key the job and its source reference, read from `<dir>/<secret>/<key>`.
fn read_secrets(
    dir: &Path,
    namespace: &str,
    job: &MigrationJob,
    source: &MigrationSource,
) -> Result<Vec<Secret>, SetupError> {
    let mut by_name: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for secret_ref in referenced_keys(job, source) {
        let path = secret_file(dir, secret_ref);
        let bytes = std::fs::read(&path).map_err(|source| SetupError::SecretFile {
            name: secret_ref.name.clone(),
            key: secret_ref.key.clone(),
            path: path.display().to_string(),
            source,
        })?;
        by_name.entry(secret_ref.name.clone()).or_default().insert(secret_ref.key.clone(), bytes);
    }
    Ok(by_name
        .into_iter()
        .map(|(name, data)| Secret { namespace: namespace.to_string(), name, data })
        .collect())
}

/// Where the key of `secret_ref` is mounted under `dir`.
pub fn secret_file(dir: &Path, secret_ref: &SecretKeyRef) -> PathBuf {
    dir.join(&secret_ref.name).join(&secret_ref.key)
}

fn referenced_keys<'a>(
    job: &'a MigrationJob,
    source: &'a MigrationSource,
) -> impl Iterator<Item = &'a SecretKeyRef> {
    let tls = |t: Option<&'a TlsConfig>| t.into_iter().flat_map(TlsConfig::secret_refs);
    std::iter::once(&source.spec.password_secret_ref)
        .chain(tls(source.spec.tls.as_ref()))
        .chain(std::iter::once(&job.spec.target.password_secret_ref))
        .chain(tls(job.spec.target.tls.as_ref()))
}
