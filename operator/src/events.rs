//! Kubernetes event types, as the pure decisions name them (the recorder lives in `context`).

/// Kubernetes event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}
