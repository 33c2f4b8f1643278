//! Throwaway TiDB servers, and the target abstraction that lets a test run once per kind of
//! target server (MariaDB and TiDB).
//!
//! `tidb-server` is built from the Go module proxy by `dev/build-go-tools.sh` into
//! `~/.cache/ferry/bin/tidb-server-<version>` (see [`TIDB_VERSION`]). Each [`TiDb`] runs it with
//! the embedded `unistore` storage engine (no PD, no TiKV) from its own temporary directory on
//! free loopback ports, and kills it on drop. A missing binary is an error that says how to build
//! it: tests fail rather than skip.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use crate::ports::{Placement, loopback_opts};
use crate::ready::Starting;
use crate::{HarnessError, MariaDb, MySql, Result, io_err, ports::free_port};

/// The `github.com/pingcap/tidb` module version `dev/build-go-tools.sh` builds (its
/// `TIDB_VERSION`; a test checks the two agree).
pub const TIDB_VERSION: &str = "v1.1.0-beta.0.20260413061245-ae18096e0237";

const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The path of a binary built by `dev/build-go-tools.sh`, or an error saying how to build it.
pub fn go_tool(name: &str, version: &str) -> Result<PathBuf> {
    let path = crate::cache_dir().join("bin").join(format!("{name}-{version}"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::Start(format!(
            "{name} {version} is not built: {} does not exist. Run `dev/build-go-tools.sh` \
             (it builds tidb-server, kube-apiserver and kube-controller-manager with Go into \
             the cache directory; set FERRY_CACHE_DIR to use another one)",
            path.display()
        )))
    }
}

/// A running TiDB server (`tidb-server -store unistore`). Root logs in without a password.
pub struct TiDb {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    status_port: u16,
}

impl TiDb {
    /// Starts a server, retrying on other ports if the chosen ones were taken.
    pub async fn start() -> Result<Self> {
        Self::start_at(&Placement::default()).await
    }

    /// Starts a server where `placement` says.
    pub async fn start_at(placement: &Placement) -> Result<Self> {
        let binary = go_tool("tidb-server", TIDB_VERSION)?;
        placement.start(async || Self::start_once(&binary, placement).await).await
    }

    async fn start_once(binary: &Path, placement: &Placement) -> Result<Self> {
        let started = Instant::now();
        let dir = placement.directory("ferry-tidb-")?;
        let port = placement.port()?;
        let status_port = free_port().map_err(io_err("find a free port"))?;
        write_config(dir.path())?;
        let child = spawn(binary, dir.path(), port, status_port)?;
        let mut server = Self { child, dir, port, status_port };
        server.wait_ready().await?;
        tracing::info!(port, elapsed = ?started.elapsed(), "TiDB answers");
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        // TiDB reports its `-path` as `@@datadir`.
        let ours = self.dir.path().join("data");
        let dir = self.dir.path().to_path_buf();
        let starting = Starting {
            program: "tidb-server",
            child: &mut self.child,
            port: self.port,
            timeout: START_TIMEOUT,
        };
        starting.wait_until_ours(|d| Path::new(d) == ours, || log_tail(&dir)).await
    }

    /// Kills the server at once, as a crash would; [`TiDb::restart`] brings it back on the same
    /// ports with the same data.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Shuts the server down cleanly (SIGTERM).
    pub async fn stop(&mut self) -> Result<()> {
        crate::ready::terminate(&mut self.child, "tidb-server", START_TIMEOUT).await
    }

    /// Starts a killed or stopped server again and waits until it answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        let binary = go_tool("tidb-server", TIDB_VERSION)?;
        self.child = spawn(&binary, self.dir.path(), self.port, self.status_port)?;
        self.wait_ready().await
    }

    /// The last part of the server's logs, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.dir.path())
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The MySQL protocol port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP status port (`/status`, `/metrics`).
    pub fn status_port(&self) -> u16 {
        self.status_port
    }

    /// The server's own directory (data, logs, config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TiDb {
    fn drop(&mut self) {
        // The data is thrown away, so there is nothing to shut down cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn exec_with(opts: Opts, sql: &str) -> Result<()> {
    let mut conn = Conn::new(opts).await?;
    conn.query_drop(sql).await?;
    conn.disconnect().await?;
    Ok(())
}

async fn query_strings_with(opts: Opts, sql: &str) -> Result<Vec<Option<String>>> {
    let mut conn = Conn::new(opts).await?;
    let rows: Vec<Option<String>> = conn.query(sql).await?;
    conn.disconnect().await?;
    Ok(rows)
}

fn create_user_sql(user: &str, password: &str, privileges: &str) -> String {
    format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
         GRANT {privileges} ON *.* TO '{user}'@'%'"
    )
}

/// The config file of the server in `dir`: everything TiDB writes goes into its directory
/// (spill files, slow log, socket).
fn write_config(dir: &Path) -> Result<()> {
    let path = |name: &str| dir.join(name).display().to_string();
    let config = format!(
        "tmp-storage-path = {tmp:?}\n\
         [log]\nslow-query-file = {slow:?}\n\
         [log.file]\nfilename = {log:?}\n\
         [performance]\nforce-init-stats = false\n",
        tmp = path("tmp"),
        slow = path("slow.log"),
        log = path("tidb.log"),
    );
    std::fs::write(dir.join("tidb.toml"), config).map_err(io_err("write the TiDB config"))?;
    Ok(())
}

/// Runs `tidb-server` on the data in `dir` (a new store when empty).
fn spawn(binary: &Path, dir: &Path, port: u16, status_port: u16) -> Result<Child> {
    let path = |name: &str| dir.join(name).display().to_string();
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stderr.log"))
        .map_err(io_err("create the TiDB stderr log"))?;
    Command::new(binary)
        .current_dir(dir)
        .args(["-store", "unistore", "-path", &path("data")])
        .args(["-host", "127.0.0.1", "-P", &port.to_string()])
        .args(["-status", &status_port.to_string(), "-status-host", "127.0.0.1"])
        .args(["-socket", &path("tidb.sock"), "-config", &path("tidb.toml")])
        .args(["-L", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(io_err(format!("start {}", binary.display())))
}

/// The kinds of server Ferry migrates into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// MariaDB from Debian's `mariadb-server`, binlog off.
    MariaDb,
    /// TiDB (`tidb-server -store unistore`).
    TiDb,
    /// MySQL 9.7 in its chroot (harness/src/mysql.rs), binlog off. Not in [`TargetKind::ALL`]: it
    /// is here as a source kind, and so that any server can be a [`Target`].
    MySql,
}

impl TargetKind {
    /// Every kind, for tests that run once per kind.
    pub const ALL: [TargetKind; 2] = [TargetKind::MariaDb, TargetKind::TiDb];

    /// Starts a target server of this kind.
    pub async fn start(self) -> Result<Target> {
        start_target(self).await
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::MariaDb => "MariaDB",
            TargetKind::TiDb => "TiDB",
            TargetKind::MySql => "MySQL",
        })
    }
}

/// Starts a target server of `kind`.
pub async fn start_target(kind: TargetKind) -> Result<Target> {
    Ok(match kind {
        TargetKind::MariaDb => Target::MariaDb(MariaDb::target().await?),
        TargetKind::TiDb => Target::TiDb(TiDb::start().await?),
        TargetKind::MySql => Target::MySql(MySql::target().await?),
    })
}

/// What a test needs from a running SQL server, whatever its kind. Root logs in without a
/// password on every kind.
pub trait SqlServer: Send + Sync {
    fn kind(&self) -> TargetKind;
    fn host(&self) -> &str;
    fn port(&self) -> u16;
    fn opts_for(&self, user: &str, password: &str) -> Opts;

    /// Connection options for root.
    fn opts(&self) -> Opts {
        self.opts_for("root", "")
    }

    /// A new root connection.
    fn conn(&self) -> impl Future<Output = Result<Conn>> + Send {
        let opts = self.opts();
        async move { Ok(Conn::new(opts).await?) }
    }

    /// Runs statements (separated by `;`) as root.
    fn exec(&self, sql: &str) -> impl Future<Output = Result<()>> + Send {
        let (opts, sql) = (self.opts(), sql.to_string());
        async move { exec_with(opts, &sql).await }
    }

    /// Runs a query as root and returns the first column of each row as text.
    fn query_strings(&self, sql: &str) -> impl Future<Output = Result<Vec<Option<String>>>> + Send {
        let (opts, sql) = (self.opts(), sql.to_string());
        async move { query_strings_with(opts, &sql).await }
    }

    /// Creates a user with a password and the given privileges on `*.*`.
    fn create_user(
        &self,
        user: &str,
        password: &str,
        privileges: &str,
    ) -> impl Future<Output = Result<()>> + Send {
        let (opts, sql) = (self.opts(), create_user_sql(user, password, privileges));
        async move { exec_with(opts, &sql).await }
    }
}

impl SqlServer for MariaDb {
    fn kind(&self) -> TargetKind {
        TargetKind::MariaDb
    }
    fn host(&self) -> &str {
        MariaDb::host(self)
    }
    fn port(&self) -> u16 {
        MariaDb::port(self)
    }
    fn opts_for(&self, user: &str, password: &str) -> Opts {
        loopback_opts(self.port(), user, password)
    }
}

impl SqlServer for TiDb {
    fn kind(&self) -> TargetKind {
        TargetKind::TiDb
    }
    fn host(&self) -> &str {
        TiDb::host(self)
    }
    fn port(&self) -> u16 {
        TiDb::port(self)
    }
    fn opts_for(&self, user: &str, password: &str) -> Opts {
        loopback_opts(self.port(), user, password)
    }
}

/// A running target server of any kind.
pub enum Target {
    MariaDb(MariaDb),
    TiDb(TiDb),
    MySql(MySql),
}

impl Target {
    /// The MariaDB server, if this target is one.
    pub fn as_mariadb(&self) -> Option<&MariaDb> {
        match self {
            Target::MariaDb(s) => Some(s),
            _ => None,
        }
    }

    /// The TiDB server, if this target is one.
    pub fn as_tidb(&self) -> Option<&TiDb> {
        match self {
            Target::TiDb(s) => Some(s),
            _ => None,
        }
    }
}

/// Crashes and restarts, whatever the kind of target.
impl Target {
    /// Kills the server at once, as a crash or a power cut would.
    pub fn kill(&mut self) {
        match self {
            Target::MariaDb(s) => s.kill(),
            Target::TiDb(s) => s.kill(),
            Target::MySql(s) => s.kill(),
        }
    }

    /// Shuts the server down cleanly (SIGTERM).
    pub async fn stop(&mut self) -> Result<()> {
        match self {
            Target::MariaDb(s) => s.stop().await,
            Target::TiDb(s) => s.stop().await,
            Target::MySql(s) => s.stop().await,
        }
    }

    /// Starts a killed or stopped server again on the same port with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        match self {
            Target::MariaDb(s) => s.restart().await,
            Target::TiDb(s) => s.restart().await,
            Target::MySql(s) => s.restart().await,
        }
    }
}

impl SqlServer for Target {
    fn kind(&self) -> TargetKind {
        match self {
            Target::MariaDb(_) => TargetKind::MariaDb,
            Target::TiDb(_) => TargetKind::TiDb,
            Target::MySql(_) => TargetKind::MySql,
        }
    }
    fn host(&self) -> &str {
        match self {
            Target::MariaDb(s) => s.host(),
            Target::TiDb(s) => s.host(),
            Target::MySql(s) => s.host(),
        }
    }
    fn port(&self) -> u16 {
        match self {
            Target::MariaDb(s) => s.port(),
            Target::TiDb(s) => s.port(),
            Target::MySql(s) => s.port(),
        }
    }
    fn opts_for(&self, user: &str, password: &str) -> Opts {
        match self {
            Target::MariaDb(s) => s.opts_for(user, password),
            Target::TiDb(s) => s.opts_for(user, password),
            Target::MySql(s) => s.opts_for(user, password),
        }
    }
}

/// The last part of the logs of the TiDB server in `dir`.
fn log_tail(dir: &Path) -> String {
    let mut text = String::new();
    for name in ["stderr.log", "tidb.log"] {
        let log = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(0);
        text.push_str(&format!("--- {name}\n{}\n", &log[start..]));
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_matches_the_build_script() {
        let script = include_str!("../../dev/build-go-tools.sh");
        assert!(
            script.contains(&format!("TIDB_VERSION=\"{}\"", super::TIDB_VERSION)),
            "dev/build-go-tools.sh builds another TiDB version than harness/src/tidb.rs runs"
        );
    }
}
