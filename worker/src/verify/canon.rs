//! Each row as one canonical text that renders byte for byte the same on MariaDB, MySQL and
//! TiDB when the values are equal, so the servers hash rows themselves and only hashes travel.
//!
//! Every value is length-prefixed (`5:hello`) and NULL is `N`, so neither a separator inside a
//! value nor a NULL next to an empty string can make two different rows one text. Text is
//! converted to utf8mb4 (a latin1 column then hashes as its characters, whatever charset the
//! other side chose), bytes as hex, BIT as its number, FLOAT as the double it holds (servers
//! print FLOAT's shortest text differently, the double of the same 4 bytes alike). JSON is
//! normalised differently by each server (MariaDB keeps the text, MySQL and TiDB reorder keys),
//! so between different servers it is read and compared as parsed JSON here, not hashed there.
//! Generated columns are left out, as the copy leaves them to the target to compute.

use crate::flavor::Flavor;
use crate::full::objects::{Column, Render, Table};
use crate::sql::quote_ident;

/// How a table's rows are hashed on both servers.
#[derive(Debug, Clone)]
pub struct RowShape {
    /// Columns in the servers' row hash.
    pub hashed: Vec<Column>,
    /// JSON columns read and compared as parsed JSON by Ferry.
    pub json: Vec<Column>,
}

impl RowShape {
    /// `json_columns`: columns JSON on either server. They are hashed by the servers only when
    /// both are the same kind of server, which stores and prints the same text.
    pub fn new(table: &Table, source: Flavor, target: Flavor, json_columns: &[String]) -> Self {
        let (json, hashed) = table
            .columns
            .iter()
            .cloned()
            .partition(|c| source != target && json_columns.contains(&c.name));
        RowShape { hashed, json }
    }

    /// The canonical text of the hashed columns.
    pub fn row_text(&self) -> String {
        if self.hashed.is_empty() {
            return "''".into();
        }
        let parts: Vec<String> = self.hashed.iter().map(|c| framed(&canonical(c))).collect();
        format!("CONCAT_WS(',', {})", parts.join(", "))
    }

    /// `COUNT(*)` and the sum of the rows' CRC32: a multiset checksum (unlike BIT_XOR, a doubled
    /// row does not cancel itself out).
    pub fn checksum_select(&self) -> String {
        format!("COUNT(*), CAST(SUM(CRC32({})) AS CHAR)", self.row_text())
    }

    /// The 128-bit hash of one row, for narrowing a chunk down to rows.
    pub fn row_hash(&self) -> String {
        format!("MD5({})", self.row_text())
    }
}

/// `IFNULL(CONCAT(LENGTH(x), ':', x), 'N')`.
fn framed(expr: &str) -> String {
    format!("IFNULL(CONCAT(LENGTH({expr}), ':', {expr}), 'N')")
}

/// The expression whose text is the column's value, the same on every server.
pub fn canonical(column: &Column) -> String {
    let col = quote_ident(&column.name);
    match column.data_type.as_str() {
        "float" | "real" => format!("CAST({col} AS DOUBLE)"),
        "bit" | "year" => format!("({col} + 0)"),
        _ => match column.render {
            Render::Raw => col,
            Render::Hex => format!("HEX({col})"),
            Render::Quoted => format!("CONVERT({col} USING utf8mb4)"),
        },
    }
}

/// A JSON document in one canonical text (keys sorted, no spaces); text that is not JSON stays
/// itself, marked, so it still compares.
pub fn canonical_json(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(json) => json.to_string(),
        Err(_) => format!("not JSON: {}", String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::full::objects::render_for;

    fn column(name: &str, data_type: &str, charset: Option<&str>) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            render: render_for(data_type, charset),
        }
    }

    fn table(columns: Vec<Column>) -> Table {
        Table {
            db: "d".into(),
            name: "t".into(),
            columns,
            key: vec!["id".into()],
            estimated_rows: 0,
            estimated_bytes: 0,
        }
    }

    #[test]
    fn each_kind_has_its_canonical_text() {
        assert_eq!(canonical(&column("f", "float", None)), "CAST(`f` AS DOUBLE)");
        assert_eq!(canonical(&column("b", "bit", None)), "(`b` + 0)");
        assert_eq!(canonical(&column("v", "varbinary", None)), "HEX(`v`)");
        assert_eq!(canonical(&column("t", "text", Some("latin1"))), "CONVERT(`t` USING utf8mb4)");
        assert_eq!(canonical(&column("d", "decimal", None)), "`d`");
    }

    #[test]
    fn json_is_hashed_by_the_servers_only_between_equal_kinds() {
        let t = table(vec![column("id", "int", None), column("j", "longtext", Some("utf8mb4"))]);
        let json = vec!["j".to_string()];
        let same = RowShape::new(&t, Flavor::MariaDb, Flavor::MariaDb, &json);
        assert_eq!((same.hashed.len(), same.json.len()), (2, 0));
        let mixed = RowShape::new(&t, Flavor::MariaDb, Flavor::TiDb, &json);
        assert_eq!((mixed.hashed.len(), mixed.json.len()), (1, 1));
        assert_eq!(
            mixed.row_text(),
            "CONCAT_WS(',', IFNULL(CONCAT(LENGTH(`id`), ':', `id`), 'N'))"
        );
    }

    #[test]
    fn json_compares_as_json() {
        assert_eq!(canonical_json(br#"{"b": 1, "a": [1, 2.5]}"#), canonical_json(br#"{"a":[1,2.5],"b":1}"#));
        assert_ne!(canonical_json(br#"{"a": 1}"#), canonical_json(br#"{"a": 2}"#));
    }
}
