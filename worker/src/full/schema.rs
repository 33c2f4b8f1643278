//! Creates the selected databases, tables and views on the target from the source's own
//! definitions (SHOW CREATE), keeping whatever already exists there. Routines (on request) and
//! then views come after tables,
//! and a view that depends on another view is retried once that one exists. The definitions go
//! through the rewrite table of [`crate::rewrite`] for the target, as replicated DDL does.

use std::collections::HashSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::objects::{Objects, View};
use crate::error::SqlContext;
use crate::flavor::Version;
use crate::incremental::programs::without_definer;
use crate::rewrite::Rewrites;
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
    let source_flavor = Version::read(source).await.sql("read the source version")?.flavor;
    let rewrites = Rewrites::new(source_flavor, target_flavor).with_source_defaults(source).await?;
    target.query_drop(super::copy::target_session()).await.sql("set up a target session")?;
    let target_names: Vec<String> = objects.databases.iter().map(|d| d.target.clone()).collect();
    let mut existing = existing(target, &target_names).await?;
    for db in &objects.databases {
        let row: Option<(String, String)> = source
            .query_first(format!("SHOW CREATE DATABASE {}", quote_ident(&db.source)))
            .await
            .sql(format!("SHOW CREATE DATABASE `{}` on the source", db.source))?;
        let Some((_, create)) = row else { continue };
        let create = create_database_as(&create, &db.source, &db.target);
        let create = rewrites.apply(&db.source, &create);
        target
            .query_drop(create)
            .await
            .sql(format!("create database `{}` on the target", db.target))?;
    }
    for table in &objects.tables {
        let (to_db, to_table) = (&table.target.database, &table.target.table);
        if !existing.insert((to_db.clone(), to_table.clone())) {
            tracing::info!(table = %table.target_qualified(), "table exists on the target; kept as it is");
            continue;
        }
        let create = show_create(source, &table.db, &table.name, "TABLE").await?;
        let create = rewrites.apply(&table.qualified(), &create);
        let create = create_table_as(&create, &table.name, to_table);
        let (create, deferred) = super::indexes::split(&create);
        if !deferred.is_empty() {
            crate::meta::full::record_indexes(target, job, to_db, to_table, &deferred).await?;
        }
        target.query_drop(format!("USE {}", quote_ident(to_db))).await.sql("USE on the target")?;
        target
            .query_drop(create)
            .await
            .sql(format!("create table {} on the target", table.target_qualified()))?;
    }
    // Views may call functions: routines first.
    super::routines::copy(source, target, &objects.routines, target_flavor, &rewrites).await?;
    let views: Vec<&View> = objects
        .views
        .iter()
        .filter(|v| !existing.contains(&(v.target_db.clone(), v.name.clone())))
        .collect();
    create_views(source, target, &rewrites, views).await
}

/// SHOW CREATE DATABASE's statement, creating `to` if it does not exist.
fn create_database_as(create: &str, from: &str, to: &str) -> String {
    let named = format!("CREATE DATABASE {}", quote_ident(from));
    let wanted = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(to));
    create.replacen(&named, &wanted, 1)
}

/// SHOW CREATE TABLE's statement (its table name unqualified), creating `to` instead.
fn create_table_as(create: &str, from: &str, to: &str) -> String {
    if from == to {
        return create.to_string();
    }
    let named = format!("CREATE TABLE {}", quote_ident(from));
    create.replacen(&named, &format!("CREATE TABLE {}", quote_ident(to)), 1)
}

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

pub(super) async fn show_create(
    source: &mut Conn,
    db: &str,
    name: &str,
    kind: &str,
) -> crate::Result<String> {
    let row: Option<mysql_async::Row> = source
        .query_first(format!("SHOW CREATE {kind} {}", qualified(db, name)))
        .await
        .sql(format!("SHOW CREATE {kind} `{db}`.`{name}` on the source"))?;
    Ok(row.and_then(|r| r.get::<String, _>(1)).unwrap_or_default())
}

/// SHOW CREATE VIEW in the view's own database, so the server leaves the names of that database
/// unqualified (its compact format, as mysqldump reads it): a database route then moves the
/// view with the tables it reads.
pub(super) async fn show_create_view(
    source: &mut Conn,
    db: &str,
    name: &str,
) -> crate::Result<String> {
    source.query_drop(format!("USE {}", quote_ident(db))).await.sql("USE on the source")?;
    show_create(source, db, name, "VIEW").await
}

/// Creates the views in their target databases, without their DEFINER (the source's account may
/// not exist on the target: the target's user becomes the definer, which the documentation
/// explains for `SQL SECURITY DEFINER` views).
async fn create_views(
    source: &mut Conn,
    target: &mut Conn,
    rewrites: &Rewrites,
    mut views: Vec<&View>,
) -> crate::Result<()> {
    // A view may read another view: create those that can be, until none is left or stuck.
    while !views.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for view in &views {
            let (db, name) = (&view.db, &view.name);
            let create = without_definer(&show_create_view(source, db, name).await?);
            let create = rewrites.apply(&qualified(db, name), &create);
            target
                .query_drop(format!("USE {}", quote_ident(&view.target_db)))
                .await
                .sql("USE on the target")?;
            if let Err(error) = target.query_drop(create).await {
                last_error = Some(error);
                failed.push(*view);
            }
        }
        if failed.len() == views.len() {
            let View { db, name, .. } = failed[0];
            if let Some(error) = last_error {
                return Err(error).sql(format!("create view `{db}`.`{name}` on the target"));
            }
        }
        views = failed;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_definitions_take_the_target_names() {
        assert_eq!(
            create_database_as(
                "CREATE DATABASE `app_1` /*!40100 DEFAULT CHARACTER SET utf8mb4 */",
                "app_1",
                "shop"
            ),
            "CREATE DATABASE IF NOT EXISTS `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */"
        );
        assert_eq!(
            create_table_as("CREATE TABLE `orders` (\n  `id` int)", "orders", "all`orders"),
            "CREATE TABLE `all``orders` (\n  `id` int)"
        );
    }
}
