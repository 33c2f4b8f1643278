//! Which kind of server answered (MySQL, MariaDB, TiDB) and its version, and the statements
//! whose spelling depends on them. Every stage asks here instead of trying one spelling and then
//! another, so an error from a statement is a real error, not a guess that failed.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::error::SqlContext;

/// Which server family answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MySql,
    MariaDb,
    TiDb,
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MySql => "MySQL",
            Self::MariaDb => "MariaDB",
            Self::TiDb => "TiDB",
        })
    }
}

/// `VERSION()` split into what the checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub text: String,
    pub flavor: Flavor,
    pub major: u32,
    pub minor: u32,
}

impl Version {
    /// Parses `8.0.35`, `5.7.44-log`, `10.11.19-MariaDB-0+deb12u1`, `8.0.11-TiDB-v7.5.0`.
    pub fn parse(text: &str) -> Self {
        let flavor = if text.contains("MariaDB") {
            Flavor::MariaDb
        } else if text.contains("TiDB") {
            Flavor::TiDb
        } else {
            Flavor::MySql
        };
        // MariaDB may prefix 5.5.5- for old clients; VERSION() does not, but be safe.
        let numbers = text.strip_prefix("5.5.5-").unwrap_or(text);
        let mut parts = numbers.split(|c: char| !c.is_ascii_digit());
        let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let (major, minor) = (next(), next());
        Self { text: text.to_string(), flavor, major, minor }
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `MariaDB 10.11.19-MariaDB-0+deb12u1`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.flavor, self.text)
    }
}

impl Version {
    /// `SELECT VERSION()` of the server `conn` talks to.
    pub async fn read(conn: &mut Conn) -> Result<Self, mysql_async::Error> {
        let text: Option<String> = conn.query_first("SELECT VERSION()").await?;
        Ok(Self::parse(&text.unwrap_or_default()))
    }

    /// The statement showing the binlog file and position being written: MySQL 8.2 added
    /// `SHOW BINARY LOG STATUS` and 8.4 removed `SHOW MASTER STATUS`, which MariaDB and older
    /// MySQL versions know.
    pub fn binlog_status_sql(&self) -> &'static str {
        if self.flavor == Flavor::MySql && self.at_least(8, 2) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }

    /// The query for the GTIDs the server has logged: MariaDB's GTID position, or MySQL's
    /// executed GTID set.
    pub fn gtid_sql(&self) -> &'static str {
        if self.flavor == Flavor::MariaDb {
            "SELECT @@GLOBAL.gtid_binlog_pos"
        } else {
            "SELECT @@GLOBAL.gtid_executed"
        }
    }
}

/// The binlog file and position the server is writing (`SHOW BINARY LOG STATUS` or `SHOW MASTER
/// STATUS`, as `version` spells it); None when the binary log is off.
pub async fn binlog_status(
    conn: &mut Conn,
    version: &Version,
) -> crate::Result<Option<(String, u64)>> {
    let sql = version.binlog_status_sql();
    let row: Option<mysql_async::Row> =
        conn.query_first(sql).await.sql(format!("{sql} on the source"))?;
    Ok(row.and_then(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?))))
}

/// The GTIDs the server has logged (MariaDB's position, MySQL's executed set); None when empty.
pub async fn gtid_executed(conn: &mut Conn, version: &Version) -> crate::Result<Option<String>> {
    let sql = version.gtid_sql();
    let value: Option<Option<String>> = conn.query_first(sql).await.sql(sql)?;
    Ok(value.flatten().filter(|g| !g.trim().is_empty()))
}

/// Which server answers at the source's address, so that a resume notices when another one (a
/// promoted replica after a failover) took its place, and whether its binlog can be resumed by
/// GTID, which means the same on every server of a replication topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// MySQL's `server_uuid`, or `server_id=N` for MariaDB (which has no uuid).
    pub id: String,
    /// MySQL with `gtid_mode=ON`, or MariaDB (which gives every transaction a GTID).
    pub gtids: bool,
}

impl ServerIdentity {
    /// From the server's variables (`variable` gives one by its lowercase name).
    pub fn from_variables<'a>(flavor: Flavor, variable: impl Fn(&str) -> Option<&'a str>) -> Self {
        if flavor == Flavor::MariaDb {
            let id = variable("server_id").unwrap_or("0");
            return Self { id: format!("server_id={id}"), gtids: true };
        }
        // ON_PERMISSIVE and OFF_PERMISSIVE still log transactions without a GTID.
        let gtids = variable("gtid_mode").is_some_and(|mode| mode.eq_ignore_ascii_case("ON"));
        Self { id: variable("server_uuid").unwrap_or_default().to_string(), gtids }
    }
}

/// The identity of the server `conn` talks to.
pub async fn server_identity(conn: &mut Conn, version: &Version) -> crate::Result<ServerIdentity> {
    let sql = if version.flavor == Flavor::MariaDb {
        "SELECT @@GLOBAL.server_id, NULL, NULL"
    } else {
        "SELECT @@GLOBAL.server_id, @@GLOBAL.server_uuid, @@GLOBAL.gtid_mode"
    };
    let row: Option<(String, Option<String>, Option<String>)> =
        conn.query_first(sql).await.sql(sql)?;
    let (server_id, uuid, mode) = row.unwrap_or_default();
    Ok(ServerIdentity::from_variables(version.flavor, |name| match name {
        "server_id" => Some(server_id.as_str()),
        "server_uuid" => uuid.as_deref(),
        "gtid_mode" => mode.as_deref(),
        _ => None,
    }))
}

/// Whether a column is generated, from its `EXTRA` in information_schema.COLUMNS: `VIRTUAL
/// GENERATED` or `STORED GENERATED` (MySQL and MariaDB), `PERSISTENT` (older MariaDB). MySQL's
/// `DEFAULT_GENERATED` is not one: it marks an expression default (`DEFAULT (UUID())`, `DEFAULT
/// CURRENT_TIMESTAMP`), a column whose values are copied and replicated like any other.
pub fn is_generated_column(extra: &str) -> bool {
    extra.split_whitespace().any(|word| {
        ["VIRTUAL", "STORED", "PERSISTENT"].iter().any(|kind| word.eq_ignore_ascii_case(kind))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_each_flavor() {
        let maria = Version::parse("10.11.19-MariaDB-0+deb12u1");
        assert_eq!((maria.flavor, maria.major, maria.minor), (Flavor::MariaDb, 10, 11));
        let mysql = Version::parse("5.7.44-log");
        assert_eq!((mysql.flavor, mysql.major, mysql.minor), (Flavor::MySql, 5, 7));
        let tidb = Version::parse("8.0.11-TiDB-v7.5.0");
        assert_eq!(tidb.flavor, Flavor::TiDb);
        assert!(Version::parse("8.0.35").at_least(5, 7));
        assert!(!Version::parse("5.6.51").at_least(5, 7));
        assert_eq!(Version::parse("5.5.5-10.6.1-MariaDB").major, 10);
    }

    #[test]
    fn expression_defaults_are_not_generated_columns() {
        for generated in ["VIRTUAL GENERATED", "STORED GENERATED", "PERSISTENT", "VIRTUAL"] {
            assert!(is_generated_column(generated), "{generated}");
        }
        for plain in [
            "",
            "DEFAULT_GENERATED",
            "DEFAULT_GENERATED on update CURRENT_TIMESTAMP",
            "on update current_timestamp()",
            "auto_increment",
            "INVISIBLE",
        ] {
            assert!(!is_generated_column(plain), "{plain}");
        }
    }

    #[test]
    fn binlog_status_is_spelled_by_flavor_and_version() {
        let status = |v: &str| Version::parse(v).binlog_status_sql();
        assert_eq!(status("9.7.4-2"), "SHOW BINARY LOG STATUS");
        assert_eq!(status("8.4.3"), "SHOW BINARY LOG STATUS");
        assert_eq!(status("8.2.0"), "SHOW BINARY LOG STATUS");
        assert_eq!(status("8.0.40"), "SHOW MASTER STATUS");
        assert_eq!(status("5.7.44-log"), "SHOW MASTER STATUS");
        assert_eq!(status("11.8.2-MariaDB"), "SHOW MASTER STATUS");
        assert_eq!(
            Version::parse("10.11.19-MariaDB").gtid_sql(),
            "SELECT @@GLOBAL.gtid_binlog_pos"
        );
        assert_eq!(Version::parse("9.7.4").gtid_sql(), "SELECT @@GLOBAL.gtid_executed");
    }
}
