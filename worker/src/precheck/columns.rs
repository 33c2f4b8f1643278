//! Whether tables that already exist on the target can hold what the source sends: each source
//! column must exist there with a type that holds every value of the source's type unchanged
//! (the same type, or a wider one of the same family), or the copy and replication would cut,
//! round or convert values (the target session is strict, so they would stop at the first one).

use std::collections::BTreeMap;

use ferry_crds::job::PrecheckItem;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::PrecheckError;
use super::item::{failure, list, pass, warning};
use super::schema::Selection;
use crate::sql::{qualified, quote_ident};

/// A column as information_schema describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// `DATA_TYPE`, lower case (`varchar`).
    pub data_type: String,
    /// `COLUMN_TYPE`, lower case (`varchar(50)`, `int(10) unsigned`).
    pub column_type: String,
    pub nullable: bool,
    /// Characters for text types.
    pub chars: Option<u64>,
    /// Bytes for text and binary types.
    pub octets: Option<u64>,
    pub precision: Option<u64>,
    pub scale: Option<u64>,
    pub fsp: Option<u64>,
    pub charset: Option<String>,
    /// Computed by the server (the copy does not write it).
    pub generated: bool,
    /// The server fills it when a row leaves it out (a default, AUTO_INCREMENT).
    pub fills_itself: bool,
}

/// Per `(db, table)`, its columns in order.
pub type Columns = BTreeMap<(String, String), Vec<ColumnDef>>;

/// The columns of every table of the selected schemas, in one query.
pub async fn read(conn: &mut Conn, selection: Selection<'_>) -> Result<Columns, PrecheckError> {
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, \
         CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, \
         DATETIME_PRECISION, CHARACTER_SET_NAME, EXTRA, COLUMN_DEFAULT \
         FROM information_schema.COLUMNS WHERE {} ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        selection.schema_condition("TABLE_SCHEMA")
    );
    let rows: Vec<mysql_async::Row> =
        conn.query(sql).await.map_err(PrecheckError::sql("read table columns"))?;
    let mut columns = Columns::new();
    for mut row in rows {
        let text = |row: &mut mysql_async::Row, i: usize| -> String {
            row.take::<Option<String>, _>(i).flatten().unwrap_or_default()
        };
        let number = |row: &mut mysql_async::Row, i: usize| row.take::<Option<u64>, _>(i).flatten();
        let (db, table) = (text(&mut row, 0), text(&mut row, 1));
        if !selection.table(&db, &table) {
            continue;
        }
        let extra = text(&mut row, 12).to_ascii_lowercase();
        let generated = extra.contains("generated") || extra.contains("persistent");
        let has_default = row.take::<Option<String>, _>(13).flatten().is_some()
            || extra.contains("auto_increment");
        let nullable = text(&mut row, 5).eq_ignore_ascii_case("YES");
        let charset = row.take::<Option<String>, _>(11).flatten();
        columns.entry((db, table)).or_default().push(ColumnDef {
            name: text(&mut row, 2),
            data_type: text(&mut row, 3).to_ascii_lowercase(),
            column_type: text(&mut row, 4).to_ascii_lowercase(),
            nullable,
            chars: number(&mut row, 6),
            octets: number(&mut row, 7),
            precision: number(&mut row, 8),
            scale: number(&mut row, 9),
            fsp: number(&mut row, 10),
            charset: charset.map(|c| c.to_ascii_lowercase()),
            generated,
            fills_itself: has_default || nullable || generated,
        });
    }
    Ok(columns)
}

/// One column of a pre-existing target table that cannot take the source's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub table: String,
    pub column: String,
    pub source_type: Option<String>,
    pub target_type: Option<String>,
    pub why: String,
    /// The statement that fixes it on the target.
    pub fix: String,
}

/// Compares the selected source tables that exist on the target with their target definition.
pub fn compare(source: &Columns, target: &Columns) -> Vec<Mismatch> {
    let mut found = Vec::new();
    for (key, source_columns) in source {
        let Some(target_columns) = target.get(key) else { continue };
        let table = qualified(&key.0, &key.1);
        for s in source_columns.iter().filter(|c| !c.generated) {
            let Some(t) = target_columns.iter().find(|t| t.name.eq_ignore_ascii_case(&s.name))
            else {
                found.push(Mismatch {
                    table: table.clone(),
                    column: s.name.clone(),
                    source_type: Some(s.column_type.clone()),
                    target_type: None,
                    why: "missing on the target".into(),
                    fix: format!("ALTER TABLE {table} ADD COLUMN {}", definition(s)),
                });
                continue;
            };
            if let Err(why) = holds(s, t) {
                found.push(Mismatch {
                    table: table.clone(),
                    column: s.name.clone(),
                    source_type: Some(s.column_type.clone()),
                    target_type: Some(t.column_type.clone()),
                    why,
                    fix: format!("ALTER TABLE {table} MODIFY COLUMN {}", definition(s)),
                });
            }
        }
        for t in target_columns.iter().filter(|t| !t.fills_itself) {
            if !source_columns.iter().any(|s| s.name.eq_ignore_ascii_case(&t.name)) {
                found.push(Mismatch {
                    table: table.clone(),
                    column: t.name.clone(),
                    source_type: None,
                    target_type: Some(t.column_type.clone()),
                    why: "only on the target, NOT NULL without a default: every insert fails"
                        .into(),
                    fix: format!(
                        "ALTER TABLE {table} MODIFY COLUMN {} {} NULL",
                        quote_ident(&t.name),
                        t.column_type
                    ),
                });
            }
        }
    }
    found
}

/// `name type [NULL|NOT NULL]` as the source has it, for a fix.
fn definition(c: &ColumnDef) -> String {
    let charset = c.charset.as_ref().map(|cs| format!(" CHARACTER SET {cs}")).unwrap_or_default();
    let null = if c.nullable { "NULL" } else { "NOT NULL" };
    format!("{} {}{charset} {null}", quote_ident(&c.name), c.column_type)
}

/// The precheck item over every mismatch: a Failure, or a Warning when replication may still
/// bring the target's definition in line (`pending_ddl`: DDL run on the source after the
/// replication's start position reaches the target in binlog order).
pub fn item(mismatches: &[Mismatch], compared: usize, pending_ddl: bool) -> PrecheckItem {
    const NAME: &str = "target_table_definitions";
    if mismatches.is_empty() {
        return pass(
            NAME,
            format!(
                "{compared} selected table(s) exist on the target and can hold the source's values"
            ),
        );
    }
    let observed: Vec<String> = mismatches
        .iter()
        .map(|m| {
            let types = match (&m.source_type, &m.target_type) {
                (Some(s), Some(t)) => format!("source {s}, target {t}: "),
                (Some(s), None) => format!("source {s}: "),
                (None, Some(t)) => format!("target {t}: "),
                (None, None) => String::new(),
            };
            format!("{}.{} ({types}{})", m.table, quote_ident(&m.column), m.why)
        })
        .collect();
    let fixes: Vec<String> = mismatches.iter().map(|m| format!("{};", m.fix)).collect();
    if pending_ddl {
        return warning(
            NAME,
            list(&observed),
            "The source's tables differ from the target's. Replication applies the source's DDL \
             in binlog order, so DDL run on the source after the position replication resumes \
             from brings the target in line; anything else would cut, round or convert values, \
             and replication stops at the first value the target cannot hold.",
            format!(
                "If these columns were not changed on the source since replication started, \
                 change them on the target: {}",
                list(&fixes)
            ),
        );
    }
    failure(
        NAME,
        list(&observed),
        "These tables already exist on the target, and Ferry writes into them as they are: a \
         column that is missing, narrower or of another type would cut, round or convert the \
         source's values, so the copy and replication would stop at the first such value.",
        format!(
            "On the target, make each column hold the source's type: {} Or drop these target \
             tables and let Ferry create them from the source's definitions.",
            list(&fixes)
        ),
    )
}

/// The family and extent of a type, for comparing what two columns can hold.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Smallest and largest value.
    Integer(i128, i128),
    /// Digits before and after the point, and whether negatives are held.
    Decimal {
        int_digits: u64,
        scale: u64,
        signed: bool,
    },
    Float {
        bytes: u64,
    },
    Bit(u64),
    /// Text: `fixed` (CHAR/VARCHAR, measured in characters) or TEXT (measured in bytes).
    Text {
        fixed: bool,
        chars: u64,
        octets: u64,
        charset: String,
    },
    /// Bytes: `padded` for BINARY(n), which pads shorter values with zero bytes.
    Bytes {
        padded: bool,
        octets: u64,
    },
    Date,
    DateTime(u64),
    Timestamp(u64),
    Time(u64),
    Year,
    Enum(Vec<String>),
    Set(Vec<String>),
    Json,
    Other(String),
}

fn kind(c: &ColumnDef) -> Kind {
    let unsigned = c.column_type.contains("unsigned");
    let fsp = c.fsp.unwrap_or(0);
    let integer = |bytes: u32| {
        if unsigned {
            Kind::Integer(0, (1i128 << (8 * bytes)) - 1)
        } else {
            Kind::Integer(-(1i128 << (8 * bytes - 1)), (1i128 << (8 * bytes - 1)) - 1)
        }
    };
    match c.data_type.as_str() {
        "tinyint" => integer(1),
        "smallint" => integer(2),
        "mediumint" => integer(3),
        "int" | "integer" => integer(4),
        "bigint" => integer(8),
        "decimal" | "numeric" => {
            let (precision, scale) = (c.precision.unwrap_or(10), c.scale.unwrap_or(0));
            Kind::Decimal { int_digits: precision.saturating_sub(scale), scale, signed: !unsigned }
        }
        "float" => Kind::Float { bytes: 4 },
        "double" | "real" => Kind::Float { bytes: 8 },
        "bit" => Kind::Bit(c.precision.unwrap_or(1)),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext"
            if c.charset.as_deref() != Some("binary") =>
        {
            let charset = c.charset.clone().unwrap_or_default();
            Kind::Text {
                fixed: matches!(c.data_type.as_str(), "char" | "varchar"),
                chars: c.chars.unwrap_or(0),
                octets: c.octets.unwrap_or(0),
                charset: same_charset(&charset).to_string(),
            }
        }
        "char" | "varchar" | "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob"
        | "longblob" | "tinytext" | "text" | "mediumtext" | "longtext" => Kind::Bytes {
            padded: c.data_type == "binary",
            octets: c.octets.or(c.chars).unwrap_or(0),
        },
        "date" => Kind::Date,
        "datetime" => Kind::DateTime(fsp),
        "timestamp" => Kind::Timestamp(fsp),
        "time" => Kind::Time(fsp),
        "year" => Kind::Year,
        "enum" => Kind::Enum(members(&c.column_type)),
        "set" => Kind::Set(members(&c.column_type)),
        "json" => Kind::Json,
        other => Kind::Other(other.to_string()),
    }
}

/// utf8 and utf8mb3 are one character set under two names (TiDB says utf8).
fn same_charset(charset: &str) -> &str {
    if charset == "utf8mb3" { "utf8" } else { charset }
}

/// `enum('a','b''c')` -> `["a", "b'c"]`.
fn members(column_type: &str) -> Vec<String> {
    let inner =
        column_type.split_once('(').map(|(_, rest)| rest.trim_end_matches(')')).unwrap_or_default();
    let mut members = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if quoted && chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            '\'' => quoted = !quoted,
            ',' if !quoted => members.push(std::mem::take(&mut current)),
            _ if quoted => current.push(c),
            _ => {}
        }
    }
    members.push(current);
    members
}

/// Digits of the largest magnitude an integer range holds.
fn digits(range: (i128, i128)) -> u64 {
    range.0.unsigned_abs().max(range.1.unsigned_abs()).to_string().len() as u64
}

/// Bytes one character takes at most in a character set (4 when unknown).
fn max_char_bytes(charset: &str) -> u64 {
    match charset {
        "latin1" | "ascii" | "binary" | "latin2" | "latin5" | "latin7" | "cp1250" | "cp1251"
        | "cp1256" | "cp1257" | "cp850" | "cp852" | "cp866" | "koi8r" | "koi8u" | "greek"
        | "hebrew" | "swe7" | "dec8" | "hp8" | "armscii8" | "geostd8" | "keybcs2" | "macce"
        | "macroman" | "tis620" => 1,
        "ucs2" | "gbk" | "big5" | "sjis" | "cp932" | "euckr" | "gb2312" => 2,
        "utf8" | "ujis" | "eucjpms" => 3,
        _ => 4,
    }
}

/// Whether `target` holds every value of `source` unchanged; else why not.
fn holds(source: &ColumnDef, target: &ColumnDef) -> Result<(), String> {
    if source.nullable && !target.nullable {
        return Err("NULL values would be rejected: the target column is NOT NULL".into());
    }
    if source.column_type == target.column_type
        && same_charset(source.charset.as_deref().unwrap_or(""))
            == same_charset(target.charset.as_deref().unwrap_or(""))
    {
        return Ok(());
    }
    let narrower = |what: &str| Err(format!("narrower: {what} would be cut or rejected"));
    match (kind(source), kind(target)) {
        (Kind::Integer(a, b), Kind::Integer(c, d)) if c <= a && b <= d => Ok(()),
        (Kind::Integer(..), Kind::Integer(..)) => narrower("large or negative numbers"),
        (Kind::Integer(a, b), Kind::Decimal { int_digits, signed, .. }) => {
            if int_digits >= digits((a, b)) && (a >= 0 || signed) {
                Ok(())
            } else {
                narrower("large numbers")
            }
        }
        (
            Kind::Decimal { int_digits: i, scale: s, signed: neg },
            Kind::Decimal { int_digits: ti, scale: ts, signed: tneg },
        ) => {
            if ts < s {
                Err(format!("rounds: the target keeps {ts} decimal places, the source {s}"))
            } else if ti < i || (neg && !tneg) {
                narrower("large or negative numbers")
            } else {
                Ok(())
            }
        }
        (Kind::Float { bytes: a }, Kind::Float { bytes: b }) if a == b => Ok(()),
        (Kind::Bit(a), Kind::Bit(b)) if b >= a => Ok(()),
        (Kind::Bit(_), Kind::Bit(_)) => narrower("high bits"),
        (
            Kind::Text { fixed: sf, chars: sc, octets: so, charset: scs },
            Kind::Text { fixed: tf, chars: tc, octets: to, charset: tcs },
        ) => {
            if scs != tcs && tcs != "utf8mb4" && scs != "ascii" {
                return Err(format!(
                    "converts characters from {scs} to {tcs}, losing those {tcs} lacks"
                ));
            }
            // The most characters a source value has: a TEXT value may be all one-byte ones.
            let source_chars = if sf { sc } else { so };
            let fits = if tf {
                tc >= source_chars
            } else if scs == tcs {
                to >= if sf { sc * max_char_bytes(&scs) } else { so }
            } else {
                to >= source_chars * max_char_bytes(&tcs)
            };
            if fits { Ok(()) } else { narrower("long text") }
        }
        (Kind::Bytes { padded: true, octets: a }, Kind::Bytes { padded: true, octets: b }) => {
            if a == b { Ok(()) } else { Err("pads or cuts: BINARY lengths differ".into()) }
        }
        (Kind::Bytes { octets: a, .. }, Kind::Bytes { padded: false, octets: b }) if b >= a => {
            Ok(())
        }
        (Kind::Bytes { .. }, Kind::Bytes { padded: true, .. }) => {
            Err("pads: BINARY(n) adds zero bytes to shorter values".into())
        }
        (Kind::Bytes { .. }, Kind::Bytes { .. }) => narrower("long values"),
        (Kind::DateTime(a), Kind::DateTime(b))
        | (Kind::Timestamp(a), Kind::Timestamp(b))
        | (Kind::Time(a), Kind::Time(b)) => {
            if b >= a {
                Ok(())
            } else {
                Err(format!("rounds: fractional seconds kept to {b} digits, the source has {a}"))
            }
        }
        (Kind::Enum(a), Kind::Enum(b)) | (Kind::Set(a), Kind::Set(b)) => {
            if b.starts_with(&a) {
                Ok(())
            } else {
                Err("other members: values would change or be rejected".into())
            }
        }
        (Kind::Json, Kind::Json) => Ok(()),
        (Kind::Json, Kind::Text { fixed: false, octets, .. }) if octets >= u32::MAX as u64 => {
            Ok(())
        }
        (Kind::Text { fixed: false, octets, .. }, Kind::Json) if octets >= u32::MAX as u64 => {
            Err("converts: JSON rejects text that is not JSON".into())
        }
        (Kind::Other(a), Kind::Other(b)) if a == b => Ok(()),
        (s, t) if std::mem::discriminant(&s) == std::mem::discriminant(&t) => narrower("values"),
        _ => Err(format!("converts {} to {}", source.data_type, target.data_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(column_type: &str) -> ColumnDef {
        let data_type = column_type.split(['(', ' ']).next().unwrap_or_default().to_string();
        let number = |i: usize| -> Option<u64> {
            let inner = column_type.split_once('(')?.1.split_once(')')?.0;
            inner.split(',').nth(i)?.trim().parse().ok()
        };
        let text = matches!(data_type.as_str(), "char" | "varchar");
        let octets = match data_type.as_str() {
            "text" | "blob" => Some(65535),
            "tinytext" => Some(255),
            "longtext" => Some(u32::MAX as u64),
            "varbinary" | "binary" => number(0),
            _ if text => number(0).map(|n| n * 4),
            _ => None,
        };
        let textual = text || data_type.ends_with("text");
        ColumnDef {
            name: "c".into(),
            column_type: column_type.into(),
            nullable: true,
            chars: if text { number(0) } else { octets },
            octets,
            precision: match data_type.as_str() {
                "decimal" => number(0),
                "bit" => number(0),
                _ => None,
            },
            scale: if data_type == "decimal" { number(1) } else { None },
            fsp: if matches!(data_type.as_str(), "datetime" | "timestamp" | "time") {
                number(0).or(Some(0))
            } else {
                None
            },
            charset: textual.then(|| "utf8mb4".into()),
            generated: false,
            fills_itself: true,
            data_type,
        }
    }

    fn verdict(source: &str, target: &str) -> bool {
        holds(&column(source), &column(target)).is_ok()
    }

    #[test]
    fn wider_types_of_the_same_family_hold_narrower_ones_do_not() {
        let holding = [
            ("varchar(50)", "varchar(50)"),
            ("varchar(50)", "varchar(80)"),
            ("varchar(50)", "text"),
            ("text", "longtext"),
            ("int", "bigint"),
            ("int unsigned", "bigint"),
            ("smallint", "decimal(10,2)"),
            ("decimal(10,2)", "decimal(12,3)"),
            ("datetime(3)", "datetime(6)"),
            ("enum('a','b')", "enum('a','b','c')"),
            ("varbinary(4)", "blob"),
            ("bit(3)", "bit(8)"),
        ];
        for (s, t) in holding {
            assert!(verdict(s, t), "{s} -> {t} should hold");
        }
        let failing = [
            ("varchar(50)", "varchar(3)"),
            ("decimal(10,2)", "int"),
            ("decimal(10,2)", "decimal(10,1)"),
            ("datetime", "date"),
            ("text", "varchar(200)"),
            ("varchar(100)", "tinytext"),
            ("int", "int unsigned"),
            ("bigint", "int"),
            ("int unsigned", "int"),
            ("double", "float"),
            ("datetime(6)", "datetime"),
            ("timestamp", "datetime"),
            ("enum('a','b')", "enum('b','a')"),
            ("binary(4)", "binary(8)"),
            ("varchar(10)", "varbinary(40)"),
        ];
        for (s, t) in failing {
            assert!(!verdict(s, t), "{s} -> {t} should not hold");
        }
    }

    #[test]
    fn nulls_charsets_and_missing_columns() {
        let mut not_null = column("int");
        not_null.nullable = false;
        assert!(holds(&column("int"), &not_null).is_err());
        let mut latin1 = column("varchar(50)");
        latin1.charset = Some("latin1".into());
        assert!(holds(&column("varchar(50)"), &latin1).is_err());
        assert!(holds(&latin1, &column("varchar(50)")).is_ok());
        let key = ("app".to_string(), "t".to_string());
        let mut other = column("int");
        other.name = "other".into();
        other.nullable = false;
        other.fills_itself = false;
        let source = Columns::from([(key.clone(), vec![column("varchar(50)")])]);
        let target = Columns::from([(key, vec![other])]);
        let found = compare(&source, &target);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].why, "missing on the target");
        assert!(found[0].fix.contains("ADD COLUMN `c` varchar(50)"), "{}", found[0].fix);
        assert!(found[1].why.contains("NOT NULL without a default"));
    }

    #[test]
    fn enum_members_are_parsed_with_quotes_and_commas() {
        assert_eq!(members("enum('a','b''c','d,e')"), ["a", "b'c", "d,e"]);
    }
}
