//! What a precheck reads about a server as a whole: version and flavor, the global variables
//! the checks look at, connection usage and the user's grants. One round trip each.

use std::collections::BTreeMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::PrecheckError;
use super::grants::Grants;

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

/// Global variables the checks read (names in lower case). Absent ones do not exist on the
/// server's version or flavor.
const VARIABLES: &[&str] = &[
    "aurora_server_id",
    "aurora_version",
    "binlog_expire_logs_seconds",
    "binlog_format",
    "binlog_row_image",
    "datadir",
    "expire_logs_days",
    "hostname",
    "innodb_read_only",
    "log_bin",
    "log_bin_compress",
    "log_replica_updates",
    "log_slave_updates",
    "max_allowed_packet",
    "max_connections",
    "max_user_connections",
    "port",
    "read_only",
    "server_id",
    "server_uuid",
    "super_read_only",
    "tidb_super_read_only",
];

/// What a server told about itself.
#[derive(Debug, Clone)]
pub struct Server {
    pub version: Version,
    pub variables: BTreeMap<String, String>,
    pub threads_connected: Option<u64>,
    /// `user@host` as the server matched the login (for GRANT statements in remedies).
    pub current_user: String,
    pub grants: Grants,
}

impl Server {
    pub async fn read(conn: &mut Conn) -> Result<Self, PrecheckError> {
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(PrecheckError::sql("read VERSION()"))?;
        let names: Vec<String> = VARIABLES.iter().map(|v| format!("'{v}'")).collect();
        let sql = format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})", names.join(", "));
        let rows: Vec<(String, Option<String>)> =
            conn.query(sql).await.map_err(PrecheckError::sql("read global variables"))?;
        let variables = rows
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.unwrap_or_default()))
            .collect();
        let status: Vec<(String, Option<String>)> = conn
            .query("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
            .await
            .map_err(PrecheckError::sql("read Threads_connected"))?;
        let current_user: Option<String> = conn
            .query_first("SELECT CURRENT_USER()")
            .await
            .map_err(PrecheckError::sql("CURRENT_USER()"))?;
        let grant_lines: Vec<String> =
            conn.query("SHOW GRANTS").await.map_err(PrecheckError::sql("SHOW GRANTS"))?;
        Ok(Self {
            version: Version::parse(&version.unwrap_or_default()),
            variables,
            threads_connected: status.first().and_then(|(_, v)| v.as_deref()?.parse().ok()),
            current_user: current_user.unwrap_or_default(),
            grants: Grants::parse(&grant_lines),
        })
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// A boolean variable: ON/1/TRUE. Absent: false.
    pub fn on(&self, name: &str) -> bool {
        self.var(name)
            .is_some_and(|v| matches!(v.to_ascii_uppercase().as_str(), "ON" | "1" | "TRUE"))
    }

    pub fn number(&self, name: &str) -> Option<f64> {
        self.var(name)?.trim().parse().ok()
    }

    /// `'user'@'host'` for a GRANT statement.
    pub fn grantee(&self) -> String {
        match self.current_user.rsplit_once('@') {
            Some((user, host)) => format!("'{user}'@'{host}'"),
            None => format!("'{}'@'%'", self.current_user),
        }
    }
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
}
