//! Stored procedures and functions, created on a MariaDB or MySQL target when
//! `spec.objects.routines` asks: from SHOW CREATE on the source, in the sql_mode they were
//! defined under, without their DEFINER (the target's user defines them). Routines the target
//! already has are kept as they are.

use std::collections::HashSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::FullError;
use super::objects::Routine;
use crate::connect::TARGET_SQL_MODE;
use crate::error::SqlContext;
use crate::flavor::Flavor;
use crate::incremental::programs::without_definer;
use crate::rewrite::Rewrites;
use crate::sql::{qualified, quote_ident, quote_str};

pub async fn copy(
    source: &mut Conn,
    target: &mut Conn,
    routines: &[Routine],
    target_flavor: Flavor,
    rewrites: &Rewrites,
) -> crate::Result<()> {
    if routines.is_empty() {
        return Ok(());
    }
    if target_flavor == Flavor::TiDb {
        return Err(FullError::Selection(
            "spec.objects.routines is set, but the target is TiDB, which has no stored \
             procedures or functions: unset it and move their logic into the application"
                .into(),
        )
        .into());
    }
    let existing = existing(target, routines).await?;
    for routine in routines {
        let name = qualified(&routine.db, &routine.name);
        if existing.contains(&(routine.db.clone(), routine.name.clone(), routine.kind.name())) {
            tracing::info!(routine = %name, "routine exists on the target; kept as it is");
            continue;
        }
        let (sql_mode, create) = show_create(source, routine).await?;
        let create = rewrites.apply(&name, &without_definer(&create));
        target
            .query_drop(format!("USE {}", quote_ident(&routine.db)))
            .await
            .sql("USE on the target")?;
        target
            .query_drop(format!("SET SESSION sql_mode = {}", quote_str(&sql_mode)))
            .await
            .sql(format!("set the sql_mode of {} {name} on the target", routine.kind.name()))?;
        let created = target.query_drop(create).await;
        target
            .query_drop(format!("SET SESSION sql_mode = '{TARGET_SQL_MODE}'"))
            .await
            .sql("restore the target session's sql_mode")?;
        created.sql(format!("create {} {name} on the target", routine.kind.name()))?;
        tracing::info!(routine = %name, kind = routine.kind.name(), "routine created on the target");
    }
    Ok(())
}

/// The routine's sql_mode and CREATE statement; a definition the source user may not read is an
/// error rather than a routine silently missing.
async fn show_create(source: &mut Conn, routine: &Routine) -> crate::Result<(String, String)> {
    let kind = routine.kind.name().to_ascii_uppercase();
    let name = qualified(&routine.db, &routine.name);
    let row: Option<mysql_async::Row> = source
        .query_first(format!("SHOW CREATE {kind} {name}"))
        .await
        .sql(format!("SHOW CREATE {kind} {name} on the source"))?;
    let row =
        row.ok_or_else(|| FullError::Selection(format!("{kind} {name} is gone from the source")))?;
    let sql_mode: Option<String> = row.get(1);
    let create: Option<Option<String>> = row.get(2);
    match create.flatten() {
        Some(create) => Ok((sql_mode.unwrap_or_default(), create)),
        None => Err(FullError::Selection(format!(
            "the source user may not read the definition of {} {name}: grant it SELECT on \
             mysql.proc (MariaDB) or SHOW_ROUTINE (MySQL), or unset spec.objects.routines",
            routine.kind.name()
        ))
        .into()),
    }
}

/// (database, name, kind) of the target's routines in the routines' databases.
async fn existing(
    target: &mut Conn,
    routines: &[Routine],
) -> crate::Result<HashSet<(String, String, &'static str)>> {
    let databases: HashSet<String> = routines.iter().map(|r| quote_str(&r.db)).collect();
    let databases: Vec<String> = databases.into_iter().collect();
    let rows: Vec<(String, String, String)> = target
        .query(format!(
            "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA IN ({})",
            databases.join(", ")
        ))
        .await
        .sql("list the target's routines")?;
    Ok(rows
        .into_iter()
        .map(|(db, name, kind)| {
            let kind = if kind == "PROCEDURE" { "procedure" } else { "function" };
            (db, name, kind)
        })
        .collect())
}
