//! `MigrationJob`: what to migrate where, and the progress the worker reports.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{SecretKeyRef, TlsConfig};
use crate::crd::{DISPLAY_NAME_PATTERN, DURATION_PATTERN};
use crate::cutover::{CutoverSpec, CutoverStatus};
use crate::source::default_port;
use crate::verification::{ValidationSpec, ValidationStatus, VerificationStatus, VerifySpec};
use crate::worker_pod::WorkerPodTemplate;

/// A migration from one MigrationSource into a MySQL-compatible target (TiDB or MySQL/MariaDB).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ferry.dev",
    version = "v1alpha1",
    kind = "MigrationJob",
    namespaced,
    status = "MigrationJobStatus",
    shortname = "mj",
    shortname = "mjob",
    category = "ferry",
    doc = "A migration of a MigrationSource's databases into a MySQL-compatible target (TiDB, MySQL, MariaDB): a consistent full copy, then continuous binlog replication, as spec.mode says. The operator prechecks source and target, runs a worker pod sized by spec.tier, and reports stage, phase, progress, lag and binlog position in status.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".status.stage"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.full.percent"}"#,
    printcolumn = r#"{"name":"Lag","type":"integer","jsonPath":".status.incremental.lagSeconds","description":"Seconds the target is behind the source"}"#,
    printcolumn = r#"{"name":"CaughtUp","type":"string","jsonPath":".status.conditions[?(@.type==\"CaughtUp\")].status"}"#,
    printcolumn = r#"{"name":"Verified","type":"string","jsonPath":".status.conditions[?(@.type==\"Verified\")].status"}"#,
    printcolumn = r#"{"name":"Tier","type":"string","jsonPath":".spec.tier","priority":1}"#,
    printcolumn = r#"{"name":"Position","type":"string","jsonPath":".status.position","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.mode == 'Incremental' || !has(self.incremental)").message(
    "incremental.start only applies to mode Incremental; FullAndIncremental starts at the snapshot of its copy"
))]
#[x_kube(validation = Rule::new("self.mode != 'Full' || !has(self.cutover)").message(
    "cutover only applies to modes that replicate (Incremental, FullAndIncremental)"
))]
#[serde(rename_all = "camelCase")]
pub struct MigrationJobSpec {
    /// Human-readable job name. Starts with a letter, under 60 characters of letters, digits,
    /// `_` and `-` (the rule of TiDB Cloud's Data Migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DISPLAY_NAME_PATTERN))]
    pub display_name: Option<String>,
    /// The MigrationSource (same namespace) to migrate from. Cannot change once set.
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("sourceRef cannot change once set; create a new MigrationJob instead"))]
    pub source_ref: SourceRef,
    /// The server to migrate into. Cannot change once set.
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("target cannot change once set; create a new MigrationJob instead"))]
    pub target: Target,
    /// Full (copy existing data, then stop), Incremental (replay the binlog only) or
    /// FullAndIncremental (copy, then replay until you cut over). Cannot change once set.
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("mode cannot change once set; create a new MigrationJob instead"))]
    pub mode: MigrationMode,
    /// Where incremental replication starts (Incremental mode only; FullAndIncremental starts at
    /// the snapshot of the full copy). Absent: the source's current position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalSpec>,
    /// What to migrate. Absent: every user schema. System schemas (mysql, information_schema,
    /// performance_schema, sys, metrics_schema, inspection_schema and ferry_meta, in any case)
    /// are never migrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<ObjectSelection>,
    /// Where selected objects land on the target when not under their own names: a database
    /// under another name, or tables of many sources (shards) merged into one target table.
    /// Table routes (with `from.table`) take precedence over database routes; the first match
    /// of each kind wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Binlog events to drop during replication, per database or table pattern (as TiDB DM's
    /// binlog event filter). The full copy is not affected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<EventFilter>,
    /// Size of the worker: small, medium, large or xlarge. Sets its CPU, memory and concurrency.
    #[serde(default)]
    pub tier: Tier,
    /// Scheduling and metadata of the worker pod (image pull secrets, node selector,
    /// tolerations, affinity, priority class, annotations, labels), merged over the operator's
    /// defaults: map entries and list items are added (the job's value wins for a key),
    /// affinity and priorityClassName replace the defaults'. Applies to the next worker pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pod: Option<WorkerPodTemplate>,
    /// Stop the worker and keep the checkpoint; set back to false to resume.
    #[serde(default)]
    pub paused: bool,
    /// How long safe mode lasts after resuming from an abrupt stop (INSERT as REPLACE, UPDATE as
    /// DELETE + REPLACE), as a duration such as `60s` or `2m`.
    #[serde(default = "default_safe_mode_duration")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub safe_mode_duration: String,
    /// Set to a new value (a timestamp is handy) to resume a failed job from its checkpoint
    /// with a new worker, which reads `ddlErrorPolicy` and `overwriteConflictsAt` as they are
    /// then. It only resumes: target rows that conflict with the source's are replaced only at
    /// `overwriteConflictsAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_request: Option<String>,
    /// The binlog position (`file:pos`) a conflict's error names: on the next run, target rows
    /// that conflict with the source's (a duplicate key, or a row the source updates or deletes
    /// that the target lacks) are overwritten with the source's in the source transactions up to
    /// this position, and in no later one, which stops the job again (TiDB Cloud's "Restart").
    /// Each row overwritten is counted in `status.incremental.conflictsOverwritten`. Set it with
    /// a new `restartRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[^:\s]+:[0-9]+$"))]
    pub overwrite_conflicts_at: Option<String>,
    /// What to do with replicated DDL statements, by binlog position: skip one the target
    /// refuses, or replace it with statements written for the target. The job's error names
    /// the position; add an entry, then set a new `restartRequest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ddl_error_policy: Vec<DdlErrorAction>,
    /// When replication counts as caught up (the `CaughtUp` condition), and the request that
    /// cuts the job over. Replicating modes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<CutoverSpec>,
    /// Verification on request: compare every selected table of source and target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
    /// Continuous validation: rows replication changes are compared on source and target
    /// some seconds after they are applied. Replicating modes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationSpec>,
}

/// What to do with the replicated DDL statement at one binlog position.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(self.action == 'Replace') == has(self.statements)")
    .message("Replace needs statements (the ones to run instead); Skip takes none"))]
pub struct DdlErrorAction {
    /// The statement's position as the job's error gives it: `file:pos`, the binlog position
    /// right after the statement (such as `mariadb-bin.000002:1234`).
    #[schemars(pattern(r"^[^:\s]+:[0-9]+$"))]
    pub position: String,
    /// Skip (the target is left as it is) or Replace (run `statements` instead).
    pub action: DdlAction,
    /// For Replace: the statements to run on the target instead, in order, in the statement's
    /// default database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
}

/// How a replicated DDL statement is handled.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DdlAction {
    /// Not applied to the target.
    Skip,
    /// Replaced by the entry's statements.
    Replace,
}

/// A replicated DDL statement handled by `spec.ddlErrorPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledDdl {
    /// Its binlog position (`file:pos`, right after it).
    pub position: String,
    /// Skip or Replace.
    pub action: DdlAction,
    /// The source's statement, string literals blanked.
    pub statement: String,
    /// When it was handled (RFC 3339).
    pub time: String,
}

/// The default safe mode duration of the reference product.
pub fn default_safe_mode_duration() -> String {
    "60s".to_string()
}

/// Reference to a MigrationSource in the job's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SourceRef {
    /// Name of the MigrationSource.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// The server a job migrates into.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Host name or IP address of the target (TiDB, MySQL or MariaDB).
    #[schemars(length(min = 1))]
    pub host: String,
    /// TCP port of the target (TiDB listens on 4000 by default).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// User Ferry writes as. Needs CREATE, SELECT, INSERT, UPDATE, DELETE, ALTER, DROP, INDEX
    /// and CREATE VIEW.
    pub user: String,
    /// Secret key holding the user's password.
    pub password_secret_ref: SecretKeyRef,
    /// TLS settings; absent means Disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// What a job does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MigrationMode {
    /// Copy the existing data, then complete.
    Full,
    /// Replay the source's binlog from a start position, until stopped.
    Incremental,
    /// Copy the existing data, then replay the binlog from the copy's snapshot, until stopped.
    FullAndIncremental,
}

impl MigrationMode {
    /// Whether the job copies existing data.
    pub fn copies_existing_data(self) -> bool {
        matches!(self, Self::Full | Self::FullAndIncremental)
    }

    /// Whether the job replays the binlog.
    pub fn replicates(self) -> bool {
        matches!(self, Self::Incremental | Self::FullAndIncremental)
    }
}

/// Settings of the incremental stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
pub struct IncrementalSpec {
    /// First binlog position to replay: `file` and `pos`, or `gtidSet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("(has(self.file) && has(self.pos)) != has(self.gtidSet)")
        .message("start needs either file and pos, or gtidSet, not both"))]
    // The GTID set pattern is this field's alone: `BinlogPosition` also types the positions
    // the worker reports in the status, which it must not constrain.
    #[schemars(transform = crate::crd::gtid_set_pattern_on_start)]
    pub start: Option<BinlogPosition>,
    /// While catching up a backlog, a target transaction applies up to this many row changes of
    /// queued source transactions at once (a source transaction is never split); `1` applies
    /// transaction at a time. Default 8000.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "mergeRows")]
    #[schemars(range(min = 1))]
    pub merge_rows: Option<i64>,
    /// While catching up a backlog, the bytes of row images one target transaction applies at
    /// most (a source transaction is never split), kept well under the target's transaction
    /// size limit (TiDB's `txn-total-size-limit`, 100 MiB by default, counts indexes too).
    /// Default 16 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "mergeBytes")]
    #[schemars(range(min = 1))]
    pub merge_bytes: Option<i64>,
}

/// A position in the source's binary log.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BinlogPosition {
    /// Binlog file name, such as `mysql-bin.000042`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Byte offset in `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<i64>,
    /// GTID set to start after: MariaDB `domain-server-seq` positions (`0-1-100,1-2-5`) or a
    /// MySQL GTID set (`3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100`), comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
}

impl BinlogPosition {
    /// `file:pos` when both are known.
    pub fn file_pos(&self) -> Option<String> {
        Some(format!("{}:{}", self.file.as_ref()?, self.pos?))
    }
}

/// Which objects a job migrates. Names are exact or patterns with `*` (any run of characters)
/// and `?` (one character). A table is migrated when `databases` or `tables` matches it (both
/// empty: every user database) and no `exclude` rule does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSelection {
    /// Whole databases (schemas) to migrate, tables created in them later included, such as
    /// `shop` or `app_?`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 64)))]
    pub databases: Vec<String>,
    /// Tables to migrate, such as `{database: crm, table: "acct_*"}`; with a pattern, tables
    /// created later that match it are included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableRef>,
    /// Databases (no `table`) or tables never migrated, even when matched above, such as
    /// `{database: "*", table: "*_bak"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<ObjectPattern>,
    /// Whether names and patterns compare with case (default true, as MySQL on Linux does).
    /// Applies to objects, routes and filters. System schemas compare without case always.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub case_sensitive: bool,
    /// Also migrate the stored procedures and functions of the covered databases (default
    /// false): the copy creates them and their CREATE/ALTER/DROP statements are replicated.
    /// MariaDB and MySQL targets only (TiDB has none: the precheck fails). Triggers and events
    /// are never created by Ferry (they would act twice while it replicates): create them after
    /// cutover.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub routines: bool,
}

impl Default for ObjectSelection {
    fn default() -> Self {
        Self {
            databases: Vec::new(),
            tables: Vec::new(),
            exclude: Vec::new(),
            case_sensitive: true,
            routines: false,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// A table by database and name (each exact or a pattern).
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub struct TableRef {
    /// Database (schema) of the table, or a pattern.
    #[schemars(length(min = 1, max = 64))]
    pub database: String,
    /// Table name, or a pattern.
    #[schemars(length(min = 1, max = 64))]
    pub table: String,
}

/// A database (no `table`) or tables of databases, by exact names or patterns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ObjectPattern {
    /// Database name or pattern, such as `shard_*`.
    #[schemars(length(min = 1, max = 64))]
    pub database: String,
    /// Table name or pattern; absent: the whole database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub table: Option<String>,
}

/// Lands the source objects `from` matches under other names on the target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.to.table) || has(self.from.table)")
    .message("to.table needs from.table: a database route keeps the names of its tables"))]
pub struct Route {
    /// The source database (no `table`: all its tables) or tables, names or patterns.
    pub from: ObjectPattern,
    /// Where they land.
    pub to: RouteTarget,
}

/// The target of a route: exact names.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct RouteTarget {
    /// Target database.
    #[schemars(length(min = 1, max = 64), pattern(r"^[^*?]+$"))]
    pub database: String,
    /// Target table (only for a route with `from.table`); absent: the source table's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[^*?]+$"))]
    pub table: Option<String>,
}

/// Binlog events of some tables that replication drops.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct EventFilter {
    /// The source tables (or database, without `table`) the filter applies to.
    #[serde(rename = "match")]
    pub matches: ObjectPattern,
    /// The events to drop.
    #[schemars(length(min = 1))]
    pub ignore: Vec<EventType>,
}

/// A kind of binlog event, for `spec.filters`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum EventType {
    /// Inserted rows.
    Insert,
    /// Updated rows.
    Update,
    /// Deleted rows.
    Delete,
    /// TRUNCATE TABLE.
    Truncate,
    /// DROP TABLE.
    DropTable,
    /// DROP DATABASE.
    DropDatabase,
    /// Any other DDL Ferry replicates: CREATE, ALTER and RENAME TABLE, CREATE and DROP INDEX,
    /// CREATE DATABASE.
    OtherDdl,
}

/// Size of a job's worker. The operator maps each tier to CPU, memory and concurrency.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 1 CPU, 4 copy connections.
    #[default]
    Small,
    /// 2 CPUs, 8 copy connections.
    Medium,
    /// 4 CPUs, 16 copy connections.
    Large,
    /// 8 CPUs, 32 copy connections.
    Xlarge,
}

impl Tier {
    /// Connections used for the full copy and parallel apply when nothing overrides it.
    pub fn default_concurrency(self) -> usize {
        match self {
            Self::Small => 4,
            Self::Medium => 8,
            Self::Large => 16,
            Self::Xlarge => 32,
        }
    }
}

/// Where a job is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Stage {
    /// Checking source and target.
    Precheck,
    /// Copying existing data.
    Full,
    /// Replaying the binlog.
    Incremental,
    /// Done (Full mode, or a replicating job after its cutover).
    Completed,
}

/// What the job is doing now.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Accepted, waiting to run.
    Pending,
    /// Working.
    Running,
    /// Stopped by `spec.paused`; the checkpoint is kept.
    Paused,
    /// Stopped by an error; see `lastError`.
    Failed,
    /// Finished (Full mode, or a replicating job after its cutover).
    Completed,
}

/// Progress of a migration job, as reported by its worker and operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationJobStatus {
    /// Precheck, Full, Incremental or Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Pending, Running, Paused, Failed or Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Prechecked, Paused, Failed and others, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Result of every precheck item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub precheck: Vec<PrecheckItem>,
    /// Progress of the existing-data copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<FullProgress>,
    /// State of binlog replication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalStatus>,
    /// The last cutover request the worker acted on and where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<CutoverStatus>,
    /// The last verification requested by `spec.verify.request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationStatus>,
    /// What continuous validation (`spec.validation.continuous`) found since the worker started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationStatus>,
    /// Binlog position the target has reached, as `file:pos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// The error that stopped the job last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<JobError>,
    /// Replicated DDL statements skipped or replaced by `spec.ddlErrorPolicy`, by this worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ddl_handled: Vec<HandledDdl>,
    /// The `spec.restartRequest` value already acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart_request: Option<String>,
    /// Name of the worker pod running the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pod: Option<String>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Result of one precheck item.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrecheckItem {
    /// Stable identifier of the check, such as `binlog_format`.
    pub name: String,
    /// Pass, Warning or Failure.
    pub result: CheckResult,
    /// What was observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Why the item matters when it does not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// Outcome of a precheck item.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum CheckResult {
    /// Nothing to do.
    Pass,
    /// The job can run, but read the reason.
    Warning,
    /// The job cannot run until the remedy is applied.
    Failure,
}

/// Progress of the existing-data copy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FullProgress {
    /// Tables completely copied.
    pub tables_done: i64,
    /// Tables to copy.
    pub tables_total: i64,
    /// Rows copied so far.
    pub rows: i64,
    /// Bytes copied so far (row data as sent to the target).
    pub bytes: i64,
    /// Recent copy throughput.
    pub bytes_per_second: i64,
    /// Estimated share done, 0 to 100, as text (such as `42.5%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<String>,
    /// Estimated seconds left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// Binlog position of the consistent snapshot the copy reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<BinlogPosition>,
}

/// State of binlog replication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncrementalStatus {
    /// Last source position whose changes are committed on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<BinlogPosition>,
    /// The source's current binlog position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_head: Option<BinlogPosition>,
    /// Seconds between the newest applied event's source time and now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    /// Bytes of binlog between the applied position and the source head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
    /// Recent apply throughput in row changes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_second: Option<i64>,
    /// Safe mode lasts until this time (RFC 3339); absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_mode_until: Option<String>,
    /// Events `spec.filters` dropped by this worker: rows for Insert, Update and Delete,
    /// statements for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_events: Option<SkippedEvents>,
    /// Target rows this worker overwrote with the source's because they conflicted, in the
    /// transactions up to `spec.overwriteConflictsAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts_overwritten: Option<i64>,
}

/// Counts of events dropped by `spec.filters`, per event type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedEvents {
    /// Inserted rows dropped.
    #[serde(default)]
    pub insert: i64,
    /// Updated rows dropped.
    #[serde(default)]
    pub update: i64,
    /// Deleted rows dropped.
    #[serde(default)]
    pub delete: i64,
    /// TRUNCATE statements dropped.
    #[serde(default)]
    pub truncate: i64,
    /// DROP TABLE statements dropped.
    #[serde(default)]
    pub drop_table: i64,
    /// DROP DATABASE statements dropped.
    #[serde(default)]
    pub drop_database: i64,
    /// Other DDL statements dropped.
    #[serde(default)]
    pub other_ddl: i64,
}

impl SkippedEvents {
    /// All events dropped.
    pub fn total(&self) -> i64 {
        self.insert
            + self.update
            + self.delete
            + self.truncate
            + self.drop_table
            + self.drop_database
            + self.other_ddl
    }
}

/// An error that stopped a job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    /// Stage the job was in.
    pub stage: Stage,
    /// What went wrong and what to do.
    pub message: String,
    /// Whether running again may succeed without a change by the user.
    pub retryable: bool,
    /// When it happened (RFC 3339).
    pub time: String,
}
