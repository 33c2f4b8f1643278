//! Cutover: when a replicating job counts as caught up with its source (the `CaughtUp`
//! condition), and the request that completes it once the source is no longer written.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::DURATION_PATTERN;

/// Condition type the worker sets while replicating: True once the lag stayed under
/// `spec.cutover.caughtUpLag` for `spec.cutover.caughtUpFor`.
pub const CAUGHT_UP: &str = "CaughtUp";

/// When a replicating job counts as caught up, and how to cut it over.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CutoverSpec {
    /// Replication lag under which the job counts as caught up, as a duration such as `5s`.
    #[serde(default = "default_caught_up_lag")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub caught_up_lag: String,
    /// How long the lag must stay under `caughtUpLag` before the `CaughtUp` condition turns
    /// True (`kubectl wait --for=condition=CaughtUp mj/NAME` gates on it), such as `30s`.
    #[serde(default = "default_caught_up_for")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub caught_up_for: String,
    /// Set to a new value (a timestamp is handy) to cut the job over: the worker checks that
    /// the source is no longer written, waits until the target has applied the source's final
    /// binlog position, verifies every selected table and completes the job at that position.
    /// Stop the application's writes (and set read_only on the source) first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub request: Option<String>,
    /// When the source does not have read_only on: how long no transaction may reach its
    /// binlog before it counts as no longer written, such as `30s`. Absent: the cutover needs
    /// read_only (and, on MySQL, super_read_only) on the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub quiet_for: Option<String>,
    /// How long the cutover may wait for the source to go quiet and for the target to apply
    /// its final position before it fails, such as `10m`.
    #[serde(default = "default_cutover_timeout")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub timeout: String,
}

impl Default for CutoverSpec {
    fn default() -> Self {
        Self {
            caught_up_lag: default_caught_up_lag(),
            caught_up_for: default_caught_up_for(),
            request: None,
            quiet_for: None,
            timeout: default_cutover_timeout(),
        }
    }
}

/// Lag under which a job counts as caught up.
pub fn default_caught_up_lag() -> String {
    "5s".to_string()
}

/// How long the lag must stay under the threshold.
pub fn default_caught_up_for() -> String {
    "30s".to_string()
}

/// How long a cutover may wait.
pub fn default_cutover_timeout() -> String {
    "10m".to_string()
}

/// Where a cutover is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CutoverState {
    /// Waiting for the source to stop being written and for the target to catch up.
    Waiting,
    /// Comparing the selected tables of source and target.
    Verifying,
    /// The target equals the source at `position`; the job is completed.
    Completed,
    /// The cutover stopped; see `message`. Replication goes on; set a new request to retry.
    Failed,
}

/// The last cutover the worker acted on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CutoverStatus {
    /// The `spec.cutover.request` value this describes.
    pub request: String,
    /// Waiting, Verifying, Completed or Failed.
    pub state: CutoverState,
    /// The source's final binlog position (`file:pos`), once read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// What happened, or why it failed and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the state last changed (RFC 3339).
    pub time: String,
}
