//! Throwaway MariaDB servers from Debian's `mariadb-server`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::SqlServer;

use crate::ports::Placement;
use crate::ready::Starting;
use crate::{HarnessError, Result, io_err};

/// What a server is for; decides its binlog settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Binary log on, ROW format, FULL row image, GTIDs (MariaDB's are always on), server_id set.
    Source,
    /// No binary log.
    Target,
}

/// How to start a server. `extra_args` go to `mariadbd` after the role's own settings, so a test
/// can override them (`--binlog-format=STATEMENT`, `--skip-log-bin`, TLS files, ...).
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    pub role: Role,
    pub extra_args: Vec<String>,
    /// Where the server runs; default: a free port in a new directory under the system's
    /// temporary directory.
    pub placement: Placement,
}

impl MariaDbOptions {
    pub fn new(role: Role) -> Self {
        Self { role, extra_args: Vec::new(), placement: Placement::default() }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }
}

/// A running MariaDB server. Root logs in over TCP without a password.
pub struct MariaDb {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    role: Role,
    options: MariaDbOptions,
}

const START_TIMEOUT: Duration = Duration::from_secs(60);

impl MariaDb {
    /// A source server: binlog on in ROW format with full row images.
    pub async fn source() -> Result<Self> {
        Self::start(MariaDbOptions::new(Role::Source)).await
    }

    /// A target server: no binlog.
    pub async fn target() -> Result<Self> {
        Self::start(MariaDbOptions::new(Role::Target)).await
    }

    /// Starts a server as `options` say, retrying on another port if the chosen one was taken.
    pub async fn start(options: MariaDbOptions) -> Result<Self> {
        options.placement.start(async || Self::start_once(&options).await).await
    }

    async fn start_once(options: &MariaDbOptions) -> Result<Self> {
        let dir = options.placement.directory("ferry-mariadb-")?;
        let data = dir.path().join("data");
        copy_dir(template_datadir()?, &data)?;
        let port = options.placement.port()?;
        let child = spawn(dir.path(), port, options)?;
        let mut server = Self { child, dir, port, role: options.role, options: options.clone() };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Kills the server at once, as a crash or a power cut would; [`MariaDb::restart`] brings it
    /// back on the same port with the same data.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Shuts the server down cleanly (SIGTERM), as its operator would; [`MariaDb::restart`]
    /// brings it back.
    pub async fn stop(&mut self) -> Result<()> {
        crate::ready::terminate(&mut self.child, "mariadbd", START_TIMEOUT).await
    }

    /// Starts a killed or stopped server again (crash recovery included) and waits until it
    /// answers.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.child = spawn(self.dir.path(), self.port, &self.options)?;
        self.wait_ready().await
    }

    /// Restarts the server with other options (a larger tablespace, say), same port and data.
    pub async fn restart_with(&mut self, options: MariaDbOptions) -> Result<()> {
        self.stop().await?;
        self.options = options;
        self.restart().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let ours = self.dir.path().to_string_lossy().into_owned();
        let log = self.dir.path().join("error.log");
        let starting = Starting {
            program: "mariadbd",
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

    /// The server's own directory (data, socket, logs); test certificates can go here too.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Loads a SQL file (many statements) as root.
    pub async fn load_sql_file(&self, path: &Path) -> Result<()> {
        let sql =
            std::fs::read_to_string(path).map_err(io_err(format!("read {}", path.display())))?;
        self.exec(&sql).await
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // The data is thrown away, so there is nothing to shut down cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, port: u16, options: &MariaDbOptions) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("error.log"))
        .map_err(io_err("open the error log"))?;
    Command::new(mariadbd())
        .arg("--no-defaults")
        .args(server_args(dir, port, options))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(io_err("start mariadbd (is mariadb-server installed? run dev/setup.sh)"))
}

fn server_args(dir: &Path, port: u16, options: &MariaDbOptions) -> Vec<String> {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        format!("--datadir={}", path("data")),
        format!("--socket={}", path("mysqld.sock")),
        format!("--pid-file={}", path("mysqld.pid")),
        // Temporary tables (information_schema queries make some) in the server's own
        // directory: in the shared /tmp another process's cleanup can remove them mid-query.
        format!("--tmpdir={}", path("")),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--user=root".into(),
        "--skip-name-resolve".into(),
        "--innodb-buffer-pool-size=64M".into(),
        "--innodb-log-file-size=48M".into(),
        "--innodb-flush-log-at-trx-commit=2".into(),
        "--max-connections=500".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_general_ci".into(),
    ];
    match options.role {
        Role::Source => args.extend([
            format!("--log-bin={}", path("binlog/mysql-bin")),
            format!("--server-id={}", 1 + (port as u32 % 100_000)),
            "--binlog-format=ROW".into(),
            "--binlog-row-image=FULL".into(),
            "--expire-logs-days=7".into(),
        ]),
        Role::Target => args.push("--skip-log-bin".into()),
    }
    if options.role == Role::Source {
        let _ = std::fs::create_dir_all(dir.join("binlog"));
    }
    args.extend(options.extra_args.iter().cloned());
    args
}

fn mariadbd() -> PathBuf {
    ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mariadbd"))
}

/// An initialized, never-started data directory, made once per MariaDB version and machine and
/// copied for each server (mariadb-install-db takes seconds; a copy takes milliseconds). It lives
/// in `~/.cache/ferry/` so that test processes share it and nothing piles up in /tmp.
fn template_datadir() -> Result<&'static Path> {
    static TEMPLATE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| init_template().map_err(|e| e.to_string()));
    match template {
        Ok(dir) => Ok(dir.as_path()),
        Err(e) => Err(HarnessError::Start(e.clone())),
    }
}

fn init_template() -> Result<PathBuf> {
    let version = Command::new(mariadbd()).arg("--version").output().map_err(io_err(
        "run mariadbd --version (is mariadb-server installed? run dev/setup.sh)",
    ))?;
    let version: String = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or("unknown")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    let cache = crate::cache_dir();
    let template = cache.join(format!("mariadb-template-{version}"));
    if template.join("mysql").exists() {
        return Ok(template);
    }
    std::fs::create_dir_all(&cache).map_err(io_err("create the cache directory"))?;
    let staging = tempfile::Builder::new()
        .prefix("mariadb-template-staging-")
        .tempdir_in(&cache)
        .map_err(io_err("create template directory"))?;
    let output = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", staging.path().display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db", "--user=root"])
        .output()
        .map_err(io_err(
            "run mariadb-install-db (is mariadb-server installed? run dev/setup.sh)",
        ))?;
    if !output.status.success() {
        return Err(HarnessError::Start(format!(
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // Another process may have won the race; either template is as good.
    let staged = staging.keep();
    if std::fs::rename(&staged, &template).is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    Ok(template)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(io_err("copy the template data directory"))?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::Start(format!("cp -a {} {} failed", from.display(), to.display())))
    }
}
