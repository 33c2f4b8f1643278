//! Binlog values as SQL literals for the multi-row statements of [`super::batch`]: text protocol
//! statements avoid preparing one statement per row count. Text goes quoted and escaped (the
//! session keeps backslash escapes), bytes that are not UTF-8 as hex, and strings of columns in
//! another charset as their own bytes converted from that charset, as the row-by-row path does.

use mysql_async::Value;

use super::schema::{ColumnInfo, Fold};
use crate::full::value::{push_hex, push_quoted};

/// Appends the literal for one cell of `column`.
pub fn push(out: &mut Vec<u8>, value: &Value, column: &ColumnInfo) {
    match value {
        Value::NULL => out.extend_from_slice(b"NULL"),
        Value::Bytes(bytes) => push_bytes(out, bytes, column),
        // Exponent notation keeps large and small doubles exact and short; `-0e0` keeps the sign.
        Value::Double(x) => out.extend_from_slice(format!("{x:e}").as_bytes()),
        Value::Float(x) => out.extend_from_slice(format!("{x:e}").as_bytes()),
        other => out.extend_from_slice(other.as_sql(false).as_bytes()),
    }
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8], column: &ColumnInfo) {
    if let Some(text) = latin1_text(column, bytes) {
        push_quoted(out, text.as_bytes());
    } else if let Some(charset) = &column.convert_charset {
        out.extend_from_slice(b"CONVERT(");
        push_hex(out, bytes);
        out.extend_from_slice(format!(" USING {charset})").as_bytes());
    } else if std::str::from_utf8(bytes).is_ok() {
        push_quoted(out, bytes);
    } else {
        push_hex(out, bytes);
    }
}

/// The text of a latin1 column's bytes, which every target takes as UTF-8 (TiDB stores latin1
/// columns' text as UTF-8, so its bytes must not be sent as latin1); `None` for other columns.
pub fn latin1_text(column: &ColumnInfo, bytes: &[u8]) -> Option<String> {
    let charset = column.convert_charset.as_deref()?;
    charset.eq_ignore_ascii_case("latin1").then(|| bytes.iter().map(|&b| latin1_char(b)).collect())
}

/// A byte of MySQL's latin1 (Windows-1252, its five unassigned bytes as C1 controls).
pub(crate) fn latin1_char(byte: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
    ];
    match byte {
        0x80..=0x9F => char::from_u32(u32::from(HIGH[usize::from(byte - 0x80)])).unwrap_or('?'),
        _ => char::from(byte),
    }
}

/// A value as key material: its literal, normalized as the column compares (see [`Fold`]).
pub fn key_bytes(out: &mut Vec<u8>, value: &Value, column: &ColumnInfo) {
    let Value::Bytes(bytes) = value else {
        return push(out, value, column);
    };
    let trimmed = match column.fold {
        Fold::Exact => bytes.as_slice(),
        Fold::Trim | Fold::TrimLower => bytes.trim_ascii_end(),
    };
    match (column.fold, std::str::from_utf8(trimmed)) {
        (Fold::TrimLower, Ok(text)) if !text.is_ascii() => out.extend(fold_text(text).bytes()),
        (Fold::TrimLower, _) => out.extend(trimmed.iter().map(u8::to_ascii_lowercase)),
        _ => out.extend_from_slice(trimmed),
    }
}

/// Base letters of U+00C0..U+017F after lowercasing (their canonical decomposition's first
/// character when that is ASCII): `É`, `é`, `ě` all become `e`.
const LATIN_BASE: &str = "aaaaaaæceeeeiiiiðnooooo×øuuuuyþßaaaaaaæceeeeiiiiðnooooo÷øuuuuyþyaaaaaaccc\
    cccccddđđeeeeeeeeeegggggggghhħħiiiiiiiiiıĳĳjjkkĸllllllŀŀłłnnnnnnŉŋŋooooooœœrrrrrrssssssssttttŧŧu\
    uuuuuuuuuuuwwyyyzzzzzzſ";

/// Text folded as case- and accent-insensitive collations compare Latin letters (Unicode case,
/// Latin-1 and Latin Extended-A accents); other scripts fold case only.
fn fold_text(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match (c as usize).checked_sub(0xC0) {
            Some(i) if i < 192 => LATIN_BASE.chars().nth(i).unwrap_or(c),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(fold: Fold, convert_charset: Option<&str>) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            data_type: "varchar".into(),
            unsigned: false,
            generated: false,
            convert_charset: convert_charset.map(str::to_string),
            fold,
        }
    }

    fn text(value: Value, column: &ColumnInfo) -> String {
        let mut out = Vec::new();
        push(&mut out, &value, column);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn literals_keep_values_exact() {
        let c = column(Fold::Exact, None);
        assert_eq!(text(Value::Int(-5), &c), "-5");
        assert_eq!(text(Value::UInt(u64::MAX), &c), "18446744073709551615");
        assert_eq!(text(Value::Double(1.5e300), &c), "1.5e300");
        assert_eq!(text(Value::Double(-0.0), &c), "-0e0");
        assert_eq!(text(Value::Bytes(b"it's".to_vec()), &c), r"'it\'s'");
        assert_eq!(text(Value::Bytes(vec![0xff, 0]), &c), "X'FF00'");
        assert_eq!(
            text(Value::Bytes(vec![0xe9, 0x80]), &column(Fold::Exact, Some("latin1"))),
            "'é€'"
        );
        assert_eq!(
            text(Value::Bytes(vec![0xa4, 0xa1]), &column(Fold::Exact, Some("big5"))),
            "CONVERT(X'A4A1' USING big5)"
        );
        assert_eq!(text(Value::Date(2024, 2, 29, 1, 2, 3, 4), &c), "'2024-02-29 01:02:03.000004'");
    }

    #[test]
    fn keys_fold_as_the_collation_compares() {
        let key = |fold, v: &str| {
            let mut out = Vec::new();
            key_bytes(&mut out, &Value::Bytes(v.as_bytes().to_vec()), &column(fold, None));
            out
        };
        assert_eq!(key(Fold::TrimLower, "Ab  "), key(Fold::TrimLower, "aB"));
        assert_ne!(key(Fold::Trim, "Ab"), key(Fold::Trim, "ab"));
        assert_eq!(key(Fold::Trim, "ab "), key(Fold::Trim, "ab"));
        assert_ne!(key(Fold::Exact, "ab "), key(Fold::Exact, "ab"));
        assert_eq!(key(Fold::TrimLower, "Élan Ÿ"), key(Fold::TrimLower, "elan y "));
        assert_eq!(key(Fold::TrimLower, "ΣΑΣ"), key(Fold::TrimLower, "σασ"));
        assert_ne!(key(Fold::Trim, "é"), key(Fold::Trim, "e"));
    }

    #[test]
    fn the_latin_table_covers_its_range() {
        assert_eq!(LATIN_BASE.chars().count(), 192);
        assert_eq!(fold_text("ÀÿĀž"), "ayaz");
    }
}
