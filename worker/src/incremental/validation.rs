//! Continuous validation (`spec.validation.continuous`): every row replication changes is read
//! again from source and target some seconds after it is applied, and the rows that differ are
//! counted in `status.validation`, as TiDB DM's validator does.
//!
//! The apply loop hands each transaction's changed row keys to a [`Hook`], which never waits: a
//! full channel only counts the rows as skipped. The [`Validator`] task keeps them until the
//! applied watermark has passed their transaction and `delay` has gone by, then compares them in
//! rounds of up to [`BATCH`] keys of one table, by primary (or non-null unique) key, reusing
//! `ferry verify`'s canonical row hashes:
//!
//! 1. read the rows on the source, then the source's binlog head;
//! 2. once replication has applied that head, read them on the target, then on the source again.
//!
//! A row the source did not change between its two reads must be the same on the target, which
//! has applied everything up to the first read. A row the source changed is in flight and goes
//! into the next round. A row that differs while the source held still is read again in the next
//! round, after replication passes the source once more; the same difference then counts as a
//! mismatch if the binlog shows no change to its table since before the first round's source
//! read (the source row really held still, the target did not follow it), or, for a table that
//! keeps changing, once it has been seen [`STRIKES`] rounds running (two values could differ
//! by chance for a row changed and changed back between two reads, not the same way five times).
//! No source write makes a false mismatch, and a real one (the target changed behind Ferry's
//! back) stays and is found. A deleted row must be absent on both sides.
//!
//! Tables without a key cannot be read row by row (only by scanning them whole); their changes,
//! those of merged shards, and those past [`MAX_PENDING`] waiting rows are counted as skipped
//! (`ferry verify` compares such tables). Memory is bounded by [`MAX_PENDING`] keys.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use ferry_crds::verification::ValidationStatus;
use mysql_async::Conn;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event::RowChange;
use super::lag::SharedProgress;
use super::schema::TableSchema;
use crate::config::{JobConfig, ValidationSettings};
use crate::engine::JobContext;
use crate::error::SqlContext;
use crate::flavor::{self, Flavor, Version};
use crate::full::objects::{self, Table};
use crate::meta::incremental::{self as checkpoint, Position};
use crate::report::StatusReporter;
use crate::sql::literal;
use crate::verify::{self, Key, Rows, Side, Subject};

/// Changed rows waiting to be compared, at most; more are counted as skipped.
pub const MAX_PENDING: usize = 100_000;
/// Keys compared per query.
const BATCH: usize = 500;
/// Transactions' changed rows queued between the apply loop and the validator.
const CHANNEL: usize = 4096;
/// How often the validator looks for rows that are due.
const TICK: Duration = Duration::from_millis(500);
/// How long the validator waits after an error before it reconnects.
const RETRY: Duration = Duration::from_secs(5);
/// Keys of mismatched rows the status keeps (the latest).
const SAMPLES: usize = 10;
/// Rounds running in which a row must differ the same way while the source holds still to count
/// as a mismatch when its table keeps changing (see [`Validator::finish`]).
const STRIKES: u8 = 5;

/// A table by its source names.
type TableName = (String, String);
/// A row key as the binlog gave it: (target column, SQL literal) per key column.
type BinlogKey = Vec<(String, String)>;

/// One changed row: its table and, when the table has a key, its key.
#[derive(Debug, Clone)]
struct ChangedRow {
    table: TableName,
    key: Option<BinlogKey>,
}

/// The rows one source transaction changed, handed to the workers.
#[derive(Debug)]
struct Changed {
    end: Position,
    rows: Vec<ChangedRow>,
}

/// The apply loop's side: hands changed rows to the validator, never waiting for it.
#[derive(Clone, Default)]
pub struct Hook {
    tx: Option<mpsc::Sender<Changed>>,
    shared: Arc<Shared>,
}

/// Counters the apply loop writes and the validator reads.
#[derive(Default)]
struct Shared {
    /// Rows the channel had no room for.
    dropped: AtomicU64,
    /// Bumped by every DDL statement: table definitions may have changed.
    schema_generation: AtomicU64,
}

impl Hook {
    /// The rows of a transaction ending at `end`, as it goes to the workers.
    pub fn changed(&self, end: &Position, changes: &[(Arc<TableSchema>, RowChange)]) {
        let Some(tx) = &self.tx else { return };
        let rows = changed_rows(changes);
        let count = rows.len() as u64;
        if tx.try_send(Changed { end: end.clone(), rows }).is_err() {
            self.shared.dropped.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// A DDL statement ran.
    pub fn schema_changed(&self) {
        self.shared.schema_generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// Each changed row once: the before image's key (an update may move a row to another key,
/// whose old key must then be gone on both sides) and the after image's.
fn changed_rows(changes: &[(Arc<TableSchema>, RowChange)]) -> Vec<ChangedRow> {
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for (schema, change) in changes {
        let table = (change.database.clone(), change.table.clone());
        for (before, after) in &change.rows {
            for image in [before, after].into_iter().flatten() {
                let key = image_key(schema, image);
                if seen.insert((table.clone(), key.clone())) {
                    rows.push(ChangedRow { table: table.clone(), key });
                }
            }
        }
    }
    rows
}

/// The image's row key as literals, None when the table has none or the image lacks it.
fn image_key(schema: &TableSchema, image: &[super::event::Cell]) -> Option<BinlogKey> {
    schema
        .key
        .as_ref()?
        .iter()
        .map(|&i| {
            let value = image.get(i)?.as_ref()?;
            let column = &schema.columns[i];
            let mut out = Vec::new();
            literal::push_binlog(&mut out, value, column.convert_charset.as_deref());
            Some((column.name.clone(), String::from_utf8_lossy(&out).into_owned()))
        })
        .collect()
}

/// Starts the validator when the job asks for it; the hook is a no-op otherwise. The task runs
/// until aborted.
pub fn start(ctx: &JobContext, progress: SharedProgress) -> (Hook, Option<JoinHandle<()>>) {
    let Some(settings) = ctx.config.validation.clone() else {
        return (Hook::default(), None);
    };
    let (tx, rx) = mpsc::channel(CHANNEL);
    let hook = Hook { tx: Some(tx), shared: Arc::default() };
    let validator = Validator::new(ctx, settings, progress, rx, hook.shared.clone());
    tracing::info!(delay = ?validator.delay, "continuous validation on");
    (hook, Some(tokio::spawn(validator.run())))
}

/// A changed row waiting for its transaction to be applied and `delay` to pass.
struct Waiting {
    end: Position,
    row: (TableName, BinlogKey),
    applied_at: Option<Instant>,
}

/// Keys of one table read on the source, waiting for replication to pass `head`.
struct Round {
    subject: Arc<Subject>,
    keys: Vec<Key>,
    before: Rows,
    /// The source's head before `before` was read: changes after it may not be in `before`.
    since: Position,
    /// The source's head after `before` was read.
    head: Position,
    /// Rows the hook had dropped when `before` was read (then the binlog cannot tell).
    drops: u64,
    /// Keys that already differed while the source held still.
    suspects: HashMap<Key, Suspect>,
}

/// A row that differed while the source held still.
struct Suspect {
    difference: verify::Difference,
    /// Rounds running it differed this way.
    strikes: u8,
    /// The source's head before its first read in the round it was first seen.
    since: Position,
    drops: u64,
}

/// The two servers, as the validator reads them.
struct Conns {
    source: Conn,
    target: Conn,
    source_version: Version,
    flavors: (Flavor, Flavor),
}

impl Conns {
    /// The source's binlog position now.
    async fn head(&mut self) -> crate::Result<Position> {
        let (file, pos) = flavor::binlog_status(&mut self.source, &self.source_version)
            .await?
            .ok_or(super::IncrementalError::BinlogOff)?;
        Ok(Position { file, pos, ..Default::default() })
    }
}

/// Compares changed rows on both servers in the background (see the module documentation).
struct Validator {
    config: JobConfig,
    reporter: Arc<StatusReporter>,
    progress: SharedProgress,
    delay: Duration,
    rx: mpsc::Receiver<Changed>,
    shared: Arc<Shared>,
    schema_generation: u64,
    conns: Option<Conns>,
    /// The selected source tables, read when first needed and after DDL.
    selected: Option<HashMap<TableName, Table>>,
    subjects: HashMap<TableName, Result<Arc<Subject>, String>>,
    waiting: VecDeque<Waiting>,
    queued: HashSet<(TableName, BinlogKey)>,
    rounds: Vec<Round>,
    /// The end of the last transaction that changed each table, as the hook told.
    last_change: HashMap<TableName, Position>,
    /// Dropped rows already counted as skipped.
    drops_counted: u64,
    status: ValidationStatus,
    retry_at: Option<Instant>,
}

impl Validator {
    fn new(
        ctx: &JobContext,
        settings: ValidationSettings,
        progress: SharedProgress,
        rx: mpsc::Receiver<Changed>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            config: ctx.config.clone(),
            reporter: ctx.reporter.clone(),
            progress,
            delay: settings.delay,
            rx,
            shared,
            schema_generation: 0,
            conns: None,
            selected: None,
            subjects: HashMap::new(),
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            rounds: Vec::new(),
            last_change: HashMap::new(),
            drops_counted: 0,
            status: ValidationStatus::default(),
            retry_at: None,
        }
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                changed = self.rx.recv() => match changed {
                    Some(changed) => self.take(changed),
                    None => return,
                },
                _ = tick.tick() => {
                    if self.retry_at.is_none_or(|at| Instant::now() >= at) {
                        self.retry_at = None;
                        if let Err(error) = self.step().await {
                            self.failed(&error);
                        }
                    }
                    self.publish();
                }
            }
        }
    }

    fn pending(&self) -> usize {
        self.waiting.len() + self.rounds.iter().map(|r| r.keys.len()).sum::<usize>()
    }

    /// Queues a transaction's rows (once per row while waiting), or counts them as skipped.
    fn take(&mut self, changed: Changed) {
        for row in &changed.rows {
            self.last_change.insert(row.table.clone(), changed.end.clone());
        }
        for row in changed.rows {
            let Some(key) = row.key else {
                self.status.skipped += 1;
                continue;
            };
            let row = (row.table, key);
            if self.queued.contains(&row) {
                continue;
            }
            if self.pending() >= MAX_PENDING {
                self.status.skipped += 1;
                continue;
            }
            self.queued.insert(row.clone());
            self.waiting.push_back(Waiting { end: changed.end.clone(), row, applied_at: None });
        }
    }

    /// Starts rounds for the rows that are due and finishes the rounds replication has passed.
    async fn step(&mut self) -> crate::Result<()> {
        let generation = self.shared.schema_generation.load(Ordering::Relaxed);
        if generation != self.schema_generation {
            self.schema_generation = generation;
            self.selected = None;
            self.subjects.clear();
        }
        if self.conns.is_none() {
            self.conns = Some(self.connect().await?);
        }
        let applied = self.applied();
        // Every transaction applied up to `applied` went through the hook before: take them all,
        // so `last_change` covers the binlog up to there.
        while let Ok(changed) = self.rx.try_recv() {
            self.take(changed);
        }
        let due = self.due(&applied);
        for (table, keys) in due {
            self.start_rounds(table, keys).await?;
        }
        let (ready, waiting): (Vec<Round>, Vec<Round>) = std::mem::take(&mut self.rounds)
            .into_iter()
            .partition(|r| !checkpoint::after(&r.head, &applied));
        self.rounds = waiting;
        let mut ready = ready.into_iter();
        while let Some(round) = ready.next() {
            let keys = round.keys.len();
            match self.finish(round).await {
                Ok(next) => self.rounds.extend(next),
                Err(error) => {
                    self.status.skipped += keys as i64;
                    self.rounds.extend(ready);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    async fn connect(&self) -> crate::Result<Conns> {
        let mut source = verify::session(&self.config.source, "source").await?;
        let mut target = verify::session(&self.config.target, "target").await?;
        let source_version = Version::read(&mut source).await.sql("read the source version")?;
        let target_version = Version::read(&mut target).await.sql("read the target version")?;
        let flavors = (source_version.flavor, target_version.flavor);
        Ok(Conns { source, target, source_version, flavors })
    }

    fn applied(&self) -> Position {
        let progress = self.progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        progress.applied.clone()
    }

    /// The waiting rows whose transaction was applied at least `delay` ago, by table. Rows
    /// wait in stream order, so the first one not applied ends the search.
    fn due(&mut self, applied: &Position) -> BTreeMap<TableName, Vec<BinlogKey>> {
        let now = Instant::now();
        for waiting in self.waiting.iter_mut() {
            if checkpoint::after(&waiting.end, applied) {
                break;
            }
            waiting.applied_at.get_or_insert(now);
        }
        let mut due: BTreeMap<TableName, Vec<BinlogKey>> = BTreeMap::new();
        while let Some(first) = self.waiting.front() {
            if first.applied_at.is_none_or(|at| now.duration_since(at) < self.delay) {
                break;
            }
            let Some(Waiting { row, .. }) = self.waiting.pop_front() else { break };
            self.queued.remove(&row);
            let (table, key) = row;
            due.entry(table).or_default().push(key);
        }
        due
    }

    /// Reads the rows of `keys` on the source and the source's head after it: the first half
    /// of a round.
    async fn start_rounds(&mut self, table: TableName, keys: Vec<BinlogKey>) -> crate::Result<()> {
        let subject = match self.subject(&table).await? {
            Ok(subject) => subject,
            Err(reason) => {
                tracing::debug!(table = ?table, reason = %reason, "changed rows not validated");
                self.status.skipped += keys.len() as i64;
                return Ok(());
            }
        };
        let mut ordered = Vec::with_capacity(keys.len());
        for key in keys {
            match in_key_order(&subject, key) {
                Some(key) => ordered.push(key),
                None => self.status.skipped += 1,
            }
        }
        for batch in ordered.chunks(BATCH) {
            let round = self.read_source(subject.clone(), batch.to_vec()).await?;
            self.rounds.push(round);
        }
        Ok(())
    }

    async fn read_source(&mut self, subject: Arc<Subject>, keys: Vec<Key>) -> crate::Result<Round> {
        let drops = self.shared.dropped.load(Ordering::Relaxed);
        let conns = self.conns.as_mut().expect("connected before a round");
        let since = conns.head().await?;
        let before = verify::lookup(&mut conns.source, &subject, &keys, Side::Source).await?;
        let head = conns.head().await?;
        Ok(Round { subject, keys, before, since, head, drops, suspects: HashMap::new() })
    }

    /// The second half of a round, once replication has applied the source up to its head:
    /// settles each row, and returns the round of the rows to read again, if any.
    async fn finish(&mut self, round: Round) -> crate::Result<Option<Round>> {
        let drops = self.shared.dropped.load(Ordering::Relaxed);
        let conns = self.conns.as_mut().expect("connected before a round");
        let subject = &round.subject;
        let now = verify::lookup(&mut conns.target, subject, &round.keys, Side::Target).await?;
        let after = verify::lookup(&mut conns.source, subject, &round.keys, Side::Source).await?;
        let head = conns.head().await?;
        let differences = verify::differences(&after, &now);
        self.status.rows_checked += round.keys.len().saturating_sub(differences.len()) as i64;
        let table = (subject.table.db.clone(), subject.table.name.clone());
        let mut again = Vec::new();
        let mut suspects = HashMap::new();
        for difference in differences {
            if round.before.get(&difference.key) != difference.source.as_ref() {
                // The source moved between its two reads: in flight.
                again.push(difference.key);
                continue;
            }
            let suspect = match round.suspects.get(&difference.key) {
                Some(earlier) if earlier.difference == difference => Suspect {
                    difference,
                    strikes: earlier.strikes + 1,
                    since: earlier.since.clone(),
                    drops: earlier.drops,
                },
                _ => Suspect {
                    difference,
                    strikes: 1,
                    since: round.since.clone(),
                    drops: round.drops,
                },
            };
            // Replication has applied the source past the suspect's first round: the binlog
            // up to there says whether its table changed since before that round's reads.
            let held_still = suspect.strikes > 1
                && suspect.drops == drops
                && !self
                    .last_change
                    .get(&table)
                    .is_some_and(|p| checkpoint::after(p, &suspect.since));
            if held_still || suspect.strikes >= STRIKES {
                self.mismatch(subject, &suspect.difference);
                continue;
            }
            again.push(suspect.difference.key.clone());
            suspects.insert(suspect.difference.key.clone(), suspect);
        }
        if again.is_empty() {
            return Ok(None);
        }
        // The source was read last, after `round.head` and before `head`: its rows are the next
        // round's first read.
        let wanted: HashSet<&Key> = again.iter().collect();
        let before = after.into_iter().filter(|(key, _)| wanted.contains(key)).collect();
        let since = round.head;
        Ok(Some(Round {
            subject: round.subject,
            keys: again,
            before,
            since,
            head,
            drops,
            suspects,
        }))
    }

    fn mismatch(&mut self, subject: &Subject, difference: &verify::Difference) {
        let kind = match (&difference.source, &difference.target) {
            (Some(_), None) => "missing",
            (None, Some(_)) => "extra",
            _ => "different",
        };
        let sample = format!("{} {kind}: {}", subject.table.qualified(), difference.key.join(", "));
        tracing::warn!(
            row = %sample,
            "continuous validation: a row differs on the target while the source holds still"
        );
        self.status.mismatched += 1;
        self.status.last_mismatch = Some(Utc::now().to_rfc3339());
        if self.status.sample_keys.len() >= SAMPLES {
            self.status.sample_keys.remove(0);
        }
        self.status.sample_keys.push(sample);
    }

    /// How a table's rows are compared, or why they are not.
    async fn subject(&mut self, table: &TableName) -> crate::Result<Result<Arc<Subject>, String>> {
        if let Some(known) = self.subjects.get(table) {
            return Ok(known.clone());
        }
        let conns = self.conns.as_mut().expect("connected before a round");
        if self.selected.is_none() {
            let objects = objects::read(&mut conns.source, &self.config.selection).await?;
            let by_name = objects.tables.into_iter().map(|t| ((t.db.clone(), t.name.clone()), t));
            self.selected = Some(by_name.collect());
        }
        let table_info = self.selected.as_ref().and_then(|s| s.get(table)).cloned();
        let subject = match table_info {
            None => Err("not a selected base table of the source".to_string()),
            Some(t) if t.key.is_empty() => Err("no primary or non-null unique key".to_string()),
            Some(t) => verify::subject(t, &mut conns.source, &mut conns.target, conns.flavors)
                .await?
                .map_err(|(_, problem)| problem),
        };
        self.subjects.insert(table.clone(), subject.clone());
        Ok(subject)
    }

    /// Notes an error in the status; the connections are opened again after [`RETRY`].
    fn failed(&mut self, error: &crate::Error) {
        tracing::warn!(error = %error, "continuous validation failed; retrying");
        self.status.message = Some(format!("{error} (retrying)"));
        self.conns = None;
        self.retry_at = Some(Instant::now() + RETRY);
    }

    fn publish(&mut self) {
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        self.status.skipped += dropped.saturating_sub(self.drops_counted) as i64;
        self.drops_counted = dropped;
        self.status.pending = self.pending() as i64;
        let status = self.status.clone();
        self.reporter.update(|s| s.validation = Some(status));
    }
}

/// The key's literals in the order of the table's key columns; None when the binlog's key
/// columns are not the table's.
fn in_key_order(subject: &Subject, key: BinlogKey) -> Option<Key> {
    let columns = &subject.table.key;
    if columns.len() != key.len() {
        return None;
    }
    columns
        .iter()
        .map(|column| {
            key.iter().find(|(name, _)| name.eq_ignore_ascii_case(column)).map(|(_, v)| v.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::event::{Image, RowKind};
    use crate::incremental::schema::{ColumnInfo, Fold};
    use mysql_async::Value;

    fn column(name: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: "int".into(),
            unsigned: false,
            generated: false,
            convert_charset: None,
            fold: Fold::Exact,
        }
    }

    fn schema(key: Option<Vec<usize>>) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            database: "app".into(),
            table: "t".into(),
            columns: vec![column("v"), column("id")],
            key,
            unique_keys: Vec::new(),
            foreign: false,
        })
    }

    fn image(v: i64, id: i64) -> Option<Image> {
        Some(vec![Some(Value::Int(v)), Some(Value::Int(id))])
    }

    fn change(rows: Vec<(Option<Image>, Option<Image>)>) -> RowChange {
        RowChange {
            database: "app".into(),
            table: "t".into(),
            kind: RowKind::Update,
            column_types: Vec::new(),
            column_names: None,
            unsigned: None,
            no_foreign_key_checks: false,
            rows,
        }
    }

    #[test]
    fn an_update_that_moves_a_row_checks_both_keys_once() {
        let rows = vec![(image(1, 7), image(2, 8)), (image(2, 8), image(3, 8))];
        let changed = changed_rows(&[(schema(Some(vec![1])), change(rows))]);
        let keys: Vec<_> = changed.iter().map(|r| r.key.clone().unwrap()).collect();
        let id = |v: &str| vec![("id".to_string(), v.to_string())];
        assert_eq!(keys, vec![id("7"), id("8")]);
    }

    #[test]
    fn rows_of_keyless_tables_have_no_key() {
        let changed = changed_rows(&[(schema(None), change(vec![(None, image(1, 1))]))]);
        assert_eq!(changed.len(), 1);
        assert!(changed[0].key.is_none());
    }
}
