//! `MigrationSource`: a MySQL-compatible server to migrate from.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{SecretKeyRef, TlsConfig};

/// A MySQL-compatible server Ferry migrates from, and the credentials to reach it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferry.dev",
    version = "v1alpha1",
    kind = "MigrationSource",
    namespaced,
    status = "MigrationSourceStatus",
    shortname = "msrc",
    category = "ferry",
    doc = "A MySQL-compatible server (self-managed MySQL or MariaDB, Aurora, RDS...) that MigrationJobs migrate from, with the Secret holding its password. The operator connects to it and reports in status whether its binlog settings allow replication.",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.serverVersion"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSourceSpec {
    /// Kind of server: SelfManaged, AuroraMySQL, RDSMySQL, AzureMySQL, CloudSQLMySQL,
    /// AlibabaRDSMySQL or MariaDB. Decides which prechecks and remedies apply.
    #[serde(rename = "type")]
    pub source_type: SourceType,
    /// Host name or IP address of the server (for PrivateLink, the endpoint's address).
    #[schemars(length(min = 1))]
    pub host: String,
    /// TCP port of the server.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// User Ferry logs in as. Needs SELECT, RELOAD, REPLICATION SLAVE and REPLICATION CLIENT.
    #[schemars(length(min = 1))]
    pub user: String,
    /// Secret key holding the user's password.
    pub password_secret_ref: SecretKeyRef,
    /// How the network path to the server is set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<Connectivity>,
    /// TLS settings; absent means Disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// The default MySQL port.
pub fn default_port() -> i32 {
    3306
}

/// The kind of server a source is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SourceType {
    /// MySQL (or Percona Server) you run yourself, on premises or on cloud VMs.
    SelfManaged,
    /// Amazon Aurora MySQL; a reader instance supports full copy only.
    AuroraMySQL,
    /// Amazon RDS for MySQL.
    RDSMySQL,
    /// Azure Database for MySQL - Flexible Server.
    AzureMySQL,
    /// Google Cloud SQL for MySQL.
    CloudSQLMySQL,
    /// Alibaba Cloud ApsaraDB RDS for MySQL.
    AlibabaRDSMySQL,
    /// MariaDB 10.x or newer.
    MariaDB,
}

impl SourceType {
    /// Whether the provider manages the server, so `FLUSH TABLES WITH READ LOCK` and global
    /// settings are out of the user's reach (parameter groups instead of my.cnf).
    pub fn is_managed(self) -> bool {
        !matches!(self, Self::SelfManaged | Self::MariaDB)
    }
}

/// Network path from Ferry to the source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "self.method != 'PrivateLink' || has(self.endpointServiceName) || has(self.privateEndpointResourceId)"
).message("PrivateLink needs endpointServiceName (AWS) or privateEndpointResourceId (Azure)"))]
#[serde(rename_all = "camelCase")]
pub struct Connectivity {
    /// PublicIP (a reachable address) or PrivateLink (a provider private endpoint).
    #[serde(default)]
    pub method: ConnectivityMethod,
    /// AWS VPC endpoint service name (`com.amazonaws.vpce-svc-...`) for PrivateLink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_service_name: Option<String>,
    /// Azure resource ID of the MySQL Flexible Server for a private endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_endpoint_resource_id: Option<String>,
}

/// How Ferry reaches the source.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConnectivityMethod {
    /// A public (or otherwise routable) host name or IP address.
    #[default]
    PublicIP,
    /// An AWS PrivateLink endpoint service or an Azure private endpoint.
    PrivateLink,
}

/// What Ferry last observed about the source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSourceStatus {
    /// Ready: the server answered and its source-level prechecks passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// `VERSION()` as reported by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// MySQL or MariaDB, as detected from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// Binary log settings seen on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog: Option<BinlogSettings>,
    /// When the server was last checked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check_time: Option<String>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Binary log settings of a source server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BinlogSettings {
    /// `log_bin`: whether the binary log is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bin: Option<bool>,
    /// `binlog_format`: ROW is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `binlog_row_image`: FULL is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_image: Option<String>,
    /// How long the server keeps binary logs, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<i64>,
    /// `server_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<i64>,
    /// Whether GTIDs are in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_mode: Option<String>,
}
