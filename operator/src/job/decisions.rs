//! What the MigrationJob reconciler does, as pure functions of what it observed: no API calls,
//! no clocks. `job::controller` gathers a [`JobView`], a [`Gate`] and the current [`Worker`],
//! asks [`decide`], and carries out the [`Decision`].
//!
//! Rules, in order:
//! 1. A worker pod that is terminating is waited for: two workers never run at once.
//! 2. A restart request (`spec.restartRequest` differing from `status.lastRestartRequest`)
//!    replaces any worker with a new one that replaces conflicting rows, then is recorded.
//! 3. A job whose worker reported stage Completed is Completed.
//! 4. Paused: the worker is deleted (SIGTERM: it saves its checkpoint in the target); with no
//!    pod left the phase is Paused. Resuming starts a new worker that continues from the
//!    checkpoint.
//! 5. No worker: one is created if the gate is open (references valid, job limit respected);
//!    otherwise the job stays Pending with the reason, rechecked later (and on every change of
//!    the source or a Secret), never in a hot loop.
//! 6. A worker of another tier than the spec's is replaced (pod resources cannot change).
//! 7. A failed worker is restarted with an exponential backoff when its error is retryable (a
//!    crash without a report counts as retryable); otherwise the job is Failed with the error
//!    until the user sends a restart request.

use std::time::Duration;

use ferry_crds::job::{Phase, Stage, Tier};

pub use crate::events::EventKind;

/// What the reconciler saw of the MigrationJob.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobView {
    pub paused: bool,
    pub tier: Tier,
    pub restart_request: Option<String>,
    pub last_restart_request: Option<String>,
    /// Stage the worker reported.
    pub stage: Option<Stage>,
    /// Error the worker reported (`status.lastError`).
    pub last_error: Option<ReportedError>,
}

/// `status.lastError` as far as decisions need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedError {
    pub message: String,
    pub retryable: bool,
    /// Unix seconds; `None` if the time could not be read.
    pub time: Option<i64>,
}

/// Whether a new worker may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// A reference or the job limit is not satisfied; `reason` is a condition reason.
    Blocked {
        reason: &'static str,
        message: String,
    },
}

/// State of a worker pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodState {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Marked for deletion, process may still run.
    Terminating,
}

/// The job's newest worker pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub name: String,
    /// 1 for the first pod after a start, resume or restart request; +1 per automatic retry.
    pub attempt: u32,
    /// Consecutive retryable failures before this pod started (drives the backoff).
    pub failures: u32,
    /// Tier the pod was sized for.
    pub tier: Option<Tier>,
    pub state: PodState,
    /// Unix seconds.
    pub created: Option<i64>,
    pub started: Option<i64>,
    pub finished: Option<i64>,
    pub exit_code: Option<i32>,
    /// The container's termination message (the end of its output).
    pub message: Option<String>,
}

/// Exit code of a worker whose error is not retryable (see `ferry_crds::contract`).
pub const EXIT_NOT_RETRYABLE: i32 = ferry_crds::contract::EXIT_NOT_RETRYABLE as i32;

/// Restart backoff for retryable failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry; doubles per consecutive failure.
    pub base: Duration,
    pub max: Duration,
    /// A worker that ran this long before failing starts the count again.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// Delay before retry number `failures` (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

/// A worker to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWorker {
    pub attempt: u32,
    pub failures: u32,
    /// The restart request this worker answers, to record in `status.lastRestartRequest`.
    pub restart_request: Option<String>,
}

/// What to do to the job's pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Create(NewWorker),
    /// Delete every worker pod of the job (SIGTERM, then the grace period).
    DeleteWorkers,
}

/// The outcome of one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub phase: Phase,
    /// Reason of the Ready condition and of the event; PascalCase.
    pub reason: &'static str,
    pub message: String,
    /// Whether the Failed condition is True.
    pub failed: bool,
    /// Reconcile again after this long even if nothing changes.
    pub requeue: Option<Duration>,
}

/// Poll interval while waiting for a pod to go away.
pub const STOPPING_POLL: Duration = Duration::from_secs(2);
/// How often a blocked job checks its gate again (changes also trigger a reconcile at once).
pub const BLOCKED_RECHECK: Duration = Duration::from_secs(30);

fn decision(action: Action, phase: Phase, reason: &'static str, message: String) -> Decision {
    Decision { action, phase, reason, message, failed: false, requeue: None }
}

impl Decision {
    fn requeue(mut self, after: Duration) -> Self {
        self.requeue = Some(after);
        self
    }

    fn failed(mut self) -> Self {
        self.failed = true;
        self
    }
}

/// Decides what to do with a job. `previous_phase` is the phase in the status; `now` is unix
/// seconds.
pub fn decide(
    job: &JobView,
    gate: &Gate,
    worker: Option<&Worker>,
    previous_phase: Option<Phase>,
    backoff: &Backoff,
    now: i64,
) -> Decision {
    if let Some(w) = worker.filter(|w| w.state == PodState::Terminating) {
        let phase = previous_phase.unwrap_or(Phase::Pending);
        let message = format!("waiting for worker pod {} to stop", w.name);
        return decision(Action::Nothing, phase, "Stopping", message).requeue(STOPPING_POLL);
    }
    let restart =
        job.restart_request.clone().filter(|r| Some(r) != job.last_restart_request.as_ref());
    if let (Some(request), false) = (restart, job.paused) {
        return restart_requested(request, gate, worker);
    }
    let finished_ok = worker.is_none_or(|w| w.state == PodState::Succeeded);
    if job.stage == Some(Stage::Completed) && finished_ok {
        let message = "existing data copied; the job is complete".to_string();
        return decision(Action::Nothing, Phase::Completed, "Completed", message);
    }
    if job.paused {
        return paused(worker);
    }
    let Some(w) = worker else {
        let first = NewWorker { attempt: 1, failures: 0, restart_request: None };
        return start(gate, first, "Starting", "starting the worker".into());
    };
    if w.tier.is_some_and(|t| t != job.tier)
        && matches!(w.state, PodState::Pending | PodState::Running)
    {
        let message =
            format!("the tier changed; replacing worker pod {} (the checkpoint is kept)", w.name);
        return decision(Action::DeleteWorkers, Phase::Pending, "Resizing", message)
            .requeue(STOPPING_POLL);
    }
    match w.state {
        PodState::Terminating => unreachable_terminating(w),
        PodState::Pending => {
            let message = format!("worker pod {} is starting", w.name);
            decision(Action::Nothing, Phase::Pending, "Starting", message)
        }
        PodState::Running => decision(
            Action::Nothing,
            Phase::Running,
            "Running",
            running_message(job.stage, &w.name),
        ),
        PodState::Succeeded => {
            let error = (true, "the worker exited before the job completed".to_string());
            after_failure(job, gate, w, error, backoff, now)
        }
        PodState::Failed => {
            let error = worker_error(job, w);
            after_failure(job, gate, w, error, backoff, now)
        }
    }
}

fn unreachable_terminating(w: &Worker) -> Decision {
    // Handled first in `decide`; kept total so a new state cannot slip through silently.
    let message = format!("waiting for worker pod {} to stop", w.name);
    decision(Action::Nothing, Phase::Pending, "Stopping", message).requeue(STOPPING_POLL)
}

fn restart_requested(request: String, gate: &Gate, worker: Option<&Worker>) -> Decision {
    if let Some(w) = worker {
        let message = format!("restart requested ({request}); stopping worker pod {}", w.name);
        return decision(Action::DeleteWorkers, Phase::Pending, "Restarting", message)
            .requeue(STOPPING_POLL);
    }
    let new = NewWorker { attempt: 1, failures: 0, restart_request: Some(request.clone()) };
    let message = format!(
        "restart requested ({request}): a new worker resumes from the checkpoint (with \
         spec.ddlErrorPolicy and spec.overwriteConflictsAt as they are now)"
    );
    start(gate, new, "Restarting", message)
}

fn paused(worker: Option<&Worker>) -> Decision {
    match worker {
        Some(w) => {
            let phase = if w.state == PodState::Running { Phase::Running } else { Phase::Paused };
            let message =
                format!("pausing: stopping worker pod {}; the checkpoint is kept", w.name);
            decision(Action::DeleteWorkers, phase, "Pausing", message).requeue(STOPPING_POLL)
        }
        None => {
            let message = "paused; set spec.paused to false to resume from the checkpoint".into();
            decision(Action::Nothing, Phase::Paused, "Paused", message)
        }
    }
}

/// Creates a worker if the gate is open.
fn start(gate: &Gate, new: NewWorker, reason: &'static str, message: String) -> Decision {
    match gate {
        Gate::Open => decision(Action::Create(new), Phase::Pending, reason, message),
        Gate::Blocked { reason, message } => {
            decision(Action::Nothing, Phase::Pending, reason, message.clone())
                .requeue(BLOCKED_RECHECK)
        }
    }
}

fn running_message(stage: Option<Stage>, pod: &str) -> String {
    let doing = match stage {
        None | Some(Stage::Precheck) => "prechecking source and target",
        Some(Stage::Full) => "copying existing data",
        Some(Stage::Incremental) => "replicating the binlog",
        Some(Stage::Completed) => "finishing",
    };
    format!("worker pod {pod} is {doing}")
}

/// (retryable, message) of a failed worker: its own report if made during this pod's life,
/// else what the exit code and termination message say.
fn worker_error(job: &JobView, w: &Worker) -> (bool, String) {
    let since = w.created.or(w.started).unwrap_or(i64::MIN);
    let fresh = job.last_error.as_ref().filter(|e| e.time.is_some_and(|t| t >= since));
    if let Some(e) = fresh {
        return (e.retryable, e.message.clone());
    }
    let code =
        w.exit_code.map(|c| format!("exit code {c}")).unwrap_or_else(|| "no exit code".into());
    let detail = w.message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let message = match detail {
        Some(m) => format!("worker pod {} failed ({code}): {m}", w.name),
        None => format!("worker pod {} failed ({code}) without reporting an error", w.name),
    };
    (w.exit_code != Some(EXIT_NOT_RETRYABLE), message)
}

fn after_failure(
    job: &JobView,
    gate: &Gate,
    w: &Worker,
    (retryable, message): (bool, String),
    backoff: &Backoff,
    now: i64,
) -> Decision {
    let _ = job;
    if !retryable {
        let message =
            format!("{message} (not retryable: fix the cause, then set spec.restartRequest)");
        return decision(Action::Nothing, Phase::Failed, "Failed", message).failed();
    }
    let ran = match (w.started, w.finished) {
        (Some(s), Some(f)) => Duration::from_secs(f.saturating_sub(s).max(0) as u64),
        _ => Duration::ZERO,
    };
    let failures = if ran >= backoff.reset_after { 1 } else { w.failures + 1 };
    let delay = backoff.delay(failures);
    let due = w.finished.unwrap_or(now).saturating_add(delay.as_secs() as i64);
    if now >= due {
        let new = NewWorker { attempt: w.attempt + 1, failures, restart_request: None };
        let message = format!("retry {failures} after a retryable error: {message}");
        return start(gate, new, "Retrying", message);
    }
    let wait = (due - now) as u64;
    let message = format!("retry {failures} in {wait}s after a retryable error: {message}");
    decision(Action::Nothing, Phase::Pending, "BackOff", message)
        .failed()
        .requeue(Duration::from_secs(wait))
}

/// Whether a change from the previous status is worth an event, and its type.
pub fn transition_event(
    previous_phase: Option<Phase>,
    previous_reason: Option<&str>,
    decision: &Decision,
) -> Option<EventKind> {
    let changed =
        previous_phase != Some(decision.phase) || previous_reason != Some(decision.reason);
    if !changed {
        return None;
    }
    let warning = decision.failed
        || decision.phase == Phase::Failed
        || decision.requeue == Some(BLOCKED_RECHECK);
    Some(if warning { EventKind::Warning } else { EventKind::Normal })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn job() -> JobView {
        JobView { tier: Tier::Small, ..Default::default() }
    }

    fn worker(state: PodState) -> Worker {
        Worker {
            name: "copy-worker-1".into(),
            attempt: 1,
            failures: 0,
            tier: Some(Tier::Small),
            state,
            created: Some(NOW - 100),
            started: Some(NOW - 90),
            finished: None,
            exit_code: None,
            message: None,
        }
    }

    fn failed(exit_code: i32, finished_ago: i64) -> Worker {
        Worker {
            exit_code: Some(exit_code),
            finished: Some(NOW - finished_ago),
            ..worker(PodState::Failed)
        }
    }

    fn decide_now(job: &JobView, worker: Option<&Worker>) -> Decision {
        decide(job, &Gate::Open, worker, Some(Phase::Running), &Backoff::default(), NOW)
    }

    fn blocked() -> Gate {
        Gate::Blocked {
            reason: "SourceNotReady",
            message: "MigrationSource src is not Ready".into(),
        }
    }

    #[test]
    fn a_new_job_gets_its_first_worker() {
        let d = decide(&job(), &Gate::Open, None, None, &Backoff::default(), NOW);
        let Action::Create(new) = &d.action else { panic!("{d:?}") };
        assert_eq!((new.attempt, new.failures), (1, 0));
        assert_eq!((d.phase, d.reason), (Phase::Pending, "Starting"));
    }

    #[test]
    fn a_blocked_job_waits_without_a_hot_loop() {
        let d = decide(&job(), &blocked(), None, None, &Backoff::default(), NOW);
        assert_eq!(d.action, Action::Nothing);
        assert_eq!((d.phase, d.reason), (Phase::Pending, "SourceNotReady"));
        assert_eq!(d.requeue, Some(BLOCKED_RECHECK));
        assert_eq!(transition_event(None, None, &d), Some(EventKind::Warning));
    }

    #[test]
    fn a_starting_and_a_running_worker_are_left_alone() {
        let d = decide_now(&job(), Some(&worker(PodState::Pending)));
        assert_eq!((d.action, d.phase, d.reason), (Action::Nothing, Phase::Pending, "Starting"));
        let running = JobView { stage: Some(Stage::Full), ..job() };
        let d = decide_now(&running, Some(&worker(PodState::Running)));
        assert_eq!(
            (d.action.clone(), d.phase, d.reason),
            (Action::Nothing, Phase::Running, "Running")
        );
        assert!(d.message.contains("copying existing data"), "{}", d.message);
        assert!(!d.failed);
    }

    #[test]
    fn pausing_stops_the_worker_then_reports_paused() {
        let paused = JobView { paused: true, ..job() };
        let d = decide_now(&paused, Some(&worker(PodState::Running)));
        assert_eq!(
            (d.action.clone(), d.phase, d.reason),
            (Action::DeleteWorkers, Phase::Running, "Pausing")
        );
        assert_eq!(d.requeue, Some(STOPPING_POLL));
        let d = decide_now(&paused, Some(&worker(PodState::Terminating)));
        assert_eq!((d.action.clone(), d.reason), (Action::Nothing, "Stopping"));
        let d = decide_now(&paused, None);
        assert_eq!((d.action, d.phase, d.reason), (Action::Nothing, Phase::Paused, "Paused"));
        // A paused job whose worker had already failed: the pod is removed, the job is Paused.
        let d = decide_now(&paused, Some(&failed(1, 5)));
        assert_eq!((d.action, d.phase), (Action::DeleteWorkers, Phase::Paused));
    }

    #[test]
    fn resuming_starts_a_fresh_worker() {
        let d = decide(&job(), &Gate::Open, None, Some(Phase::Paused), &Backoff::default(), NOW);
        let Action::Create(new) = &d.action else { panic!("{d:?}") };
        assert_eq!((new.attempt, new.restart_request.as_ref()), (1, None));
        assert_eq!(
            transition_event(Some(Phase::Paused), Some("Paused"), &d),
            Some(EventKind::Normal)
        );
    }

    #[test]
    fn a_restart_request_replaces_the_worker_and_is_recorded_once() {
        let restart = JobView { restart_request: Some("r1".into()), ..job() };
        let d = decide_now(&restart, Some(&failed(EXIT_NOT_RETRYABLE, 5)));
        assert_eq!((d.action.clone(), d.reason), (Action::DeleteWorkers, "Restarting"));
        let d = decide_now(&restart, None);
        let Action::Create(new) = &d.action else { panic!("{d:?}") };
        assert_eq!(new.restart_request.as_deref(), Some("r1"));
        // Recorded: the same request does not restart again.
        let done = JobView { last_restart_request: Some("r1".into()), ..restart.clone() };
        let d = decide_now(&done, Some(&worker(PodState::Running)));
        assert_eq!(d.action, Action::Nothing);
        // A paused job keeps the request until it is resumed.
        let paused = JobView { paused: true, ..restart };
        assert_eq!(decide_now(&paused, None).phase, Phase::Paused);
    }

    #[test]
    fn a_restart_request_respects_the_gate() {
        let restart = JobView { restart_request: Some("r1".into()), ..job() };
        let d = decide(&restart, &blocked(), None, None, &Backoff::default(), NOW);
        assert_eq!((d.action, d.reason), (Action::Nothing, "SourceNotReady"));
    }

    #[test]
    fn a_completed_job_stays_completed() {
        let done = JobView { stage: Some(Stage::Completed), ..job() };
        let d =
            decide_now(&done, Some(&Worker { exit_code: Some(0), ..worker(PodState::Succeeded) }));
        assert_eq!((d.action.clone(), d.phase), (Action::Nothing, Phase::Completed));
        assert_eq!(decide_now(&done, None).phase, Phase::Completed);
        let paused = JobView { paused: true, ..done };
        assert_eq!(decide_now(&paused, None).phase, Phase::Completed);
    }

    #[test]
    fn a_not_retryable_error_fails_the_job_without_a_restart() {
        let j = JobView {
            last_error: Some(ReportedError {
                message: "the existing-data copy is not implemented yet".into(),
                retryable: false,
                time: Some(NOW - 10),
            }),
            stage: Some(Stage::Full),
            ..job()
        };
        let d = decide_now(&j, Some(&failed(EXIT_NOT_RETRYABLE, 10)));
        assert_eq!(
            (d.action.clone(), d.phase, d.reason),
            (Action::Nothing, Phase::Failed, "Failed")
        );
        assert!(d.failed);
        assert!(d.message.contains("not implemented yet"), "{}", d.message);
        assert_eq!(d.requeue, None);
        // Much later, still no restart.
        let later = decide(
            &j,
            &Gate::Open,
            Some(&failed(3, 10)),
            Some(Phase::Failed),
            &Backoff::default(),
            NOW + 86_400,
        );
        assert_eq!(later.action, Action::Nothing);
        assert_eq!(transition_event(Some(Phase::Failed), Some("Failed"), &later), None);
    }

    #[test]
    fn a_retryable_error_restarts_after_a_growing_backoff() {
        let j = JobView {
            last_error: Some(ReportedError {
                message: "source unreachable".into(),
                retryable: true,
                time: Some(NOW - 2),
            }),
            ..job()
        };
        let w = failed(1, 2);
        let d = decide_now(&j, Some(&w));
        assert_eq!(
            (d.action.clone(), d.phase, d.reason),
            (Action::Nothing, Phase::Pending, "BackOff")
        );
        assert!(d.failed);
        assert_eq!(d.requeue, Some(Duration::from_secs(8)));
        assert!(d.message.contains("source unreachable"), "{}", d.message);
        let w = failed(1, 10);
        let d = decide_now(&j, Some(&w));
        let Action::Create(new) = &d.action else { panic!("{d:?}") };
        assert_eq!((new.attempt, new.failures, d.reason), (2, 1, "Retrying"));
        // The third consecutive failure waits 40 s.
        let third = Worker { attempt: 3, failures: 2, ..failed(1, 30) };
        let d = decide_now(&j, Some(&third));
        assert_eq!((d.reason, d.requeue), ("BackOff", Some(Duration::from_secs(10))));
    }

    #[test]
    fn backoff_is_capped_and_resets_after_a_long_run() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_secs(10));
        assert_eq!(b.delay(3), Duration::from_secs(40));
        assert_eq!(b.delay(50), Duration::from_secs(300));
        let long = Worker { attempt: 9, failures: 8, started: Some(NOW - 4000), ..failed(1, 10) };
        let d = decide_now(&job(), Some(&long));
        let Action::Create(new) = &d.action else { panic!("{d:?}") };
        assert_eq!((new.attempt, new.failures), (10, 1));
    }

    #[test]
    fn a_crash_without_a_report_is_retried_and_exit_code_3_is_not() {
        let stale = JobView {
            last_error: Some(ReportedError {
                message: "old".into(),
                retryable: false,
                time: Some(NOW - 1000),
            }),
            ..job()
        };
        let crash = Worker { message: Some("OOMKilled".into()), ..failed(137, 1) };
        let d = decide_now(&stale, Some(&crash));
        assert_eq!(d.reason, "BackOff");
        assert!(
            d.message.contains("exit code 137") && d.message.contains("OOMKilled"),
            "{}",
            d.message
        );
        let d = decide_now(&job(), Some(&failed(EXIT_NOT_RETRYABLE, 1)));
        assert_eq!(d.phase, Phase::Failed);
    }

    #[test]
    fn a_worker_that_exits_early_is_retried() {
        let w =
            Worker { exit_code: Some(0), finished: Some(NOW - 60), ..worker(PodState::Succeeded) };
        let d = decide_now(&JobView { stage: Some(Stage::Incremental), ..job() }, Some(&w));
        assert!(matches!(d.action, Action::Create(_)), "{d:?}");
    }

    #[test]
    fn a_tier_change_replaces_a_live_worker() {
        let bigger = JobView { tier: Tier::Large, ..job() };
        let d = decide_now(&bigger, Some(&worker(PodState::Running)));
        assert_eq!((d.action, d.reason), (Action::DeleteWorkers, "Resizing"));
    }

    #[test]
    fn events_only_on_transitions() {
        let d = decide_now(&job(), Some(&worker(PodState::Running)));
        assert_eq!(transition_event(Some(Phase::Running), Some("Running"), &d), None);
        assert_eq!(
            transition_event(Some(Phase::Pending), Some("Starting"), &d),
            Some(EventKind::Normal)
        );
    }
}
