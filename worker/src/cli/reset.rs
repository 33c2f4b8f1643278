//! `ferry reset -f FILE`: forgets a job's checkpoints on the target, so that the next
//! `ferry migrate` of the manifest starts a new migration instead of resuming.

use std::process::ExitCode;

use crate::connect::connect;
use crate::meta::jobs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    job: super::JobArgs,
}

/// Deletes the job's rows of `ferry_meta` (its checkpoints and its registered id); the migrated
/// tables stay as they are.
pub async fn run(args: Args) -> crate::Result<ExitCode> {
    let config = args.job.config()?;
    let mut conn = connect(&config.target, "target").await?;
    let name = config.id.to_string();
    let deleted = jobs::forget(&mut conn, &config.owner, &name).await?;
    drop(conn.disconnect().await);
    let target = config.target.describe();
    if deleted == 0 {
        eprintln!("job {name} has no checkpoints on the target {target}; nothing to reset");
    } else {
        eprintln!(
            "job {name} reset: deleted its {deleted} rows of ferry_meta on the target {target}. \
             The migrated databases and tables stay: drop or empty them before the next \
             `ferry migrate`, which starts a new migration"
        );
    }
    Ok(ExitCode::SUCCESS)
}
