//! Throwaway MySQL servers: Debian unstable's `mysql-server-core` (MySQL 9.7), which needs a newer
//! glibc than the host has, so it runs in the chroot `dev/build-mysql-root.sh` builds into
//! `~/.cache/ferry/mysql-root`.
//!
//! `mysqld` sees only the chroot, so each server's directory (data, socket, binlogs, tmpdir) is a
//! temporary directory under the chroot's `/tmp`; [`MySql::dir`] is its path on the host. The
//! data directory is a copy of a template made once with `--initialize-insecure` (which takes
//! several seconds), minus `auto.cnf`, so that every server gets its own `server_uuid` (two
//! servers replicating to each other with GTIDs need distinct ones). Root logs in over TCP
//! without a password; users made with [`SqlServer::create_user`] get MySQL's default plugin,
//! `caching_sha2_password`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::mariadb::{MariaDbOptions, Role, copy_dir};
use crate::ports::Placement;
use crate::ready::Starting;
use crate::{HarnessError, Result, SqlServer, io_err, ports::free_port};

/// How to start a MySQL server: the same role and extra arguments as a MariaDB one.
pub type MySqlOptions = MariaDbOptions;

const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running MySQL server in the chroot.
pub struct MySql {
    child: Child,
    /// The server's directory as the host sees it (under the chroot's /tmp).
    dir: tempfile::TempDir,
    port: u16,
    role: Role,
    options: MySqlOptions,
}

impl MySql {
    /// A source server: binlog in ROW format with full row images, GTID mode on.
    pub async fn source() -> Result<Self> {
        Self::start(MySqlOptions::new(Role::Source)).await
    }

    /// A target server: no binlog.
    pub async fn target() -> Result<Self> {
        Self::start(MySqlOptions::new(Role::Target)).await
    }

    /// Starts a server as `options` say, retrying on another port if the chosen one was taken.
    pub async fn start(options: MySqlOptions) -> Result<Self> {
        Placement::default().start(async || Self::start_once(&options).await).await
    }

    async fn start_once(options: &MySqlOptions) -> Result<Self> {
        let started = Instant::now();
        let root = chroot_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("ferry-mysql-")
            .tempdir_in(root.join("tmp"))
            .map_err(io_err("create server directory in the MySQL chroot"))?;
        copy_dir(template_datadir()?, &dir.path().join("data"))?;
        // A copied auto.cnf would give every server the template's server_uuid.
        let _ = std::fs::remove_file(dir.path().join("data/auto.cnf"));
        for sub in ["tmp", "binlog"] {
            std::fs::create_dir_all(dir.path().join(sub)).map_err(io_err("create server dirs"))?;
        }
        let port = free_port().map_err(io_err("find a free port"))?;
        let child = spawn(root, dir.path(), port, options)?;
        let mut server = Self { child, dir, port, role: options.role, options: options.clone() };
        server.wait_ready().await?;
        tracing::info!(port, elapsed = ?started.elapsed(), "MySQL answers");
        Ok(server)
    }

    /// Kills the server at once, as a crash would; [`MySql::restart`] brings it back on the same
    /// port with the same data.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Shuts the server down cleanly (SIGTERM), as its operator would; [`MySql::restart`] brings
    /// it back.
    pub async fn stop(&mut self) -> Result<()> {
        crate::ready::terminate(&mut self.child, "mysqld", START_TIMEOUT).await
    }

    /// Starts a killed or stopped server again (crash recovery included) and waits until it
    /// answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.child = spawn(chroot_dir()?, self.dir.path(), self.port, &self.options)?;
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let ours = inside_path(chroot_dir()?, self.dir.path());
        let log = self.dir.path().join("error.log");
        let starting = Starting {
            program: "mysqld",
            child: &mut self.child,
            port: self.port,
            timeout: START_TIMEOUT,
        };
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        starting.wait_until_ours(|d| d.starts_with(&ours), read_log).await
    }

    /// The server's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The server's own directory (data, socket, logs) as the host sees it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server the way an operator would (SHUTDOWN), so a replica can take over; the
    /// data stays until the handle drops.
    pub async fn shutdown(&mut self) -> Result<()> {
        let mut conn = self.conn().await?;
        // The server closes the connection while answering, which may surface as an error.
        let _ = conn.query_drop("SHUTDOWN").await;
        let deadline = Instant::now() + START_TIMEOUT;
        while self.child.try_wait().map_err(io_err("wait for mysqld"))?.is_none() {
            if Instant::now() > deadline {
                return Err(HarnessError::Start("mysqld did not stop after SHUTDOWN".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// Real MySQL replication between two harness servers, by GTID auto-positioning (both run with
/// `gtid_mode=ON`): a replica can be promoted after its source stops, as in a failover.
impl MySql {
    /// A new server replicating everything `source` has logged (read only, binlog on, so that it
    /// can be promoted).
    pub async fn replica_of(source: &MySql) -> Result<Self> {
        let replica = Self::source().await?;
        replica
            .exec(&format!(
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.1', SOURCE_PORT = {}, \
                 SOURCE_USER = 'root', SOURCE_PASSWORD = '', SOURCE_AUTO_POSITION = 1, \
                 SOURCE_CONNECT_RETRY = 1; START REPLICA; SET GLOBAL read_only = ON",
                source.port()
            ))
            .await?;
        Ok(replica)
    }

    /// Waits until this replica has applied every transaction `source` has executed.
    pub async fn wait_replicated(&self, source: &MySql, timeout: Duration) -> Result<()> {
        let mut conn = source.conn().await?;
        let executed: Option<String> = conn.query_first("SELECT @@GLOBAL.gtid_executed").await?;
        drop(conn.disconnect().await);
        let mut conn = self.conn().await?;
        let timed_out: Option<i64> = conn
            .exec_first(
                "SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?)",
                (executed.unwrap_or_default(), timeout.as_secs().max(1)),
            )
            .await?;
        if timed_out == Some(0) {
            return Ok(());
        }
        let status: Option<mysql_async::Row> = conn.query_first("SHOW REPLICA STATUS").await?;
        let error = |name: &str| -> String {
            status.as_ref().and_then(|r| r.get_opt::<String, _>(name)?.ok()).unwrap_or_default()
        };
        Err(HarnessError::Start(format!(
            "the replica on port {} did not catch up with port {} within {timeout:?}: IO: {} SQL: {}",
            self.port,
            source.port(),
            error("Last_IO_Error"),
            error("Last_SQL_Error"),
        )))
    }

    /// Turns this replica into a primary, as a failover does once its source is gone.
    pub async fn promote(&self) -> Result<()> {
        self.exec("STOP REPLICA; RESET REPLICA ALL; SET GLOBAL read_only = OFF").await
    }
}

impl Drop for MySql {
    fn drop(&mut self) {
        // The data is thrown away, so there is nothing to shut down cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs mysqld inside the chroot on the server directory `dir` (a host path under the chroot).
fn spawn(root: &Path, dir: &Path, port: u16, options: &MySqlOptions) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("error.log"))
        .map_err(io_err("open error log"))?;
    let inside = inside_path(root, dir);
    Command::new("chroot")
        .arg(root)
        .arg("/usr/sbin/mysqld")
        .arg("--no-defaults")
        .args(server_args(&inside, port, options))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(io_err("start mysqld in its chroot (run as root? run dev/setup.sh)"))
}

fn server_args(inside: &str, port: u16, options: &MySqlOptions) -> Vec<String> {
    let path = |name: &str| format!("{inside}/{name}");
    let mut args = vec![
        format!("--datadir={}", path("data")),
        format!("--socket={}", path("mysqld.sock")),
        format!("--pid-file={}", path("mysqld.pid")),
        format!("--tmpdir={}", path("tmp")),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--mysqlx=OFF".into(),
        // Its default directory does not exist in the chroot.
        "--secure-file-priv=".into(),
        "--user=root".into(),
        "--skip-name-resolve".into(),
        "--innodb-buffer-pool-size=64M".into(),
        "--innodb-flush-log-at-trx-commit=2".into(),
        "--sync-binlog=0".into(),
        "--max-connections=500".into(),
        "--performance-schema-max-table-instances=500".into(),
    ];
    match options.role {
        Role::Source => args.extend([
            format!("--log-bin={}", path("binlog/mysql-bin")),
            format!("--server-id={}", 1 + (port as u32 % 100_000)),
            "--binlog-format=ROW".into(),
            "--binlog-row-image=FULL".into(),
            "--binlog-expire-logs-seconds=604800".into(),
            "--gtid-mode=ON".into(),
            "--enforce-gtid-consistency=ON".into(),
        ]),
        Role::Target => args.push("--skip-log-bin".into()),
    }
    args.extend(options.extra_args.iter().cloned());
    args
}

/// The chroot MySQL runs in: `$FERRY_MYSQL_ROOT`, else `mysql-root` in the cache directory.
pub fn chroot_dir() -> Result<&'static Path> {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| match std::env::var_os("FERRY_MYSQL_ROOT") {
        Some(dir) => dir.into(),
        None => crate::cache_dir().join("mysql-root"),
    });
    if root.join("usr/sbin/mysqld").exists() {
        Ok(root)
    } else {
        Err(HarnessError::Start(format!(
            "MySQL is not installed: {} has no usr/sbin/mysqld. Run `dev/build-mysql-root.sh` \
             (as root; it builds a Debian unstable chroot with mysql-server-core)",
            root.display()
        )))
    }
}

/// `host_path` as a process inside the chroot `root` sees it.
fn inside_path(root: &Path, host_path: &Path) -> String {
    let relative = host_path.strip_prefix(root).unwrap_or(host_path);
    format!("/{}", relative.display())
}

/// The version `mysqld --version` prints, e.g. `9.7.4-1`, for naming the template.
fn mysqld_version(root: &Path) -> Result<String> {
    let output = Command::new("chroot")
        .arg(root)
        .args(["/usr/sbin/mysqld", "--version"])
        .output()
        .map_err(io_err("run mysqld --version in its chroot"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().skip_while(|w| *w != "Ver").nth(1).unwrap_or("unknown");
    Ok(version.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-').collect())
}

/// An initialized, never-started data directory inside the chroot, made once per MySQL version
/// and copied for each server.
fn template_datadir() -> Result<&'static Path> {
    static TEMPLATE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| init_template().map_err(|e| e.to_string()));
    match template {
        Ok(dir) => Ok(dir.as_path()),
        Err(e) => Err(HarnessError::Start(e.clone())),
    }
}

const ROOT_OVER_TCP: &str = "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '';\n\
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n";

fn init_template() -> Result<PathBuf> {
    let root = chroot_dir()?;
    let templates = root.join("var/lib/ferry-templates");
    let template = templates.join(format!("mysql-{}", mysqld_version(root)?));
    if template.join("mysql.ibd").exists() {
        return Ok(template);
    }
    std::fs::create_dir_all(&templates).map_err(io_err("create the template directory"))?;
    let staging = tempfile::Builder::new()
        .prefix("staging-")
        .tempdir_in(&templates)
        .map_err(io_err("create template directory"))?;
    let data = staging.path().join("data");
    // --initialize-insecure makes only root@localhost, which a TCP login from 127.0.0.1 does not
    // match under --skip-name-resolve.
    let init = staging.path().join("init.sql");
    std::fs::write(&init, ROOT_OVER_TCP).map_err(io_err("write the template's init file"))?;
    let output = Command::new("chroot")
        .arg(root)
        .args(["/usr/sbin/mysqld", "--no-defaults", "--initialize-insecure", "--user=root"])
        .arg(format!("--datadir={}", inside_path(root, &data)))
        .args(["--secure-file-priv=", "--skip-log-bin", "--mysqlx=OFF"])
        .arg(format!("--init-file={}", inside_path(root, &init)))
        .output()
        .map_err(io_err("run mysqld --initialize-insecure in its chroot"))?;
    if !output.status.success() {
        return Err(HarnessError::Start(format!(
            "mysqld --initialize-insecure failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let _ = std::fs::remove_file(data.join("auto.cnf"));
    // Another process may have won the race; either template is as good.
    if std::fs::rename(&data, &template).is_err() && !template.join("mysql.ibd").exists() {
        return Err(HarnessError::Start(format!(
            "could not move the initialized data directory to {}",
            template.display()
        )));
    }
    Ok(template)
}

impl SqlServer for MySql {
    fn kind(&self) -> crate::TargetKind {
        crate::TargetKind::MySql
    }
    fn host(&self) -> &str {
        MySql::host(self)
    }
    fn port(&self) -> u16 {
        MySql::port(self)
    }
    fn opts_for(&self, user: &str, password: &str) -> mysql_async::Opts {
        crate::ports::loopback_opts(self.port(), user, password)
    }
}
