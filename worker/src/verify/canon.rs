//! Each row as one canonical text that renders byte for byte the same on MariaDB, MySQL and
//! TiDB when the values are equal, so the servers hash rows themselves and only hashes travel.
//!
//! Values are joined by commas, text and bytes preceded by their length, and one NULL flag per
//! column ends the text, so neither a comma inside a value nor a NULL next to an empty string can
//! make two different rows one text. Text is converted to utf8mb4 where a side stores it in
//! another character set (a latin1 column then hashes as its characters, whatever charset the
//! other side chose), bytes go as they are, BIT as its number, FLOAT as the double it holds
//! (servers print FLOAT's shortest text differently, the double of the same 4 bytes alike). JSON
//! is normalised differently by each server (MariaDB keeps the text, MySQL and TiDB reorder
//! keys), so between different servers it is read and compared as parsed JSON here.
//! Generated columns are left out, as the copy leaves them to the target to compute.

use crate::flavor::Flavor;
use crate::full::objects::{Column, Table};
use crate::sql::literal::Render;
use crate::sql::quote_ident;

/// A column as one server defines it (information_schema.COLUMNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerColumn {
    pub name: String,
    /// DATA_TYPE, lower case.
    pub data_type: String,
    pub charset: Option<String>,
}

/// A column in the servers' row hash.
#[derive(Debug, Clone)]
pub struct Hashed {
    pub column: Column,
    /// Text in another character set than UTF-8 on either server: hashed as utf8mb4.
    pub convert: bool,
}

/// How a table's rows are hashed on both servers.
#[derive(Debug, Clone)]
pub struct RowShape {
    /// Columns in the servers' row hash.
    pub hashed: Vec<Hashed>,
    /// JSON columns read and compared as parsed JSON by Ferry.
    pub json: Vec<Column>,
}

impl RowShape {
    /// JSON columns (JSON on either server) are hashed by the servers only when both are the
    /// same kind of server, which stores and prints the same text.
    pub fn new(
        table: &Table,
        flavors: (Flavor, Flavor),
        source: &[ServerColumn],
        target: &[ServerColumn],
    ) -> Self {
        let find = |list: &[ServerColumn], name: &str| {
            list.iter().find(|c| c.name.eq_ignore_ascii_case(name)).cloned()
        };
        let mut shape = RowShape { hashed: Vec::new(), json: Vec::new() };
        for column in &table.columns {
            let sides = [find(source, &column.name), find(target, &column.name)];
            let json = sides.iter().flatten().any(|c| c.data_type == "json");
            if json && flavors.0 != flavors.1 {
                shape.json.push(column.clone());
                continue;
            }
            let utf8 = |c: &Option<ServerColumn>| {
                c.as_ref()
                    .is_some_and(|c| c.charset.as_deref().is_none_or(|cs| cs.starts_with("utf8")))
            };
            let convert = !sides.iter().all(utf8);
            shape.hashed.push(Hashed { column: column.clone(), convert });
        }
        shape
    }

    /// The canonical text of the hashed columns: their values joined by commas, each text
    /// preceded by its length in characters, then one NULL flag per column. Only text can hold
    /// a comma, so with the lengths and the flags two different rows never make one text.
    pub fn row_text(&self) -> String {
        if self.hashed.is_empty() {
            return "''".into();
        }
        let mut parts: Vec<String> = self.hashed.iter().map(element).collect();
        let flags: Vec<String> = self
            .hashed
            .iter()
            .map(|h| format!("ISNULL({})", quote_ident(&h.column.name)))
            .collect();
        parts.push(format!("CONCAT({})", flags.join(", ")));
        format!("CONCAT_WS(',', {})", parts.join(", "))
    }

    /// `COUNT(*)` and the sum of the rows' CRC32: a multiset checksum (unlike BIT_XOR, a doubled
    /// row does not cancel itself out).
    pub fn checksum_select(&self) -> String {
        format!("COUNT(*), CAST(SUM(CRC32({})) AS CHAR)", self.row_text())
    }

    /// The SHA-256 of one row, for narrowing a chunk down to rows (MySQL 9 has no MD5).
    pub fn row_hash(&self) -> String {
        format!("SHA2({}, 256)", self.row_text())
    }
}

/// A column's part of the row text: its canonical value, after its length where the value may
/// hold a comma (text, bytes). The length is in bytes where both servers store the same bytes
/// (UTF-8 text, binary), in characters where a side converts, so it is counted cheaply.
fn element(hashed: &Hashed) -> String {
    let col = quote_ident(&hashed.column.name);
    let temporal =
        matches!(hashed.column.data_type.as_str(), "date" | "datetime" | "timestamp" | "time");
    let numeric = matches!(hashed.column.data_type.as_str(), "float" | "real" | "bit" | "year");
    match hashed.column.render {
        // Bytes as they are: hex would double what the server hashes.
        Render::Hex if !numeric => format!("LENGTH({col}), {col}"),
        Render::Quoted if hashed.convert => {
            format!("CHAR_LENGTH({col}), CONVERT({col} USING utf8mb4)")
        }
        Render::Quoted if !temporal => format!("LENGTH({col}), {col}"),
        _ => canonical(&hashed.column, hashed.convert),
    }
}

/// The expression whose text is the column's value, the same on every server.
pub fn canonical(column: &Column, convert: bool) -> String {
    let col = quote_ident(&column.name);
    match column.data_type.as_str() {
        "float" | "real" => format!("CAST({col} AS DOUBLE)"),
        "bit" | "year" => format!("({col} + 0)"),
        _ => match column.render {
            Render::Raw => col,
            Render::Hex => format!("HEX({col})"),
            Render::Quoted if convert => format!("CONVERT({col} USING utf8mb4)"),
            Render::Quoted => col,
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

    fn server(name: &str, data_type: &str, charset: Option<&str>) -> ServerColumn {
        ServerColumn {
            name: name.into(),
            data_type: data_type.into(),
            charset: charset.map(Into::into),
        }
    }

    fn table(columns: Vec<Column>) -> Table {
        Table {
            db: "d".into(),
            name: "t".into(),
            target: ferry_crds::selection::Routed { database: "d".into(), table: "t".into() },
            merged: false,
            columns,
            key: vec!["id".into()],
            estimated_rows: 0,
            estimated_bytes: 0,
        }
    }

    #[test]
    fn each_kind_has_its_canonical_text() {
        assert_eq!(canonical(&column("f", "float", None), false), "CAST(`f` AS DOUBLE)");
        assert_eq!(canonical(&column("b", "bit", None), false), "(`b` + 0)");
        assert_eq!(canonical(&column("v", "varbinary", None), false), "HEX(`v`)");
        let latin1 = column("t", "text", Some("latin1"));
        assert_eq!(canonical(&latin1, true), "CONVERT(`t` USING utf8mb4)");
        assert_eq!(canonical(&column("d", "decimal", None), false), "`d`");
    }

    #[test]
    fn text_is_converted_only_where_a_server_stores_it_in_another_charset() {
        let t = table(vec![
            column("u", "varchar", Some("utf8mb4")),
            column("l", "varchar", Some("latin1")),
        ]);
        let source =
            [server("u", "varchar", Some("utf8mb4")), server("l", "varchar", Some("latin1"))];
        let target =
            [server("u", "varchar", Some("utf8mb3")), server("l", "varchar", Some("utf8mb4"))];
        let shape = RowShape::new(&t, (Flavor::MariaDb, Flavor::TiDb), &source, &target);
        let convert: Vec<bool> = shape.hashed.iter().map(|h| h.convert).collect();
        assert_eq!(convert, [false, true]);
        assert_eq!(
            shape.row_text(),
            "CONCAT_WS(',', LENGTH(`u`), `u`, CHAR_LENGTH(`l`), CONVERT(`l` USING utf8mb4), \
             CONCAT(ISNULL(`u`), ISNULL(`l`)))"
        );
    }

    #[test]
    fn json_is_hashed_by_the_servers_only_between_equal_kinds() {
        let t = table(vec![column("id", "int", None), column("j", "longtext", Some("utf8mb4"))]);
        let source = [server("id", "int", None), server("j", "longtext", Some("utf8mb4"))];
        let target = [server("id", "int", None), server("j", "json", None)];
        let same = RowShape::new(&t, (Flavor::MariaDb, Flavor::MariaDb), &source, &target);
        assert_eq!((same.hashed.len(), same.json.len()), (2, 0));
        let mixed = RowShape::new(&t, (Flavor::MariaDb, Flavor::TiDb), &source, &target);
        assert_eq!((mixed.hashed.len(), mixed.json.len()), (1, 1));
        assert_eq!(mixed.row_text(), "CONCAT_WS(',', `id`, CONCAT(ISNULL(`id`)))");
    }

    #[test]
    fn json_compares_as_json() {
        assert_eq!(
            canonical_json(br#"{"b": 1, "a": [1, 2.5]}"#),
            canonical_json(br#"{"a":[1,2.5],"b":1}"#)
        );
        assert_ne!(canonical_json(br#"{"a": 1}"#), canonical_json(br#"{"a": 2}"#));
    }
}
