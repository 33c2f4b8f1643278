//! `ferry precheck -f FILE`: checks source and target for a job and prints one row per item,
//! then the reason and remedy of each item that did not pass (or the items as JSON). Exit 0
//! when nothing failed (warnings allowed), 1 otherwise.

use std::process::ExitCode;

use ferry_crds::job::{CheckResult, PrecheckItem};

use super::Output;
use crate::precheck::{self, Summary};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobArgs,
    /// `table` for people, `json` for programs (the status's `precheck` list).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Connections the job will use (default: from the job's tier), for the max_connections
    /// items; pass the same value as to `ferry migrate --concurrency`.
    #[arg(long)]
    concurrency: Option<usize>,
}

pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let mut config = args.job.config()?;
    if let Some(concurrency) = args.concurrency {
        config.concurrency = concurrency.max(1);
    }
    // Unreachable, the target gets its own precheck item; the job then has no checkpoint.
    if let Err(error) = crate::meta::jobs::identify(&mut config, false).await {
        tracing::debug!(%error, "cannot look up the job's checkpoint key");
    }
    let items = precheck::check(&config).await?;
    match args.output {
        Output::Table => print!("{}", render_table(&items)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&items).map_err(|e| precheck::PrecheckError::Failed(
                format!("cannot write the items as JSON: {e}")
            ))?
        ),
    }
    let failed = items.iter().any(|i| i.result == CheckResult::Failure);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The table: result, item and observed value per row; then, per item that did not pass, why
/// and what to do; then the summary.
pub fn render_table(items: &[PrecheckItem]) -> String {
    let width = items.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<8} {:<width$} OBSERVED\n", "RESULT", "ITEM");
    for item in items {
        let observed = item.observed.as_deref().unwrap_or("");
        out.push_str(&format!("{:<8} {:<width$} {}\n", label(item.result), item.name, observed));
    }
    for item in items.iter().filter(|i| i.result != CheckResult::Pass) {
        out.push_str(&format!("\n{} {}\n", label(item.result), item.name));
        if let Some(reason) = &item.reason {
            out.push_str(&format!("  why: {reason}\n"));
        }
        if let Some(remedy) = &item.remedy {
            out.push_str(&format!("  fix: {remedy}\n"));
        }
    }
    let summary = Summary::of(items);
    let verdict = if summary.failures > 0 {
        "the job cannot start until the failures are fixed"
    } else if summary.warnings > 0 {
        "the job can start; read the warnings"
    } else {
        "the job can start"
    };
    out.push_str(&format!("\n{summary}: {verdict}\n"));
    out
}

fn label(result: CheckResult) -> &'static str {
    match result {
        CheckResult::Pass => "Pass",
        CheckResult::Warning => "Warning",
        CheckResult::Failure => "Failure",
    }
}
