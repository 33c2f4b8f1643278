//! MySQL's binary JSON in row events: rendered as the text MySQL itself prints for the column,
//! and partial updates (`binlog_row_value_options=PARTIAL_JSON`) applied to the before image.
//!
//! Values MySQL keeps as opaque scalars inside a document (DECIMAL, DATE, TIME, DATETIME) are
//! rendered as MySQL renders them: decimals as numbers with their scale, temporals as strings.

use mysql_async::binlog::jsonb::{self, JsonContainer, JsonDom, JsonNumber, JsonScalar};
use mysql_async::binlog::jsondiff::{JsonDiff, JsonDiffOperation};

/// The text of a binary JSON value.
pub fn text(value: jsonb::Value<'_>) -> Result<Vec<u8>, String> {
    Ok(render(&parse(value)?).into_bytes())
}

/// Applies a partial update's diffs to the column's before image; returns the new text.
pub fn apply_diffs(before: jsonb::Value<'_>, diffs: &[JsonDiff<'_>]) -> Result<Vec<u8>, String> {
    let mut doc = parse(before)?;
    for diff in diffs {
        apply(&mut doc, diff).map_err(|e| {
            format!("partial JSON update {:?} at {}: {e}", diff.operation(), diff.path_str())
        })?;
    }
    Ok(render(&doc).into_bytes())
}

fn parse(value: jsonb::Value<'_>) -> Result<JsonDom, String> {
    value.parse().map_err(|e| format!("JSON value: {e}"))
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Leg {
    Member(String),
    /// `[n]`
    Index(usize),
    /// `[last]` (0) or `[last-n]` (n)
    FromLast(usize),
}

fn apply(doc: &mut JsonDom, diff: &JsonDiff<'_>) -> Result<(), String> {
    let legs = parse_path(&diff.path_str())?;
    let value = || -> Result<JsonDom, String> {
        let value = diff.value().ok_or("the diff carries no value")?;
        parse(value.clone())
    };
    let Some((last, parents)) = legs.split_last() else {
        return match diff.operation() {
            JsonDiffOperation::REPLACE => {
                *doc = value()?;
                Ok(())
            }
            _ => Err("the path is the whole document".into()),
        };
    };
    let parent = seek(doc, parents).ok_or("the path does not exist in the before image")?;
    match (diff.operation(), parent, last) {
        (JsonDiffOperation::REPLACE, parent, leg) => {
            *child(parent, leg).ok_or("the path does not exist in the before image")? = value()?;
        }
        (
            JsonDiffOperation::INSERT,
            JsonDom::Container(JsonContainer::Object(o)),
            Leg::Member(k),
        ) => {
            o.insert(k.clone(), value()?);
        }
        (JsonDiffOperation::INSERT, JsonDom::Container(JsonContainer::Array(a)), leg) => {
            let at = index(leg, a.len()).unwrap_or(a.len()).min(a.len());
            a.insert(at, value()?);
        }
        (
            JsonDiffOperation::REMOVE,
            JsonDom::Container(JsonContainer::Object(o)),
            Leg::Member(k),
        ) => {
            o.remove(k);
        }
        (JsonDiffOperation::REMOVE, JsonDom::Container(JsonContainer::Array(a)), leg) => {
            if let Some(at) = index(leg, a.len()).filter(|&at| at < a.len()) {
                a.remove(at);
            }
        }
        _ => return Err("the path's parent is not a container of that kind".into()),
    }
    Ok(())
}

fn seek<'a>(mut doc: &'a mut JsonDom, legs: &[Leg]) -> Option<&'a mut JsonDom> {
    for leg in legs {
        doc = child(doc, leg)?;
    }
    Some(doc)
}

fn child<'a>(doc: &'a mut JsonDom, leg: &Leg) -> Option<&'a mut JsonDom> {
    match (doc, leg) {
        (JsonDom::Container(JsonContainer::Object(o)), Leg::Member(k)) => o.get_mut(k),
        (JsonDom::Container(JsonContainer::Array(a)), leg) => {
            let at = index(leg, a.len())?;
            a.get_mut(at)
        }
        // MySQL treats a scalar as a one-element array: `$[0]` and `$[last]` are the scalar.
        (doc @ JsonDom::Scalar(_), leg) if index(leg, 1) == Some(0) => Some(doc),
        _ => None,
    }
}

/// The array position a leg names in an array of `len` elements.
fn index(leg: &Leg, len: usize) -> Option<usize> {
    match leg {
        Leg::Index(i) => Some(*i),
        Leg::FromLast(back) => len.checked_sub(1 + back),
        Leg::Member(_) => None,
    }
}

/// Parses the normalized paths MySQL writes into diffs: `$`, `.key`, `."quoted key"`, `[n]`,
/// `[last]`, `[last-n]`.
fn parse_path(path: &str) -> Result<Vec<Leg>, String> {
    let bad = |why: &str| format!("JSON path {path:?}: {why}");
    let mut rest = path.trim().strip_prefix('$').ok_or_else(|| bad("does not start with $"))?;
    let mut legs = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(legs);
        }
        if let Some(after) = rest.strip_prefix('.') {
            let (key, tail) = member(after.trim_start()).ok_or_else(|| bad("bad member"))?;
            legs.push(Leg::Member(key));
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('[') {
            let (inner, tail) = after.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            legs.push(array_leg(inner.trim()).ok_or_else(|| bad("bad array index"))?);
            rest = tail;
        } else {
            return Err(bad("expected . or ["));
        }
    }
}

/// A member name, quoted (a JSON string) or bare, and the rest of the path.
fn member(text: &str) -> Option<(String, &str)> {
    if text.starts_with('"') {
        let mut escaped = false;
        let end = text.char_indices().skip(1).find_map(|(i, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes.then_some(i)
        })?;
        let key = serde_json::from_str(&text[..=end]).ok()?;
        return Some((key, &text[end + 1..]));
    }
    let end = text.find(['.', '[']).unwrap_or(text.len());
    (end > 0).then(|| (text[..end].trim_end().to_string(), &text[end..]))
}

fn array_leg(inner: &str) -> Option<Leg> {
    match inner.strip_prefix("last") {
        Some("") => Some(Leg::FromLast(0)),
        Some(back) => {
            Some(Leg::FromLast(back.trim_start().strip_prefix('-')?.trim().parse().ok()?))
        }
        None => Some(Leg::Index(inner.parse().ok()?)),
    }
}

/// MySQL's JSON text: `", "` and `": "` separators, object keys by length and then bytes.
fn render(dom: &JsonDom) -> String {
    let mut out = String::new();
    render_into(dom, &mut out);
    out
}

fn render_into(dom: &JsonDom, out: &mut String) {
    match dom {
        JsonDom::Container(JsonContainer::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(item, out);
            }
            out.push(']');
        }
        JsonDom::Container(JsonContainer::Object(members)) => {
            let mut members: Vec<_> = members.iter().collect();
            members.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, (key, value)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(key));
                out.push_str(": ");
                render_into(value, out);
            }
            out.push('}');
        }
        JsonDom::Scalar(scalar) => out.push_str(&scalar_text(scalar)),
    }
}

fn scalar_text(scalar: &JsonScalar) -> String {
    match scalar {
        JsonScalar::Number(JsonNumber::Decimal(d)) => d.to_string(),
        JsonScalar::String(s) => quote(s),
        // Literals, other numbers, temporals (as strings) and other opaque values
        // (`"base64:typeN:..."`) print as mysql_common's JSON conversion prints them.
        other => serde_json::Value::from(other.clone()).to_string(),
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_as_mysql_writes_them() {
        assert_eq!(parse_path("$").ok(), Some(vec![]));
        assert_eq!(
            parse_path(r#"$.a."b c"[2][last][last-1]."q\"x""#).ok(),
            Some(vec![
                Leg::Member("a".into()),
                Leg::Member("b c".into()),
                Leg::Index(2),
                Leg::FromLast(0),
                Leg::FromLast(1),
                Leg::Member("q\"x".into()),
            ])
        );
        for bad in ["a.b", "$[x]", "$.", "$[1", "$.\"open"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn objects_render_with_mysql_key_order_and_spacing() {
        let mut members = std::collections::BTreeMap::new();
        for (k, v) in [("bb", 1), ("a", 2), ("ab", 3)] {
            members.insert(k.to_string(), JsonDom::Scalar(JsonScalar::Number(JsonNumber::Int(v))));
        }
        let doc = JsonDom::Container(JsonContainer::Array(vec![
            JsonDom::Container(JsonContainer::Object(members)),
            JsonDom::Scalar(JsonScalar::String("q\"\n".into())),
            JsonDom::Scalar(JsonScalar::Null),
        ]));
        assert_eq!(render(&doc), r#"[{"a": 2, "ab": 3, "bb": 1}, "q\"\n", null]"#);
    }
}
