//! `ferry verify -f FILE`: compares every table the job selects on source and target and prints
//! what differs (or the report as JSON). Exit 0 when everything agrees, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::Output;
use crate::verify::{self, Options, VerifyError, report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobArgs,
    /// `table` for people, `json` for programs.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Write the statements that would make the target equal to this file (never run).
    #[arg(long)]
    fix_sql: Option<PathBuf>,
    /// Chunks compared at once (default: from the job's tier).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds to wait for a replicating job to apply the source up to a position.
    #[arg(long, default_value_t = 120)]
    catch_up_timeout: u64,
    /// Seconds to keep re-reading rows that differ while the source keeps changing them.
    #[arg(long, default_value_t = 60)]
    settle_timeout: u64,
}

pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let config = args.job.looked_up_config().await?;
    let options = Options {
        concurrency: args.concurrency.unwrap_or(config.concurrency).max(1),
        settle_timeout: Duration::from_secs(args.settle_timeout),
        catch_up_timeout: Duration::from_secs(args.catch_up_timeout),
        only: None,
    };
    let report = verify::run(&config, &options).await?;
    if let Some(path) = &args.fix_sql {
        std::fs::write(path, report::fix_script(&report))
            .map_err(|source| VerifyError::Write { path: path.display().to_string(), source })?;
    }
    match args.output {
        Output::Table => print!("{}", report::render_text(&report)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| VerifyError::Write {
                path: "standard output".into(),
                source: e.into()
            })?
        ),
    }
    Ok(if report.equal { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
