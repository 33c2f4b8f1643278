//! The `ferry` command.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    ferry_worker::cli::main().await
}
