//! Loopback ports: free ones, where a server runs, and connection options to it.

use std::net::TcpListener;
use std::path::PathBuf;

/// A port nothing listens on right now. Another process may take it before the caller binds it;
/// callers that start servers retry on a bind failure.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How many times a server is started on another free port after a port race.
const START_ATTEMPTS: usize = 3;

/// Where a server runs: a port and the directory its own directory is made in. Tests leave
/// both to the harness; scripts (`ferry-lab mariadb|tidb`) name them.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// A fixed port, tried once; none: a free one, another on a port race.
    pub port: Option<u16>,
    /// The directory the server's directory is created in (removed with the server).
    pub parent: Option<PathBuf>,
}

impl Placement {
    /// Runs `start_once` until a server starts: on a free port up to three times (another
    /// process may take the port first), on a fixed one once.
    pub(crate) async fn start<T>(
        &self,
        mut start_once: impl AsyncFnMut() -> crate::Result<T>,
    ) -> crate::Result<T> {
        let attempts = if self.port.is_some() { 1 } else { START_ATTEMPTS };
        let mut last_error = None;
        for _ in 0..attempts {
            match start_once().await {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// The server's new directory, named `prefix` and random characters.
    pub(crate) fn directory(&self, prefix: &str) -> crate::Result<tempfile::TempDir> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        let dir = match &self.parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        };
        dir.map_err(crate::io_err("create server directory"))
    }

    /// The port to start on.
    pub(crate) fn port(&self) -> crate::Result<u16> {
        match self.port {
            Some(port) => Ok(port),
            None => free_port().map_err(crate::io_err("find a free port")),
        }
    }
}

/// TCP connection options to a harness server (never its socket).
pub(crate) fn loopback_opts(port: u16, user: &str, password: &str) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
        .into()
}
