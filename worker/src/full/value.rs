//! Values as SQL text. The source is read with the text protocol in utf8mb4 and UTC, so every
//! value arrives as the server's own exact text: numbers are written as they are, text is quoted
//! and escaped byte for byte, and bytes without a character set go as hex literals.

use mysql_async::Value;

use super::objects::Render;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends one value.
pub fn push(out: &mut Vec<u8>, value: Option<&Value>, render: Render) {
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

pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return out.extend_from_slice(b"''");
    }
    out.reserve(bytes.len() * 2 + 3);
    out.extend_from_slice(b"X'");
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    out.push(b'\'');
}

/// Escapes for a session without NO_BACKSLASH_ESCAPES; utf8mb4 continuation bytes are never
/// ASCII, so escaping byte by byte is safe.
pub(crate) fn push_quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'\'');
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: Option<Value>, render: Render) -> String {
        let mut out = Vec::new();
        push(&mut out, value.as_ref(), render);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn values_render_exactly() {
        assert_eq!(text(None, Render::Quoted), "NULL");
        assert_eq!(text(Some(Value::Bytes(b"-12.50".to_vec())), Render::Raw), "-12.50");
        assert_eq!(text(Some(Value::Bytes(vec![0, 255, 39])), Render::Hex), "X'00FF27'");
        assert_eq!(text(Some(Value::Bytes(vec![])), Render::Hex), "''");
        assert_eq!(
            text(Some(Value::Bytes(b"it's \\ \0".to_vec())), Render::Quoted),
            r"'it\'s \\ \0'"
        );
        assert_eq!(text(Some(Value::Bytes("😀".as_bytes().to_vec())), Render::Quoted), "'😀'");
    }
}
