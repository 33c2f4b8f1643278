//! Secondary indexes built after the rows: a table Ferry creates gets its plain (non-unique)
//! indexes once all its chunks are copied, in one ALTER TABLE, which sorts each index once
//! instead of keeping it up to date row by row. Primary and unique keys stay in the CREATE (the
//! copy's idempotent writes and replication rely on them), and so do the indexes of tables with
//! foreign keys (a foreign key needs its index).
//!
//! The deferred definitions wait in the checkpoint (see [`checkpoint::record_indexes`]), written
//! before the table is created, so a copy stopped at any instant still builds them when it
//! resumes.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::SqlContext;
use crate::meta::full as checkpoint;
use crate::sql::qualified;

/// Splits the plain secondary indexes (`KEY ...` lines of SHOW CREATE TABLE) off a definition.
pub fn split(create: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = create.lines().collect();
    // The definitions are the lines between `CREATE TABLE ... (` and the first `)` line (table
    // options and partitions follow it).
    let close = lines.iter().position(|l| l.starts_with(')'));
    let is_table = lines.first().is_some_and(|l| l.starts_with("CREATE TABLE"));
    let Some(close) = close.filter(|&c| is_table && c > 1) else {
        return (create.to_string(), Vec::new());
    };
    if lines[1..close].iter().any(|l| l.contains(" FOREIGN KEY ")) {
        return (create.to_string(), Vec::new());
    }
    let (mut kept, mut deferred) = (Vec::new(), Vec::new());
    for line in &lines[1..close] {
        let definition = line.trim().trim_end_matches(',');
        if definition.starts_with("KEY ") {
            deferred.push(definition.to_string());
        } else {
            kept.push(format!("  {definition}"));
        }
    }
    if deferred.is_empty() {
        return (create.to_string(), Vec::new());
    }
    let create = format!("{}\n{}\n{}", lines[0], kept.join(",\n"), lines[close..].join("\n"));
    (create, deferred)
}

/// Builds the deferred indexes of one table, if it has any left.
pub async fn build(conn: &mut Conn, job: &str, db: &str, table: &str) -> crate::Result<()> {
    let Some(definitions) = checkpoint::deferred_indexes(conn, job, db, table).await? else {
        return Ok(());
    };
    let existing: Vec<String> = conn
        .exec(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .sql(format!("list the indexes of `{db}`.`{table}` on the target"))?;
    // An index built before a stop that came ahead of the record's deletion is not built twice.
    let missing: Vec<String> = definitions
        .lines()
        .filter(|d| !index_name(d).is_some_and(|n| existing.iter().any(|e| e == &n)))
        .map(|d| format!("ADD {d}"))
        .collect();
    if !missing.is_empty() {
        tracing::info!(table = %qualified(db, table), indexes = missing.len(), "building secondary indexes");
        conn.query_drop(format!("ALTER TABLE {} {}", qualified(db, table), missing.join(", ")))
            .await
            .sql(format!("build the secondary indexes of `{db}`.`{table}` on the target"))?;
    }
    checkpoint::clear_indexes(conn, job, db, table).await
}

/// Builds what is left for the whole job (tables finished by an earlier run, empty tables).
pub async fn build_remaining(conn: &mut Conn, job: &str) -> crate::Result<()> {
    for (db, table) in checkpoint::tables_with_deferred_indexes(conn, job).await? {
        build(conn, job, &db, &table).await?;
    }
    Ok(())
}

/// The name of `KEY `name` (...)`.
fn index_name(definition: &str) -> Option<String> {
    let rest = definition.strip_prefix("KEY `")?;
    let end = rest.find("` (").or_else(|| rest.find("`("))?;
    Some(rest[..end].replace("``", "`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n  `c` char(1) DEFAULT ',',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `c` (`c`),\n  KEY `k_1` (`k`),\n  KEY `k``2` (`k`,`c`) COMMENT 'x'\n) ENGINE=InnoDB";

    #[test]
    fn plain_indexes_are_split_off() {
        let (create, deferred) = split(CREATE);
        assert_eq!(
            create,
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) NOT NULL,\n  `c` char(1) DEFAULT ',',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `c` (`c`)\n) ENGINE=InnoDB"
        );
        assert_eq!(deferred, ["KEY `k_1` (`k`)", "KEY `k``2` (`k`,`c`) COMMENT 'x'"]);
        assert_eq!(index_name(&deferred[1]).as_deref(), Some("k`2"));
    }

    #[test]
    fn tables_with_foreign_keys_keep_their_indexes() {
        let create = CREATE.replace(
            "  PRIMARY KEY (`id`),",
            "  PRIMARY KEY (`id`),\n  CONSTRAINT `f` FOREIGN KEY (`k`) REFERENCES `p` (`id`),",
        );
        assert_eq!(split(&create), (create.clone(), vec![]));
        let single = "CREATE TABLE `u` (\n  `a` int(11) DEFAULT NULL\n) ENGINE=InnoDB";
        assert_eq!(split(single), (single.to_string(), vec![]));
        let partitioned = format!("{CREATE}\n PARTITION BY HASH (`id`)\nPARTITIONS 4");
        let (create, deferred) = split(&partitioned);
        assert!(create.ends_with(") ENGINE=InnoDB\n PARTITION BY HASH (`id`)\nPARTITIONS 4"));
        assert_eq!(deferred.len(), 2);
    }
}
