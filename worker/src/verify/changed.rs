//! Which tables changed since they were last verified equal, so that the cutover's last verify
//! compares only those.
//!
//! Every verify records, in `ferry_meta.verified_tables` on the target, each table it found
//! equal with the source's binlog position at its start ([`record`]). A table the source has
//! not changed since that position still holds what was compared, and the target only changes
//! by replaying the source, so it is still equal. [`scope`] reads the source's binlog from the
//! oldest such position to the cutover's final one with the replication reader and keeps the
//! tables with a row change after their own position; a DDL statement there, a record from
//! another source server or from before the copy's snapshot, or a binlog that cannot be read
//! makes the tables concerned (or all) compared again. Without a record, every table is.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::Report;
use crate::config::JobConfig;
use crate::error::SqlContext;
use crate::flavor::{self, Version};
use crate::full::objects;
use crate::incremental::filter::Filter;
use crate::incremental::gtid::GtidState;
use crate::incremental::stream::{self, Reader, Unit};
use crate::meta::incremental::{self as checkpoint, Position};

/// The table of `ferry_meta` schema version 7 (`meta::schema`).
pub(crate) const CREATE: &str = "CREATE TABLE IF NOT EXISTS ferry_meta.verified_tables (\
    job VARCHAR(320) NOT NULL, db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, \
    binlog_file VARCHAR(255) NOT NULL, binlog_pos BIGINT UNSIGNED NOT NULL, \
    source_server VARCHAR(64) NOT NULL, \
    verified_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
    PRIMARY KEY (job, db, tbl))";

/// A source table: (database, table).
pub type TableName = (String, String);

/// What the cutover's verify compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The tables to compare; None: every selected table.
    pub tables: Option<BTreeSet<TableName>>,
    /// Why, for the report.
    pub reason: String,
}

impl Scope {
    fn all(reason: impl Into<String>) -> Self {
        Self { tables: None, reason: reason.into() }
    }
}

/// Records the tables `report` found equal as verified at the report's start position, for
/// `job`'s later cutover. Nothing is recorded without a position or a job key, or on a target
/// whose `ferry_meta` predates the table (a job run by this Ferry creates it).
pub async fn record(
    source: &mut Conn,
    target: &mut Conn,
    job: &str,
    report: &Report,
) -> crate::Result<()> {
    let Some(at) = report.position.as_deref().and_then(checkpoint::parse_position) else {
        return Ok(());
    };
    if job.is_empty() || !crate::meta::schema::has_table(target, "verified_tables").await? {
        return Ok(());
    }
    let version = Version::read(source).await.sql("read the source version")?;
    let server = flavor::server_identity(source, &version).await?.id;
    for table in report.tables.iter().filter(|t| t.is_equal()) {
        target
            .exec_drop(
                "REPLACE INTO ferry_meta.verified_tables (job, db, tbl, binlog_file, binlog_pos, \
                 source_server) VALUES (?, ?, ?, ?, ?, ?)",
                (job, &table.database, &table.table, &at.file, at.pos, &server),
            )
            .await
            .sql("record a verified table in ferry_meta.verified_tables on the target")?;
    }
    Ok(())
}

/// The tables of `config`'s job to compare for a cutover at `to`: those not verified equal
/// since their last change (see the module documentation). Reading the binlog takes at most
/// `timeout`; past it, every table is compared.
pub async fn scope(
    config: &JobConfig,
    source: &mut Conn,
    target: &mut Conn,
    to: &Position,
    timeout: Duration,
) -> crate::Result<Scope> {
    if !crate::meta::schema::has_table(target, "verified_tables").await? {
        return Ok(Scope::all("no earlier verification recorded"));
    }
    let version = Version::read(source).await.sql("read the source version")?;
    let server = flavor::server_identity(source, &version).await?.id;
    let copied_at = crate::meta::full::load_snapshot(target, &config.key)
        .await?
        .and_then(|(snapshot, _)| snapshot.file.zip(snapshot.pos));
    let valid = |p: &Position| {
        copied_at.as_ref().is_none_or(|(file, pos)| {
            !checkpoint::after(&Position { file: file.clone(), pos: *pos, ..Default::default() }, p)
        })
    };
    let verified: HashMap<TableName, Position> = load(target, &config.key)
        .await?
        .into_iter()
        .filter(|(_, (at, from))| *from == server && valid(at))
        .map(|(table, (at, _))| (table, at))
        .collect();
    let selected: Vec<TableName> = objects::read(source, &config.selection)
        .await?
        .tables
        .into_iter()
        .map(|t| (t.db, t.name))
        .collect();
    let Some(oldest) = selected
        .iter()
        .filter_map(|t| verified.get(t))
        .min_by(|a, b| {
            if checkpoint::after(a, b) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Less
            }
        })
        .cloned()
    else {
        return Ok(Scope::all("no table was verified equal before"));
    };
    let changes = match read_changes(config, &oldest, to, timeout).await {
        Ok(changes) => changes,
        Err(error) => {
            tracing::warn!(error = %error, "cannot read the binlog since the last verification");
            return Ok(Scope::all(format!(
                "the binlog since the last verification ({}) cannot be read: {error}",
                describe(&oldest)
            )));
        }
    };
    let tables: BTreeSet<TableName> = selected
        .into_iter()
        .filter(|t| match verified.get(t) {
            None => true,
            Some(at) => changes.since(t, at),
        })
        .collect();
    let reason = format!(
        "the tables changed, or not verified equal, since {} (the others are unchanged since \
         an earlier verify found them equal)",
        describe(&oldest)
    );
    Ok(Scope { tables: Some(tables), reason })
}

/// The `verified_tables` rows of `job`: table -> (position, source server).
async fn load(
    target: &mut Conn,
    job: &str,
) -> crate::Result<HashMap<TableName, (Position, String)>> {
    let rows: Vec<(String, String, String, u64, String)> = target
        .exec(
            "SELECT db, tbl, binlog_file, binlog_pos, source_server \
             FROM ferry_meta.verified_tables WHERE job = ?",
            (job,),
        )
        .await
        .sql("read ferry_meta.verified_tables on the target")?;
    Ok(rows
        .into_iter()
        .map(|(db, tbl, file, pos, server)| {
            ((db, tbl), (Position { file, pos, ..Default::default() }, server))
        })
        .collect())
}

/// The selected tables' last row change and the last DDL statement in a stretch of binlog.
#[derive(Debug, Default)]
struct Changes {
    last_change: HashMap<TableName, Position>,
    last_ddl: Option<Position>,
}

impl Changes {
    /// Whether `table` changed, or any DDL ran, after `at`.
    fn since(&self, table: &TableName, at: &Position) -> bool {
        let after = |p: &Position| checkpoint::after(p, at);
        self.last_ddl.as_ref().is_some_and(after) || self.last_change.get(table).is_some_and(after)
    }

    fn take(&mut self, unit: Unit) {
        match unit {
            Unit::Ddl(ddl) => self.last_ddl = Some(ddl.end),
            // An online schema change's steps end in a DDL on the real table: compare them all.
            Unit::OnlineDdl(step) => self.last_ddl = Some(step.end),
            Unit::Txn(txn) => {
                if txn.ddl.is_some() {
                    self.last_ddl = Some(txn.end.clone());
                }
                for change in &txn.changes {
                    let table = (change.database.clone(), change.table.clone());
                    self.last_change.insert(table, txn.end.clone());
                }
            }
        }
    }
}

/// Reads the source's binlog from `from` to `to` with the replication reader (the job's
/// selection), on a replica server id of its own.
async fn read_changes(
    config: &JobConfig,
    from: &Position,
    to: &Position,
    timeout: Duration,
) -> crate::Result<Changes> {
    let mut changes = Changes::default();
    if !checkpoint::after(to, from) {
        return Ok(changes);
    }
    let (mut events, checksums) = stream::open(&config.source, from, scan_server_id()).await?;
    let gtids = GtidState::default();
    let mut reader =
        Reader::new(Filter::new(config.selection.clone()), from.clone(), gtids, checksums);
    let deadline = Instant::now() + timeout;
    while checkpoint::after(to, &reader.position) {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, events.next()).await {
            Err(_) => {
                let why = format!("it did not reach {} within {timeout:?}", describe(to));
                return Err(super::VerifyError::BinlogScan(why).into());
            }
            Ok(None) => {
                let why = format!("the stream ended at {}", describe(&reader.position));
                return Err(super::VerifyError::BinlogScan(why).into());
            }
            Ok(Some(event)) => event.sql("read the source's binlog")?,
        };
        if let Some(unit) = reader.handle(&event)? {
            changes.take(unit);
        }
    }
    Ok(changes)
}

fn describe(position: &Position) -> String {
    format!("{}:{}", position.file, position.pos)
}

/// A replica server id for the scan: bit 29 set and bit 30 clear, unlike the jobs' own ids
/// (`incremental::server_id`), so it never takes over a job's stream.
fn scan_server_id() -> u32 {
    (1 << 29) | (std::process::id() & 0x0fff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pos: u64) -> Position {
        Position { file: "b.000001".into(), pos, ..Default::default() }
    }

    #[test]
    fn a_table_changed_after_its_verification_is_compared_again() {
        let t = |name: &str| ("app".to_string(), name.to_string());
        let mut changes = Changes::default();
        changes.last_change.insert(t("a"), at(500));
        assert!(changes.since(&t("a"), &at(400)));
        assert!(!changes.since(&t("a"), &at(500)));
        assert!(!changes.since(&t("b"), &at(100)));
        changes.last_ddl = Some(at(300));
        assert!(changes.since(&t("b"), &at(100)));
        assert!(!changes.since(&t("b"), &at(300)));
    }
}
