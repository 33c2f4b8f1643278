//! Tables linked by foreign keys are copied at one snapshot.
//!
//! Replication skips a table's changes up to the position its copy was read at, and applies the
//! rest with foreign key checks on, so that cascades the source did not log run on the target
//! too. That is exact only when tables linked by foreign keys were read at one position: a
//! child table read earlier than its parent replays a row pointing to a parent the target
//! already lost (error 1452), or keeps a row whose parent's deletion (and its cascade) was
//! skipped. A resumed copy reads its remaining chunks at a new snapshot, so a group of linked
//! tables with chunks done at the old one and chunks still to copy is copied again whole at the
//! new one.

use std::collections::{BTreeMap, BTreeSet};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::objects::{Objects, Table};
use crate::error::SqlContext;
use crate::meta::full as checkpoint;
use crate::sql::quote_str;

/// `(db, table)` of a source table.
type Name = (String, String);

/// Rows deleted per statement when a table is emptied (small transactions, also on TiDB).
const DELETE_BATCH: u32 = 10_000;

/// Empties the target tables of every linked group whose chunks were read at two snapshots
/// (some done by an earlier run, some not yet) and marks all their chunks to copy again.
pub async fn recopy_split_groups(
    job: &str,
    objects: &Objects,
    source: &mut Conn,
    target: &mut Conn,
) -> crate::Result<()> {
    let links = foreign_key_links(source, objects).await?;
    for group in groups(&links) {
        let tables: Vec<&Table> = objects
            .tables
            .iter()
            .filter(|t| group.contains(&(t.db.clone(), t.name.clone())))
            .collect();
        let (mut done, mut pending) = (false, false);
        for table in &tables {
            let plan = checkpoint::load_plan(target, job, &table.db, &table.name).await?;
            done |= plan.iter().any(|c| c.done);
            pending |= plan.is_empty() || plan.iter().any(|c| !c.done);
        }
        if !(done && pending) {
            continue;
        }
        let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
        if let Some(merged) = tables.iter().find(|t| t.merged) {
            tracing::warn!(
                tables = ?names, merged = %merged.qualified(),
                "tables linked by foreign keys were copied partly at an earlier snapshot, but \
                 one lands in a table shared with other shards and cannot be emptied: their \
                 child rows may disagree with their parents until checked after cutover"
            );
            continue;
        }
        tracing::warn!(
            tables = ?names,
            "tables linked by foreign keys were copied partly at an earlier snapshot: copying \
             them again at the new one, so that parents and children agree"
        );
        for table in tables {
            empty(target, table).await?;
            checkpoint::reset_chunks(target, job, &table.db, &table.name).await?;
        }
    }
    Ok(())
}

/// The foreign keys between selected tables, as (child, parent).
async fn foreign_key_links(
    source: &mut Conn,
    objects: &Objects,
) -> crate::Result<Vec<(Name, Name)>> {
    let selected: BTreeSet<Name> =
        objects.tables.iter().map(|t| (t.db.clone(), t.name.clone())).collect();
    let schemas: BTreeSet<&str> = selected.iter().map(|(db, _)| db.as_str()).collect();
    if schemas.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = schemas.iter().map(|s| quote_str(s)).collect();
    let sql = format!(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
         FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA IN ({})",
        list.join(", ")
    );
    let rows: Vec<(String, String, String, String)> =
        source.query(sql).await.sql("read the foreign keys of the selected tables")?;
    Ok(rows
        .into_iter()
        .map(|(db, table, ref_db, ref_table)| ((db, table), (ref_db, ref_table)))
        .filter(|(child, parent)| selected.contains(child) && selected.contains(parent))
        .collect())
}

/// The groups of tables linked, directly or not, by foreign keys (a table referencing itself is
/// a group of one).
fn groups(links: &[(Name, Name)]) -> Vec<BTreeSet<Name>> {
    let mut group_of: BTreeMap<Name, usize> = BTreeMap::new();
    let mut groups: Vec<BTreeSet<Name>> = Vec::new();
    for (child, parent) in links {
        let ids: BTreeSet<usize> =
            [child, parent].iter().filter_map(|t| group_of.get(*t).copied()).collect();
        let mut merged: BTreeSet<Name> = [child.clone(), parent.clone()].into();
        for &id in &ids {
            merged.append(&mut groups[id]);
        }
        let id = groups.len();
        for table in &merged {
            group_of.insert(table.clone(), id);
        }
        groups.push(merged);
    }
    groups.into_iter().filter(|g| !g.is_empty()).collect()
}

/// Deletes every row of the table's target table, without checks or cascades (its linked
/// tables are emptied too), in small statements. The chunks stay marked done until the table is
/// empty, so a crash in between leaves the group split and the next run starts over.
async fn empty(target: &mut Conn, table: &Table) -> crate::Result<()> {
    target.query_drop(super::copy::target_session()).await.sql("set up a target session")?;
    let sql = format!("DELETE FROM {} LIMIT {DELETE_BATCH}", table.target_qualified());
    loop {
        target
            .query_drop(&sql)
            .await
            .sql(format!("empty {} on the target to copy it again", table.target_qualified()))?;
        if target.affected_rows() == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(t: &str) -> Name {
        ("db".into(), t.into())
    }

    #[test]
    fn linked_tables_form_one_group_whatever_the_order() {
        let links = [
            (name("a"), name("b")),
            (name("c"), name("d")),
            (name("e"), name("e")),
            (name("d"), name("a")),
        ];
        let groups = groups(&links);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert!(groups.contains(&[name("a"), name("b"), name("c"), name("d")].into()));
        assert!(groups.contains(&[name("e")].into()));
    }
}
