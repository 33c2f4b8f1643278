//! A job resolved for the engine: the API objects with their Secrets read and defaults applied.

use std::fmt;
use std::time::Duration;

use ferry_crds::Selection;
use ferry_crds::TlsMode;
use ferry_crds::cutover::CutoverSpec;
use ferry_crds::job::{BinlogPosition, DdlErrorAction, MigrationMode, Tier};
use ferry_crds::source::SourceType;
use ferry_crds::verification::ValidationSpec;

pub use crate::meta::jobs::Owner;

/// Everything the engine needs to run one job.
#[derive(Clone, Debug)]
pub struct JobConfig {
    /// `namespace/name` of the MigrationJob.
    pub id: JobId,
    /// Who runs the job: decides its checkpoint key.
    pub owner: Owner,
    /// The key of the job's rows in `ferry_meta` ([`crate::meta::jobs`]); empty until
    /// [`crate::meta::jobs::identify`] sets it.
    pub key: String,
    pub source_type: SourceType,
    pub source: Endpoint,
    pub target: Endpoint,
    pub mode: MigrationMode,
    /// What the job covers, where it lands and the events it drops (`spec.objects`, `routes`
    /// and `filters`).
    pub selection: Selection,
    pub tier: Tier,
    /// Connections used to copy and to apply in parallel.
    pub concurrency: usize,
    pub safe_mode_duration: Duration,
    /// How much of a backlog one target transaction may apply (`spec.incremental.mergeRows`
    /// and `mergeBytes`).
    pub merge: MergeLimits,
    /// Incremental mode: where to start (absent: the source's current position).
    pub incremental_start: Option<BinlogPosition>,
    /// Replace the target rows that conflict with the source's in the source transactions up to
    /// this binlog position (`file:pos`, as the conflict's error names it), and no later ones.
    pub overwrite_conflicts_at: Option<String>,
    /// Replicated DDL statements to skip or replace, by binlog position.
    pub ddl_error_policy: Vec<DdlErrorAction>,
    /// When replication counts as caught up, and how a cutover waits.
    pub cutover: CutoverSettings,
    /// Continuous validation of the rows replication changes (`spec.validation`); None: off.
    pub validation: Option<ValidationSettings>,
}

/// `spec.validation` of a job that validates continuously.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationSettings {
    /// How long after a change is applied its row is compared.
    pub delay: Duration,
}

impl ValidationSettings {
    /// The settings when `spec.validation.continuous` is on; the schema's pattern admits only
    /// parseable durations.
    pub fn from_spec(spec: Option<&ValidationSpec>) -> Option<Self> {
        let spec = spec.filter(|s| s.continuous)?;
        let delay = parse_duration(&spec.delay)
            .expect("the schema pattern admits only parseable durations");
        Some(Self { delay })
    }
}

/// The bounds of a target transaction that merges queued source transactions while catching up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeLimits {
    /// Row changes, at most (a source transaction is never split, so one larger than this
    /// still goes whole, alone).
    pub rows: usize,
    /// Bytes of row images, at most (the same way).
    pub bytes: usize,
}

impl MergeLimits {
    /// `spec.incremental`'s bounds, defaults where absent.
    pub fn from_spec(spec: Option<&ferry_crds::job::IncrementalSpec>) -> Self {
        let default = Self::default();
        // The schema admits 1 and more only.
        let bound = |value: Option<i64>, default: usize| {
            value.map_or(default, |v| usize::try_from(v).unwrap_or(1).max(1))
        };
        Self {
            rows: bound(spec.and_then(|s| s.merge_rows), default.rows),
            bytes: bound(spec.and_then(|s| s.merge_bytes), default.bytes),
        }
    }
}

impl Default for MergeLimits {
    /// 8000 rows keep a target transaction short (a retry after a deadlock redoes little) while
    /// making commits rare; 16 MiB of images stays well under TiDB's 100 MiB transaction limit,
    /// which counts index entries as well.
    fn default() -> Self {
        Self { rows: 8000, bytes: 16 << 20 }
    }
}

/// `spec.cutover` with its durations parsed (defaults when absent).
#[derive(Clone, Debug, PartialEq)]
pub struct CutoverSettings {
    /// Lag under which the job counts as caught up.
    pub caught_up_lag: Duration,
    /// How long the lag must stay under `caught_up_lag`.
    pub caught_up_for: Duration,
    /// The operator's cutover request, if any.
    pub request: Option<String>,
    /// Without read_only on the source: how long its binlog must stay still.
    pub quiet_for: Option<Duration>,
    /// How long a cutover may wait for the source to go quiet and the target to catch up.
    pub timeout: Duration,
}

impl CutoverSettings {
    /// Parses `spec.cutover`; the schema's patterns admit only parseable durations.
    pub fn from_spec(spec: Option<&CutoverSpec>) -> Self {
        let spec = spec.cloned().unwrap_or_default();
        let parse = |text: &str| {
            parse_duration(text).expect("the schema pattern admits only parseable durations")
        };
        Self {
            caught_up_lag: parse(&spec.caught_up_lag),
            caught_up_for: parse(&spec.caught_up_for),
            request: spec.request,
            quiet_for: spec.quiet_for.as_deref().map(parse),
            timeout: parse(&spec.timeout),
        }
    }
}

/// Names a job: its namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobId {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A server to connect to, with its credentials and TLS material.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Password,
    pub tls: TlsMaterial,
}

impl Endpoint {
    /// `user@host:port`, for messages; never includes the password.
    pub fn describe(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// A password that never shows in `Debug` or `Display` output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the login handshake only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// TLS mode with the PEM material its Secrets hold.
#[derive(Clone, Debug, Default)]
pub struct TlsMaterial {
    pub mode: TlsMode,
    pub ca_pem: Option<Vec<u8>>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Password>,
}

/// Parses a Kubernetes-style duration (`60s`, `1m30s`, `500ms`, `2h`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let (unit_seconds, unit_len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += Duration::from_secs_f64(value * unit_seconds);
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_kubernetes() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("60"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn passwords_do_not_print() {
        let endpoint = Endpoint {
            host: "db".into(),
            port: 3306,
            user: "u".into(),
            password: Password::new("hunter2"),
            tls: TlsMaterial::default(),
        };
        assert!(!format!("{endpoint:?}").contains("hunter2"));
        assert_eq!(endpoint.describe(), "u@db:3306");
    }
}
