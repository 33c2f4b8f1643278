//! `ferry cutover -f FILE`: completes the job that `ferry migrate -f FILE` runs, once the source
//! is no longer written and the target provably equals it (see [`crate::cutover`]). The running
//! `ferry migrate` notices the recorded cutover (a row in `ferry_meta.cutover` on the target),
//! stops at the final position, writes Completed and that position to its status, and exits 0.
//! Exit 0 when the cutover went through, 1 otherwise (replication then goes on untouched).

use std::process::ExitCode;
use std::time::Duration;

use super::Output;
use crate::config::parse_duration;
use crate::cutover::{self, Options};
use crate::verify::{self, report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobArgs,
    /// When the source does not have read_only on: how long its binlog must stay still for the
    /// source to count as no longer written, such as `30s` (default: spec.cutover.quietFor;
    /// absent, read_only must be on).
    #[arg(long, value_parser = duration)]
    quiet_for: Option<Duration>,
    /// How long to wait for the source to go quiet and for the target to apply its final
    /// position, such as `10m` (default: spec.cutover.timeout).
    #[arg(long, value_parser = duration)]
    timeout: Option<Duration>,
    /// How long to wait for the running `ferry migrate` to complete the job afterwards.
    #[arg(long, default_value = "60s", value_parser = duration)]
    ack_timeout: Duration,
    /// Chunks compared at once by the final verify (default: from the job's tier).
    #[arg(long)]
    concurrency: Option<usize>,
    /// `table` for people, `json` for programs (the final verify's report).
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration such as 30s or 10m"))
}

pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let config = args.job.looked_up_config().await?;
    let settings = &config.cutover;
    let timeout = args.timeout.unwrap_or(settings.timeout);
    let options = Options {
        quiet_for: args.quiet_for.or(settings.quiet_for),
        timeout,
        verify: verify::Options {
            concurrency: args.concurrency.unwrap_or(config.concurrency).max(1),
            // The source is no longer written: a row that differs cannot be in flight.
            settle_timeout: Duration::from_secs(5),
            catch_up_timeout: timeout,
            only: None,
        },
    };
    let done = cutover::run(&config, &options, |_, step| eprintln!("cutover: {step}")).await?;
    let position = cutover::describe(&done.position);
    match args.output {
        Output::Table => print!("{}", report::render_text(&done.report)),
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "position": position,
                "gtidSet": done.position.gtid_set,
                "sourceQuiet": done.quiet,
                "verify": done.report,
            })
        ),
    }
    eprintln!(
        "cutover: {} ({}); the target equals the source at {position}",
        config.id, done.quiet
    );
    if cutover::wait_acknowledged(&config, args.ack_timeout).await? {
        eprintln!("cutover: the running ferry migrate completed job {} at {position}", config.id);
    } else {
        eprintln!(
            "cutover: no running ferry migrate completed job {} within {:?}; the next run of \
             `ferry migrate` for it completes at once at {position}",
            config.id, args.ack_timeout
        );
    }
    Ok(ExitCode::SUCCESS)
}
