//! `ferry binlog ...`.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Decode local binlog or relay-log files and print their events.
    Decode {
        /// Also print row changes as `mysqlbinlog --verbose` does.
        #[arg(short, long)]
        verbose: bool,
        /// Binlog files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub async fn run(command: Command) -> crate::Result<ExitCode> {
    match command {
        Command::Decode { .. } => Err(crate::incremental::IncrementalError::NotImplemented.into()),
    }
}
