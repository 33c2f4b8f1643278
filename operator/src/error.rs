//! The operator's error: what a reconcile could not do, labelled for the error metric.

/// Anything that stops one reconcile; the controller retries it after a delay.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("the MigrationJob {0} has no namespace or name")]
    Unnamed(String),
    #[error("waiting for {0} worker pod(s) of {1} to stop before removing the finalizer")]
    WorkerStillRunning(usize, String),
    #[error("finalizer of {object}: {message}")]
    Finalizer { object: String, message: String },
    #[error(
        "cannot delete the checkpoints of {job} on its target yet (retrying until {give_up}): \
         {problem}"
    )]
    Checkpoints { job: String, problem: String, give_up: String },
}

impl Error {
    /// Short, stable label for the `ferry_reconcile_errors_total` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Unnamed(_) => "unnamed",
            Self::WorkerStillRunning(..) => "worker_stopping",
            Self::Finalizer { .. } => "finalizer",
            Self::Checkpoints { .. } => "checkpoints",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what was being done to a kube error: `api.get(n).await.map_err(kube_err("read x"))?`.
pub fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}
