//! SQL text shared by every stage: identifiers here, values as literals in [`literal`], and the
//! size of the statements the copy and replication build.

pub mod literal;

pub use literal::quote_str;

/// Largest multi-row statement: one stops growing once it holds this many bytes.
pub const MAX_STATEMENT: usize = 1 << 20;

/// Backquotes an identifier (database, table or column name) for MySQL and TiDB.
pub fn quote_ident(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

/// `db`.`table`, quoted.
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(database), quote_ident(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_backquotes_are_escaped() {
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(qualified("a b", "c"), "`a b`.`c`");
    }
}
