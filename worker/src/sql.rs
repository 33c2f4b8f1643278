//! Small SQL text helpers shared by every stage.

/// Backquotes an identifier (database, table or column name) for MySQL and TiDB.
pub fn quote_ident(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

/// `db`.`table`, quoted.
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(database), quote_ident(table))
}

/// A single-quoted string literal with backslashes and quotes escaped.
pub fn quote_str(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_backquotes_are_escaped() {
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(qualified("a b", "c"), "`a b`.`c`");
    }

    #[test]
    fn strings_with_quotes_and_backslashes_are_escaped() {
        assert_eq!(quote_str(r"it's a \ test"), r"'it''s a \\ test'");
    }
}
