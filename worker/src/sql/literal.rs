//! Values as SQL literals, for the statements both stages send as text (multi-row statements
//! avoid preparing one statement per row count). Exact data depends on every byte written here:
//! numbers go as the server's own text, text quoted and escaped byte for byte (the target session
//! keeps backslash escapes), bytes without a character set as hex literals.

use mysql_async::Value;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// How a column's value, read by the copy, is written into SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Numbers (integers, DECIMAL, DOUBLE, YEAR): the text as it is.
    Raw,
    /// Bytes with no character set (BINARY, BLOB, BIT, spatial): a hex literal.
    Hex,
    /// Text in a character set, dates, times, ENUM, SET, JSON: a quoted string.
    Quoted,
}

/// Appends one value the copy read. The source is read with the text protocol in utf8mb4 and
/// UTC, so every value arrives as the server's own exact text, written as `render` says.
pub fn push_read(out: &mut Vec<u8>, value: Option<&Value>, render: Render) {
    let bytes: &[u8] = match value {
        None | Some(Value::NULL) => return out.extend_from_slice(b"NULL"),
        Some(Value::Bytes(bytes)) => bytes,
        // The text protocol only gives bytes; anything else is written by its SQL form.
        Some(other) => return out.extend_from_slice(other.as_sql(false).as_bytes()),
    };
    match render {
        Render::Raw => out.extend_from_slice(bytes),
        Render::Hex => push_hex(out, bytes),
        Render::Quoted => push_quoted(out, bytes),
    }
}

/// Appends one binlog value of a column whose strings are in `convert_charset` (`None`: utf8mb4
/// or no character set). Text goes quoted and escaped, bytes that are not UTF-8 as hex, and
/// strings of columns in another charset as their own bytes converted from that charset, as the
/// row-by-row path does.
pub fn push_binlog(out: &mut Vec<u8>, value: &Value, convert_charset: Option<&str>) {
    match value {
        Value::NULL => out.extend_from_slice(b"NULL"),
        Value::Bytes(bytes) => push_binlog_bytes(out, bytes, convert_charset),
        // Exponent notation keeps large and small doubles exact and short; `-0e0` keeps the sign.
        Value::Double(x) => out.extend_from_slice(format!("{x:e}").as_bytes()),
        Value::Float(x) => out.extend_from_slice(format!("{x:e}").as_bytes()),
        other => out.extend_from_slice(other.as_sql(false).as_bytes()),
    }
}

fn push_binlog_bytes(out: &mut Vec<u8>, bytes: &[u8], convert_charset: Option<&str>) {
    if let Some(text) = latin1_text(convert_charset, bytes) {
        push_quoted(out, text.as_bytes());
    } else if let Some(charset) = convert_charset {
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
/// columns' text as UTF-8, so its bytes must not be sent as latin1); `None` for other charsets.
pub fn latin1_text(convert_charset: Option<&str>, bytes: &[u8]) -> Option<String> {
    let charset = convert_charset?;
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

/// Appends a hex literal (`''` for no bytes).
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return out.extend_from_slice(b"''");
    }
    out.reserve(bytes.len() * 2 + 3);
    out.extend_from_slice(b"X'");
    push_hex_digits(out, bytes);
    out.push(b'\'');
}

/// Appends two hex digits per byte, nothing else.
pub fn push_hex_digits(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// A quoted string literal, escaped by [`push_escaped`].
pub fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'\'');
    push_escaped(out, bytes);
    out.push(b'\'');
}

/// Backslash escapes that read back as the same bytes both inside a quoted literal of a session
/// without NO_BACKSLASH_ESCAPES and in a `LOAD DATA` field escaped by `\\` and ended by a tab or
/// a newline (the copy's two ways of writing rows). utf8mb4 continuation bytes are never ASCII,
/// so escaping byte by byte is safe.
pub fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
}

/// A single-quoted string literal with backslashes and quotes escaped.
pub fn quote_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: Option<Value>, render: Render) -> String {
        let mut out = Vec::new();
        push_read(&mut out, value.as_ref(), render);
        String::from_utf8(out).expect("utf8")
    }

    fn binlog(value: Value, convert_charset: Option<&str>) -> String {
        let mut out = Vec::new();
        push_binlog(&mut out, &value, convert_charset);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn values_render_exactly() {
        assert_eq!(read(None, Render::Quoted), "NULL");
        assert_eq!(read(Some(Value::Bytes(b"-12.50".to_vec())), Render::Raw), "-12.50");
        assert_eq!(read(Some(Value::Bytes(vec![0, 255, 39])), Render::Hex), "X'00FF27'");
        assert_eq!(read(Some(Value::Bytes(vec![])), Render::Hex), "''");
        assert_eq!(
            read(Some(Value::Bytes(b"it's \\ \0".to_vec())), Render::Quoted),
            r"'it\'s \\ \0'"
        );
        assert_eq!(read(Some(Value::Bytes("😀".as_bytes().to_vec())), Render::Quoted), "'😀'");
    }

    #[test]
    fn literals_keep_values_exact() {
        assert_eq!(binlog(Value::Int(-5), None), "-5");
        assert_eq!(binlog(Value::UInt(u64::MAX), None), "18446744073709551615");
        assert_eq!(binlog(Value::Double(1.5e300), None), "1.5e300");
        assert_eq!(binlog(Value::Double(-0.0), None), "-0e0");
        assert_eq!(binlog(Value::Bytes(b"it's".to_vec()), None), r"'it\'s'");
        assert_eq!(binlog(Value::Bytes(vec![0xff, 0]), None), "X'FF00'");
        assert_eq!(binlog(Value::Bytes(vec![0xe9, 0x80]), Some("latin1")), "'é€'");
        assert_eq!(
            binlog(Value::Bytes(vec![0xa4, 0xa1]), Some("big5")),
            "CONVERT(X'A4A1' USING big5)"
        );
        assert_eq!(
            binlog(Value::Date(2024, 2, 29, 1, 2, 3, 4), None),
            "'2024-02-29 01:02:03.000004'"
        );
    }

    #[test]
    fn strings_with_quotes_and_backslashes_are_escaped() {
        assert_eq!(quote_str(r"it's a \ test"), r"'it''s a \\ test'");
    }
}
