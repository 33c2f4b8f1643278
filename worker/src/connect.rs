//! Connections to source and target, with every TLS mode of the API and bounded waits.

use std::time::Duration;

use ferry_crds::TlsMode;
use mysql_async::prelude::Queryable;
use mysql_async::{
    ClientIdentity, Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, SslOpts,
};

use crate::config::{Endpoint, TlsMaterial};
use crate::error::SqlContext;

mod rsa_probe;

/// How long a connection attempt may take before it is reported as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The SQL mode of every Ferry session that writes to the target. Strict, so that a value the
/// target cannot hold is an error rather than a silent truncation or clamp; and allowing every
/// date the source may hold, so that such dates arrive exactly: zero dates and zero parts (no
/// NO_ZERO_DATE, NO_ZERO_IN_DATE, which sources allow by default) and dates such as
/// `2024-02-31` written under ALLOW_INVALID_DATES (the source keeps them whatever its sql_mode
/// is now). Explicit zeros in AUTO_INCREMENT columns stay zeros. MariaDB, MySQL and TiDB all
/// accept this mode.
pub const TARGET_SQL_MODE: &str =
    "STRICT_ALL_TABLES,ALLOW_INVALID_DATES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

/// Whether an error means the server went away or is restarting (the network, a shutdown, a
/// killed connection): running again later may succeed without anyone changing anything.
pub fn transient(error: &mysql_async::Error) -> bool {
    match error {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(e) => {
            matches!(
                e,
                mysql_async::DriverError::ConnectionClosed
                    | mysql_async::DriverError::PoolDisconnected
            )
        }
        // Server shutdown in progress, connection killed, server gone away, lost connection,
        // too many connections (the server is still starting other sessions).
        mysql_async::Error::Server(e) => matches!(e.code, 1040 | 1053 | 1927 | 2006 | 2013),
        _ => false,
    }
}

/// Whether the server ran out of space: a table is full (1114: its tablespace reached its
/// maximum size) or the disk is (1021). Whoever runs the server may give it more, after which the
/// same statement succeeds, so the job retries it within its retry budget, the error (naming
/// the table) in its status meanwhile, rather than failing at once.
pub fn out_of_space(error: &mysql_async::Error) -> bool {
    matches!(error, mysql_async::Error::Server(e) if matches!(e.code, 1021 | 1114))
}

/// Why a server could not be reached. Messages name the endpoint, never the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot reach the {role} {endpoint} within {timeout:?}: check the host and port, firewalls \
         and security groups, and that the server is running"
    )]
    Timeout { role: &'static str, endpoint: String, timeout: Duration },
    #[error("cannot connect to the {role} {endpoint}: {source}{hint}")]
    Failed { role: &'static str, endpoint: String, hint: &'static str, source: mysql_async::Error },
    #[error("the {role} TLS settings are incomplete: {message}")]
    TlsConfig { role: &'static str, message: String },
}

impl ConnectError {
    /// Whether trying again later may succeed without the user changing anything.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Failed { source, .. } => transient(source),
            Self::TlsConfig { .. } => false,
        }
    }

    /// Whether the server refused the user or the password (MySQL/MariaDB errors 1044, 1045 and
    /// 1698): the credentials in the referenced Secret need fixing, not the network.
    pub fn access_denied(&self) -> bool {
        matches!(self, Self::Failed { source: mysql_async::Error::Server(e), .. }
            if matches!(e.code, 1044 | 1045 | 1698))
    }
}

/// Connection options for an endpoint.
pub fn opts(endpoint: &Endpoint, role: &'static str) -> Result<OptsBuilder, ConnectError> {
    let builder = OptsBuilder::default()
        .ip_or_hostname(endpoint.host.clone())
        .tcp_port(endpoint.port)
        .user(Some(endpoint.user.clone()))
        .pass(Some(endpoint.password.expose().to_string()))
        .prefer_socket(false)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        // Affected rows count the rows a statement found, not only those it changed, so that
        // replication can tell an UPDATE of a missing row from one that changed nothing.
        .client_found_rows(role == "target")
        .ssl_opts(ssl_opts(&endpoint.tls, role)?);
    Ok(builder)
}

/// One connection, failing within [`CONNECT_TIMEOUT`] with a message that says what to check.
pub async fn connect(endpoint: &Endpoint, role: &'static str) -> Result<Conn, ConnectError> {
    let opts: Opts = opts(endpoint, role)?.into();
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Err(_) => Err(ConnectError::Timeout {
            role,
            endpoint: endpoint.describe(),
            timeout: CONNECT_TIMEOUT,
        }),
        Ok(Err(source)) => Err(ConnectError::Failed {
            role,
            endpoint: endpoint.describe(),
            hint: failure_hint(&source, endpoint).await,
            source,
        }),
        Ok(Ok(conn)) if role == "target" => strict(conn, endpoint).await,
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// Every target session starts strict (see [`TARGET_SQL_MODE`]): checkpoints, DDL and rows alike
/// fail rather than being cut to fit.
async fn strict(mut conn: Conn, endpoint: &Endpoint) -> Result<Conn, ConnectError> {
    let set = format!("SET SESSION sql_mode = '{TARGET_SQL_MODE}'");
    match conn.query_drop(set).await {
        Ok(()) => Ok(conn),
        Err(source) => Err(ConnectError::Failed {
            role: "target",
            endpoint: endpoint.describe(),
            hint: " (setting the session's sql_mode)",
            source,
        }),
    }
}

/// A pool of up to `max` connections. Connect once with [`connect`] first to fail fast.
pub fn pool(endpoint: &Endpoint, role: &'static str, max: usize) -> Result<Pool, ConnectError> {
    let constraints = PoolConstraints::new(0, max.max(1)).expect("0 <= max");
    let builder =
        opts(endpoint, role)?.pool_opts(PoolOpts::default().with_constraints(constraints));
    Ok(Pool::new(builder))
}

fn ssl_opts(tls: &TlsMaterial, role: &'static str) -> Result<Option<SslOpts>, ConnectError> {
    let missing = |what: &str| ConnectError::TlsConfig {
        role,
        message: format!("mode {:?} needs {what}", tls.mode),
    };
    let mut ssl = match tls.mode {
        TlsMode::Disabled => return Ok(None),
        TlsMode::ServerAuth | TlsMode::Mutual => {
            let ca = tls.ca_pem.clone().ok_or_else(|| missing("a CA certificate"))?;
            SslOpts::default().with_root_certs(vec![ca.into()]).with_disable_built_in_roots(true)
        }
        // The reference product's "client certificate" option: the server is not verified.
        TlsMode::ClientCert => SslOpts::default().with_danger_accept_invalid_certs(true),
    };
    if tls.mode.presents_client_cert() {
        let cert = tls.client_cert_pem.clone().ok_or_else(|| missing("a client certificate"))?;
        let key = tls.client_key_pem.as_ref().ok_or_else(|| missing("a client key"))?;
        let key = key.expose().as_bytes().to_vec();
        ssl = ssl.with_client_identity(Some(ClientIdentity::new(cert.into(), key.into())));
    }
    Ok(Some(ssl))
}

/// What to check after a failed connection attempt. A refused login over a plain connection may
/// not be the password's fault: a MySQL server without an RSA key pair refuses every
/// `caching_sha2_password` login there with the same error, which a probe tells apart.
async fn failure_hint(error: &mysql_async::Error, endpoint: &Endpoint) -> &'static str {
    let refused_in_plain = server_code(error) == Some(ER_ACCESS_DENIED_ERROR)
        && endpoint.tls.mode == TlsMode::Disabled;
    if refused_in_plain
        && rsa_probe::lacks_rsa_keys(&endpoint.host, endpoint.port, &endpoint.user).await
    {
        return NO_RSA_KEYS;
    }
    hint_for(error)
}

/// MySQL's "Access denied for user" (a wrong password, or one the server could not check).
const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// MySQL's "Connections using insecure transport are prohibited".
const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;

const NO_RSA_KEYS: &str = " (the password was not checked: the user authenticates with \
    caching_sha2_password, which without TLS needs the server's RSA key pair to receive the \
    password, and this server has none. Connect with TLS (tls.mode ServerAuth with the server's \
    CA), or give the server an RSA key pair (caching_sha2_password_auto_generate_rsa_keys=ON, or \
    caching_sha2_password_private_key_path and caching_sha2_password_public_key_path, then \
    restart it), or, where the server still has mysql_native_password (MySQL 8.0, or 8.4 with it \
    enabled; MySQL 9 removed it), ALTER USER ... IDENTIFIED WITH mysql_native_password BY ...)";

fn server_code(error: &mysql_async::Error) -> Option<u16> {
    match error {
        mysql_async::Error::Server(e) => Some(e.code),
        _ => None,
    }
}

fn hint_for(error: &mysql_async::Error) -> &'static str {
    let text = error.to_string();
    if server_code(error) == Some(ER_SECURE_TRANSPORT_REQUIRED) {
        " (the server accepts only TLS connections: set tls.mode ServerAuth with the server's CA)"
    } else if text.contains("Access denied") {
        " (check the user and the password in the referenced Secret)"
    } else if text.contains("certificate") || text.contains("Tls") || text.contains("TLS") {
        " (check the TLS mode and the CA/client certificates in the referenced Secrets)"
    } else if text.contains("refused") {
        " (nothing listens there: check the host and port)"
    } else {
        ""
    }
}

/// Whether the server is MariaDB (its version says so; MySQL, Aurora and TiDB do not).
pub async fn is_mariadb(conn: &mut Conn) -> crate::Result<bool> {
    let version: Option<String> =
        conn.query_first("SELECT VERSION()").await.sql("read the source version")?;
    Ok(version.unwrap_or_default().to_ascii_lowercase().contains("mariadb"))
}
