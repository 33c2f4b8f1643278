//! Values as key material: the bytes by which two row keys compare equal exactly when the
//! target's collation says so (see [`Fold`]), for finding the changes of one row.

use mysql_async::Value;

use super::schema::{ColumnInfo, Fold};
use crate::sql::literal;

/// A value as key material: its literal, normalized as the column compares (see [`Fold`]).
pub fn key_bytes(out: &mut Vec<u8>, value: &Value, column: &ColumnInfo) {
    let Value::Bytes(bytes) = value else {
        return literal::push_binlog(out, value, column.convert_charset.as_deref());
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

    fn column(fold: Fold) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            data_type: "varchar".into(),
            unsigned: false,
            generated: false,
            convert_charset: None,
            fold,
        }
    }

    #[test]
    fn keys_fold_as_the_collation_compares() {
        let key = |fold, v: &str| {
            let mut out = Vec::new();
            key_bytes(&mut out, &Value::Bytes(v.as_bytes().to_vec()), &column(fold));
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
