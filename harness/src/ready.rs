//! Waiting for a freshly started server (it must answer on its port, and be ours), and for a
//! stopped one to exit.

use std::process::Child;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::ports::loopback_opts;
use crate::{HarnessError, Result};

/// A server process that was just spawned and is not known to answer yet.
pub(crate) struct Starting<'a> {
    /// The program's name, for messages (`mariadbd`).
    pub program: &'static str,
    pub child: &'a mut Child,
    pub port: u16,
    pub timeout: Duration,
}

impl Starting<'_> {
    /// Waits until root can log in on the port and the server reports a `@@datadir` that
    /// `is_ours` accepts (MariaDB, MySQL, TiDB).
    pub async fn wait_until_ours(
        self,
        is_ours: impl Fn(&str) -> bool,
        log: impl Fn() -> String,
    ) -> Result<()> {
        let port = self.port;
        self.wait_until(async || datadir(port).await.is_some_and(|d| is_ours(&d)), log).await
    }

    /// Waits until `answers` (a health check on the port) succeeds and the socket listening on
    /// the port is our process's, for servers that cannot name their data directory (etcd).
    pub async fn wait_until_own_socket_answers(
        self,
        answers: impl AsyncFn() -> bool,
        log: impl Fn() -> String,
    ) -> Result<()> {
        let (pid, port) = (self.child.id(), self.port);
        self.wait_until(async || listens_on(pid, port) && answers().await, log).await
    }

    /// The one readiness loop: `ready` must confirm that the server answering is ours.
    /// Another test's server may take the port between `free_port` and our bind: then ours
    /// fails to bind and exits, which ends the wait with an error (and `start` tries another
    /// port) instead of declaring the other server ready.
    async fn wait_until(
        self,
        ready: impl AsyncFn() -> bool,
        log: impl Fn() -> String,
    ) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Start(format!(
                    "{} exited with {status}; its log:\n{}",
                    self.program,
                    log()
                )));
            }
            if ready().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Start(format!(
                    "{} did not answer within {:?}; its log:\n{}",
                    self.program,
                    self.timeout,
                    log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether process `pid` holds the socket listening on loopback `port` (from `/proc/net/tcp*`
/// and the process's descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A (LISTEN), inode.
            if fields.len() > 9 && fields[1].ends_with(&wanted) && fields[3] == "0A" {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    descriptors.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// The `@@datadir` of the server answering on `port` as root, if one does.
async fn datadir(port: u16) -> Option<String> {
    let mut conn = Conn::new(loopback_opts(port, "root", "")).await.ok()?;
    let datadir = conn.query_first("SELECT @@datadir").await.ok().flatten();
    drop(conn.disconnect().await);
    datadir
}

/// Asks a server to shut down cleanly (SIGTERM, as an init system or `kill` does) and waits
/// until it has exited.
pub(crate) async fn terminate(child: &mut Child, program: &str, timeout: Duration) -> Result<()> {
    if child.try_wait().map_err(crate::io_err(format!("wait for {program}")))?.is_some() {
        return Ok(());
    }
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| HarnessError::Start(format!("{program}'s pid does not fit a pid_t")))?;
    // SAFETY: kill(2) with a pid of our own child, not yet reaped, so not reused.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + timeout;
    while child.try_wait().map_err(crate::io_err(format!("wait for {program}")))?.is_none() {
        if Instant::now() > deadline {
            return Err(HarnessError::Start(format!(
                "{program} did not exit within {timeout:?} of SIGTERM"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
