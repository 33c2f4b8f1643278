//! The registry of jobs, `ferry_meta.jobs`: each job's checkpoint key, by who runs it and its
//! `namespace/name`.
//!
//! A name is not an identity: a MigrationJob deleted and created again under the same name (an
//! ArgoCD replace, a prune-and-sync) is a new job, and must not resume the old one's position.
//! So the rows of every other `ferry_meta` table are keyed by an id that is the job's own: the
//! MigrationJob's UID under the operator, and for `ferry migrate` an id generated on the
//! manifest's first run and found again here by its namespace and name, so a rerun resumes until
//! `ferry reset` forgets it. Earlier Ferry versions keyed rows by `namespace/name`; the job of
//! that name adopts them on its first run (once: they are re-keyed).

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::schema::KEYED_TABLES;
use super::{JOB_KEY_CHARS, MetaError};
use crate::error::SqlContext;

/// Who runs a job, which decides its checkpoint key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Owner {
    /// `ferry migrate`: an id the target generates on the first run.
    #[default]
    Cli,
    /// The operator's worker pod: the MigrationJob's `metadata.uid`.
    Kubernetes { uid: String },
}

impl Owner {
    fn label(&self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Kubernetes { .. } => "kubernetes",
        }
    }
}

/// The checkpoint key of job `name` (`namespace/name`), registering the job on its first run
/// (adopting the rows an earlier Ferry keyed by its name). Needs `ferry_meta` at the current
/// version ([`super::ensure`]).
pub async fn resolve(conn: &mut Conn, owner: &Owner, name: &str) -> crate::Result<String> {
    if name.chars().count() as u64 > JOB_KEY_CHARS {
        return Err(MetaError::NameTooLong { name: name.to_string(), max: JOB_KEY_CHARS }.into());
    }
    match (owner, registered(conn, owner, name).await?) {
        (Owner::Cli, Some(id)) => Ok(id),
        (Owner::Kubernetes { uid }, Some(id)) if id == *uid => Ok(id),
        (Owner::Kubernetes { uid }, Some(stale)) => {
            // Names are unique in a namespace, so the job that registered `stale` is gone; its
            // rows stayed because the operator could not reach the target when it was deleted.
            tracing::warn!(job = name, stale = %stale, "deleting the checkpoints of a deleted job of the same name");
            delete_rows(conn, &stale, KEYED_TABLES).await?;
            conn.exec_drop(
                "UPDATE ferry_meta.jobs SET id = ?, created_at = CURRENT_TIMESTAMP(6) \
                 WHERE owner = ? AND name = ?",
                (uid, owner.label(), name),
            )
            .await
            .sql("register the job in ferry_meta.jobs on the target")?;
            Ok(uid.clone())
        }
        (_, None) => register(conn, owner, name).await,
    }
}

/// The checkpoint key of job `name` without changing anything (for `ferry precheck` and
/// `ferry verify`): the registered one, else its name, under which an earlier Ferry kept rows.
pub async fn lookup(conn: &mut Conn, owner: &Owner, name: &str) -> crate::Result<String> {
    Ok(match (owner, registered(conn, owner, name).await?) {
        (Owner::Kubernetes { uid }, Some(_)) => uid.clone(),
        (Owner::Cli, Some(id)) => id,
        (_, None) => name.to_string(),
    })
}

/// Deletes every `ferry_meta` row of job `name` and its registration, so that its next run
/// starts a new migration; the migrated tables stay. Returns the number of rows deleted.
pub async fn forget(conn: &mut Conn, owner: &Owner, name: &str) -> crate::Result<u64> {
    let tables: Vec<String> = conn
        .query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'ferry_meta'")
        .await
        .sql("list the tables of ferry_meta on the target")?;
    let present: Vec<&str> = KEYED_TABLES
        .iter()
        .copied()
        .filter(|t| tables.iter().any(|p| p.eq_ignore_ascii_case(t)))
        .collect();
    // The name is the key an earlier Ferry used; under the operator, only this UID's rows are
    // this job's (a newer job of the same name cannot exist while this one is being deleted).
    let mut keys = vec![name.to_string()];
    match owner {
        Owner::Kubernetes { uid } => keys.push(uid.clone()),
        Owner::Cli => keys.extend(registered(conn, owner, name).await?),
    }
    let mut deleted = 0;
    for key in &keys {
        deleted += delete_rows(conn, key, &present).await?;
    }
    if tables.iter().any(|t| t.eq_ignore_ascii_case("jobs")) {
        let id = match owner {
            Owner::Kubernetes { uid } => uid.as_str(),
            Owner::Cli => keys.last().map(String::as_str).unwrap_or(name),
        };
        conn.exec_drop(
            "DELETE FROM ferry_meta.jobs WHERE owner = ? AND name = ? AND id = ?",
            (owner.label(), name, id),
        )
        .await
        .sql("delete the job from ferry_meta.jobs on the target")?;
        deleted += conn.affected_rows();
    }
    Ok(deleted)
}

/// The key registered for job `name`; `None` also before `ferry_meta.jobs` exists.
async fn registered(conn: &mut Conn, owner: &Owner, name: &str) -> crate::Result<Option<String>> {
    let result = conn
        .exec_first(
            "SELECT id FROM ferry_meta.jobs WHERE owner = ? AND name = ?",
            (owner.label(), name),
        )
        .await;
    match result {
        Err(mysql_async::Error::Server(e)) if e.code == NO_SUCH_TABLE => Ok(None),
        result => result.sql("read ferry_meta.jobs on the target"),
    }
}

/// ER_NO_SUCH_TABLE, also for a missing database.
const NO_SUCH_TABLE: u16 = 1146;

/// Registers the job under a new key, in one transaction with the adoption of the rows an
/// earlier Ferry keyed by its name.
async fn register(conn: &mut Conn, owner: &Owner, name: &str) -> crate::Result<String> {
    let id = match owner {
        Owner::Kubernetes { uid } => uid.clone(),
        Owner::Cli => {
            let id: Option<String> =
                conn.query_first("SELECT UUID()").await.sql("generate a job id on the target")?;
            id.unwrap_or_default()
        }
    };
    conn.query_drop("BEGIN").await.sql("begin registering the job on the target")?;
    let result = async {
        conn.exec_drop(
            "INSERT IGNORE INTO ferry_meta.jobs (owner, name, id) VALUES (?, ?, ?)",
            (owner.label(), name, &id),
        )
        .await
        .sql("register the job in ferry_meta.jobs on the target")?;
        if conn.affected_rows() == 0 {
            return Ok(None);
        }
        let mut adopted = 0;
        for table in KEYED_TABLES {
            conn.exec_drop(
                format!("UPDATE ferry_meta.{table} SET job = ? WHERE job = ?"),
                (&id, name),
            )
            .await
            .sql(format!("adopt the job's rows of ferry_meta.{table} on the target"))?;
            adopted += conn.affected_rows();
        }
        conn.query_drop("COMMIT").await.sql("commit the job's registration on the target")?;
        Ok(Some(adopted))
    }
    .await;
    match result {
        Ok(Some(adopted)) => {
            if adopted > 0 {
                tracing::info!(
                    job = name,
                    rows = adopted,
                    "adopted the checkpoints an earlier Ferry kept under the job's name"
                );
            }
            Ok(id)
        }
        // Another run registered the job first: use its key.
        Ok(None) => {
            let _ = conn.query_drop("ROLLBACK").await;
            match owner {
                Owner::Kubernetes { .. } => Ok(id),
                Owner::Cli => Ok(registered(conn, owner, name).await?.unwrap_or(id)),
            }
        }
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK").await;
            Err(e)
        }
    }
}

async fn delete_rows(conn: &mut Conn, key: &str, tables: &[&str]) -> crate::Result<u64> {
    let mut deleted = 0;
    for table in tables {
        conn.exec_drop(format!("DELETE FROM ferry_meta.{table} WHERE job = ?"), (key,))
            .await
            .sql(format!("delete the job's rows of ferry_meta.{table} on the target"))?;
        deleted += conn.affected_rows();
    }
    Ok(deleted)
}

/// Sets `config.key`: registers the job when `register` (creating or upgrading `ferry_meta`
/// first), else only looks its key up, changing nothing on the target.
pub async fn identify(config: &mut crate::config::JobConfig, register: bool) -> crate::Result<()> {
    let mut conn = crate::connect::connect(&config.target, "target").await?;
    let name = config.id.to_string();
    config.key = if register {
        super::ensure(&mut conn).await?;
        resolve(&mut conn, &config.owner, &name).await?
    } else {
        lookup(&mut conn, &config.owner, &name).await?
    };
    tracing::debug!(job = %name, key = %config.key, "checkpoint key");
    drop(conn.disconnect().await);
    Ok(())
}
