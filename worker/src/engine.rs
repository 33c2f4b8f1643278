//! Runs one job: precheck, then the existing-data copy and/or binlog replication, reporting
//! stage, phase and errors. Stopping (Ctrl-C, pause, pod deletion) goes through `cancel`.

use std::sync::Arc;

use chrono::Utc;
use ferry_crds::cutover::{CAUGHT_UP, CutoverState, CutoverStatus};
use ferry_crds::job::{BinlogPosition, JobError, Phase, Stage};
use tokio_util::sync::CancellationToken;

use crate::config::JobConfig;
use crate::meta::incremental::Position;
use crate::report::{StatusReporter, set_condition};
use crate::{Result, full, incremental, precheck};

/// What a job run needs.
pub struct JobContext {
    pub config: JobConfig,
    pub reporter: Arc<StatusReporter>,
    pub cancel: CancellationToken,
}

/// How a run ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Full mode finished.
    Completed,
    /// Stopped on request; the checkpoint is saved and a new run resumes from it.
    Stopped,
}

/// Runs the job to its end, a stop request or an error; the error is also put in the status.
pub async fn run(ctx: &JobContext) -> Result<Outcome> {
    let result = run_stages(ctx).await;
    if let Err(error) = &result {
        record_error(ctx, error).await;
    }
    result
}

async fn run_stages(ctx: &JobContext) -> Result<Outcome> {
    ctx.reporter.set_stage(Stage::Precheck, Phase::Running).await;
    precheck::run(ctx).await?;
    let mode = ctx.config.mode;
    let mut start: Option<BinlogPosition> = ctx.config.incremental_start.clone();
    if mode.copies_existing_data() {
        ctx.reporter.set_stage(Stage::Full, Phase::Running).await;
        let snapshot = full::run(ctx).await?;
        if ctx.cancel.is_cancelled() {
            return stopped(ctx).await;
        }
        start = Some(snapshot);
    }
    if mode.replicates() {
        ctx.reporter.set_stage(Stage::Incremental, Phase::Running).await;
        return match incremental::run(ctx, start).await? {
            incremental::Ended::Stopped => stopped(ctx).await,
            incremental::Ended::CutOver(at) => cut_over(ctx, &at).await,
        };
    }
    ctx.reporter.update(|s| {
        set_condition(&mut s.conditions, "Ready", true, "Completed", "existing data copied");
    });
    ctx.reporter.set_stage(Stage::Completed, Phase::Completed).await;
    Ok(Outcome::Completed)
}

async fn stopped(ctx: &JobContext) -> Result<Outcome> {
    ctx.reporter.update(|s| {
        let message = "replication is not running";
        set_condition(&mut s.conditions, CAUGHT_UP, false, "Stopped", message);
    });
    ctx.reporter.publish().await;
    Ok(Outcome::Stopped)
}

/// Completes a replicating job at the position its cutover verified.
async fn cut_over(ctx: &JobContext, at: &Position) -> Result<Outcome> {
    let position = crate::cutover::describe(at);
    tracing::info!(job = %ctx.config.id, position = %position, "job completed by its cutover");
    ctx.reporter.update(|s| {
        let message = format!("cut over at {position}: the target equals the source there");
        set_condition(&mut s.conditions, "Ready", true, "Completed", message.clone());
        s.position = Some(position.clone());
        let request = s.cutover.as_ref().map(|c| c.request.clone());
        s.cutover = Some(CutoverStatus {
            request: request.unwrap_or_else(|| "ferry cutover".into()),
            state: CutoverState::Completed,
            position: Some(position),
            message: Some(message),
            time: Utc::now().to_rfc3339(),
        });
    });
    ctx.reporter.set_stage(Stage::Completed, Phase::Completed).await;
    Ok(Outcome::Completed)
}

/// The first SIGINT (Ctrl-C) or SIGTERM (`kill`, pod deletion) stops the job at a checkpoint;
/// a second one exits at once with 128 + the signal's number (130, 143), as shells do.
pub fn stop_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (mut interrupt, mut terminate) =
            match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
                (Ok(i), Ok(t)) => (i, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("cannot watch for SIGINT and SIGTERM: {e}");
                    return;
                }
            };
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(
            signal = name,
            "stopping: saving the checkpoint (a second signal aborts at once)"
        );
        cancel.cancel();
        let code = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        };
        std::process::exit(code);
    });
}

async fn record_error(ctx: &JobContext, error: &crate::Error) {
    let message = error.to_string();
    tracing::error!(job = %ctx.config.id, error = %message, "job failed");
    ctx.reporter.update(|s| {
        s.last_error = Some(JobError {
            stage: s.stage.unwrap_or(Stage::Precheck),
            message: message.clone(),
            retryable: error.retryable(),
            time: Utc::now().to_rfc3339(),
        });
        s.phase = Some(Phase::Failed);
        set_condition(&mut s.conditions, "Failed", true, "Error", message.clone());
        set_condition(&mut s.conditions, "Ready", false, "Failed", message);
    });
    ctx.reporter.publish().await;
}
