//! `ferry migrate -f FILE`: runs a job in this process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_crds::job::{DdlAction, DdlErrorAction, Phase};
use tokio_util::sync::CancellationToken;

use crate::config::JobConfig;
use crate::engine::{self, JobContext, Outcome};
use crate::progress::ConsoleSink;
use crate::report::{FileSink, StatusReporter, StatusSink, set_condition};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobArgs,
    /// Keep this file up to date with the job's status as JSON.
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Connections for copying and applying (default: from the job's tier).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Consecutive retries after errors a retry can fix (a dropped connection, a restarted
    /// server), each resuming from the checkpoint after a backoff of 1 s doubling to 1 min;
    /// 0 stops at the first error.
    #[arg(long, default_value_t = 10)]
    retries: u32,
    /// Skip the replicated DDL statement at this binlog position (`file:pos`, as the job's
    /// error gives it); repeatable. Same as a Skip entry of `spec.ddlErrorPolicy`.
    #[arg(long = "ddl-skip", value_name = "FILE:POS")]
    ddl_skip: Vec<String>,
    /// Replace the replicated DDL statement at this binlog position with the statements of
    /// `--ddl-replace-sql`. Same as a Replace entry of `spec.ddlErrorPolicy`.
    #[arg(long = "ddl-replace", value_name = "FILE:POS", requires = "ddl_replace_sql")]
    ddl_replace: Option<String>,
    /// A file of `;`-terminated statements to run on the target instead (see `--ddl-replace`).
    #[arg(long = "ddl-replace-sql", value_name = "FILE", requires = "ddl_replace")]
    ddl_replace_sql: Option<PathBuf>,
    /// Write the source's rows over the target rows that conflict with them in the source
    /// transactions up to this binlog position (`file:pos`, as a conflict's error names it), and
    /// in no later one; each row replaced is counted in the status. Same as
    /// `spec.overwriteConflictsAt`.
    #[arg(long = "overwrite-conflicts-at", value_name = "FILE:POS", value_parser = position)]
    overwrite_conflicts_at: Option<String>,
    /// Compare every row replication changes on source and target some seconds after it is
    /// applied, counting the rows that differ in the status (`validation`). Same as
    /// `spec.validation.continuous: true`, whose `delay` it takes (default 5s).
    #[arg(long)]
    validate_continuously: bool,
}

fn position(text: &str) -> Result<String, String> {
    crate::meta::incremental::parse_position(text)
        .map(|_| text.to_string())
        .ok_or_else(|| format!("{text:?} is not a binlog position such as mariadb-bin.000002:1234"))
}

/// A run this long is a recovery: the next error starts the retry count and backoff afresh.
const STABLE_RUN: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let mut config = args.job.config()?;
    if let Some(concurrency) = args.concurrency {
        config.concurrency = concurrency.max(1);
    }
    config.ddl_error_policy.extend(ddl_actions(&args)?);
    if let Some(position) = &args.overwrite_conflicts_at {
        config.overwrite_conflicts_at = Some(position.clone());
    }
    if args.validate_continuously && config.validation.is_none() {
        config.validation = crate::config::ValidationSettings::from_spec(Some(
            &ferry_crds::verification::ValidationSpec { continuous: true, ..Default::default() },
        ));
    }
    identify_with_retries(&mut config, args.retries).await?;
    let mut sinks: Vec<Box<dyn StatusSink>> = vec![Box::new(ConsoleSink::new())];
    if let Some(path) = args.status_file {
        sinks.push(Box::new(FileSink::new(path)));
    }
    let reporter = Arc::new(StatusReporter::new(sinks, Duration::from_secs(1)));
    let cancel = CancellationToken::new();
    engine::stop_on_signals(cancel.clone());
    let ctx = JobContext { config, reporter, cancel };
    match run_with_retries(&ctx, args.retries).await? {
        Outcome::Completed => match ctx.reporter.snapshot().position {
            Some(position) => eprintln!("job {} completed at {position}", ctx.config.id),
            None => eprintln!("job {} completed", ctx.config.id),
        },
        Outcome::Stopped => {
            record_stop(&ctx).await;
            eprintln!("job {} stopped; run the same command to resume", ctx.config.id)
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--ddl-skip` and `--ddl-replace` flags as `spec.ddlErrorPolicy` entries.
fn ddl_actions(args: &Args) -> crate::Result<Vec<DdlErrorAction>> {
    let mut actions: Vec<DdlErrorAction> = args
        .ddl_skip
        .iter()
        .map(|position| DdlErrorAction {
            position: position.clone(),
            action: DdlAction::Skip,
            statements: Vec::new(),
        })
        .collect();
    if let (Some(position), Some(path)) = (&args.ddl_replace, &args.ddl_replace_sql) {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            context: format!("read the statements of --ddl-replace-sql {}", path.display()),
            source,
        })?;
        actions.push(DdlErrorAction {
            position: position.clone(),
            action: DdlAction::Replace,
            statements: crate::rewrite::split_statements(&text),
        });
    }
    Ok(actions)
}

/// A stopped run leaves the status saying so (Paused, not Running): nothing works on the job
/// until the command runs again.
async fn record_stop(ctx: &JobContext) {
    ctx.reporter.update(|s| {
        s.phase = Some(Phase::Paused);
        let message =
            "stopped on request with the checkpoint saved; run the same command to resume";
        set_condition(&mut s.conditions, "Ready", false, "Stopped", message);
    });
    ctx.reporter.publish().await;
}

/// Runs the job, and again from its checkpoint after each retryable error, so a blip on the
/// network or a server restart does not need someone to rerun the command.
/// Registers the job on the target (its checkpoint key), retrying as a run does while the
/// target is down or restarting.
async fn identify_with_retries(config: &mut JobConfig, retries: u32) -> crate::Result<()> {
    let mut failures = 0;
    loop {
        let error = match crate::meta::jobs::identify(config, true).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if !error.retryable() || failures >= retries {
            return Err(error);
        }
        failures += 1;
        let backoff = backoff(failures);
        tracing::warn!(
            error = %error, attempt = failures, of = retries, backoff = ?backoff,
            "retrying to register the job on the target"
        );
        tokio::time::sleep(backoff).await;
    }
}

/// The wait before retry number `failures` (from 1): doubling from 1 s up to a minute.
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1 << (failures.max(1) - 1).min(6)).min(MAX_BACKOFF)
}

async fn run_with_retries(ctx: &JobContext, retries: u32) -> crate::Result<Outcome> {
    let mut failures = 0;
    loop {
        let started = Instant::now();
        let error = match engine::run(ctx).await {
            Ok(outcome) => return Ok(outcome),
            Err(error) => error,
        };
        if started.elapsed() >= STABLE_RUN {
            failures = 0;
        }
        if !error.retryable() || failures >= retries || ctx.cancel.is_cancelled() {
            return Err(error);
        }
        failures += 1;
        let backoff = backoff(failures);
        tracing::warn!(
            error = %error, attempt = failures, of = retries, backoff = ?backoff,
            "retrying from the checkpoint"
        );
        ctx.reporter.update(|s| {
            let message = format!("retry {failures} of {retries} in {backoff:?} after: {error}");
            set_condition(&mut s.conditions, "Failed", false, "Retrying", message);
        });
        ctx.reporter.publish().await;
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctx.cancel.cancelled() => return Ok(Outcome::Stopped),
        }
    }
}
