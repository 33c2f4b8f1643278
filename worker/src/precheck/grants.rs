//! `SHOW GRANTS` output, parsed into what a privilege check needs: which privileges hold on
//! `*.*`, on a database (or a wildcard database pattern) and on a table.
//!
//! The text differs between servers (backquotes on MySQL/MariaDB, single quotes on TiDB;
//! MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR), so the parser is lenient and
//! anything it does not understand (roles, PROXY, routines) grants nothing.

/// What one `SHOW GRANTS` line grants on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Global,
    /// A database name or a `LIKE`-style pattern (`%`, `_`, `\` escapes), as GRANT takes it.
    Database(String),
    Table(String, String),
    Other,
}

#[derive(Debug, Clone)]
struct Grant {
    /// Upper-case privilege names; column-level privileges are left out.
    privileges: Vec<String>,
    scope: Scope,
}

/// The grants of the connected user.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    grants: Vec<Grant>,
    /// Roles granted to the user (`GRANT role TO user`); their privileges count only when active.
    pub roles: Vec<String>,
    /// `WITH MAX_USER_CONNECTIONS n` (MariaDB shows it among the grants), when not 0.
    pub max_user_connections: Option<u64>,
}

impl Grants {
    /// Parses the lines of `SHOW GRANTS`.
    pub fn parse<S: AsRef<str>>(lines: &[S]) -> Self {
        let mut grants = Grants::default();
        for line in lines {
            grants.add_line(line.as_ref());
        }
        grants
    }

    fn add_line(&mut self, line: &str) {
        let Some(rest) = strip_prefix_ci(line.trim(), "GRANT ") else { return };
        if let Some(limit) = max_user_connections(line) {
            self.max_user_connections = Some(limit);
        }
        let Some(on) = find_top_level(rest, " ON ") else {
            // `GRANT role TO user`: a role, no privileges of its own.
            if let Some(to) = find_top_level(rest, " TO ") {
                self.roles.push(unquote(rest[..to].trim()));
            }
            return;
        };
        let privileges = split_top_level(&rest[..on])
            .into_iter()
            .map(|p| p.trim().to_ascii_uppercase())
            .filter(|p| !p.contains('('))
            .map(|p| normalize(&p))
            .collect();
        let object = &rest[on + 4..];
        let object = find_top_level(object, " TO ").map_or(object, |to| &object[..to]);
        self.grants.push(Grant { privileges, scope: parse_scope(object.trim()) });
    }

    /// Whether `privilege` holds on every object: granted on `*.*`.
    pub fn global(&self, privilege: &str) -> bool {
        self.grants.iter().any(|g| g.scope == Scope::Global && g.has(privilege))
    }

    /// Whether `privilege` holds on the whole database `db` (tables created later included).
    pub fn on_database(&self, privilege: &str, db: &str) -> bool {
        self.grants.iter().any(|g| {
            g.has(privilege)
                && match &g.scope {
                    Scope::Global => true,
                    Scope::Database(pattern) => like(pattern, db),
                    _ => false,
                }
        })
    }

    /// Whether `privilege` holds on the table `db`.`table`.
    pub fn on_table(&self, privilege: &str, db: &str, table: &str) -> bool {
        self.on_database(privilege, db)
            || self.grants.iter().any(|g| {
                g.has(privilege) && matches!(&g.scope, Scope::Table(d, t) if d == db && t == table)
            })
    }
}

impl Grant {
    fn has(&self, privilege: &str) -> bool {
        self.privileges.iter().any(|p| p == privilege || p == "ALL PRIVILEGES")
    }
}

/// One spelling per privilege: MariaDB's aliases map to the MySQL names Ferry asks about.
fn normalize(privilege: &str) -> String {
    match privilege {
        "ALL" => "ALL PRIVILEGES",
        "REPLICATION REPLICA" => "REPLICATION SLAVE",
        // MariaDB 10.5.2 renamed REPLICATION CLIENT; SHOW GRANTS shows the new name.
        "BINLOG MONITOR" => "REPLICATION CLIENT",
        other => other,
    }
    .to_string()
}

fn parse_scope(object: &str) -> Scope {
    let upper = object.to_ascii_uppercase();
    if upper.starts_with("FUNCTION ") || upper.starts_with("PROCEDURE ") || upper.contains('@') {
        return Scope::Other;
    }
    let object = strip_prefix_ci(object, "TABLE ").unwrap_or(object);
    let Some(dot) = find_top_level(object, ".") else { return Scope::Other };
    let (db, table) = (object[..dot].trim(), object[dot + 1..].trim());
    match (db, table) {
        ("*", "*") => Scope::Global,
        (_, "*") => Scope::Database(unquote(db)),
        _ => Scope::Table(unquote(db), unquote(table)),
    }
}

/// Removes backquotes or single quotes (TiDB) and undoes doubled quote characters.
fn unquote(text: &str) -> String {
    for quote in ['`', '\'', '"'] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            let inner = &text[1..text.len() - 1];
            return inner.replace(&format!("{quote}{quote}"), &quote.to_string());
        }
    }
    text.to_string()
}

/// Byte offset of `needle` (ASCII, matched case-insensitively) outside quotes and parentheses.
fn find_top_level(text: &str, needle: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let needle = needle.as_bytes();
    let mut quote: Option<u8> = None;
    let mut depth = 0usize;
    for i in 0..bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => continue,
            None => match c {
                b'`' | b'\'' | b'"' => quote = Some(c),
                b'(' => depth += 1,
                b')' => depth = depth.saturating_sub(1),
                _ if depth == 0
                    && bytes.len() - i >= needle.len()
                    && bytes[i..i + needle.len()].eq_ignore_ascii_case(needle) =>
                {
                    return Some(i);
                }
                _ => {}
            },
        }
    }
    None
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(comma) = find_top_level(rest, ",") {
        parts.push(&rest[..comma]);
        rest = &rest[comma + 1..];
    }
    parts.push(rest);
    parts
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

fn max_user_connections(line: &str) -> Option<u64> {
    let upper = line.to_ascii_uppercase();
    let at = upper.find("MAX_USER_CONNECTIONS ")?;
    let value: u64 = upper[at + 21..].split_whitespace().next()?.parse().ok()?;
    (value > 0).then_some(value)
}

/// MySQL's GRANT database patterns: `%` any run, `_` any one character, `\` escapes.
fn like(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    like_from(&pattern, &name)
}

fn like_from(pattern: &[char], name: &[char]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some('%') => (0..=name.len()).any(|skip| like_from(&pattern[1..], &name[skip..])),
        Some('_') => !name.is_empty() && like_from(&pattern[1..], &name[1..]),
        Some('\\') if pattern.len() > 1 => {
            name.first() == Some(&pattern[1]) && like_from(&pattern[2..], &name[1..])
        }
        Some(c) => name.first() == Some(c) && like_from(&pattern[1..], &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_grants_with_the_new_privilege_names() {
        let grants = Grants::parse(&[
            "GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO \
             `u`@`%` IDENTIFIED BY PASSWORD '*7B9E' WITH MAX_USER_CONNECTIONS 7",
            r"GRANT INSERT ON `app\_%`.* TO `u`@`%`",
            "GRANT SELECT (`a`), UPDATE ON `app`.`t` TO `u`@`%`",
        ]);
        assert!(grants.global("REPLICATION CLIENT"));
        assert!(grants.global("REPLICATION SLAVE"));
        assert!(grants.global("LOCK TABLES"));
        assert!(!grants.global("INSERT"));
        assert!(grants.on_database("INSERT", "app_1"));
        assert!(!grants.on_database("INSERT", "appx1"), "escaped _ is literal");
        assert!(grants.on_table("UPDATE", "app", "t"));
        assert!(!grants.on_table("UPDATE", "app", "u"));
        assert!(!grants.on_database("UPDATE", "app"));
        assert_eq!(grants.max_user_connections, Some(7));
    }

    #[test]
    fn all_privileges_roles_tidb_quotes_and_proxy() {
        let grants = Grants::parse(&[
            "GRANT ALL PRIVILEGES ON 'shop'.* TO 'ferry'@'%'",
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
            "GRANT `migrator` TO `ferry`@`%`",
        ]);
        assert!(grants.on_table("DELETE", "shop", "orders"));
        assert!(!grants.global("SELECT"));
        assert_eq!(grants.roles, ["migrator"]);
    }

    #[test]
    fn grants_with_quoted_names_containing_keywords() {
        let grants = Grants::parse(&["GRANT SELECT ON `a TO b`.`x.y` TO `u`@`%`"]);
        assert!(grants.on_table("SELECT", "a TO b", "x.y"));
    }

    #[test]
    fn like_patterns() {
        assert!(like("app%", "application"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like(r"a\%", "a%"));
        assert!(!like(r"a\%", "ab"));
    }
}
