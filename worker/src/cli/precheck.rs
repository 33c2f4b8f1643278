//! `ferry precheck -f FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Multi-document YAML with the Secrets, the MigrationSource and the MigrationJob.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Which MigrationJob to check when the file has several.
    #[arg(long)]
    job: Option<String>,
}

pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let _ = (args.file, args.job);
    Err(crate::precheck::PrecheckError::Failed("ferry precheck is not built yet".into()).into())
}
