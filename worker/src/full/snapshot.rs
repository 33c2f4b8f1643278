//! A consistent snapshot of the source shared by every copy connection, with its binlog position.
//!
//! The methods, best first (docs/full-copy.md lists which source gets which):
//! - `ftwrl`: FLUSH TABLES WITH READ LOCK (RELOAD), then every connection starts a
//!   consistent-snapshot transaction and the position is read, then UNLOCK TABLES at once: all
//!   connections see the same instant and the position is exact.
//! - `lock-tables` (MySQL without RELOAD, with LOCK TABLES): `LOCK TABLES ... READ` on the
//!   selected tables, held the same way. A transaction writing a selected table holds its
//!   metadata lock until it commits, so while the lock is held none is half committed, and the
//!   position read then is exact for the selected tables (other tables' events are not
//!   replicated). `LOCK INSTANCE FOR BACKUP` is no substitute: it blocks DDL, not DML, and
//!   MySQL documents no position consistent with a snapshot transaction without a lock
//!   (`performance_schema.log_status` is consistent with the storage engines' logs, not with
//!   another session's read view).
//! - `lock-free` otherwise: each connection takes its own snapshot without a lock. MariaDB
//!   reports each snapshot's exact position (`binlog_snapshot_file/position`); on MySQL the
//!   position is read before and after. The copy then spans a range of positions: the earliest
//!   is where replication starts, the latest is where safe mode may end. Safe mode cannot undo a
//!   row doubled in a table without a key, so the precheck refuses that case on MySQL.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::config::Endpoint;
use crate::connect::connect;
use crate::error::SqlContext;
use crate::flavor::{self, Flavor, Version};
use crate::meta::full::Snapshot;

/// Where one copy connection's snapshot stands in the binlog, when known exactly: every chunk it
/// reads holds the changes before that position and none after.
pub type ReadAt = Option<(String, u64)>;

/// A source connection inside its snapshot transaction.
pub struct SnapshotConn {
    pub conn: Conn,
    pub read_at: ReadAt,
}

/// Session settings of every source connection: UTC for TIMESTAMP, utf8mb4 text.
pub const SOURCE_SESSION: &str = "SET time_zone = '+00:00', NAMES utf8mb4; \
    SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ";

/// Opens `n` connections reading one snapshot of `tables` (`db`, `name`), and its position.
/// When `replicates`, a MySQL source that refuses both locks is an error: its lock-free
/// position is a guess replication must not start from.
pub async fn open(
    source: &Endpoint,
    n: usize,
    tables: &[(String, String)],
    replicates: bool,
) -> crate::Result<(Snapshot, Vec<SnapshotConn>)> {
    let mut control = connect(source, "source").await?;
    control.query_drop("SET SESSION lock_wait_timeout = 10").await.sql("set lock_wait_timeout")?;
    let version = Version::read(&mut control).await.sql("read the source version")?;
    let ftwrl = match control.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => return under_lock(control, source, n, &version, "ftwrl").await,
        Err(error) => error,
    };
    if version.flavor == Flavor::MySql && !tables.is_empty() {
        match control.query_drop(lock_tables_sql(tables)).await {
            Ok(()) => {
                tracing::info!(
                    error = %ftwrl,
                    "the source refused FLUSH TABLES WITH READ LOCK; holding LOCK TABLES ... \
                     READ on the selected tables while the snapshot starts"
                );
                return under_lock(control, source, n, &version, "lock-tables").await;
            }
            Err(error) if replicates => {
                return Err(crate::Error::Sql {
                    context: format!(
                        "LOCK TABLES ... READ on the selected tables, tried because the source \
                         refused FLUSH TABLES WITH READ LOCK ({ftwrl}); without either MySQL \
                         reports no exact binlog position for replication to start from \
                         (GRANT RELOAD or LOCK TABLES to the source user, or end long \
                         transactions on the selected tables)"
                    ),
                    source: error,
                });
            }
            Err(error) => tracing::warn!(
                error = %error,
                "the source refused LOCK TABLES ... READ on the selected tables too"
            ),
        }
    }
    tracing::warn!(
        error = %ftwrl,
        "the source refused FLUSH TABLES WITH READ LOCK; taking lock-free snapshots, \
         so replication starts at the earliest snapshot in safe mode"
    );
    lock_free(&mut control, source, n, &version).await
}

/// One connection reading a snapshot of `table` (`db`, `name`), and the exact binlog position
/// the snapshot stands at: on MariaDB without any lock (its snapshot transaction reports its
/// position), elsewhere as [`open`] takes it. `None` for the position when the source gives no
/// exact one (MySQL refusing both locks).
pub async fn open_exact(
    source: &Endpoint,
    table: (&str, &str),
) -> crate::Result<(SnapshotConn, ReadAt)> {
    let mut control = connect(source, "source").await?;
    let version = Version::read(&mut control).await.sql("read the source version")?;
    if version.flavor == Flavor::MariaDb {
        drop(control);
        let mut conn = snapshot_conn(source).await?;
        let read_at = mariadb_snapshot_position(&mut conn).await?;
        return Ok((SnapshotConn { conn, read_at: read_at.clone() }, read_at));
    }
    drop(control);
    let tables = [(table.0.to_string(), table.1.to_string())];
    let (snapshot, mut conns) = open(source, 1, &tables, true).await?;
    let exact = snapshot.safe_until.is_none().then(|| snapshot.file.zip(snapshot.pos)).flatten();
    let conn = conns.pop().ok_or_else(|| {
        crate::full::FullError::Worker("no snapshot connection was opened".into())
    })?;
    Ok((conn, exact))
}

/// `LOCK TABLES a READ, b READ, ...`: one statement, since each LOCK TABLES releases the last.
fn lock_tables_sql(tables: &[(String, String)]) -> String {
    let each: Vec<String> = tables
        .iter()
        .map(|(db, name)| format!("{} READ", crate::sql::qualified(db, name)))
        .collect();
    format!("LOCK TABLES {}", each.join(", "))
}

/// Opens the snapshots and reads the position while `control` holds a read lock, then unlocks.
async fn under_lock(
    mut control: Conn,
    source: &Endpoint,
    n: usize,
    version: &Version,
    method: &str,
) -> crate::Result<(Snapshot, Vec<SnapshotConn>)> {
    let result = locked(&mut control, source, n, version, method).await;
    let unlock = control.query_drop("UNLOCK TABLES").await.sql("UNLOCK TABLES on the source");
    let opened = result?;
    unlock?;
    Ok(opened)
}

async fn snapshot_conn(source: &Endpoint) -> crate::Result<Conn> {
    let mut conn = connect(source, "source").await?;
    conn.query_drop(SOURCE_SESSION).await.sql("set up a source session")?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .sql("start a consistent-snapshot transaction on the source")?;
    Ok(conn)
}

async fn locked(
    control: &mut Conn,
    source: &Endpoint,
    n: usize,
    version: &Version,
    method: &str,
) -> crate::Result<(Snapshot, Vec<SnapshotConn>)> {
    let conns = futures::future::try_join_all((0..n.max(1)).map(|_| snapshot_conn(source))).await?;
    let read_at = flavor::binlog_status(control, version).await?;
    let gtid_set = flavor::gtid_executed(control, version).await?;
    let conns = conns.into_iter().map(|conn| SnapshotConn { conn, read_at: read_at.clone() });
    let (file, pos) = read_at.clone().unzip();
    let snapshot = Snapshot { file, pos, gtid_set, safe_until: None, method: method.into() };
    Ok((snapshot, conns.collect()))
}

async fn lock_free(
    control: &mut Conn,
    source: &Endpoint,
    n: usize,
    version: &Version,
) -> crate::Result<(Snapshot, Vec<SnapshotConn>)> {
    let mariadb = version.flavor == Flavor::MariaDb;
    let before = flavor::binlog_status(control, version).await?;
    let gtid_before = flavor::gtid_executed(control, version).await?;
    let mut conns = Vec::with_capacity(n.max(1));
    let mut positions = Vec::new();
    for _ in 0..n.max(1) {
        let mut conn = snapshot_conn(source).await?;
        // Elsewhere a lock-free snapshot's exact position is unknown.
        let read_at = if mariadb { mariadb_snapshot_position(&mut conn).await? } else { None };
        positions.extend(read_at.clone());
        conns.push(SnapshotConn { conn, read_at });
    }
    let after = flavor::binlog_status(control, version).await?;
    let earliest = positions.iter().min().cloned().or(before);
    let latest = positions.iter().max().cloned().or(after);
    let (file, pos) = earliest.clone().unzip();
    let snapshot = Snapshot {
        file,
        pos,
        // Valid only when no transaction committed while the snapshots were taken.
        gtid_set: if earliest == latest { gtid_before } else { None },
        safe_until: latest.filter(|l| Some(l) != earliest.as_ref()),
        method: "lock-free".into(),
    };
    Ok((snapshot, conns))
}

async fn mariadb_snapshot_position(conn: &mut Conn) -> crate::Result<Option<(String, u64)>> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .sql("read binlog_snapshot_file/position on the source")?;
    let value = |name: &str| {
        rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let file = value("binlog_snapshot_file").filter(|f| !f.is_empty());
    let pos = value("binlog_snapshot_position").and_then(|p| p.parse().ok());
    Ok(file.zip(pos))
}
