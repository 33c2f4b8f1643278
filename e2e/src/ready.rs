//! Waiting for a freshly started server (it must answer on its port, and be ours), and for a
//! stopped one to exit.

use std::process::Child;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::{HarnessError, Result, tidb::loopback_opts};

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
    /// `is_ours` accepts. Another test's server may take the port between `free_port` and our
    /// bind: then ours fails to bind and exits, which ends the wait with an error (and `start`
    /// tries another port) instead of declaring the other server ready.
    pub async fn wait_until_ours(
        self,
        is_ours: impl Fn(&str) -> bool,
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
            if datadir(self.port).await.is_some_and(|d| is_ours(&d)) {
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
