//! The `ferry` command line.

mod binlog;
mod cutover;
mod kubectl;
mod migrate;
mod precheck;
mod reset;
mod validate;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Ferry moves a live MySQL-compatible database into TiDB: existing data, then the binlog.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "FERRY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The job a subcommand works on.
#[derive(clap::Args)]
struct JobArgs {
    /// Multi-document YAML with the Secrets, the MigrationSource and the MigrationJob.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Which MigrationJob to use when the file has several.
    #[arg(long)]
    job: Option<String>,
}

impl JobArgs {
    /// The selected job's configuration, read from the manifest.
    fn config(&self) -> crate::Result<crate::config::JobConfig> {
        let manifest = crate::manifest::Manifest::load(&self.file)?;
        Ok(manifest.job_config(self.job.as_deref())?)
    }

    /// [`Self::config`] with the job's checkpoint key looked up on the target (registering
    /// nothing there): for the commands that read a running job's checkpoints.
    async fn looked_up_config(&self) -> crate::Result<crate::config::JobConfig> {
        let mut config = self.config()?;
        crate::meta::jobs::identify(&mut config, false).await?;
        Ok(config)
    }
}

/// How a report is printed: `table` for people, `json` for programs.
#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a manifest (Secrets, MigrationSource, MigrationJob) as the API server would.
    Validate {
        /// Multi-document YAML file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Run a MigrationJob from a manifest in this process.
    Migrate(migrate::Args),
    /// Check source and target for a MigrationJob without migrating anything.
    Precheck(precheck::Args),
    /// Compare every table of a MigrationJob on source and target, row by row.
    Verify(verify::Args),
    /// Forget a MigrationJob's checkpoints on the target: the next `ferry migrate` of the
    /// manifest starts a new migration (the migrated tables stay).
    Reset(reset::Args),
    /// Complete a replicating job once the source is no longer written and the target equals it.
    Cutover(cutover::Args),
    /// Run a MigrationJob inside its worker pod, reporting into the MigrationJob status.
    Worker(crate::kube::Args),
    /// Status and control of MigrationJobs in a cluster (also installed as `kubectl ferry`).
    Kubectl(kubectl::Args),
    /// Work with binlog files.
    Binlog {
        #[command(subcommand)]
        command: binlog::Command,
    },
    /// Print a shell completion script, e.g. `source <(ferry completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Parses the arguments, runs the command and turns its result into the exit code:
/// 0 success, 1 failure (the reason on standard error), 2 bad usage.
pub async fn main() -> ExitCode {
    if invoked_as_kubectl_plugin() {
        return kubectl::main_as_plugin().await;
    }
    let cli = Cli::parse();
    crate::logging::init(matches!(cli.log_format, LogFormat::Json));
    let result = match cli.command {
        Command::Validate { file } => validate::run(&file),
        Command::Migrate(args) => migrate::run(args).await,
        Command::Precheck(args) => precheck::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Reset(args) => reset::run(args).await,
        Command::Cutover(args) => cutover::run(args).await,
        Command::Binlog { command } => binlog::run(command).await,
        Command::Worker(args) => crate::kube::run(args).await,
        Command::Kubectl(args) => Ok(kubectl::finish(kubectl::run(args).await)),
        Command::Completion { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Whether this binary runs as `kubectl-ferry` (kubectl runs plugins by that file name).
fn invoked_as_kubectl_plugin() -> bool {
    let program = std::env::args_os().next().map(PathBuf::from);
    let name = program.as_deref().and_then(|p| p.file_name()).and_then(|n| n.to_str());
    name.is_some_and(|n| n.trim_end_matches(".exe") == "kubectl-ferry")
}
