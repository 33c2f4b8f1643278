//! What the operator checks on a MigrationSource: it connects with the referenced credentials
//! and reads the server's version and binary log settings. Connection and these source-level
//! items only; the job-level precheck (privileges, tables, target) runs in the worker pod as
//! its first stage.

use std::collections::BTreeMap;

use ferry_crds::source::{BinlogSettings, SourceType};
use ferry_worker::config::Endpoint;
use ferry_worker::connect::{ConnectError, connect};
use mysql_async::prelude::Queryable;

/// What the server said about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerFacts {
    pub version: String,
    pub flavor: String,
    pub binlog: BinlogSettings,
}

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("connected to the source {endpoint}, but reading its settings failed: {source}")]
    Query { endpoint: String, source: mysql_async::Error },
}

impl CheckError {
    /// The Ready condition's reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(e) if e.access_denied() => "AuthenticationFailed",
            _ => "Unreachable",
        }
    }
}

const VARIABLES: &str = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('version', 'version_comment', \
    'log_bin', 'binlog_format', 'binlog_row_image', 'server_id', 'binlog_expire_logs_seconds', \
    'expire_logs_days', 'gtid_mode', 'gtid_strict_mode')";

/// Connects and reads the facts.
pub async fn check(endpoint: &Endpoint) -> Result<ServerFacts, CheckError> {
    let mut conn = connect(endpoint, "source").await?;
    let query_err = |source| CheckError::Query { endpoint: endpoint.describe(), source };
    let rows: Vec<(String, String)> = conn.query(VARIABLES).await.map_err(query_err)?;
    let _ = conn.disconnect().await;
    Ok(facts(&rows.into_iter().collect()))
}

/// Interprets `SHOW GLOBAL VARIABLES` output.
pub fn facts(vars: &BTreeMap<String, String>) -> ServerFacts {
    let get = |k: &str| vars.get(k).cloned();
    let version = get("version").unwrap_or_default();
    let comment = get("version_comment").unwrap_or_default();
    let mariadb =
        version.to_lowercase().contains("mariadb") || comment.to_lowercase().contains("mariadb");
    let on = |v: Option<String>| v.map(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    let seconds =
        get("binlog_expire_logs_seconds").and_then(|s| s.parse::<i64>().ok()).filter(|s| *s > 0);
    let days = get("expire_logs_days").and_then(|d| d.parse::<f64>().ok()).filter(|d| *d > 0.0);
    let retention = seconds.or(days.map(|d| (d * 86_400.0) as i64)).or(Some(0));
    let gtid_mode = if mariadb {
        Some(format!(
            "MariaDB (strict mode {})",
            get("gtid_strict_mode").unwrap_or_else(|| "OFF".into())
        ))
    } else {
        get("gtid_mode")
    };
    ServerFacts {
        version,
        flavor: if mariadb { "MariaDB" } else { "MySQL" }.into(),
        binlog: BinlogSettings {
            log_bin: on(get("log_bin")),
            format: get("binlog_format"),
            row_image: get("binlog_row_image"),
            retention_seconds: retention,
            server_id: get("server_id").and_then(|s| s.parse().ok()),
            gtid_mode,
        },
    }
}

/// Problems that keep the source from replicating (incremental jobs), each with a remedy;
/// empty when binlog replication can run. Retention 0 means "kept until purged by hand".
pub fn binlog_problems(facts: &ServerFacts, source_type: SourceType) -> Vec<String> {
    let b = &facts.binlog;
    let mut problems = Vec::new();
    let config = if source_type.is_managed() { "the parameter group" } else { "my.cnf" };
    if b.log_bin != Some(true) {
        problems.push(format!("log_bin is OFF: set log_bin in {config} and restart the server"));
    }
    if !b.format.as_deref().is_some_and(|f| f.eq_ignore_ascii_case("ROW")) {
        problems.push(format!(
            "binlog_format is {}: set binlog_format = ROW",
            b.format.as_deref().unwrap_or("unknown")
        ));
    }
    if !b.row_image.as_deref().is_some_and(|f| f.eq_ignore_ascii_case("FULL")) {
        problems.push(format!(
            "binlog_row_image is {}: set binlog_row_image = FULL",
            b.row_image.as_deref().unwrap_or("unknown")
        ));
    }
    if b.server_id.unwrap_or(0) <= 0 {
        problems.push("server_id is 0: set a server_id greater than 0".into());
    }
    if let Some(r) = b.retention_seconds.filter(|r| *r > 0 && *r < 86_400) {
        problems.push(format!(
            "binary logs are kept {r}s: keep them at least 1 day (binlog_expire_logs_seconds = 604800 recommended)"
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_refused_password_is_an_authentication_failure() {
        let failed = |code| {
            CheckError::Connect(ConnectError::Failed {
                role: "source",
                endpoint: "ferry@db:3306".into(),
                hint: "",
                source: mysql_async::Error::Server(mysql_async::ServerError {
                    code,
                    message: "Access denied".into(),
                    state: "28000".into(),
                }),
            })
        };
        assert_eq!(failed(1045).reason(), "AuthenticationFailed");
        assert_eq!(failed(2013).reason(), "Unreachable");
        let timeout = ConnectError::Timeout {
            role: "source",
            endpoint: "ferry@db:3306".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        assert_eq!(CheckError::Connect(timeout).reason(), "Unreachable");
    }

    #[test]
    fn mariadb_with_row_binlogs_passes() {
        let f = facts(&vars(&[
            ("version", "10.11.19-MariaDB-0+deb12u1"),
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("server_id", "7"),
            ("expire_logs_days", "7.000000"),
        ]));
        assert_eq!(f.flavor, "MariaDB");
        assert_eq!(f.binlog.retention_seconds, Some(604_800));
        assert!(binlog_problems(&f, SourceType::MariaDB).is_empty());
    }

    #[test]
    fn each_missing_setting_names_its_remedy() {
        let f = facts(&vars(&[
            ("version", "8.0.36"),
            ("log_bin", "OFF"),
            ("binlog_format", "STATEMENT"),
            ("binlog_row_image", "MINIMAL"),
            ("server_id", "0"),
            ("binlog_expire_logs_seconds", "3600"),
            ("gtid_mode", "ON"),
        ]));
        assert_eq!(f.flavor, "MySQL");
        let problems = binlog_problems(&f, SourceType::RDSMySQL).join("\n");
        for expected in ["parameter group", "ROW", "FULL", "server_id", "at least 1 day"] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
    }
}
