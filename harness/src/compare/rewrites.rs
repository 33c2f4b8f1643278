//! What may legitimately differ between a source definition and its copy on the target, in one
//! place. Two kinds of difference are allowed and nothing else:
//! - how a server *prints* the same definition (default quoting, `current_timestamp()` spelling,
//!   the text of expressions and views it re-prints), canonicalised on both sides;
//! - what the copy *rewrites on purpose* for a TiDB target (worker/src/full/schema.rs:
//!   collations TiDB lacks, `utf8mb3` spelled `utf8`, engines), applied to the source side only,
//!   so the target must show exactly the rewritten definition.
//!
//! The lists are written out here rather than taken from the worker, so a wrong rewrite in the
//! copy still shows up as a difference.

use super::Flavour;

/// Collations TiDB lacks and the one the copy creates instead (same list as the copy's, kept
/// separate on purpose: the proof must not trust the code it checks).
const TIDB_COLLATIONS: &[(&str, &str)] = &[
    // TiDB has no latin1 collation but latin1_bin.
    ("latin1_swedish_ci", "latin1_bin"),
    // MariaDB 11's default utf8mb4 collation; TiDB's nearest is MySQL 8's default.
    ("utf8mb4_uca1400_ai_ci", "utf8mb4_0900_ai_ci"),
];

/// The collation the copy must have created on a `target` for a source `collation`.
pub fn expected_collation(collation: &str, target: Flavour) -> String {
    if target != Flavour::TiDb {
        return collation.to_string();
    }
    if let Some((_, to)) = TIDB_COLLATIONS.iter().find(|(from, _)| *from == collation) {
        return to.to_string();
    }
    // TiDB spells utf8mb3 (MariaDB's name for MySQL's 3-byte utf8) as utf8.
    match collation.strip_prefix("utf8mb3_") {
        Some(rest) => format!("utf8_{rest}"),
        None => collation.to_string(),
    }
}

/// The character set the copy must have created on a `target` for a source `charset`.
pub fn expected_charset(charset: &str, target: Flavour) -> String {
    if target == Flavour::TiDb && charset == "utf8mb3" { "utf8".into() } else { charset.into() }
}

/// The column type as the copy must have created it: `utf8mb3` inside ENUM/SET member lists
/// never appears, so only the spelling rules of the type itself apply.
pub fn expected_column_type(column_type: &str, source: Flavour, target: Flavour) -> String {
    if source == target {
        return column_type.to_string();
    }
    if mariadb_json(column_type, source, target) {
        return "longtext".into();
    }
    canonical_column_type(column_type)
}

/// MariaDB has no JSON type: `JSON` there is `LONGTEXT CHARACTER SET utf8mb4 COLLATE
/// utf8mb4_bin` with a `json_valid` check, so that is what a MySQL or TiDB JSON column becomes
/// (its values are still compared as JSON).
pub fn mariadb_json(column_type: &str, source: Flavour, target: Flavour) -> bool {
    target == Flavour::MariaDb && source != Flavour::MariaDb && column_type == "json"
}

/// The character set and collation of MariaDB's JSON (see [`mariadb_json`]).
pub const MARIADB_JSON_CHARSET: (&str, &str) = ("utf8mb4", "utf8mb4_bin");

/// Column types printed the same way by every server: integer display widths are dropped
/// (MySQL 8.0.19+ and TiDB stopped printing them; they never changed what a column holds,
/// except TINYINT(1) which MySQL keeps and so do we), MariaDB's `year(4)` is MySQL's `year`
/// (the only YEAR there is), and letter case is ignored.
pub fn canonical_column_type(column_type: &str) -> String {
    let lower = column_type.to_ascii_lowercase();
    if lower == "year(4)" {
        return "year".into();
    }
    for int in ["bigint", "mediumint", "smallint", "tinyint", "int"] {
        if let Some(rest) = lower.strip_prefix(int)
            && let Some(rest) = rest.strip_prefix('(')
            && let Some(end) = rest.find(')')
            && !(int == "tinyint" && &rest[..end] == "1")
        {
            return format!("{int}{}", &rest[end + 1..]);
        }
    }
    lower
}

/// A column default as one text for every server: MariaDB prints defaults as SQL (`'abc'`,
/// `NULL`, `current_timestamp()`), MySQL and TiDB print the bare value (`abc`, SQL NULL,
/// `CURRENT_TIMESTAMP`). `None` is "no default / NULL"; a string default is its bare text.
pub fn canonical_default(default: Option<&str>, flavour: Flavour) -> Option<String> {
    let default = default?;
    let text = if flavour == Flavour::MariaDb {
        if default == "NULL" {
            return None;
        }
        match default.strip_prefix('\'').and_then(|d| d.strip_suffix('\'')) {
            Some(literal) => return Some(literal.replace("''", "'")),
            None => default.to_string(),
        }
    } else {
        default.to_string()
    };
    Some(canonical_function(&text))
}

/// `current_timestamp()` (MariaDB), `CURRENT_TIMESTAMP` (MySQL, TiDB) and `now()` (a MySQL
/// expression default that TiDB prints as `CURRENT_TIMESTAMP`) are the same function.
fn canonical_function(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let lower = match lower.strip_prefix("now(") {
        Some(rest) => format!("current_timestamp({rest}"),
        None => lower,
    };
    match lower.strip_prefix("current_timestamp") {
        Some("" | "()") => "current_timestamp".into(),
        Some(rest) if rest.starts_with('(') => format!("current_timestamp{rest}"),
        _ => text.to_string(),
    }
}

/// The EXTRA column as one text for every server: MySQL and TiDB add `DEFAULT_GENERATED` to an
/// expression default (the default itself is compared), and spell `on update` differently.
pub fn canonical_extra(extra: &str) -> String {
    extra
        .to_ascii_lowercase()
        .replace("default_generated", "")
        .replace("current_timestamp()", "current_timestamp")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Expression and view texts re-printed by another kind of server: compared without backquotes,
/// whitespace, letter case and qualifying database names (TiDB prints `select a from t`, MariaDB
/// `select `d`.`t`.`a` AS `a` from `d`.`t``). Between servers of the same kind the text is
/// compared exactly.
pub fn canonical_text(text: &str, database: &str, source: Flavour, target: Flavour) -> String {
    if source == target {
        return text.to_string();
    }
    let qualifier = format!("{}.", database.to_ascii_lowercase());
    let text: String = text
        .to_ascii_lowercase()
        .replace('`', "")
        .replace(&qualifier, "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    without_enclosing_parentheses(&text).to_string()
}

/// `(id*3)` as `id*3`: MySQL prints a generation expression inside parentheses, MariaDB and TiDB
/// without. Only a pair that encloses the whole text is taken off (`(a)+(b)` stays).
fn without_enclosing_parentheses(text: &str) -> &str {
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return text;
    };
    let mut depth = 0i32;
    for c in inner.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return text;
        }
    }
    inner
}

/// A view's definition re-printed by another kind of server: as [`canonical_text`], without
/// parentheses (MariaDB wraps joins in them, TiDB does not), table qualifiers (MariaDB
/// qualifies every column, TiDB keeps a replicated statement's names as written) and character
/// set introducers (TiDB adds `_utf8mb4` to literals). What a view returns is compared too, row
/// by row, so a change of meaning still shows.
pub fn canonical_view(text: &str, database: &str, source: Flavour, target: Flavour) -> String {
    if source == target {
        return text.to_string();
    }
    let text = without_qualifiers(&text.to_ascii_lowercase().replace('`', ""));
    let text = canonical_text(&text, database, source, target);
    text.replace(['(', ')'], "").replace("_utf8mb4'", "'")
}

/// `t.id` as `id` (not `1.5`), outside string literals.
fn without_qualifiers(text: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut out = String::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted && is_word(c) {
            word.push(c);
            continue;
        }
        let qualifier = c == '.'
            && !word.is_empty()
            && !word.starts_with(|w: char| w.is_ascii_digit())
            && chars.peek().is_some_and(|n| is_word(*n));
        if !qualifier {
            out.push_str(&word);
            out.push(c);
        }
        word.clear();
    }
    out.push_str(&word);
    out
}

/// A view column's type as every server names it: TiDB says `var_string` where the others say
/// `varchar` (a string function's result).
pub fn canonical_view_column_type(column_type: &str) -> String {
    column_type.replacen("var_string", "varchar", 1)
}

/// Whether a view's columns are compared in full (nullability, character set, collation,
/// default) or only by name, position and type: TiDB does not derive those details for a
/// view's columns (it reports every one nullable, without a character set).
pub fn compares_view_column_details(sides: super::schema::Sides) -> bool {
    sides.source == sides.target
}

/// A foreign key's ON UPDATE / ON DELETE rule: MariaDB prints the default as RESTRICT, TiDB as
/// NO ACTION; InnoDB and TiDB both check NO ACTION at once, exactly like RESTRICT.
pub fn canonical_fk_rule(rule: String, source: Flavour, target: Flavour) -> String {
    if source != target && rule == "NO ACTION" { "RESTRICT".into() } else { rule }
}

/// Whether the engine is compared: TiDB reports InnoDB for every table whatever the source
/// engine (the copy replaces Aria and MyISAM with InnoDB there on purpose).
pub fn compares_engine(target: Flavour) -> bool {
    target != Flavour::TiDb
}

/// Whether CHECK constraints are compared: only between MariaDB servers. TiDB parses and drops
/// them unless `tidb_enable_check_constraint` is on (the copy does not turn it on), and MySQL
/// and TiDB list them without their table.
pub fn compares_checks(source: Flavour, target: Flavour) -> bool {
    source == Flavour::MariaDb && target == Flavour::MariaDb
}

/// Whether a view's ALGORITHM and CHECK OPTION are compared: only between servers of the same
/// kind (TiDB ignores ALGORITHM and reports CASCADED for every view, with or without a check
/// option; MySQL's `VIEWS` table has no ALGORITHM column).
pub fn compares_view_options(source: Flavour, target: Flavour) -> bool {
    source == target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_definitions_without_qualifiers_and_introducers() {
        let (m, t) = (Flavour::MariaDb, Flavour::TiDb);
        assert_eq!(
            canonical_view("select `t`.`id` AS `id`,1.5 AS `x`,'a.b' from `app`.`t`", "app", m, t),
            canonical_view("SELECT id AS id, 1.5 AS x, _utf8mb4'a.b' FROM t", "app", m, t)
        );
        assert_eq!(canonical_view_column_type("var_string(21)"), "varchar(21)");
    }

    #[test]
    fn tidb_collations() {
        assert_eq!(expected_collation("latin1_swedish_ci", Flavour::TiDb), "latin1_bin");
        assert_eq!(expected_collation("utf8mb3_general_ci", Flavour::TiDb), "utf8_general_ci");
        assert_eq!(expected_collation("latin1_swedish_ci", Flavour::MariaDb), "latin1_swedish_ci");
        assert_eq!(expected_charset("utf8mb3", Flavour::TiDb), "utf8");
    }

    #[test]
    fn column_types_without_display_widths() {
        assert_eq!(canonical_column_type("int(11) unsigned"), "int unsigned");
        assert_eq!(canonical_column_type("tinyint(1)"), "tinyint(1)");
        assert_eq!(canonical_column_type("tinyint(4)"), "tinyint");
        assert_eq!(canonical_column_type("varchar(10)"), "varchar(10)");
        assert_eq!(canonical_column_type("decimal(10,2)"), "decimal(10,2)");
    }

    #[test]
    fn generation_texts_across_kinds() {
        let text = |t| canonical_text(t, "d", Flavour::MySql, Flavour::MariaDb);
        assert_eq!(text("(`id` * 3)"), "id*3");
        assert_eq!(text("(a) + (b)"), "(a)+(b)");
        assert_eq!(text("((a + b))"), "(a+b)");
        assert_eq!(canonical_column_type("year(4)"), "year");
    }

    #[test]
    fn defaults_of_every_flavour() {
        let maria = |d| canonical_default(Some(d), Flavour::MariaDb);
        let tidb = |d| canonical_default(Some(d), Flavour::TiDb);
        assert_eq!(maria("NULL"), None);
        assert_eq!(maria("'NULL'"), tidb("NULL"));
        assert_eq!(maria("'a''b'"), tidb("a'b"));
        assert_eq!(maria("current_timestamp(3)"), tidb("CURRENT_TIMESTAMP(3)"));
        assert_eq!(maria("current_timestamp()"), tidb("CURRENT_TIMESTAMP"));
        let mysql = |d| canonical_default(Some(d), Flavour::MySql);
        assert_eq!(mysql("now()"), tidb("CURRENT_TIMESTAMP"));
        assert_eq!(mysql("now(3)"), tidb("CURRENT_TIMESTAMP(3)"));
        assert_eq!(maria("1.5"), tidb("1.5"));
    }
}
