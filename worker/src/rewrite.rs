//! The one table of definition rewrites for a target: what the copy does to the source's
//! `SHOW CREATE` output, what replication does to a DDL statement from the binlog, and what the
//! precheck announces (collations), all from here.
//!
//! The statement is read as tokens, so words inside string literals, comments and backquoted
//! names are never touched, and the application's own spelling (`engine = myisam`) is understood
//! as well as the server's (`ENGINE=MyISAM`). MySQL version comments (`/*!40100 ... */`) are
//! read as code, as the servers read them.

use std::collections::HashMap;

use crate::flavor::Flavor;

/// Collations TiDB lacks, and the nearest one created instead.
const TIDB_COLLATIONS: &[(&str, &str)] =
    &[("latin1_swedish_ci", "latin1_bin"), ("utf8mb4_uca1400_ai_ci", "utf8mb4_0900_ai_ci")];

/// Engines TiDB is given as InnoDB (it ignores engines; the copy names the one it has).
const TIDB_ENGINES: &[&str] = &["Aria", "MyISAM"];

/// Table options of MariaDB's Aria engine that TiDB's parser refuses: dropped.
const TIDB_DROPPED_OPTIONS: &[&str] = &["PAGE_CHECKSUM", "TRANSACTIONAL"];

/// The collation created on TiDB for a source collation (the same, if TiDB has it).
pub fn tidb_collation(collation: &str) -> String {
    let lower = collation.to_ascii_lowercase();
    if let Some((_, to)) = TIDB_COLLATIONS.iter().find(|(from, _)| *from == lower) {
        return to.to_string();
    }
    match lower.strip_prefix("utf8mb3_") {
        Some(rest) => format!("utf8_{rest}"),
        None => collation.to_string(),
    }
}

/// The character set created on TiDB for a source character set (`utf8mb3` is spelled `utf8`).
pub fn tidb_charset(charset: &str) -> String {
    if charset.eq_ignore_ascii_case("utf8mb3") { "utf8".into() } else { charset.into() }
}

/// What the rewrites need to know besides the statement.
#[derive(Debug, Clone, Default)]
pub struct Rewrites {
    pub target: Option<Flavor>,
    pub source: Option<Flavor>,
    /// The source's default collation of each character set (lower case), to name it where a
    /// statement gives a character set alone and the target's default differs.
    pub source_default_collations: HashMap<String, String>,
}

impl Rewrites {
    pub fn new(source: Flavor, target: Flavor) -> Self {
        Self { target: Some(target), source: Some(source), ..Default::default() }
    }

    /// The source's default collations, read from its information_schema.
    pub async fn with_source_defaults(
        mut self,
        source: &mut mysql_async::Conn,
    ) -> crate::Result<Self> {
        use crate::error::SqlContext;
        use mysql_async::prelude::Queryable;
        let rows: Vec<(String, String)> = source
            .query(
                "SELECT CHARACTER_SET_NAME, DEFAULT_COLLATE_NAME FROM information_schema.CHARACTER_SETS",
            )
            .await
            .sql("read the source's default collations")?;
        self.source_default_collations =
            rows.into_iter().map(|(c, d)| (c.to_ascii_lowercase(), d)).collect();
        Ok(self)
    }

    /// `sql` adapted for the target, each change logged with `object` (a table name, or the
    /// statement's binlog position).
    pub fn apply(&self, object: &str, sql: &str) -> String {
        let (out, changes) = self.adapt(sql);
        for change in &changes {
            tracing::info!(object, adaptation = %change, target = ?self.target, "definition adapted for the target");
        }
        out
    }

    /// `sql` adapted for the target, and what was changed, in words.
    pub fn adapt(&self, sql: &str) -> (String, Vec<String>) {
        match self.target {
            Some(Flavor::TiDb) => self.adapt_for_tidb(sql),
            Some(Flavor::MariaDb) if self.source == Some(Flavor::MySql) => mysql_for_mariadb(sql),
            _ => (sql.to_string(), Vec::new()),
        }
    }

    fn adapt_for_tidb(&self, sql: &str) -> (String, Vec<String>) {
        let tokens = lex(sql);
        let sig: Vec<&Token> = tokens.iter().filter(|t| t.kind.significant()).collect();
        let text = |t: &Token| &sql[t.start..t.end];
        let word = |i: usize| sig.get(i).filter(|t| t.kind == Kind::Word).map(|t| text(t));
        let is = |i: usize, w: &str| word(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
        let punct =
            |i: usize, p: &str| sig.get(i).is_some_and(|t| t.kind == Kind::Punct && text(t) == p);
        // The index of an option's value: after `=` when there is one.
        let value_at = |i: usize| if punct(i + 1, "=") { i + 2 } else { i + 1 };
        let mut edits: Vec<Edit> = Vec::new();
        for i in 0..sig.len() {
            let Some(w) = word(i) else { continue };
            let upper = w.to_ascii_uppercase();
            if upper == "ENGINE" {
                let v = value_at(i);
                if let Some(engine) =
                    word(v).and_then(|e| TIDB_ENGINES.iter().find(|x| x.eq_ignore_ascii_case(e)))
                {
                    edits.push(Edit::replace(
                        sig[v],
                        "InnoDB",
                        format!("engine {engine} replaced by InnoDB (TiDB ignores engines)"),
                    ));
                }
            } else if TIDB_DROPPED_OPTIONS.contains(&upper.as_str())
                && sig.get(value_at(i)).is_some()
            {
                let v = value_at(i);
                let (start, end) = if i > 0 && punct(i - 1, ",") {
                    (sig[i - 1].start, sig[v].end)
                } else if punct(v + 1, ",") {
                    (sig[i].start, sig.get(v + 2).map_or(sig[v + 1].end, |t| t.start))
                } else {
                    (if i > 0 { sig[i - 1].end } else { sig[i].start }, sig[v].end)
                };
                edits.push(Edit {
                    start,
                    end,
                    with: String::new(),
                    note: format!("Aria table option {upper} dropped"),
                });
            } else if upper == "COLLATE" {
                let v = value_at(i);
                if let Some(t) = sig.get(v) {
                    let name = unquoted(text(t));
                    let to = tidb_collation(name);
                    if !to.eq_ignore_ascii_case(name) {
                        edits.push(Edit::replace(
                            t,
                            &to,
                            format!("collation {name} replaced by {to}"),
                        ));
                    }
                }
            } else if let Some(v) = charset_value(i, &is, &punct) {
                let Some(t) = sig.get(v) else { continue };
                let name = unquoted(text(t));
                let to = tidb_charset(name);
                if to != name {
                    edits.push(Edit::replace(t, &to, "utf8mb3 spelled utf8".into()));
                }
                if upper != "USING" && !casts(i, &is, &punct) && !collation_near(i, v, &is) {
                    let default = self.source_default_collations.get(&name.to_ascii_lowercase());
                    if let Some(default) = default {
                        let collation = tidb_collation(default);
                        edits.push(Edit {
                            start: t.end,
                            end: t.end,
                            with: format!(" COLLATE {collation}"),
                            note: format!("character set {name} given its source default collation {default} as {collation}"),
                        });
                    }
                }
            } else if upper == "JSON"
                && self.source == Some(Flavor::MariaDb)
                && is_column_type(&sig, i, sql)
            {
                edits.push(Edit::replace(
                    sig[i],
                    MARIADB_JSON,
                    "MariaDB JSON (a LONGTEXT) created as that LONGTEXT".into(),
                ));
            } else if let Some(rest) = upper.strip_prefix("_UTF8MB3")
                && rest.is_empty()
                && sig.get(i + 1).is_some_and(|t| t.kind == Kind::Str)
            {
                edits.push(Edit::replace(sig[i], "_utf8", "utf8mb3 spelled utf8".into()));
            }
        }
        apply_edits(sql, edits)
    }
}

/// What `JSON` is on MariaDB: the copy creates it as such (SHOW CREATE prints it so).
const MARIADB_JSON: &str = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin";

/// Whether the word at `i` stands where a column's type does: after the column's name, not
/// where a name is expected, and not a function call.
fn is_column_type(sig: &[&Token], i: usize, sql: &str) -> bool {
    const BEFORE_NAMES: &[&str] = &[
        "ADD", "COLUMN", "MODIFY", "CHANGE", "DROP", "AFTER", "ALTER", "TABLE", "TO", "AS", "ON",
        "BY", "KEY", "INDEX",
    ];
    let text = |t: &Token| &sql[t.start..t.end];
    let Some(prev) = i.checked_sub(1).map(|p| sig[p]) else { return false };
    let named = match prev.kind {
        Kind::Ident => true,
        Kind::Word => !BEFORE_NAMES.iter().any(|w| w.eq_ignore_ascii_case(text(prev))),
        _ => false,
    };
    let call = sig.get(i + 1).is_some_and(|t| matches!(text(t), "(" | "."));
    named && !call
}

/// For a word at `i` that starts a character set clause (`CHARSET`, `CHARACTER SET`, `CHAR SET`,
/// `USING`), the index of its value.
fn charset_value(
    i: usize,
    is: &impl Fn(usize, &str) -> bool,
    punct: &impl Fn(usize, &str) -> bool,
) -> Option<usize> {
    let after = if is(i, "CHARSET") || is(i, "USING") {
        i + 1
    } else if (is(i, "CHARACTER") || is(i, "CHAR")) && is(i + 1, "SET") {
        i + 2
    } else {
        return None;
    };
    Some(if punct(after, "=") { after + 1 } else { after })
}

/// `AS CHAR[(n)] CHARACTER SET x` (a CAST): no collation may follow there.
fn casts(
    i: usize,
    is: &impl Fn(usize, &str) -> bool,
    punct: &impl Fn(usize, &str) -> bool,
) -> bool {
    if i >= 2 && is(i - 1, "CHAR") && is(i - 2, "AS") {
        return true;
    }
    i >= 5 && punct(i - 1, ")") && punct(i - 3, "(") && is(i - 4, "CHAR") && is(i - 5, "AS")
}

/// Whether a COLLATE clause stands right before the charset clause at `i` or right after its
/// value at `v` (table options may give either first).
fn collation_near(i: usize, v: usize, is: &impl Fn(usize, &str) -> bool) -> bool {
    let before = (i.saturating_sub(4)..i).any(|j| is(j, "COLLATE"));
    let after = is(v + 1, "COLLATE") || (is(v + 1, "DEFAULT") && is(v + 2, "COLLATE"));
    before || after
}

fn unquoted(text: &str) -> &str {
    text.trim_matches(|c| c == '`' || c == '\'' || c == '"')
}

struct Edit {
    start: usize,
    end: usize,
    with: String,
    note: String,
}

impl Edit {
    fn replace(token: &Token, with: &str, note: String) -> Self {
        Self { start: token.start, end: token.end, with: with.to_string(), note }
    }
}

fn apply_edits(sql: &str, mut edits: Vec<Edit>) -> (String, Vec<String>) {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    let mut notes: Vec<String> = Vec::new();
    for edit in edits {
        if edit.start < at {
            continue;
        }
        out.push_str(&sql[at..edit.start]);
        out.push_str(&edit.with);
        at = edit.end;
        if !notes.contains(&edit.note) {
            notes.push(edit.note);
        }
    }
    out.push_str(&sql[at..]);
    (out, notes)
}

/// MySQL's SHOW CREATE TABLE writes `/*!80023 INVISIBLE */` and `/*!80003 SRID n */` as version
/// comments, which MariaDB skips (its versions are 10.x, 11.x): the column would turn visible
/// and lose its SRID. MariaDB spells them `INVISIBLE` and `REF_SYSTEM_ID=n`.
fn mysql_for_mariadb(create: &str) -> (String, Vec<String>) {
    let mut out = create.to_string();
    let mut notes = Vec::new();
    if out.contains(MYSQL_INVISIBLE) {
        out = out.replace(MYSQL_INVISIBLE, "INVISIBLE");
        notes.push("MySQL INVISIBLE columns kept invisible on MariaDB".to_string());
    }
    while let Some(start) = out.find(MYSQL_SRID) {
        let Some(rewritten) = srid_after_type(&out, start) else { break };
        out = rewritten;
        notes.push("MySQL SRID written as MariaDB's REF_SYSTEM_ID".to_string());
    }
    notes.dedup();
    (out, notes)
}

const MYSQL_INVISIBLE: &str = "/*!80023 INVISIBLE */";
const MYSQL_SRID: &str = "/*!80003 SRID ";

/// Moves the `/*!80003 SRID n */` at `start` to `REF_SYSTEM_ID=n` right after its column's type
/// (MariaDB accepts it only there). SHOW CREATE TABLE puts each column on its own line, which
/// starts with the backquoted name; None when the text is not that shape.
fn srid_after_type(create: &str, start: usize) -> Option<String> {
    let rest = &create[start + MYSQL_SRID.len()..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = rest[digits..].strip_prefix(" */").filter(|_| digits > 0)?;
    let srid = &rest[..digits];
    let line = create[..start].rfind('\n').map_or(0, |i| i + 1);
    let name_end = closing_backquote(&create[line..start])? + line;
    let type_start = name_end + 2;
    let type_len = create[type_start..start].find([' ', ',', '(']).unwrap_or(start - type_start);
    let type_end = type_start + type_len;
    let before = create[type_end..start].trim_end();
    Some(format!("{} REF_SYSTEM_ID={srid}{before}{tail}", &create[..type_end]))
}

/// The index of the backquote closing the name that `line` starts with (after indentation).
fn closing_backquote(line: &str) -> Option<usize> {
    let open = line.find('`')?;
    let bytes = line.as_bytes();
    let mut i = open + 1;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'`', Some(b'`')) => i += 2,
            (b'`', _) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The statements of a script, split at the `;` that end them (not those inside strings,
/// names or comments); empty ones left out.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    for token in lex(script) {
        if token.kind == Kind::Punct && &script[token.start..token.end] == ";" {
            statements.push(script[start..token.start].trim().to_string());
            start = token.end;
        }
    }
    statements.push(script[start..].trim().to_string());
    statements.retain(|s| !s.is_empty());
    statements
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A bare word or number.
    Word,
    /// A backquoted name.
    Ident,
    /// A string literal.
    Str,
    Punct,
    /// Whitespace, comments and the markers of version comments.
    Skip,
}

impl Kind {
    fn significant(self) -> bool {
        self != Kind::Skip
    }
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// The tokens of a statement, as byte ranges of it.
fn lex(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut in_version_comment = false;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            Kind::Skip
        } else if in_version_comment && sql[i..].starts_with("*/") {
            in_version_comment = false;
            i += 2;
            Kind::Skip
        } else if let Some(len) = version_comment_open(&sql[i..]) {
            in_version_comment = true;
            i += len;
            Kind::Skip
        } else if sql[i..].starts_with("/*") {
            i = sql[i + 2..].find("*/").map_or(bytes.len(), |e| i + 2 + e + 2);
            Kind::Skip
        } else if sql[i..].starts_with("-- ") || c == b'#' {
            i = sql[i..].find('\n').map_or(bytes.len(), |e| i + e);
            Kind::Skip
        } else if c == b'`' || c == b'\'' || c == b'"' {
            i = quoted_end(bytes, i);
            if c == b'`' { Kind::Ident } else { Kind::Str }
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || matches!(bytes[i], b'_' | b'$')
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            Kind::Word
        } else {
            i += sql[i..].chars().next().map_or(1, char::len_utf8);
            Kind::Punct
        };
        tokens.push(Token { kind, start, end: i });
    }
    tokens
}

/// The length of `/*!12345 ` or `/*M!12345 ` (or without a version) at the start of `text`.
fn version_comment_open(text: &str) -> Option<usize> {
    let rest = text.strip_prefix("/*!").or_else(|| text.strip_prefix("/*M!"))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some(text.len() - rest.len() + digits)
}

/// The end of the quoted token starting at `i` (quotes doubled or backslash-escaped inside).
fn quoted_end(bytes: &[u8], i: usize) -> usize {
    let quote = bytes[i];
    let mut j = i + 1;
    while j < bytes.len() {
        if bytes[j] == b'\\' && quote != b'`' {
            j += 2;
        } else if bytes[j] == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tidb(sql: &str) -> String {
        let mut rewrites = Rewrites::new(Flavor::MariaDb, Flavor::TiDb);
        rewrites.source_default_collations =
            [("utf8mb4", "utf8mb4_general_ci"), ("latin1", "latin1_swedish_ci")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        rewrites.adapt(sql).0
    }

    #[test]
    fn show_create_output_is_adapted_for_tidb() {
        let create = "CREATE TABLE `t` (`a` int) ENGINE=Aria DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci PAGE_CHECKSUM=1";
        assert_eq!(
            tidb(create),
            "CREATE TABLE `t` (`a` int) ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_bin"
        );
        let create = "CREATE TABLE `u` (`b` text CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci)";
        assert_eq!(
            tidb(create),
            "CREATE TABLE `u` (`b` text CHARACTER SET utf8 COLLATE utf8_general_ci)"
        );
        let db = "CREATE DATABASE `d` /*!40100 DEFAULT CHARACTER SET latin1 COLLATE latin1_swedish_ci */";
        assert_eq!(
            tidb(db),
            "CREATE DATABASE `d` /*!40100 DEFAULT CHARACTER SET latin1 COLLATE latin1_bin */"
        );
    }

    #[test]
    fn statements_as_applications_write_them() {
        assert_eq!(
            tidb("alter table t engine = myisam, page_checksum = 1"),
            "alter table t engine = InnoDB"
        );
        assert_eq!(
            tidb("ALTER TABLE t TRANSACTIONAL=0, ENGINE=Aria"),
            "ALTER TABLE t ENGINE=InnoDB"
        );
        assert_eq!(
            tidb("ALTER TABLE t ADD c VARCHAR(5) CHARACTER SET utf8mb4, ADD d INT"),
            "ALTER TABLE t ADD c VARCHAR(5) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, ADD d INT"
        );
        assert_eq!(
            tidb("ALTER TABLE t CONVERT TO CHARACTER SET latin1"),
            "ALTER TABLE t CONVERT TO CHARACTER SET latin1 COLLATE latin1_bin"
        );
        assert_eq!(
            tidb("ALTER TABLE t MODIFY c TEXT CHARSET utf8mb4 COLLATE utf8mb4_uca1400_ai_ci"),
            "ALTER TABLE t MODIFY c TEXT CHARSET utf8mb4 COLLATE utf8mb4_0900_ai_ci"
        );
    }

    #[test]
    fn strings_comments_and_names_are_left_alone() {
        let sql = "ALTER TABLE `engine` ADD `c` INT COMMENT 'ENGINE=Aria utf8mb3 latin1_swedish_ci' /* ENGINE=MyISAM */";
        assert_eq!(tidb(sql), sql);
        let cast = "ALTER TABLE t ADD g VARCHAR(9) AS (CAST(a AS CHAR(9) CHARACTER SET utf8mb4))";
        assert_eq!(tidb(cast), cast);
        assert_eq!(tidb("SELECT _utf8mb3'x'"), "SELECT _utf8'x'");
        assert_eq!(
            tidb("ALTER TABLE t ADD json JSON, ADD `j` json NOT NULL"),
            "ALTER TABLE t ADD json LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, \
             ADD `j` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        );
    }

    #[test]
    fn scripts_split_at_their_semicolons() {
        assert_eq!(
            split_statements("ALTER TABLE t ADD c INT COMMENT 'a;b';\n-- x;\nDROP INDEX i ON t;\n"),
            vec!["ALTER TABLE t ADD c INT COMMENT 'a;b'", "-- x;\nDROP INDEX i ON t"]
        );
    }

    #[test]
    fn other_targets_keep_the_statement() {
        let sql = "ALTER TABLE t ENGINE=Aria";
        assert_eq!(Rewrites::new(Flavor::MariaDb, Flavor::MariaDb).adapt(sql).0, sql);
    }

    #[test]
    fn mysql_version_comments_are_made_real_for_mariadb() {
        let create = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  \
            `s` int DEFAULT NULL /*!80023 INVISIBLE */,\n  \
            `p` point NOT NULL /*!80003 SRID 4326 */,\n  \
            `a``b` geometry /*!80003 SRID 0 */ DEFAULT NULL,\n  PRIMARY KEY (`id`)\n)";
        assert_eq!(
            mysql_for_mariadb(create).0,
            "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `s` int DEFAULT NULL INVISIBLE,\n  \
            `p` point REF_SYSTEM_ID=4326 NOT NULL,\n  \
            `a``b` geometry REF_SYSTEM_ID=0 DEFAULT NULL,\n  PRIMARY KEY (`id`)\n)"
        );
        // Anything else after the marker is left alone rather than guessed at.
        let odd = "CREATE TABLE `t` (\n  `p` point /*!80003 SRID x */\n)";
        assert_eq!(mysql_for_mariadb(odd).0, odd);
    }

    #[test]
    fn collations_tidb_lacks_are_replaced() {
        assert_eq!(tidb_collation("latin1_swedish_ci"), "latin1_bin");
        assert_eq!(tidb_collation("utf8mb3_unicode_ci"), "utf8_unicode_ci");
        assert_eq!(tidb_collation("utf8mb4_bin"), "utf8mb4_bin");
    }
}
