//! Servers the tests did not start, named by environment variables: how the kind suite
//! (`harness/kind/`) points the same tests at MariaDB and TiDB running inside a cluster, reached
//! through `kubectl port-forward`.

use mysql_async::Opts;

use crate::{HarnessError, Result, SqlServer, TargetKind};

/// A server reached at a URL (`mysql://root:PASSWORD@127.0.0.1:PORT`) from `$PREFIX_URL`, whose
/// kind is `$PREFIX_KIND` (`mariadb` or `tidb`, default `mariadb`).
pub struct ExternalServer {
    kind: TargetKind,
    opts: Opts,
    host: String,
}

impl ExternalServer {
    /// The server named by `$PREFIX_URL`, or `None` when the variable is unset.
    pub fn from_env(prefix: &str) -> Result<Option<Self>> {
        let Ok(url) = std::env::var(format!("{prefix}_URL")) else {
            return Ok(None);
        };
        let opts = Opts::from_url(&url)
            .map_err(|e| HarnessError::Start(format!("{prefix}_URL is not a mysql:// URL: {e}")))?;
        let kind = match std::env::var(format!("{prefix}_KIND")).as_deref() {
            Err(_) | Ok("mariadb") => TargetKind::MariaDb,
            Ok("tidb") => TargetKind::TiDb,
            Ok(other) => {
                return Err(HarnessError::Start(format!(
                    "{prefix}_KIND is {other:?}; use mariadb or tidb"
                )));
            }
        };
        let host = opts.ip_or_hostname().to_string();
        Ok(Some(Self { kind, opts, host }))
    }
}

impl SqlServer for ExternalServer {
    fn kind(&self) -> TargetKind {
        self.kind
    }
    fn host(&self) -> &str {
        &self.host
    }
    fn port(&self) -> u16 {
        self.opts.tcp_port()
    }
    fn opts_for(&self, user: &str, password: &str) -> Opts {
        mysql_async::OptsBuilder::from_opts(self.opts.clone())
            .user(Some(user))
            .pass(Some(password))
            .into()
    }
    fn opts(&self) -> Opts {
        self.opts.clone()
    }
}
