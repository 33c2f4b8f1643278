//! `ferry migrate -f FILE`: runs a job in this process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::{self, JobContext, Outcome};
use crate::manifest::Manifest;
use crate::progress::ConsoleSink;
use crate::report::{FileSink, StatusReporter, StatusSink};

#[derive(clap::Args)]
pub struct Args {
    /// Multi-document YAML with the Secrets, the MigrationSource and the MigrationJob.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Which MigrationJob to run when the file has several.
    #[arg(long)]
    job: Option<String>,
    /// Keep this file up to date with the job's status as JSON.
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Connections for copying and applying (default: from the job's tier).
    #[arg(long)]
    concurrency: Option<usize>,
}

pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let manifest = Manifest::load(&args.file)?;
    let mut config = manifest.job_config(args.job.as_deref())?;
    if let Some(concurrency) = args.concurrency {
        config.concurrency = concurrency.max(1);
    }
    let mut sinks: Vec<Box<dyn StatusSink>> = vec![Box::new(ConsoleSink::new())];
    if let Some(path) = args.status_file {
        sinks.push(Box::new(FileSink::new(path)));
    }
    let reporter = Arc::new(StatusReporter::new(sinks, Duration::from_secs(1)));
    let cancel = CancellationToken::new();
    stop_on_ctrl_c(cancel.clone());
    let ctx = JobContext { config, reporter, cancel };
    match engine::run(&ctx).await? {
        Outcome::Completed => eprintln!("job {} completed", ctx.config.id),
        Outcome::Stopped => {
            eprintln!("job {} stopped; run the same command to resume", ctx.config.id)
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn stop_on_ctrl_c(cancel: CancellationToken) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("stopping: saving the checkpoint (Ctrl-C again to abort at once)");
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}
