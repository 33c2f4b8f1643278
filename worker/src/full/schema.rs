//! Creates the selected databases, tables and views on the target from the source's own
//! definitions (SHOW CREATE), keeping whatever already exists there. Views come after tables,
//! and a view that depends on another view is retried once that one exists. For a TiDB target
//! the definitions are adapted where TiDB rejects MariaDB syntax, and for a MariaDB target
//! MySQL's version comments MariaDB would skip are made real, each change logged.

use std::collections::HashSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::objects::Objects;
use crate::error::SqlContext;
use crate::flavor::{Flavor, Version};
use crate::sql::{qualified, quote_ident, quote_str};

/// Creates what is missing on the target; the plain secondary indexes of the tables it creates
/// are left for [`super::indexes::build`] once the rows are in.
pub async fn copy(
    job: &str,
    source: &mut Conn,
    target: &mut Conn,
    objects: &Objects,
) -> crate::Result<()> {
    let target_flavor = Version::read(target).await.sql("read the target version")?.flavor;
    let tidb = target_flavor == Flavor::TiDb;
    target.query_drop(super::copy::target_session()).await.sql("set up a target session")?;
    let existing = existing(target, &objects.databases).await?;
    for db in &objects.databases {
        let row: Option<(String, String)> = source
            .query_first(format!("SHOW CREATE DATABASE {}", quote_ident(db)))
            .await
            .sql(format!("SHOW CREATE DATABASE `{db}` on the source"))?;
        let Some((_, create)) = row else { continue };
        let create = create.replacen("CREATE DATABASE ", "CREATE DATABASE IF NOT EXISTS ", 1);
        let create = if tidb { adapt_for_tidb(db, &create) } else { create };
        target.query_drop(create).await.sql(format!("create database `{db}` on the target"))?;
    }
    for table in &objects.tables {
        if existing.contains(&(table.db.clone(), table.name.clone())) {
            tracing::info!(table = %table.qualified(), "table exists on the target; kept as it is");
            continue;
        }
        let create = show_create(source, &table.db, &table.name, "TABLE").await?;
        let create = match target_flavor {
            Flavor::TiDb => adapt_for_tidb(&table.qualified(), &create),
            Flavor::MariaDb => adapt_mysql_for_mariadb(&table.qualified(), &create),
            Flavor::MySql => create,
        };
        let (create, deferred) = super::indexes::split(&create);
        if !deferred.is_empty() {
            crate::meta::full::record_indexes(target, job, &table.db, &table.name, &deferred)
                .await?;
        }
        target
            .query_drop(format!("USE {}", quote_ident(&table.db)))
            .await
            .sql("USE on the target")?;
        target
            .query_drop(create)
            .await
            .sql(format!("create table {} on the target", table.qualified()))?;
    }
    let views: Vec<&(String, String)> =
        objects.views.iter().filter(|v| !existing.contains(v)).collect();
    create_views(source, target, views).await
}

/// MySQL's SHOW CREATE TABLE writes `/*!80023 INVISIBLE */` and `/*!80003 SRID n */` as version
/// comments, which MariaDB skips (its versions are 10.x, 11.x): the column would turn visible
/// and lose its SRID. MariaDB spells them `INVISIBLE` and `REF_SYSTEM_ID=n`.
pub fn adapt_mysql_for_mariadb(object: &str, create: &str) -> String {
    let mut out = create.to_string();
    if out.contains(MYSQL_INVISIBLE) {
        out = out.replace(MYSQL_INVISIBLE, "INVISIBLE");
        tracing::info!(object, "MySQL INVISIBLE columns kept invisible on MariaDB");
    }
    while let Some(start) = out.find(MYSQL_SRID) {
        let Some(rewritten) = srid_after_type(&out, start) else { break };
        out = rewritten;
        tracing::info!(object, "MySQL SRID written as MariaDB's REF_SYSTEM_ID");
    }
    out
}

/// Moves the `/*!80003 SRID n */` at `start` to `REF_SYSTEM_ID=n` right after its column's type
/// (MariaDB accepts it only there). SHOW CREATE TABLE puts each column on its own line, which
/// starts with the backquoted name; None when the text is not that shape.
fn srid_after_type(create: &str, start: usize) -> Option<String> {
    let rest = &create[start + MYSQL_SRID.len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = rest[digits..].strip_prefix(" */").filter(|_| digits > 0)?;
    let srid = &rest[..digits];
    let line = create[..start].rfind('\n').map_or(0, |i| i + 1);
    let name_end = closing_backquote(&create[line..start])? + line;
    let type_start = name_end + 2;
    let type_len = create[type_start..start].find([' ', ',', '(']).unwrap_or(start - type_start);
    let type_end = type_start + type_len;
    let before = create[type_end..start].trim_end();
    Some(format!("{} REF_SYSTEM_ID={srid}{before}{tail}", &create[..type_end]))
}

/// The index of the backquote closing the name that `line` starts with (after indentation).
fn closing_backquote(line: &str) -> Option<usize> {
    let open = line.find('`')?;
    let bytes = line.as_bytes();
    let mut i = open + 1;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'`', Some(b'`')) => i += 2,
            (b'`', _) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

const MYSQL_INVISIBLE: &str = "/*!80023 INVISIBLE */";
const MYSQL_SRID: &str = "/*!80003 SRID ";

async fn existing(
    target: &mut Conn,
    databases: &[String],
) -> crate::Result<HashSet<(String, String)>> {
    if databases.is_empty() {
        return Ok(HashSet::new());
    }
    let names: Vec<String> = databases.iter().map(|d| quote_str(d)).collect();
    let rows: Vec<(String, String)> = target
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({})",
            names.join(", ")
        ))
        .await
        .sql("list the target's tables")?;
    Ok(rows.into_iter().collect())
}

async fn show_create(source: &mut Conn, db: &str, name: &str, kind: &str) -> crate::Result<String> {
    let row: Option<mysql_async::Row> = source
        .query_first(format!("SHOW CREATE {kind} {}", qualified(db, name)))
        .await
        .sql(format!("SHOW CREATE {kind} `{db}`.`{name}` on the source"))?;
    Ok(row.and_then(|r| r.get::<String, _>(1)).unwrap_or_default())
}

async fn create_views(
    source: &mut Conn,
    target: &mut Conn,
    mut views: Vec<&(String, String)>,
) -> crate::Result<()> {
    // A view may read another view: create those that can be, until none is left or stuck.
    while !views.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for view in &views {
            let create = without_definer(&show_create(source, &view.0, &view.1, "VIEW").await?);
            target
                .query_drop(format!("USE {}", quote_ident(&view.0)))
                .await
                .sql("USE on the target")?;
            if let Err(error) = target.query_drop(create).await {
                last_error = Some(error);
                failed.push(*view);
            }
        }
        if failed.len() == views.len() {
            let (db, name) = failed[0];
            if let Some(error) = last_error {
                return Err(error).sql(format!("create view `{db}`.`{name}` on the target"));
            }
        }
        views = failed;
    }
    Ok(())
}

/// The definer names a source account the target may not have; the target's user defines it.
fn without_definer(create: &str) -> String {
    let Some(start) = create.find("DEFINER=") else { return create.to_string() };
    let rest = &create[start..];
    let end = rest.find(" SQL SECURITY").or_else(|| rest.find(" VIEW")).unwrap_or(rest.len());
    format!("{}{}", &create[..start], rest[end..].trim_start())
}

/// Collations TiDB lacks, and the nearest one the copy creates instead.
const TIDB_COLLATIONS: &[(&str, &str)] =
    &[("latin1_swedish_ci", "latin1_bin"), ("utf8mb4_uca1400_ai_ci", "utf8mb4_0900_ai_ci")];

/// The collation the copy creates on TiDB for a source collation (the same, if TiDB has it).
pub fn tidb_collation(collation: &str) -> String {
    if let Some((_, to)) = TIDB_COLLATIONS.iter().find(|(from, _)| *from == collation) {
        return to.to_string();
    }
    match collation.strip_prefix("utf8mb3_") {
        Some(rest) => format!("utf8_{rest}"),
        None => collation.to_string(),
    }
}

/// Rewrites what TiDB rejects in MariaDB/MySQL definitions; each change is logged.
pub fn adapt_for_tidb(object: &str, create: &str) -> String {
    const OPTIONS: &[(&str, &str, &str)] = &[
        (" PAGE_CHECKSUM=1", "", "Aria table option PAGE_CHECKSUM dropped"),
        (" PAGE_CHECKSUM=0", "", "Aria table option PAGE_CHECKSUM dropped"),
        (" TRANSACTIONAL=1", "", "Aria table option TRANSACTIONAL dropped"),
        (" TRANSACTIONAL=0", "", "Aria table option TRANSACTIONAL dropped"),
        ("ENGINE=Aria", "ENGINE=InnoDB", "engine Aria replaced by InnoDB (TiDB ignores engines)"),
        (
            "ENGINE=MyISAM",
            "ENGINE=InnoDB",
            "engine MyISAM replaced by InnoDB (TiDB ignores engines)",
        ),
    ];
    let collations = TIDB_COLLATIONS
        .iter()
        .map(|(from, to)| (*from, *to, format!("collation {from} replaced by {to}")));
    // utf8mb3 names (charset and collations) are spelled utf8 on TiDB.
    let spelling = std::iter::once(("utf8mb3", "utf8", "utf8mb3 spelled utf8".to_string()));
    let rewrites = OPTIONS.iter().map(|(f, t, n)| (*f, *t, n.to_string()));
    let mut out = create.to_string();
    for (from, to, note) in rewrites.chain(collations).chain(spelling) {
        if out.contains(from) {
            out = out.replace(from, to);
            tracing::warn!(object, adaptation = %note, "definition adapted for TiDB");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definers_are_dropped() {
        let create = "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `v` AS select 1";
        assert_eq!(
            without_definer(create),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1"
        );
    }

    #[test]
    fn tidb_adaptations() {
        let create = "CREATE TABLE `t` (`a` int) ENGINE=Aria DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci PAGE_CHECKSUM=1";
        assert_eq!(
            adapt_for_tidb("t", create),
            "CREATE TABLE `t` (`a` int) ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_bin"
        );
        let create = "CREATE TABLE `u` (`b` text CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci)";
        assert_eq!(
            adapt_for_tidb("u", create),
            "CREATE TABLE `u` (`b` text CHARACTER SET utf8 COLLATE utf8_general_ci)"
        );
    }

    #[test]
    fn mysql_version_comments_are_made_real_for_mariadb() {
        let create = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  \
            `s` int DEFAULT NULL /*!80023 INVISIBLE */,\n  \
            `p` point NOT NULL /*!80003 SRID 4326 */,\n  \
            `a``b` geometry /*!80003 SRID 0 */ DEFAULT NULL,\n  PRIMARY KEY (`id`)\n)";
        assert_eq!(
            adapt_mysql_for_mariadb("t", create),
            "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `s` int DEFAULT NULL INVISIBLE,\n  \
            `p` point REF_SYSTEM_ID=4326 NOT NULL,\n  \
            `a``b` geometry REF_SYSTEM_ID=0 DEFAULT NULL,\n  PRIMARY KEY (`id`)\n)"
        );
        // Anything else after the marker is left alone rather than guessed at.
        let odd = "CREATE TABLE `t` (\n  `p` point /*!80003 SRID x */\n)";
        assert_eq!(adapt_mysql_for_mariadb("t", odd), odd);
    }

    #[test]
    fn collations_tidb_lacks_are_replaced() {
        assert_eq!(tidb_collation("latin1_swedish_ci"), "latin1_bin");
        assert_eq!(tidb_collation("utf8mb3_unicode_ci"), "utf8_unicode_ci");
        assert_eq!(tidb_collation("utf8mb4_bin"), "utf8mb4_bin");
    }
}
