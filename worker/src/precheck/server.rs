//! What a precheck reads about a server as a whole: version and flavor, the global variables
//! the checks look at, connection usage and the user's grants. One round trip each.

use std::collections::BTreeMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::PrecheckError;
use super::grants::Grants;

pub use crate::flavor::{Flavor, Version};

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
    "gtid_mode",
    "gtid_strict_mode",
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
        let version = Version::read(conn).await.map_err(PrecheckError::sql("read VERSION()"))?;
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
            version,
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
