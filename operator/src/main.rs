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
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = std::env::var("FERRY_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
