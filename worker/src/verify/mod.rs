//! `ferry verify`: proves the target holds what the source holds, table by table.
//!
//! Every selected table is split into the copy's chunks ([`crate::full::chunk`]); each server
//! computes a checksum of each chunk (row count and the sum of the rows' CRC32 over a canonical
//! text, see [`canon`]), so rows never leave the servers when the chunks agree. A chunk that
//! differs is narrowed down to rows: both sides send each row's key and SHA-256. Tables without a key
//! are compared as multisets of rows (a doubled row counts), in buckets by the rows' own CRC32.
//! Collations only matter where the servers compare: a chunk's bounds may put a row in another
//! chunk on a target with a different collation, so rows that differ are always looked up again
//! by key before anything is reported.
//!
//! Against a job that is replicating, source and target are read at different instants, so a
//! row written meanwhile may differ for a moment. Every differing row is therefore read again in
//! rounds, as DM's validator does: the source first, then the target once its checkpoint shows
//! it has applied the source up to a position read after that source read. A row that still
//! differs the same way two rounds running is a real difference; one that replication brings
//! into line is not. A real difference never disappears by being read again, so none is missed.

mod canon;
pub mod changed;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool};

use crate::config::{Endpoint, JobConfig};
use crate::connect::{self, connect};
use crate::error::SqlContext;
use crate::flavor::{self, Version};
use crate::full::chunk;
use crate::full::objects::{self, Table};
use crate::meta::incremental as checkpoint;
use crate::sql::literal::{self, Render};
use crate::sql::{quote_ident, quote_str};
use canon::{RowShape, ServerColumn};
pub use report::{Report, RowDiff, TableReport};

/// How a verify runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Chunks compared at once (each takes a connection on both servers).
    pub concurrency: usize,
    /// How long a row that keeps changing on the source is read again before it is reported
    /// as unsettled.
    pub settle_timeout: Duration,
    /// How long to wait for the target to apply the source up to a position.
    pub catch_up_timeout: Duration,
    /// Compare only these tables (source names); None: every selected table.
    pub only: Option<BTreeSet<changed::TableName>>,
}

/// Session settings of every verify connection: TIMESTAMP in UTC, text in utf8mb4, as the copy.
pub(crate) const SESSION: &str = "SET time_zone = '+00:00', NAMES utf8mb4";

/// A key's literals (SQL text, in key column order); for a table without a key, its row hash.
pub(crate) type Key = Vec<String>;

/// A row as read for comparing: its hash, and how often it occurs (1 unless keyless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub hash: String,
    pub count: u64,
}

pub(crate) type Rows = BTreeMap<Key, Seen>;

/// One table being compared.
pub(crate) struct Subject {
    pub table: Table,
    pub shape: RowShape,
    pub key_renders: Vec<Render>,
}

impl Subject {
    pub fn keyless(&self) -> bool {
        self.table.key.is_empty()
    }

    /// The table's quoted name on one side (the target's is the routed one).
    pub fn name_on(&self, side: Side) -> String {
        match side {
            Side::Source => self.table.qualified(),
            Side::Target => self.table.target_qualified(),
        }
    }
}

/// Which server a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// How far a verify is, for a status report.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub tables_done: usize,
    pub tables_total: usize,
    pub rows_compared: u64,
    /// The source's binlog position (`file:pos`) when the comparison started.
    pub position: Option<String>,
}

/// Compares every table `config` selects; the report says what differs.
pub async fn run(config: &JobConfig, options: &Options) -> crate::Result<Report> {
    run_reporting(config, options, |_| {}).await
}

/// [`run`], telling `progress` how far it is as tables finish.
pub async fn run_reporting(
    config: &JobConfig,
    options: &Options,
    progress: impl Fn(&Progress),
) -> crate::Result<Report> {
    let mut source = session(&config.source, "source").await?;
    let mut target = session(&config.target, "target").await?;
    let source_version = Version::read(&mut source).await.sql("read the source version")?;
    let target_version = Version::read(&mut target).await.sql("read the target version")?;
    let live = Live::detect(config, &mut target, source_version.clone(), options).await?;
    // Only for the report: a source without a binary log, or a user who may not read it,
    // is compared all the same.
    let position = flavor::binlog_status(&mut source, &source_version).await.ok().flatten();
    let mut notes = Vec::new();
    let mut selected = objects::read(&mut source, &config.selection).await?;
    if let Some(only) = &options.only {
        let all = selected.tables.len();
        selected.tables.retain(|t| only.contains(&(t.db.clone(), t.name.clone())));
        let skipped = all - selected.tables.len();
        if skipped > 0 {
            notes.push(format!(
                "{skipped} of {all} selected tables not compared again: unchanged since an \
                 earlier verify found them equal"
            ));
        }
    }
    let source_pool = pool(&config.source, "source", options.concurrency)?;
    let target_pool = pool(&config.target, "target", options.concurrency)?;
    let mut report = Report {
        position: position.map(|(file, pos)| format!("{file}:{pos}")),
        notes,
        ..Report::default()
    };
    let mut done = Progress {
        tables_total: selected.tables.len(),
        position: report.position.clone(),
        ..Progress::default()
    };
    progress(&done);
    if live.replicating {
        report.notes.push(format!(
            "job {} is replicating: differing rows were read again after the target applied the \
             source past each first read",
            config.id
        ));
    }
    let mut subjects = Vec::new();
    let flavors = (source_version.flavor, target_version.flavor);
    for table in selected.tables {
        let merged = table.merged;
        let subject = match subject(table, &mut source, &mut target, flavors).await? {
            Ok(subject) => subject,
            Err((table, problem)) => {
                tracing::warn!(table = %table.qualified(), problem = %problem, "table cannot be compared");
                report.tables.push(TableReport::problem(&table, problem));
                if !merged {
                    done.tables_done += 1;
                    progress(&done);
                }
                continue;
            }
        };
        let work = plan(&subject, &mut source).await?;
        subjects.push((subject, work));
    }
    let outcomes = compare_all(&subjects, (&source_pool, &target_pool), options).await?;
    for ((subject, work), outcomes) in subjects.iter().zip(outcomes) {
        let chunks = match work.as_slice() {
            [Work::Buckets(n)] => *n as usize,
            chunks => chunks.len(),
        };
        let table_report =
            finish_table(subject, &mut source, &mut target, &live, options, chunks, outcomes)
                .await?;
        tracing::info!(
            table = %subject.table.qualified(),
            rows = table_report.rows_compared,
            equal = table_report.is_equal(),
            "table verified"
        );
        done.tables_done += 1;
        done.rows_compared += table_report.rows_compared;
        progress(&done);
        report.tables.push(table_report);
    }
    source_pool.disconnect().await.sql("close the source connections")?;
    target_pool.disconnect().await.sql("close the target connections")?;
    report.equal = report.tables.iter().all(TableReport::is_equal);
    // A verify stands without the record: a later cutover then compares these tables again.
    if let Err(error) = changed::record(&mut source, &mut target, &config.key, &report).await {
        tracing::warn!(error = %error, "cannot record the tables verified equal");
    }
    Ok(report)
}

/// How `table` is compared (its columns on both servers, its key), or why it cannot be.
pub(crate) async fn subject(
    table: Table,
    source: &mut Conn,
    target: &mut Conn,
    flavors: (flavor::Flavor, flavor::Flavor),
) -> crate::Result<Result<Arc<Subject>, (Table, String)>> {
    if table.merged {
        let problem = format!(
            "merged with other tables into {} by spec.routes: verify compares one source \
             table with one target table, so merged shards are not compared",
            table.target_qualified()
        );
        return Ok(Err((table, problem)));
    }
    let target_columns = server_columns(target, &table, Side::Target).await?;
    if let Some(problem) = missing_on_target(&table, &target_columns) {
        return Ok(Err((table, problem)));
    }
    let source_columns = server_columns(source, &table, Side::Source).await?;
    let shape = RowShape::new(&table, flavors, &source_columns, &target_columns);
    let key_renders =
        table.key.iter().map(|k| table.column(k).map_or(Render::Quoted, |c| c.render)).collect();
    Ok(Ok(Arc::new(Subject { table, shape, key_renders })))
}

pub(crate) async fn session(endpoint: &Endpoint, role: &'static str) -> crate::Result<Conn> {
    let mut conn = connect(endpoint, role).await?;
    conn.query_drop(SESSION).await.sql(format!("set up a {role} session"))?;
    Ok(conn)
}

fn pool(endpoint: &Endpoint, role: &'static str, max: usize) -> crate::Result<Pool> {
    // Kept open for the whole run: every chunk takes one on each side.
    let constraints =
        mysql_async::PoolConstraints::new(max.max(1), max.max(1)).expect("min <= max");
    let opts = connect::opts(endpoint, role)?
        .init(vec![SESSION.to_string()])
        .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
    Ok(Pool::new(opts))
}

/// The columns of `table` as the `role` server defines them.
async fn server_columns(
    conn: &mut Conn,
    table: &Table,
    side: Side,
) -> crate::Result<Vec<ServerColumn>> {
    let (db, name) = match side {
        Side::Source => (&table.db, &table.name),
        Side::Target => (&table.target.database, &table.target.table),
    };
    let rows: Vec<(String, String, Option<String>)> = conn
        .exec(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE), CHARACTER_SET_NAME FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, name),
        )
        .await
        .sql(format!("read the columns of {} on the {side:?}", crate::sql::qualified(db, name)))?;
    Ok(rows
        .into_iter()
        .map(|(name, data_type, charset)| ServerColumn { name, data_type, charset })
        .collect())
}

/// Why the table cannot be compared on the target, if it cannot.
fn missing_on_target(table: &Table, target: &[ServerColumn]) -> Option<String> {
    if target.is_empty() {
        return Some("the table does not exist on the target".into());
    }
    let absent: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| !target.iter().any(|t| t.name.eq_ignore_ascii_case(&c.name)))
        .map(|c| c.name.as_str())
        .collect();
    (!absent.is_empty()).then(|| format!("the target lacks the columns {}", absent.join(", ")))
}

/// What is compared of a table at once: a chunk (its condition), or all of a keyless table's
/// buckets (their count).
enum Work {
    Chunk(String),
    Buckets(u64),
}

/// A table's work: the copy's chunks; for a keyless table without JSON, its buckets.
async fn plan(subject: &Subject, source: &mut Conn) -> crate::Result<Vec<Work>> {
    if subject.keyless() && subject.shape.json.is_empty() {
        let buckets = subject.table.estimated_rows.div_ceil(bucket_rows()).max(1);
        return Ok(vec![Work::Buckets(buckets)]);
    }
    let chunks = chunk::plan(source, &subject.table).await?;
    Ok(chunks.into_iter().map(|c| Work::Chunk(c.cond)).collect())
}

/// Compares every table's work, `concurrency` pieces at once across tables (so the last chunks
/// of one table do not leave connections idle), and returns each table's outcomes in order.
async fn compare_all(
    subjects: &[(Arc<Subject>, Vec<Work>)],
    pools: (&Pool, &Pool),
    options: &Options,
) -> crate::Result<Vec<Vec<ChunkOutcome>>> {
    let pieces = subjects
        .iter()
        .enumerate()
        .flat_map(|(i, (subject, work))| work.iter().map(move |w| (i, subject.clone(), w)));
    let done: Vec<(usize, Vec<ChunkOutcome>)> = futures::stream::iter(pieces)
        .map(|(i, subject, work)| {
            let (source, target) = (pools.0.clone(), pools.1.clone());
            async move {
                let outcomes = match work {
                    Work::Chunk(cond) => {
                        vec![compare_chunk(&subject, &source, &target, cond).await?]
                    }
                    Work::Buckets(n) => compare_buckets(&subject, (&source, &target), *n).await?,
                };
                Ok::<_, crate::Error>((i, outcomes))
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    let mut per_table: Vec<Vec<ChunkOutcome>> = subjects.iter().map(|_| Vec::new()).collect();
    for (i, outcomes) in done {
        per_table[i].extend(outcomes);
    }
    Ok(per_table)
}

/// Settles the rows a table's comparison found differing and reports the table.
async fn finish_table(
    subject: &Subject,
    source: &mut Conn,
    target: &mut Conn,
    live: &Live,
    options: &Options,
    chunks: usize,
    outcomes: Vec<ChunkOutcome>,
) -> crate::Result<TableReport> {
    let rows_compared = outcomes.iter().map(|o| o.rows).sum();
    let chunks_differing = outcomes.iter().filter(|o| !o.candidates.is_empty()).count();
    let candidates: BTreeSet<Key> = outcomes.into_iter().flat_map(|o| o.candidates).collect();
    let settled = if candidates.is_empty() {
        Settled::default()
    } else {
        settle(subject, source, target, live, options, candidates.into_iter().collect()).await?
    };
    let counts = report::Counts { rows_compared, chunks, chunks_differing };
    report::table_report(subject, source, target, counts, settled).await
}

/// Rows per bucket of a keyless table, the copy's largest chunk (`FERRY_CHUNK_ROWS` in tests).
fn bucket_rows() -> u64 {
    std::env::var("FERRY_CHUNK_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000).max(1)
}

/// A keyless table has no ranges to split by: its rows are put in buckets by their own CRC32,
/// so an equal row lands in the same bucket on both servers. One grouped scan per server gives
/// every bucket's checksum; only the buckets that differ are read row by row, which bounds the
/// memory narrowing needs as the copy's chunks do.
async fn compare_buckets(
    subject: &Subject,
    pools: (&Pool, &Pool),
    buckets: u64,
) -> crate::Result<Vec<ChunkOutcome>> {
    let (mut source, mut target) = (
        pools.0.get_conn().await.sql("open a source connection")?,
        pools.1.get_conn().await.sql("open a target connection")?,
    );
    let bucket = format!("MOD(CRC32({}), {buckets})", subject.shape.row_text());
    let sql = |side| {
        let select = subject.shape.checksum_select();
        format!("SELECT {bucket}, {select} FROM {} GROUP BY 1", subject.name_on(side))
    };
    let context = || format!("checksum the rows of {} by bucket", subject.table.qualified());
    let (a, b) = tokio::join!(source.query(sql(Side::Source)), target.query(sql(Side::Target)));
    let a: BTreeMap<u64, (u64, Option<String>)> = to_buckets(a.sql(context())?);
    let b: BTreeMap<u64, (u64, Option<String>)> = to_buckets(b.sql(context())?);
    let mut outcomes = Vec::new();
    for i in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        let rows = a.get(i).map_or(0, |(count, _)| *count);
        if a.get(i) == b.get(i) {
            outcomes.push(ChunkOutcome { rows, candidates: Vec::new() });
            continue;
        }
        let cond = format!("{bucket} = {i}");
        let (x, y) = tokio::join!(
            rows_in(&mut source, subject, &cond, Side::Source),
            rows_in(&mut target, subject, &cond, Side::Target)
        );
        let candidates = differences(&x?, &y?).into_iter().map(|d| d.key).collect();
        outcomes.push(ChunkOutcome { rows, candidates });
    }
    Ok(outcomes)
}

fn to_buckets(rows: Vec<(u64, u64, Option<String>)>) -> BTreeMap<u64, (u64, Option<String>)> {
    rows.into_iter().map(|(bucket, count, sum)| (bucket, (count, sum))).collect()
}

/// What one chunk's comparison found: the source's rows in it and the keys that differ.
struct ChunkOutcome {
    rows: u64,
    candidates: Vec<Key>,
}

async fn compare_chunk(
    subject: &Subject,
    source: &Pool,
    target: &Pool,
    cond: &str,
) -> crate::Result<ChunkOutcome> {
    let mut s = source.get_conn().await.sql("open a source connection")?;
    let mut t = target.get_conn().await.sql("open a target connection")?;
    if subject.shape.json.is_empty() {
        let (a, b) = tokio::join!(
            checksum(&mut s, subject, cond, Side::Source),
            checksum(&mut t, subject, cond, Side::Target)
        );
        let (a, b) = (a?, b?);
        if a == b {
            return Ok(ChunkOutcome { rows: a.0, candidates: Vec::new() });
        }
        tracing::debug!(table = %subject.table.qualified(), cond, "chunk differs; narrowing to rows");
    }
    let (a, b) = tokio::join!(
        rows_in(&mut s, subject, cond, Side::Source),
        rows_in(&mut t, subject, cond, Side::Target)
    );
    let (a, b) = (a?, b?);
    let count = a.values().map(|seen| seen.count).sum();
    let candidates = differences(&a, &b).into_iter().map(|d| d.key).collect();
    Ok(ChunkOutcome { rows: count, candidates })
}

/// A chunk's row count and checksum on one server.
async fn checksum(
    conn: &mut Conn,
    subject: &Subject,
    cond: &str,
    side: Side,
) -> crate::Result<(u64, String)> {
    let sql = format!(
        "SELECT {} FROM {} WHERE {cond}",
        subject.shape.checksum_select(),
        subject.name_on(side)
    );
    let row: Option<(u64, Option<String>)> = conn
        .query_first(sql)
        .await
        .sql(format!("checksum a chunk of {}", subject.table.qualified()))?;
    let (count, sum) = row.unwrap_or_default();
    Ok((count, sum.unwrap_or_default()))
}

/// Every row in `cond` on one server: key (or, keyless, row hash) -> hash and count.
async fn rows_in(
    conn: &mut Conn,
    subject: &Subject,
    cond: &str,
    side: Side,
) -> crate::Result<Rows> {
    let mut rows = Rows::new();
    scan(conn, subject, cond, false, side, |key, hash, _| {
        rows.entry(key).or_insert(Seen { hash, count: 0 }).count += 1;
    })
    .await?;
    Ok(rows)
}

/// Reads the rows in `cond`, giving each one's key (or, keyless, its row hash), its hash and,
/// `with_values`, every compared column as SQL literals.
pub(crate) async fn scan(
    conn: &mut Conn,
    subject: &Subject,
    cond: &str,
    with_values: bool,
    side: Side,
    mut each: impl FnMut(Key, String, Option<Vec<String>>),
) -> crate::Result<()> {
    let table = &subject.table;
    let keys: Vec<String> = table.key.iter().map(|k| quote_ident(k)).collect();
    let json: Vec<String> = subject.shape.json.iter().map(|c| quote_ident(&c.name)).collect();
    let values: Vec<String> = if with_values {
        table.columns.iter().map(|c| quote_ident(&c.name)).collect()
    } else {
        Vec::new()
    };
    let select: Vec<String> = keys
        .iter()
        .cloned()
        .chain([subject.shape.row_hash()])
        .chain(json.iter().cloned())
        .chain(values.iter().cloned())
        .collect();
    let from = subject.name_on(side);
    let sql = format!("SELECT {} FROM {from} WHERE {cond}", select.join(", "));
    let context = || format!("read row hashes of {}", table.qualified());
    let mut result = conn.query_iter(sql).await.sql(context())?;
    let literal = |value: Option<&mysql_async::Value>, render: Render| {
        let mut out = Vec::new();
        literal::push_read(&mut out, value, render);
        String::from_utf8_lossy(&out).into_owned()
    };
    while let Some(row) = result.next().await.sql(context())? {
        let key: Key =
            (0..keys.len()).map(|i| literal(row.as_ref(i), subject.key_renders[i])).collect();
        let mut hash = text(row.as_ref(keys.len()));
        for i in 0..json.len() {
            hash.push('|');
            match row.as_ref(keys.len() + 1 + i) {
                Some(mysql_async::Value::Bytes(bytes)) => {
                    hash.push_str(&canon::canonical_json(bytes))
                }
                _ => hash.push('N'),
            }
        }
        let first_value = keys.len() + 1 + json.len();
        let row_values = with_values.then(|| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| literal(row.as_ref(first_value + i), c.render))
                .collect()
        });
        let key = if subject.keyless() { vec![hash.clone()] } else { key };
        each(key, hash, row_values);
    }
    Ok(())
}

fn text(value: Option<&mysql_async::Value>) -> String {
    match value {
        Some(mysql_async::Value::Bytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

/// How a row differs: what the source has, what the target has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Difference {
    pub key: Key,
    pub source: Option<Seen>,
    pub target: Option<Seen>,
}

pub(crate) fn differences(source: &Rows, target: &Rows) -> Vec<Difference> {
    let keys: BTreeSet<&Key> = source.keys().chain(target.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (s, t) = (source.get(key), target.get(key));
            (s != t).then(|| Difference {
                key: key.clone(),
                source: s.cloned(),
                target: t.cloned(),
            })
        })
        .collect()
}

/// What re-reading the differing rows settled: real differences, and rows that kept changing
/// on the source for as long as the verify could wait.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    pub differences: Vec<Difference>,
    pub unsettled: Vec<Difference>,
}

/// Reads the candidate rows again until each is settled (see the module documentation). A
/// round reads the source, waits until the target has applied the source past that read, reads
/// the target, then the source again: a row the source did not change meanwhile must be the
/// same on the target, so if it is not, the difference is real; a row the source changed is
/// in flight and read again in the next round.
async fn settle(
    subject: &Subject,
    source: &mut Conn,
    target: &mut Conn,
    live: &Live,
    options: &Options,
    mut keys: Vec<Key>,
) -> crate::Result<Settled> {
    let deadline = Instant::now() + options.settle_timeout;
    let mut settled = Settled::default();
    for round in 1.. {
        let before = lookup(source, subject, &keys, Side::Source).await?;
        live.wait_applied(source, target).await?;
        let now = lookup(target, subject, &keys, Side::Target).await?;
        let after = lookup(source, subject, &keys, Side::Source).await?;
        let mut in_flight = Vec::new();
        for difference in differences(&after, &now) {
            if live.replicating && before.get(&difference.key) != difference.source.as_ref() {
                in_flight.push(difference);
            } else {
                settled.differences.push(difference);
            }
        }
        tracing::debug!(
            table = %subject.table.qualified(), round, real = settled.differences.len(),
            in_flight = in_flight.len(), "differing rows read again"
        );
        if in_flight.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                table = %subject.table.qualified(), rows = in_flight.len(),
                "rows kept changing on the source for as long as the verify waited"
            );
            settled.unsettled = in_flight;
            break;
        }
        keys = in_flight.iter().map(|d| d.key.clone()).collect();
    }
    Ok(settled)
}

/// The rows of `keys` on one server, in batches.
pub(crate) async fn lookup(
    conn: &mut Conn,
    subject: &Subject,
    keys: &[Key],
    side: Side,
) -> crate::Result<Rows> {
    let mut found = Rows::new();
    if subject.keyless() && !subject.shape.json.is_empty() {
        // The hash is made here, not by the server: read the table and keep the candidates.
        let wanted: BTreeSet<&Key> = keys.iter().collect();
        let all = rows_in(conn, subject, "TRUE", side).await?;
        found.extend(all.into_iter().filter(|(k, _)| wanted.contains(k)));
        return Ok(found);
    }
    for batch in keys.chunks(500) {
        found.extend(rows_in(conn, subject, &keys_condition(subject, batch), side).await?);
    }
    Ok(found)
}

/// `k IN (...)`, `(a, b) IN ((...), ...)`, or for keyless tables `SHA2(row) IN (...)`.
pub(crate) fn keys_condition(subject: &Subject, keys: &[Key]) -> String {
    if subject.keyless() {
        let hashes: Vec<String> = keys.iter().map(|k| quote_str(&k[0])).collect();
        return format!("{} IN ({})", subject.shape.row_hash(), hashes.join(", "));
    }
    let cols: Vec<String> = subject.table.key.iter().map(|k| quote_ident(k)).collect();
    let tuples: Vec<String> = keys.iter().map(|k| format!("({})", k.join(", "))).collect();
    format!("({}) IN ({})", cols.join(", "), tuples.join(", "))
}

/// Whether a job replicates into the target, and how to wait for it to apply the source.
struct Live {
    /// `namespace/name`, for messages.
    name: String,
    /// The checkpoint key.
    job: String,
    source_version: Version,
    replicating: bool,
    timeout: Duration,
}

impl Live {
    async fn detect(
        config: &JobConfig,
        target: &mut Conn,
        source_version: Version,
        options: &Options,
    ) -> crate::Result<Self> {
        let job = config.key.clone();
        let has_checkpoint =
            crate::meta::schema::has_table(target, "incremental_checkpoint").await?;
        let replicating = if has_checkpoint {
            checkpoint::load(target, &job).await?.is_some_and(|c| !c.clean)
        } else {
            false
        };
        let name = config.id.to_string();
        Ok(Live { name, job, source_version, replicating, timeout: options.catch_up_timeout })
    }

    /// When the job replicates: reads the source's position now and waits until the target's
    /// checkpoint has reached it, so that the target holds every change the source held at
    /// its last read.
    async fn wait_applied(&self, source: &mut Conn, target: &mut Conn) -> crate::Result<()> {
        if !self.replicating {
            return Ok(());
        }
        let Some((file, pos)) = flavor::binlog_status(source, &self.source_version).await? else {
            return Ok(());
        };
        let head = checkpoint::Position { file, pos, gtid_set: None, gtid: None };
        match wait_applied(target, &self.job, &head, self.timeout).await? {
            Ok(()) => Ok(()),
            Err(applied) => Err(VerifyError::NotCaughtUp {
                job: self.name.clone(),
                position: format!("{}:{}", head.file, head.pos),
                applied: applied.map(|p| format!("{}:{}", p.file, p.pos)),
                timeout: self.timeout,
            }
            .into()),
        }
    }
}

/// Waits until the checkpoint of `job` on the target has reached `head`, for at most
/// `timeout`; past it, `Err` holds the position the checkpoint was at (None without one).
pub(crate) async fn wait_applied(
    target: &mut Conn,
    job: &str,
    head: &checkpoint::Position,
    timeout: Duration,
) -> crate::Result<Result<(), Option<checkpoint::Position>>> {
    let deadline = Instant::now() + timeout;
    loop {
        let applied = checkpoint::load(target, job).await?;
        if applied.as_ref().is_some_and(|c| !checkpoint::after(head, &c.position)) {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            return Ok(Err(applied.map(|c| c.position)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Why a verify could not conclude.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "job {job} did not apply the source up to {position} within {timeout:?} (its checkpoint \
         is at {applied:?}): differing rows cannot be told from rows in flight. Check that the \
         job runs and is not lagging, or give it longer with --catch-up-timeout"
    )]
    NotCaughtUp { job: String, position: String, applied: Option<String>, timeout: Duration },
    #[error("cannot read the source's binlog since the last verification: {0}")]
    BinlogScan(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}
