//! Verification on request: `spec.verify.request` has the worker compare every selected table
//! of source and target (as `ferry verify` does) and report `status.verification` and the
//! `Verified` condition.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type the worker sets after a verification: True when every table was equal.
pub const VERIFIED: &str = "Verified";

/// How many keys of differing rows the status shows per table and kind.
pub const SAMPLE_KEYS: usize = 5;

/// Verification on request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// Set to a new value (a timestamp is handy) to compare every selected table of source and
    /// target while the job runs; the result goes to `status.verification` and the `Verified`
    /// condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub request: Option<String>,
}

/// Where a verification is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum VerificationState {
    /// Comparing.
    Running,
    /// Every table is equal.
    Equal,
    /// Some rows differ; see `tables`.
    Different,
    /// The comparison could not conclude; see `message`.
    Failed,
}

/// The last verification the worker ran.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationStatus {
    /// The `spec.verify.request` value this describes.
    pub request: String,
    /// Running, Equal, Different or Failed.
    pub state: VerificationState,
    /// Tables compared so far.
    pub tables_done: i64,
    /// Tables to compare.
    pub tables_total: i64,
    /// Source rows compared.
    pub rows_compared: i64,
    /// The tables that differ, with sample keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableDifferences>,
    /// The source's binlog position (`file:pos`) when the comparison started; rows that
    /// differed were read again after the target applied the source past later positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Why it failed, or notes on how it compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

/// What differs in one table.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableDifferences {
    /// Database (schema) of the table.
    pub database: String,
    /// Table name.
    pub table: String,
    /// Rows the source has and the target lacks.
    pub missing: i64,
    /// Rows the target has and the source lacks.
    pub extra: i64,
    /// Rows whose values differ.
    pub different: i64,
    /// Rows that kept changing on the source while compared.
    pub unsettled: i64,
    /// Keys of some differing rows, as `kind: values` (such as `missing: 42`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_keys: Vec<String>,
    /// Why the table could not be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Continuous validation during replication (`spec.validation`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationSpec {
    /// Re-read every row replication changes from source and target, `delay` after it is
    /// applied, and count the rows that differ in `status.validation` (as TiDB DM's
    /// validator). Tables without a primary or non-null unique key are not validated row by row
    /// (their changes are counted as skipped; `ferry verify` compares them).
    #[serde(default)]
    pub continuous: bool,
    /// How long after a change is applied its row is compared, such as `5s`.
    #[serde(default = "default_validation_delay")]
    #[schemars(pattern(crate::crd::DURATION_PATTERN))]
    pub delay: String,
}

impl Default for ValidationSpec {
    fn default() -> Self {
        Self { continuous: false, delay: default_validation_delay() }
    }
}

/// How long after a change is applied its row is compared.
pub fn default_validation_delay() -> String {
    "5s".to_string()
}

/// What continuous validation has found since the worker started.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationStatus {
    /// Changed rows compared and found equal on source and target.
    pub rows_checked: i64,
    /// Changed rows waiting to be compared (applied less than `delay` ago, or read again
    /// because the source changed them meanwhile).
    pub pending: i64,
    /// Rows that differed on the target while the source held still, twice running.
    pub mismatched: i64,
    /// Changed rows not compared: in tables without a key, merged shards, past the cap on
    /// pending rows, or lost to an error (see `message`).
    pub skipped: i64,
    /// Keys of some mismatched rows, as `db.table kind: values` (such as
    /// `app.acct different: 42`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample_keys: Vec<String>,
    /// When the last mismatch was found (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_mismatch: Option<String>,
    /// The last problem the validator met, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
