//! The tables of `ferry_meta`, its version row and the forward migrations between versions.
//!
//! Version 0 is the layout from before the version row: any of the tables of version 1, in the
//! forms earlier Ferry versions created them (255-character job keys, chunks without their read
//! positions). Each migration brings one version to the next and is idempotent: DDL is not
//! transactional, so a stop between a migration and its version row runs it again, and jobs
//! sharing a target may run it at the same time.

use futures::future::BoxFuture;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::JOB_KEY_CHARS;
use crate::error::SqlContext;

/// Why the checkpoint schema cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error(
        "the target's ferry_meta schema is at version {found}, newer than the version {known} \
         this Ferry knows: a newer Ferry wrote these checkpoints, and this one could misread \
         them. Run the job with a Ferry release that knows version {found}"
    )]
    Newer { found: u32, known: u32 },
    #[error(
        "the job name {name:?} has more than {max} characters with its namespace, more than \
         ferry_meta keeps whole: give the MigrationJob a shorter name"
    )]
    NameTooLong { name: String, max: u64 },
}

type Migration = for<'a> fn(&'a mut Conn) -> BoxFuture<'a, crate::Result<()>>;

/// `MIGRATIONS[n]` brings version `n` to `n + 1`.
const MIGRATIONS: &[Migration] = &[
    |conn| Box::pin(version_1(conn)),
    |conn| Box::pin(version_2(conn)),
    |conn| Box::pin(version_3(conn)),
    |conn| Box::pin(version_4(conn)),
    |conn| Box::pin(version_5(conn)),
    |conn| Box::pin(version_6(conn)),
    |conn| Box::pin(version_7(conn)),
];

/// The version this Ferry reads and writes.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

const CREATE_VERSION: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.schema_version (\
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY, version INT UNSIGNED NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CREATE_SNAPSHOT: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_snapshot (\
    job VARCHAR(320) NOT NULL PRIMARY KEY, \
    binlog_file VARCHAR(255) NULL, binlog_pos BIGINT UNSIGNED NULL, gtid_set TEXT NULL, \
    safe_until_file VARCHAR(255) NULL, safe_until_pos BIGINT UNSIGNED NULL, \
    method VARCHAR(32) NOT NULL, state VARCHAR(16) NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CREATE_CHUNKS: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_chunks (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    seq INT NOT NULL, cond LONGTEXT NOT NULL, done TINYINT NOT NULL DEFAULT 0, \
    rows_copied BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0, \
    read_file VARCHAR(255) NULL, read_pos BIGINT UNSIGNED NULL, \
    PRIMARY KEY (job, db, tbl, seq))";

/// Columns added to `full_chunks` after its first release, created on tables that lack them.
const CHUNK_COLUMNS_ADDED: &[(&str, &str)] =
    &[("read_file", "VARCHAR(255) NULL"), ("read_pos", "BIGINT UNSIGNED NULL")];

const CREATE_TABLES: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_tables (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    read_file VARCHAR(255) NOT NULL, read_pos BIGINT UNSIGNED NOT NULL, \
    PRIMARY KEY (job, db, tbl))";

const CREATE_INDEXES: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.full_indexes (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    definitions LONGTEXT NOT NULL, PRIMARY KEY (job, db, tbl))";

const CREATE_CHECKPOINT: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.incremental_checkpoint (\
    job VARCHAR(320) NOT NULL PRIMARY KEY, \
    binlog_file VARCHAR(255) NOT NULL, \
    binlog_pos BIGINT UNSIGNED NOT NULL, \
    gtid_set TEXT NULL, \
    state VARCHAR(16) NOT NULL, \
    updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))";

const CREATE_APPLIED: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.incremental_applied (\
    job VARCHAR(320) NOT NULL, \
    last_file VARCHAR(255) NOT NULL, \
    last_pos BIGINT UNSIGNED NOT NULL, \
    worker INT UNSIGNED NOT NULL, \
    positions MEDIUMTEXT NOT NULL, \
    PRIMARY KEY (job, last_file, last_pos))";

const CREATE_JOBS: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.jobs (\
    owner VARCHAR(16) NOT NULL, name VARCHAR(320) NOT NULL, id VARCHAR(64) NOT NULL, \
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
    PRIMARY KEY (owner, name))";

/// The tables whose rows are keyed by a job's checkpoint key (their `job` column).
pub const KEYED_TABLES: &[&str] = &[
    "incremental_checkpoint",
    "incremental_applied",
    "full_snapshot",
    "full_chunks",
    "full_tables",
    "full_indexes",
    "cutover",
    "selection",
    "backfill_tables",
    "online_ddl",
    "verified_tables",
];

/// The tables of version 1, by name; replication's first, so that a job that only replicates
/// has them as early as before versions.
const TABLES_1: &[(&str, &str)] = &[
    ("incremental_checkpoint", CREATE_CHECKPOINT),
    ("incremental_applied", CREATE_APPLIED),
    ("full_snapshot", CREATE_SNAPSHOT),
    ("full_chunks", CREATE_CHUNKS),
    ("full_tables", CREATE_TABLES),
    ("full_indexes", CREATE_INDEXES),
];

/// Creates `ferry_meta`, or brings it to [`CURRENT_VERSION`]; refuses a layout a newer Ferry
/// wrote, which this one could misread.
pub async fn ensure(conn: &mut Conn) -> crate::Result<()> {
    conn.query_drop("CREATE DATABASE IF NOT EXISTS ferry_meta")
        .await
        .sql("create database ferry_meta on the target")?;
    conn.query_drop(CREATE_VERSION).await.sql("create ferry_meta.schema_version on the target")?;
    let found = version(conn).await?.unwrap_or(0);
    if found > CURRENT_VERSION {
        return Err(MetaError::Newer { found, known: CURRENT_VERSION }.into());
    }
    for (from, migrate) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = from as u32 + 1;
        tracing::debug!(from, to, "migrating ferry_meta");
        migrate(conn).await?;
        conn.exec_drop(
            "INSERT INTO ferry_meta.schema_version (id, version) VALUES (1, ?) \
             ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))",
            (to,),
        )
        .await
        .sql("record the version of ferry_meta on the target")?;
    }
    Ok(())
}

/// Whether `ferry_meta.<table>` exists on the target (an older Ferry may not have made it yet).
pub async fn has_table(conn: &mut Conn, table: &str) -> crate::Result<bool> {
    let found: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'ferry_meta' \
             AND TABLE_NAME = ?",
            (table,),
        )
        .await
        .sql(format!("look for ferry_meta.{table} on the target"))?;
    Ok(found.unwrap_or(0) > 0)
}

/// The recorded version of `ferry_meta`; `None` before [`ensure`] ran with versions.
pub async fn version(conn: &mut Conn) -> crate::Result<Option<u32>> {
    conn.query_first("SELECT version FROM ferry_meta.schema_version WHERE id = 1")
        .await
        .sql("read the version of ferry_meta on the target")
}

/// Version 1: every table, the older forms of version 0 brought up to date.
async fn version_1(conn: &mut Conn) -> crate::Result<()> {
    widen_job_keys(conn).await?;
    for (table, create) in TABLES_1 {
        conn.query_drop(*create).await.sql(format!("create ferry_meta.{table} on the target"))?;
    }
    add_missing_columns(conn, "full_chunks", CHUNK_COLUMNS_ADDED).await
}

/// Version 2: the checkpoint names the source server it was read from, so that a resume on
/// another server (a failover) can tell.
async fn version_2(conn: &mut Conn) -> crate::Result<()> {
    let added = [("source_server", "VARCHAR(64) NULL")];
    add_missing_columns(conn, "incremental_checkpoint", &added).await
}

/// Version 3: the registry of jobs ([`super::jobs`]), which gives each job a checkpoint key of
/// its own (a Kubernetes UID, or an id the CLI generated) instead of its `namespace/name`, so a
/// new job under an old name starts fresh. Rows of earlier versions keep their `namespace/name`
/// keys; the job of that name adopts them on its first run ([`super::jobs::resolve`]).
async fn version_3(conn: &mut Conn) -> crate::Result<()> {
    conn.query_drop(CREATE_JOBS).await.sql("create ferry_meta.jobs on the target")
}

/// Version 4: the cutover a user recorded (`ferry cutover`, `spec.cutover.request`).
async fn version_4(conn: &mut Conn) -> crate::Result<()> {
    conn.query_drop(crate::cutover::CREATE).await.sql("create ferry_meta.cutover on the target")
}

/// Version 5: the selection replication runs under, and the tables added to it that are being
/// copied in the background ([`super::backfill`]).
async fn version_5(conn: &mut Conn) -> crate::Result<()> {
    for (table, create) in super::backfill::TABLES {
        conn.query_drop(*create).await.sql(format!("create ferry_meta.{table} on the target"))?;
    }
    Ok(())
}

/// Version 6: the ALTERs of online schema-change tools recorded until the tool's swap
/// (`incremental::online_ddl`).
async fn version_6(conn: &mut Conn) -> crate::Result<()> {
    let create = crate::incremental::online_ddl::CREATE;
    conn.query_drop(create).await.sql("create ferry_meta.online_ddl on the target")
}

/// Version 7: the tables a verify found equal, and at which source position, so that a
/// cutover compares only the tables changed since (`verify::changed`).
async fn version_7(conn: &mut Conn) -> crate::Result<()> {
    conn.query_drop(crate::verify::changed::CREATE)
        .await
        .sql("create ferry_meta.verified_tables on the target")
}

/// Upgrades `ferry_meta` tables created by versions whose `job` column held 255 characters,
/// which cut longer job ids (and so mixed up or lost checkpoints).
async fn widen_job_keys(conn: &mut Conn) -> crate::Result<()> {
    let narrow: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'ferry_meta' \
             AND COLUMN_NAME = 'job' AND CHARACTER_MAXIMUM_LENGTH < ?",
            (JOB_KEY_CHARS,),
        )
        .await
        .sql("read the job columns of ferry_meta on the target")?;
    for table in narrow {
        tracing::info!(table = %table, "widening ferry_meta's job column");
        conn.query_drop(format!(
            "ALTER TABLE ferry_meta.{} MODIFY job VARCHAR({JOB_KEY_CHARS}) NOT NULL",
            crate::sql::quote_ident(&table)
        ))
        .await
        .sql(format!("widen the job column of ferry_meta.{table} on the target"))?;
    }
    Ok(())
}

/// Adds the `columns` (name, definition) that `table` lacks (portable: MySQL has no
/// `ADD COLUMN IF NOT EXISTS`).
async fn add_missing_columns(
    conn: &mut Conn,
    table: &str,
    columns: &[(&str, &str)],
) -> crate::Result<()> {
    let present: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'ferry_meta' AND TABLE_NAME = ?",
            (table,),
        )
        .await
        .sql(format!("read the columns of ferry_meta.{table} on the target"))?;
    for (name, definition) in columns {
        if !present.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            conn.query_drop(format!(
                "ALTER TABLE ferry_meta.{table} ADD COLUMN {name} {definition}"
            ))
            .await
            .sql(format!("add a column to ferry_meta.{table} on the target"))?;
        }
    }
    Ok(())
}
