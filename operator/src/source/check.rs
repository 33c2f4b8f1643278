//! What the operator checks on a MigrationSource: it connects with the referenced credentials and
//! judges the server with the worker's own precheck items for binlog readiness
//! ([`ferry_worker::precheck::binlog_readiness`]), so a source is never BinlogReady while a
//! job's precheck fails it on the same rule. The job-level items (privileges, tables, target)
//! run in the worker pod as its first stage.

use ferry_crds::source::SourceType;
use ferry_worker::config::Endpoint;
use ferry_worker::connect::{ConnectError, connect};
use ferry_worker::precheck::{BinlogReadiness, PrecheckError, binlog_readiness};

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("connected to the source {endpoint}, but reading its settings failed: {source}")]
    Read {
        endpoint: String,
        #[source]
        source: PrecheckError,
    },
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

/// Connects and judges the source's binlog readiness.
pub async fn check(
    endpoint: &Endpoint,
    source_type: SourceType,
) -> Result<BinlogReadiness, CheckError> {
    let mut conn = connect(endpoint, "source").await?;
    let readiness = binlog_readiness(&mut conn, source_type).await;
    drop(conn.disconnect().await);
    readiness.map_err(|source| CheckError::Read { endpoint: endpoint.describe(), source })
}

/// A condition as the status shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionValue {
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The BinlogReady condition: True when no readiness item fails, else every failed item with
/// its remedy, as the job's precheck would name it.
pub fn binlog_ready(readiness: &BinlogReadiness) -> ConditionValue {
    let problems = readiness.problems();
    if problems.is_empty() {
        let message = "binary log settings allow replication".to_string();
        return ConditionValue { status: true, reason: "BinlogReady", message };
    }
    let message = format!("{} (full copies still work)", problems.join("; "));
    ConditionValue { status: false, reason: "BinlogSettings", message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
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
        let readiness = BinlogReadiness::judge(
            SourceType::MariaDB,
            "10.11.19-MariaDB-0+deb12u1",
            vars(&[
                ("log_bin", "ON"),
                ("binlog_format", "ROW"),
                ("binlog_row_image", "FULL"),
                ("server_id", "7"),
                ("expire_logs_days", "7.000000"),
            ]),
            None,
        );
        assert_eq!(readiness.version.flavor.to_string(), "MariaDB");
        assert_eq!(readiness.binlog.retention_seconds, Some(604_800));
        let ready = binlog_ready(&readiness);
        assert!(ready.status, "{}", ready.message);
    }

    #[test]
    fn each_missing_setting_names_its_remedy() {
        let readiness = BinlogReadiness::judge(
            SourceType::RDSMySQL,
            "8.0.36",
            vars(&[
                ("log_bin", "OFF"),
                ("binlog_format", "STATEMENT"),
                ("binlog_row_image", "MINIMAL"),
                ("server_id", "0"),
                ("binlog_expire_logs_seconds", "3600"),
                ("gtid_mode", "ON"),
            ]),
            // RDS keeps binary logs for 'binlog retention hours', whatever the variables say.
            Some(Some(1.0)),
        );
        assert_eq!(readiness.version.flavor.to_string(), "MySQL");
        let ready = binlog_ready(&readiness);
        assert!(!ready.status);
        assert_eq!(ready.reason, "BinlogSettings");
        for expected in [
            "automated backups",
            "binlog_format = ROW in a custom DB parameter group",
            "binlog_row_image = FULL",
            "server_id",
            "'binlog retention hours', 168",
        ] {
            assert!(ready.message.contains(expected), "{expected}: {}", ready.message);
        }
    }
}
