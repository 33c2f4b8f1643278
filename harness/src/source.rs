//! The kinds of server Ferry migrates from, so a test can run once per kind of source.

use std::fmt;
use std::path::Path;

use mysql_async::Opts;
use mysql_async::prelude::Queryable;

use crate::{MariaDb, MariaDbOptions, MySql, Result, Role, SqlServer, TargetKind};

/// The kinds of source server the harness starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// MariaDB from Debian's `mariadb-server`.
    MariaDb,
    /// MySQL 9.7 from Debian unstable, in its chroot.
    MySql,
}

impl SourceKind {
    /// Every kind, for tests that run once per kind.
    pub const ALL: [SourceKind; 2] = [SourceKind::MariaDb, SourceKind::MySql];

    /// The MigrationSource `spec.type` that declares a server of this kind: MariaDB, or MySQL
    /// run by its user (`SelfManaged`).
    pub fn source_type(self) -> ferry_crds::source::SourceType {
        match self {
            SourceKind::MariaDb => ferry_crds::source::SourceType::MariaDB,
            SourceKind::MySql => ferry_crds::source::SourceType::SelfManaged,
        }
    }

    /// Starts a source of this kind: binlog on, ROW, FULL images (GTID mode on for MySQL).
    pub async fn start(self) -> Result<Source> {
        self.start_with(MariaDbOptions::new(Role::Source)).await
    }

    /// Starts a server of this kind as `options` say.
    pub async fn start_with(self, options: MariaDbOptions) -> Result<Source> {
        Ok(match self {
            SourceKind::MariaDb => Source::MariaDb(MariaDb::start(options).await?),
            SourceKind::MySql => Source::MySql(MySql::start(options).await?),
        })
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::MariaDb => "MariaDB",
            SourceKind::MySql => "MySQL",
        })
    }
}

/// A running source server of any kind.
pub enum Source {
    MariaDb(MariaDb),
    MySql(MySql),
}

impl Source {
    pub fn source_kind(&self) -> SourceKind {
        match self {
            Source::MariaDb(_) => SourceKind::MariaDb,
            Source::MySql(_) => SourceKind::MySql,
        }
    }

    /// The server's own directory (data, socket, logs) as the host sees it.
    pub fn dir(&self) -> &Path {
        match self {
            Source::MariaDb(s) => s.dir(),
            Source::MySql(s) => s.dir(),
        }
    }

    pub fn error_log(&self) -> String {
        match self {
            Source::MariaDb(s) => s.error_log(),
            Source::MySql(s) => s.error_log(),
        }
    }

    /// Kills the server at once, as a crash or a power cut would.
    pub fn kill(&mut self) {
        match self {
            Source::MariaDb(s) => s.kill(),
            Source::MySql(s) => s.kill(),
        }
    }

    /// Shuts the server down cleanly (SIGTERM).
    pub async fn stop(&mut self) -> Result<()> {
        match self {
            Source::MariaDb(s) => s.stop().await,
            Source::MySql(s) => s.stop().await,
        }
    }

    /// Starts a killed or stopped server again on the same port with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        match self {
            Source::MariaDb(s) => s.restart().await,
            Source::MySql(s) => s.restart().await,
        }
    }

    /// The statement that shows the binlog file and position being written: MySQL 8.2 added
    /// `SHOW BINARY LOG STATUS` and 8.4 removed `SHOW MASTER STATUS`; MariaDB keeps the latter.
    pub fn binlog_status_sql(&self) -> &'static str {
        match self {
            Source::MariaDb(_) => "SHOW MASTER STATUS",
            Source::MySql(_) => "SHOW BINARY LOG STATUS",
        }
    }

    /// The binlog file and position being written.
    pub async fn binlog_head(&self) -> Result<(String, u64)> {
        let mut conn = self.conn().await?;
        // MySQL has a fifth column (Executed_Gtid_Set), MariaDB four.
        let row: Option<mysql_async::Row> = conn.query_first(self.binlog_status_sql()).await?;
        drop(conn.disconnect().await);
        row.and_then(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
            .ok_or_else(|| crate::HarnessError::Start("the source's binary log is off".into()))
    }

    /// The GTIDs the server has written: MariaDB's `gtid_binlog_pos`, MySQL's `gtid_executed`.
    pub async fn gtid_executed(&self) -> Result<String> {
        let sql = match self {
            Source::MariaDb(_) => "SELECT @@GLOBAL.gtid_binlog_pos",
            Source::MySql(_) => "SELECT @@GLOBAL.gtid_executed",
        };
        let mut conn = self.conn().await?;
        let gtid: Option<String> = conn.query_first(sql).await?;
        drop(conn.disconnect().await);
        Ok(gtid.unwrap_or_default())
    }
}

impl SqlServer for Source {
    fn kind(&self) -> TargetKind {
        match self {
            Source::MariaDb(s) => s.kind(),
            Source::MySql(s) => s.kind(),
        }
    }
    fn host(&self) -> &str {
        match self {
            Source::MariaDb(s) => s.host(),
            Source::MySql(s) => s.host(),
        }
    }
    fn port(&self) -> u16 {
        match self {
            Source::MariaDb(s) => s.port(),
            Source::MySql(s) => s.port(),
        }
    }
    fn opts_for(&self, user: &str, password: &str) -> Opts {
        match self {
            Source::MariaDb(s) => s.opts_for(user, password),
            Source::MySql(s) => s.opts_for(user, password),
        }
    }
}
