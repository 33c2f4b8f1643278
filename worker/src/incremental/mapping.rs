//! Which target column each binlog value goes to: by name, from the source's own columns at the
//! event's time, never by position (a pre-existing target table may order or name its columns
//! differently).
//!
//! The source's columns come from the table map when it names them (`binlog_row_metadata=FULL`).
//! Otherwise they are the source's definition (information_schema) if the table's last DDL
//! (its CREATE_TIME, which every ALTER renews on MariaDB) is older than the event and its column
//! types are the table map's. When the source's table has changed since (its DDL comes later in
//! the stream), the target's definition stands in for it if it has the event's column types and
//! orders the columns it shares with the source as the source does (the target follows the
//! source's DDL in stream order). Anything else is an error naming the table: a value is never
//! written to a column it was not meant for.

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::consts::ColumnType;
use mysql_async::prelude::Queryable;

use super::IncrementalError;
use super::event::{Image, RowChange, to_unsigned};
use super::schema::TableSchema;
use crate::error::SqlContext;

/// A column as the source defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// information_schema DATA_TYPE, lower case; empty when the table map named the column.
    pub data_type: String,
    pub unsigned: bool,
}

/// Where each target column's value comes from in a binlog row image.
#[derive(Debug)]
pub struct Mapping {
    /// Per target column, the binlog column it takes; `None` for columns the source lacks.
    from: Vec<Option<usize>>,
    /// Per binlog column: its type and whether it is an unsigned integer.
    types: Vec<ColumnType>,
    unsigned: Vec<bool>,
}

impl Mapping {
    /// Maps `source`'s columns (in binlog order, of binlog `types`) to `target`'s by name.
    pub fn new(
        source: &[SourceColumn],
        types: &[ColumnType],
        target: &TableSchema,
    ) -> Result<Mapping, IncrementalError> {
        let mut from = vec![None; target.columns.len()];
        for (i, (column, &binlog_type)) in source.iter().zip(types).enumerate() {
            let j = target
                .columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&column.name))
                .ok_or_else(|| IncrementalError::MissingColumn {
                table: target.name(),
                column: column.name.clone(),
            })?;
            let target_type = &target.columns[j].data_type;
            if !compatible(binlog_type, target_type) {
                return Err(IncrementalError::IncompatibleColumn {
                    table: target.name(),
                    column: column.name.clone(),
                    source_type: type_name(binlog_type),
                    target_type: target_type.clone(),
                });
            }
            from[j] = Some(i);
        }
        Ok(Mapping {
            from,
            types: types.to_vec(),
            unsigned: source.iter().map(|c| c.unsigned).collect(),
        })
    }

    /// The change with its images in the target's column order and unsigned integers made
    /// unsigned.
    pub fn apply(&self, mut change: RowChange) -> RowChange {
        for (before, after) in &mut change.rows {
            for image in [before, after].into_iter().flatten() {
                *image = self.remap(std::mem::take(image));
            }
        }
        change
    }

    fn remap(&self, mut image: Image) -> Image {
        self.from
            .iter()
            .map(|&from| {
                let i = from?;
                let value = image.get_mut(i)?.take()?;
                Some(if self.unsigned[i] { to_unsigned(self.types[i], value) } else { value })
            })
            .collect()
    }
}

/// The mapping of each table, and the source definitions it was made from.
#[derive(Default)]
pub struct Mappings {
    mappings: HashMap<(String, String), Cached>,
    definitions: HashMap<(String, String), Arc<Definition>>,
}

/// A table as the source defines it now.
#[derive(Debug, Default)]
struct Definition {
    columns: Vec<SourceColumn>,
    /// When the table was last created or altered (source clock, seconds since the epoch).
    changed_at: Option<i64>,
}

/// A mapping, valid while the table map and the target schema are those it was made for.
struct Cached {
    types: Vec<ColumnType>,
    names: Option<Vec<String>>,
    unsigned: Option<Vec<bool>>,
    target: Arc<TableSchema>,
    mapping: Arc<Mapping>,
}

impl Mappings {
    /// Forgets everything: called after a DDL statement is applied.
    pub fn clear(&mut self) {
        self.mappings.clear();
        self.definitions.clear();
    }

    /// The mapping for `change`'s table map onto `target`; `logged_at` is the source time of
    /// the event.
    pub async fn get(
        &mut self,
        source: &mut Conn,
        change: &RowChange,
        logged_at: u32,
        target: &Arc<TableSchema>,
    ) -> crate::Result<Arc<Mapping>> {
        let key = (change.database.clone(), change.table.clone());
        if let Some(cached) = self.mappings.get(&key)
            && cached.types == change.column_types
            && cached.names == change.column_names
            && cached.unsigned == change.unsigned
            && Arc::ptr_eq(&cached.target, target)
        {
            return Ok(cached.mapping.clone());
        }
        let columns = self.source_columns(source, change, logged_at, target).await?;
        let mapping = Arc::new(Mapping::new(&columns, &change.column_types, target)?);
        let cached = Cached {
            types: change.column_types.clone(),
            names: change.column_names.clone(),
            unsigned: change.unsigned.clone(),
            target: target.clone(),
            mapping: mapping.clone(),
        };
        self.mappings.insert(key, cached);
        Ok(mapping)
    }

    /// The source's columns when it logged `change`.
    async fn source_columns(
        &mut self,
        source: &mut Conn,
        change: &RowChange,
        logged_at: u32,
        target: &TableSchema,
    ) -> crate::Result<Vec<SourceColumn>> {
        let with_signedness = |mut columns: Vec<SourceColumn>| {
            if let Some(unsigned) = &change.unsigned {
                columns.iter_mut().zip(unsigned).for_each(|(c, &u)| c.unsigned = u);
            }
            columns
        };
        if let Some(names) = &change.column_names {
            let columns = names.iter().map(|name| SourceColumn {
                name: name.clone(),
                data_type: String::new(),
                unsigned: false,
            });
            return Ok(with_signedness(columns.collect()));
        }
        let types = &change.column_types;
        let mut definition: Arc<Definition> = Arc::default();
        for fresh in [false, true] {
            definition = self.definition(source, &change.database, &change.table, fresh).await?;
            let unchanged = definition.changed_at.is_some_and(|t| t < i64::from(logged_at));
            if same_types(&definition.columns, types) {
                if unchanged {
                    return Ok(with_signedness(definition.columns.clone()));
                }
                break;
            }
        }
        let definition = &definition.columns;
        // The source's table changed after the event: the target's stands in if it has the
        // event's columns, in the source's order.
        let mirrored: Vec<SourceColumn> = target
            .columns
            .iter()
            .map(|c| SourceColumn {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                unsigned: c.unsigned,
            })
            .collect();
        if same_types(&mirrored, types) && same_relative_order(definition, &mirrored) {
            return Ok(with_signedness(mirrored));
        }
        Err(IncrementalError::UnknownSourceColumns {
            table: target.name(),
            binlog: types.iter().map(|&t| type_name(t)).collect::<Vec<_>>().join(", "),
            current: definition.iter().map(describe).collect::<Vec<_>>().join(", "),
        }
        .into())
    }

    /// The source's current definition of a table (cached unless `fresh`); empty if it is gone.
    async fn definition(
        &mut self,
        source: &mut Conn,
        database: &str,
        table: &str,
        fresh: bool,
    ) -> crate::Result<Arc<Definition>> {
        let key = (database.to_string(), table.to_string());
        if !fresh && let Some(columns) = self.definitions.get(&key) {
            return Ok(columns.clone());
        }
        let rows: Vec<(String, String, String)> = source
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (database, table),
            )
            .await
            .sql(format!(
                "read the columns of {} on the source",
                crate::sql::qualified(database, table)
            ))?;
        let columns: Vec<SourceColumn> = rows
            .into_iter()
            .map(|(name, data_type, column_type)| SourceColumn {
                name,
                data_type: data_type.to_ascii_lowercase(),
                unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
            })
            .collect();
        let changed_at: Option<i64> = source
            .exec_first(
                "SELECT UNIX_TIMESTAMP(CREATE_TIME) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (database, table),
            )
            .await
            .sql(format!(
                "read when {} changed on the source",
                crate::sql::qualified(database, table)
            ))?
            .flatten();
        let definition = Arc::new(Definition { columns, changed_at });
        self.definitions.insert(key, definition.clone());
        Ok(definition)
    }
}

fn describe(column: &SourceColumn) -> String {
    format!("{} {}", column.name, column.data_type)
}

/// Whether a definition has the table map's column types, column by column.
fn same_types(columns: &[SourceColumn], types: &[ColumnType]) -> bool {
    columns.len() == types.len()
        && columns.iter().zip(types).all(|(c, &t)| logged_as(t, &c.data_type))
}

/// Whether the columns both definitions have come in the same order in each.
fn same_relative_order(a: &[SourceColumn], b: &[SourceColumn]) -> bool {
    let has =
        |list: &[SourceColumn], name: &str| list.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    let shared_a = a.iter().filter(|c| has(b, &c.name)).map(|c| c.name.to_ascii_lowercase());
    let shared_b = b.iter().filter(|c| has(a, &c.name)).map(|c| c.name.to_ascii_lowercase());
    shared_a.eq(shared_b)
}

/// Whether a column of information_schema `data_type` is logged with binlog type `t`. Types
/// this does not know (a server's own) are taken to match.
fn logged_as(t: ColumnType, data_type: &str) -> bool {
    use ColumnType::*;
    let expected: &[&str] = match t {
        MYSQL_TYPE_TINY => &["tinyint", "bool", "boolean"],
        MYSQL_TYPE_SHORT => &["smallint"],
        MYSQL_TYPE_INT24 => &["mediumint"],
        MYSQL_TYPE_LONG => &["int", "integer"],
        MYSQL_TYPE_LONGLONG => &["bigint"],
        MYSQL_TYPE_FLOAT => &["float"],
        MYSQL_TYPE_DOUBLE => &["double", "real", "double precision"],
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => &["decimal", "numeric", "fixed"],
        MYSQL_TYPE_YEAR => &["year"],
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => &["date"],
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => &["time"],
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => &["datetime"],
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => &["timestamp"],
        MYSQL_TYPE_BIT => &["bit"],
        MYSQL_TYPE_ENUM => &["enum"],
        MYSQL_TYPE_SET => &["set"],
        MYSQL_TYPE_JSON => &["json"],
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => &["varchar", "varbinary"],
        MYSQL_TYPE_STRING => &["char", "binary"],
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            &[
                "tinyblob",
                "blob",
                "mediumblob",
                "longblob",
                "tinytext",
                "text",
                "mediumtext",
                "longtext",
                "json",
            ]
        }
        _ => return true,
    };
    expected.contains(&data_type) || !known_type(data_type)
}

/// Types [`logged_as`] knows the binlog type of.
fn known_type(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint"
            | "bool"
            | "boolean"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "float"
            | "double"
            | "real"
            | "double precision"
            | "decimal"
            | "numeric"
            | "fixed"
            | "year"
            | "date"
            | "time"
            | "datetime"
            | "timestamp"
            | "bit"
            | "enum"
            | "set"
            | "json"
            | "varchar"
            | "varbinary"
            | "char"
            | "binary"
            | "tinyblob"
            | "blob"
            | "mediumblob"
            | "longblob"
            | "tinytext"
            | "text"
            | "mediumtext"
            | "longtext"
    )
}

/// What a value is, for telling whether a target column can take it.
#[derive(PartialEq, Eq)]
enum Family {
    Number,
    Text,
    Temporal,
    Other,
}

fn binlog_family(t: ColumnType) -> Family {
    use ColumnType::*;
    match t {
        MYSQL_TYPE_TINY
        | MYSQL_TYPE_SHORT
        | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG
        | MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_DOUBLE
        | MYSQL_TYPE_DECIMAL
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_BIT => Family::Number,
        MYSQL_TYPE_DATE
        | MYSQL_TYPE_NEWDATE
        | MYSQL_TYPE_TIME
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_DATETIME
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIMESTAMP
        | MYSQL_TYPE_TIMESTAMP2 => Family::Temporal,
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => Family::Text,
        _ => Family::Other,
    }
}

fn target_family(data_type: &str) -> Family {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "float"
        | "double" | "real" | "decimal" | "numeric" | "bit" => Family::Number,
        "date" | "time" | "datetime" | "timestamp" => Family::Temporal,
        "char" | "varchar" | "binary" | "varbinary" | "tinytext" | "text" | "mediumtext"
        | "longtext" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Family::Text,
        _ => Family::Other,
    }
}

/// Whether a target column of `data_type` can take values of binlog type `t` without turning
/// them into something else (text into numbers or dates, numbers into dates, dates into numbers).
/// Narrower types of the same kind are the precheck's and the strict target session's concern.
fn compatible(t: ColumnType, data_type: &str) -> bool {
    let (from, to) = (binlog_family(t), target_family(data_type));
    from == to || from == Family::Other || to == Family::Other || to == Family::Text
}

/// A binlog type as SQL names it, for messages.
fn type_name(t: ColumnType) -> String {
    format!("{t:?}").trim_start_matches("MYSQL_TYPE_").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::event::RowKind;
    use crate::incremental::schema::{ColumnInfo, Fold};
    use mysql_async::Value;

    fn target(columns: &[(&str, &str)]) -> TableSchema {
        let columns = columns
            .iter()
            .map(|(name, data_type)| ColumnInfo {
                data_type: data_type.to_string(),
                ..ColumnInfo::varchar(name, Fold::Exact)
            })
            .collect();
        TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns,
            key: None,
            unique_keys: vec![],
            foreign: false,
        }
    }

    fn source(names: &[&str], unsigned: &[bool]) -> Vec<SourceColumn> {
        names
            .iter()
            .zip(unsigned)
            .map(|(n, &u)| SourceColumn {
                name: n.to_string(),
                data_type: String::new(),
                unsigned: u,
            })
            .collect()
    }

    #[test]
    fn values_go_to_the_target_column_of_their_name() {
        let types = [ColumnType::MYSQL_TYPE_LONG, ColumnType::MYSQL_TYPE_VARCHAR];
        let target = target(&[("extra", "int"), ("B", "varchar"), ("a", "int")]);
        let mapping =
            Mapping::new(&source(&["a", "b"], &[true, false]), &types, &target).expect("mapping");
        let change = RowChange {
            database: "d".into(),
            table: "t".into(),
            kind: RowKind::Insert,
            column_types: types.to_vec(),
            column_names: None,
            unsigned: None,
            no_foreign_key_checks: false,
            rows: vec![(None, Some(vec![Some(Value::Int(-1)), Some(Value::Bytes(b"x".to_vec()))]))],
        };
        let after = mapping.apply(change).rows[0].1.clone();
        assert_eq!(
            after,
            Some(vec![None, Some(Value::Bytes(b"x".to_vec())), Some(Value::UInt(u32::MAX.into()))])
        );
    }

    #[test]
    fn missing_and_incompatible_columns_are_errors() {
        let types = [ColumnType::MYSQL_TYPE_LONG, ColumnType::MYSQL_TYPE_VARCHAR];
        let missing = Mapping::new(
            &source(&["a", "c"], &[false, false]),
            &types,
            &target(&[("a", "int"), ("b", "varchar")]),
        );
        assert!(
            matches!(missing, Err(IncrementalError::MissingColumn { ref column, .. }) if column == "c")
        );
        let text_into_int = Mapping::new(
            &source(&["a", "b"], &[false, false]),
            &types,
            &target(&[("a", "int"), ("b", "int")]),
        );
        assert!(
            matches!(text_into_int, Err(IncrementalError::IncompatibleColumn { ref column, .. }) if column == "b"),
            "{text_into_int:?}"
        );
    }

    #[test]
    fn definitions_match_table_maps_by_type_and_order() {
        let def = |cols: &[(&str, &str)]| -> Vec<SourceColumn> {
            cols.iter()
                .map(|(n, d)| SourceColumn {
                    name: n.to_string(),
                    data_type: d.to_string(),
                    unsigned: false,
                })
                .collect()
        };
        let types = [ColumnType::MYSQL_TYPE_LONG, ColumnType::MYSQL_TYPE_BLOB];
        assert!(same_types(&def(&[("a", "int"), ("b", "mediumtext")]), &types));
        assert!(!same_types(&def(&[("b", "mediumtext"), ("a", "int")]), &types));
        assert!(!same_types(&def(&[("a", "int")]), &types));
        assert!(same_types(&def(&[("a", "int"), ("b", "inet6")]), &types), "unknown types match");
        let source = def(&[("a", "int"), ("new", "int"), ("b", "text")]);
        assert!(same_relative_order(&source, &def(&[("a", "int"), ("b", "text")])));
        assert!(!same_relative_order(&source, &def(&[("b", "text"), ("a", "int")])));
    }
}
