//! `ferry-operator`: reconciles MigrationSources and MigrationJobs (see the library docs).

use std::process::ExitCode;

use clap::Parser;
use ferry_operator::run::{Options, run};

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    if options.print_crds {
        for crd in ferry_crds::crd::all() {
            println!("---\n{}", ferry_crds::crd::to_yaml(&crd));
        }
        return ExitCode::SUCCESS;
    }
    ferry_worker::logging::init(std::env::var("FERRY_LOG_FORMAT").is_ok_and(|f| f == "json"));
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
