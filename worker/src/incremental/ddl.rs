//! Replicated DDL: each statement is adapted for the target through the rewrite table the copy
//! uses ([`crate::rewrite`]), runs in the session the source ran it in (the sql_mode, time zone
//! and character sets of its QUERY event), and a statement the target refuses stops the job with
//! its position and the ways past it: `spec.ddlErrorPolicy` (or `ferry migrate --ddl-skip` /
//! `--ddl-replace`) skips it or replaces it with statements written for the target.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use ferry_crds::job::{DdlAction, DdlErrorAction, HandledDdl};
use mysql_async::Conn;
use mysql_async::binlog::events::{QueryEvent, StatusVarVal};
use mysql_async::prelude::Queryable;

use super::IncrementalError;
use super::apply::Mode;
use super::filter::redacted;
use super::programs::{alter_view_as_create, without_definer};
use super::stream::Ddl;
use crate::engine::JobContext;
use crate::error::SqlContext;
use crate::flavor::{Flavor, Version};
use crate::rewrite::{Rewrites, tidb_collation};
use crate::sql::quote_str;

/// The session a statement ran in on the source, from its QUERY event's status variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuerySession {
    /// The sql_mode bits.
    pub sql_mode: Option<u64>,
    /// Collation ids of character_set_client, collation_connection and collation_server.
    pub charset: Option<[u16; 3]>,
    /// The time zone name, when the statement used one.
    pub time_zone: Option<String>,
}

impl QuerySession {
    pub fn of(query: &QueryEvent<'_>) -> Self {
        let mut session = Self::default();
        // The iterator stops at a variable it does not know (MariaDB adds its own at the end).
        for var in query.status_vars().iter() {
            match var.get_value() {
                Ok(StatusVarVal::SqlMode(mode)) => session.sql_mode = Some(mode.0),
                Ok(StatusVarVal::Charset {
                    charset_client,
                    collation_connection,
                    collation_server,
                }) => {
                    session.charset =
                        Some([charset_client, collation_connection, collation_server]);
                }
                Ok(StatusVarVal::TimeZone(zone)) => {
                    let zone = zone.as_str().into_owned();
                    session.time_zone = (!zone.is_empty()).then_some(zone);
                }
                _ => {}
            }
        }
        session
    }
}

/// The statement of a QUERY event as text: its bytes are in the client's character set, which
/// is latin1 in some sessions (then each byte is one character, even where the bytes happen to
/// be valid UTF-8: the source read them as latin1).
pub fn statement_text(query: &QueryEvent<'_>, session: &QuerySession) -> String {
    let bytes = query.query_raw();
    let client = session.charset.map(|c| c[0]);
    match client {
        Some(id) if LATIN1_COLLATIONS.contains(&id) => {
            bytes.iter().map(|&b| crate::sql::literal::latin1_char(b)).collect()
        }
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Collation ids of latin1, the same on MySQL and MariaDB.
const LATIN1_COLLATIONS: &[u16] = &[5, 8, 15, 31, 47, 48, 49, 94];

/// sql_mode bits that change how a statement is read or run, by name; every target knows them.
/// The others are combinations whose parts are set too (ANSI, TRADITIONAL), options of SHOW
/// CREATE output, or modes no target reproduces (logged when set).
const SQL_MODES: &[(u32, &str)] = &[
    (0, "REAL_AS_FLOAT"),
    (1, "PIPES_AS_CONCAT"),
    (2, "ANSI_QUOTES"),
    (3, "IGNORE_SPACE"),
    (5, "ONLY_FULL_GROUP_BY"),
    (6, "NO_UNSIGNED_SUBTRACTION"),
    (7, "NO_DIR_IN_CREATE"),
    (19, "NO_AUTO_VALUE_ON_ZERO"),
    (20, "NO_BACKSLASH_ESCAPES"),
    (21, "STRICT_TRANS_TABLES"),
    (22, "STRICT_ALL_TABLES"),
    (23, "NO_ZERO_IN_DATE"),
    (24, "NO_ZERO_DATE"),
    (25, "ALLOW_INVALID_DATES"),
    (26, "ERROR_FOR_DIVISION_BY_ZERO"),
    (29, "HIGH_NOT_PRECEDENCE"),
    (30, "NO_ENGINE_SUBSTITUTION"),
    (31, "PAD_CHAR_TO_FULL_LENGTH"),
];

/// MariaDB's modes above bit 31 (MySQL uses bit 32 for TIME_TRUNCATE_FRACTIONAL).
const MARIADB_HIGH_MODES: &[(u32, &str)] =
    &[(32, "EMPTY_STRING_IS_NULL"), (33, "SIMULTANEOUS_ASSIGNMENT"), (34, "TIME_ROUND_FRACTIONAL")];
const MYSQL_HIGH_MODES: &[(u32, &str)] = &[(32, "TIME_TRUNCATE_FRACTIONAL")];
/// MariaDB's Oracle mode changes the parser: no other server reads statements that way.
const ORACLE_BIT: u32 = 9;

/// The sql_mode text for the target, and the modes left out (to log).
pub fn sql_mode_names(bits: u64, source: Flavor, target: Flavor) -> (String, Vec<&'static str>) {
    let set = |bit: u32| bits & (1u64 << bit) != 0;
    let mut names: Vec<&str> = SQL_MODES.iter().filter(|(b, _)| set(*b)).map(|(_, n)| *n).collect();
    let mut dropped = Vec::new();
    if source == Flavor::MariaDb && set(ORACLE_BIT) {
        dropped.push("ORACLE");
    }
    let high = if source == Flavor::MariaDb { MARIADB_HIGH_MODES } else { MYSQL_HIGH_MODES };
    for (_, name) in high.iter().filter(|(b, _)| set(*b)) {
        let kept = match target {
            Flavor::MariaDb => source == Flavor::MariaDb,
            Flavor::MySql => source != Flavor::MariaDb,
            Flavor::TiDb => false,
        };
        if kept { names.push(name) } else { dropped.push(name) }
    }
    (names.join(","), dropped)
}

/// What the target and source are, read at the first statement.
struct Setup {
    rewrites: Rewrites,
    source: Flavor,
    target: Flavor,
    /// Collation id -> name, from the source.
    collations: HashMap<u16, String>,
    /// The collations the target knows (MariaDB 10 lacks MySQL 8's `utf8mb4_0900_*`).
    target_collations: HashSet<String>,
    /// The target session's collations, restored after each statement.
    restore: String,
}

/// Applies replicated DDL statements (see the module documentation).
#[derive(Default)]
pub struct DdlApplier {
    setup: Option<Setup>,
}

impl DdlApplier {
    /// Runs `ddl` on `target` as the job's policy says: adapted and in its source session, or
    /// skipped, or replaced. `mode` Upsert (safe mode) tolerates a statement that already took
    /// effect before an abrupt stop.
    pub async fn apply(
        &mut self,
        ctx: &JobContext,
        target: &mut Conn,
        source: &mut Conn,
        ddl: &Ddl,
        mode: Mode,
    ) -> crate::Result<()> {
        let position = format!("{}:{}", ddl.end.file, ddl.end.pos);
        let action = ctx.config.ddl_error_policy.iter().find(|a| a.position == position);
        if let Some(DdlErrorAction { action: DdlAction::Skip, .. }) = action {
            tracing::warn!(%position, sql = %ddl.sql, "DDL skipped as spec.ddlErrorPolicy says");
            record(ctx, &position, DdlAction::Skip, &ddl.sql).await;
            return Ok(());
        }
        if let (None, Some(why)) = (action, &ddl.refused) {
            return Err(rejected_with(&position, &ddl.sql, why.clone()));
        }
        if self.setup.is_none() {
            self.setup = Some(super::bounded("its session settings", setup(source, target)).await?);
        }
        let setup = self.setup.as_ref().expect("set up above");
        let statements = match action {
            Some(a) => {
                tracing::warn!(%position, sql = %ddl.sql, replacement = ?a.statements, "DDL replaced as spec.ddlErrorPolicy says");
                a.statements.clone()
            }
            None => {
                let mut sql = without_definer(without_start_transaction(&ddl.sql));
                if setup.target == Flavor::TiDb
                    && let Some(create) = alter_view_as_create(&sql)
                {
                    sql = create;
                }
                let adapted = setup.rewrites.apply(&position, &sql);
                tracing::info!(%position, sql = %adapted, "applying DDL");
                vec![adapted]
            }
        };
        let session = session_sql(setup, &ddl.session, source, ddl.timestamp).await?;
        target.query_drop(&session).await.sql(format!(
            "set the source's session of the DDL at {position} on the target ({session})"
        ))?;
        let result = run_all(target, &statements).await;
        target.query_drop(&setup.restore).await.sql("restore the target session after DDL")?;
        if let Some(a) = action {
            let replaced = a.statements.join("; ");
            if let Some(warning) = result.map_err(|e| rejected(&position, &replaced, e))? {
                return Err(rejected_with(&position, &replaced, warning));
            }
            record(ctx, &position, DdlAction::Replace, &ddl.sql).await;
            return Ok(());
        }
        match result {
            Ok(None) => Ok(()),
            Ok(Some(warning)) => Err(rejected_with(&position, &ddl.sql, warning)),
            Err(e) if mode == Mode::Upsert && already_done(&e) => {
                tracing::warn!(%position, sql = %ddl.sql, error = %e, "DDL already applied before the restart");
                Ok(())
            }
            Err(e @ mysql_async::Error::Server(_)) => Err(rejected(&position, &ddl.sql, e)),
            Err(e) => Err(e).sql(format!("apply the DDL at {position}")),
        }
    }
}

/// Runs the statements; the first warning saying a part of one was dropped, if any.
async fn run_all(
    target: &mut Conn,
    statements: &[String],
) -> Result<Option<String>, mysql_async::Error> {
    for statement in statements {
        target.query_drop(statement).await?;
        if let Some(warning) = dropped_part(target).await? {
            return Ok(Some(warning));
        }
    }
    Ok(None)
}

/// Errors that say a statement already took effect (it ran before an abrupt stop); 1304, 1305
/// and 4092 are about routines and views.
fn already_done(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s)
        if matches!(s.code, 1007 | 1008 | 1050 | 1051 | 1054 | 1060 | 1061 | 1091 | 1146 | 1304 | 1305 | 4092))
}

fn rejected(position: &str, sql: &str, e: mysql_async::Error) -> crate::Error {
    rejected_with(position, sql, e.to_string())
}

fn rejected_with(position: &str, sql: &str, message: String) -> crate::Error {
    IncrementalError::DdlRejected {
        position: position.to_string(),
        statement: redacted(sql, 300),
        message,
    }
    .into()
}

/// Warnings by which a target says it ran a statement without a part of it: TiDB accepts a
/// FULLTEXT index and creates nothing (1214). The table would differ from the source's
/// without a word, so the statement counts as refused.
const DROPPED_PART_WARNINGS: &[u16] = &[1214];

/// The warning of the last statement that says part of it was dropped, if any.
async fn dropped_part(target: &mut Conn) -> Result<Option<String>, mysql_async::Error> {
    if target.get_warnings() == 0 {
        return Ok(None);
    }
    let warnings: Vec<(String, u16, String)> = target.query("SHOW WARNINGS").await?;
    Ok(warnings.into_iter().find(|(_, code, _)| DROPPED_PART_WARNINGS.contains(code)).map(
        |(_, code, message)| {
            format!("accepted with warning {code} ({message}): not applied as written")
        },
    ))
}

/// Puts a handled statement in the status, published at once.
async fn record(ctx: &JobContext, position: &str, action: DdlAction, sql: &str) {
    let handled = HandledDdl {
        position: position.to_string(),
        action,
        statement: redacted(sql, 300),
        time: Utc::now().to_rfc3339(),
    };
    ctx.reporter.update(|s| {
        if !s.ddl_handled.iter().any(|h| h.position == handled.position) {
            s.ddl_handled.push(handled);
        }
    });
    ctx.reporter.publish().await;
}

async fn setup(source: &mut Conn, target: &mut Conn) -> crate::Result<Setup> {
    let source_flavor = Version::read(source).await.sql("read the source version")?.flavor;
    let target_flavor = Version::read(target).await.sql("read the target version")?.flavor;
    let rewrites = Rewrites::new(source_flavor, target_flavor).with_source_defaults(source).await?;
    let rows: Vec<(u64, String)> = source
        .query("SELECT ID, COLLATION_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
        .await
        .sql("read the source's collations")?;
    let collations = rows.into_iter().map(|(id, name)| (id as u16, name)).collect();
    let target_collations: Vec<String> = target
        .query("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
        .await
        .sql("read the target's collations")?;
    let current: Option<(String, String)> = target
        .query_first("SELECT @@SESSION.collation_connection, @@SESSION.collation_server")
        .await
        .sql("read the target session's collations")?;
    let (connection, server) = current.unwrap_or_default();
    let restore = format!(
        "SET SESSION sql_mode = '{}', time_zone = '+00:00', collation_connection = {}, \
         collation_server = {}",
        crate::connect::TARGET_SQL_MODE,
        quote_str(&connection),
        quote_str(&server)
    );
    Ok(Setup {
        rewrites,
        source: source_flavor,
        target: target_flavor,
        collations,
        target_collations: target_collations.into_iter().collect(),
        restore,
    })
}

/// The SET statement that gives the target session the source's sql_mode, time zone and
/// collations of the statement; each difference from the source is logged.
async fn session_sql(
    setup: &Setup,
    session: &QuerySession,
    source: &mut Conn,
    timestamp: u32,
) -> crate::Result<String> {
    let mut parts = Vec::new();
    if let Some(bits) = session.sql_mode {
        let (names, dropped) = sql_mode_names(bits, setup.source, setup.target);
        if !dropped.is_empty() {
            tracing::warn!(modes = ?dropped, "source sql_mode flags the target cannot take are left out");
        }
        parts.push(format!("sql_mode = {}", quote_str(&names)));
    }
    if let Some(zone) = &session.time_zone {
        parts.push(format!(
            "time_zone = {}",
            quote_str(&super::bounded("a time zone", time_zone(source, zone, timestamp)).await?,)
        ));
    }
    if let Some([_, connection, server]) = session.charset {
        for (variable, id) in [("collation_connection", connection), ("collation_server", server)] {
            let Some(name) = setup.collations.get(&id) else {
                tracing::warn!(
                    variable,
                    id,
                    "collation id unknown on the source; the target's is kept"
                );
                continue;
            };
            let name =
                if setup.target == Flavor::TiDb { tidb_collation(name) } else { name.clone() };
            if !setup.target_collations.contains(&name) {
                tracing::warn!(
                    variable,
                    collation = %name,
                    "the target lacks the source's collation; the target's is kept"
                );
                continue;
            }
            parts.push(format!("{variable} = {}", quote_str(&name)));
        }
    }
    if parts.is_empty() {
        return Ok("DO 0".into());
    }
    Ok(format!("SET SESSION {}", parts.join(", ")))
}

/// The time zone of a statement as an offset the target knows (a named zone may be missing
/// from its tables; `SYSTEM` is the source's own): its offset at the statement's time, read
/// from the source.
async fn time_zone(source: &mut Conn, zone: &str, timestamp: u32) -> crate::Result<String> {
    if is_offset(zone) {
        return Ok(zone.to_string());
    }
    let diff: Option<Option<String>> = source
        .exec_first(
            "SELECT TIME_FORMAT(TIMEDIFF(CONVERT_TZ(FROM_UNIXTIME(?), @@session.time_zone, ?), \
             CONVERT_TZ(FROM_UNIXTIME(?), @@session.time_zone, '+00:00')), '%H:%i')",
            (timestamp, zone, timestamp),
        )
        .await
        .sql(format!("read the offset of time zone {zone} on the source"))?;
    match diff.flatten() {
        Some(offset) if offset.starts_with('-') => Ok(offset),
        Some(offset) => Ok(format!("+{offset}")),
        None => {
            tracing::warn!(
                zone,
                "the source cannot convert to its statement's time zone; UTC used"
            );
            Ok("+00:00".into())
        }
    }
}

fn is_offset(zone: &str) -> bool {
    let b = zone.as_bytes();
    b.len() == 6 && matches!(b[0], b'+' | b'-') && b[3] == b':'
}

/// MySQL 8 logs `CREATE TABLE ... SELECT` as `CREATE TABLE t (...) START TRANSACTION` followed
/// by its rows; other servers take the CREATE TABLE alone.
fn without_start_transaction(sql: &str) -> &str {
    let trimmed = sql.trim_end();
    match trimmed.len().checked_sub(" START TRANSACTION".len()) {
        Some(at)
            if trimmed.is_char_boundary(at)
                && trimmed[at..].eq_ignore_ascii_case(" START TRANSACTION")
                && trimmed.to_ascii_uppercase().starts_with("CREATE TABLE") =>
        {
            &trimmed[..at]
        }
        _ => sql,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_modes_by_name_for_each_target() {
        // MariaDB 10.11's default: STRICT_TRANS_TABLES, ERROR_FOR_DIVISION_BY_ZERO,
        // NO_AUTO_CREATE_USER, NO_ENGINE_SUBSTITUTION.
        let bits = (1 << 21) | (1 << 26) | (1 << 28) | (1 << 30);
        let (names, dropped) = sql_mode_names(bits, Flavor::MariaDb, Flavor::TiDb);
        assert_eq!(names, "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION");
        assert!(dropped.is_empty());
        let oracle = (1 << 9) | (1 << 32) | (1 << 1);
        let (names, dropped) = sql_mode_names(oracle, Flavor::MariaDb, Flavor::TiDb);
        assert_eq!(
            (names.as_str(), dropped),
            ("PIPES_AS_CONCAT", vec!["ORACLE", "EMPTY_STRING_IS_NULL"])
        );
        let (names, _) = sql_mode_names(1 << 32, Flavor::MariaDb, Flavor::MariaDb);
        assert_eq!(names, "EMPTY_STRING_IS_NULL");
        let (names, _) = sql_mode_names(1 << 32, Flavor::MySql, Flavor::MySql);
        assert_eq!(names, "TIME_TRUNCATE_FRACTIONAL");
    }

    #[test]
    fn mysql_create_select_loses_its_marker() {
        assert_eq!(
            without_start_transaction("CREATE TABLE `t` (`a` int) START TRANSACTION"),
            "CREATE TABLE `t` (`a` int)"
        );
        assert_eq!(without_start_transaction("ALTER TABLE t ADD c INT"), "ALTER TABLE t ADD c INT");
    }

    #[test]
    fn offsets_are_recognised() {
        assert!(is_offset("+02:00"));
        assert!(is_offset("-05:30"));
        assert!(!is_offset("SYSTEM"));
        assert!(!is_offset("Europe/Paris"));
    }
}
