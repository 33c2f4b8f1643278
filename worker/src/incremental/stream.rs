//! Reading the source's binlog: opening the replication stream (MariaDB's capability and
//! checksum handshake, file+pos or GTID starts), and turning events into whole transactions.

use ferry_crds::job::EventType;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Sid};
use tokio::sync::mpsc;

use super::IncrementalError;
use super::event::{Decoded, Decoder, RowChange, RowKind};
use super::filter::{DdlDecision, Filter, Object, dml_tables, redacted};
use super::gtid::GtidState;
use super::online_ddl;
use crate::config::Endpoint;
use crate::error::SqlContext;
use crate::flavor::{self, Version};
use crate::meta::incremental::Position;

/// What the applier gets, in source order.
#[derive(Debug)]
pub enum Unit {
    /// A committed source transaction (its selected row changes, maybe none).
    Txn(Txn),
    /// A DDL statement to apply alone.
    Ddl(Ddl),
    /// A statement of an online schema-change tool on a selected table (see [`online_ddl`]).
    OnlineDdl(Box<OnlineDdl>),
}

/// A step of an online schema change, applied alone like DDL.
#[derive(Debug)]
pub struct OnlineDdl {
    pub step: online_ddl::Step,
    pub end: Position,
    pub timestamp: u32,
}

#[derive(Debug)]
pub struct Txn {
    /// A DDL statement logged inside the transaction, run before its rows: the CREATE TABLE of
    /// a `CREATE TABLE ... SELECT` in row format.
    pub ddl: Option<Ddl>,
    pub changes: Vec<RowChange>,
    /// Position after the commit.
    pub end: Position,
    /// Source time of the commit.
    pub timestamp: u32,
}

#[derive(Debug, Clone)]
pub struct Ddl {
    pub schema: String,
    pub sql: String,
    /// The source session it ran in.
    pub session: super::ddl::QuerySession,
    pub end: Position,
    pub timestamp: u32,
    /// Why routes keep it from being replayed (see [`Filter::ddl_route`]); the applier refuses
    /// it unless `spec.ddlErrorPolicy` says what to do.
    pub refused: Option<String>,
}

impl Unit {
    pub fn end(&self) -> &Position {
        match self {
            Unit::Txn(t) => &t.end,
            Unit::Ddl(d) => &d.end,
            Unit::OnlineDdl(o) => &o.end,
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Unit::Txn(t) => t.changes.iter().map(|c| c.rows.len()).sum(),
            Unit::Ddl(_) | Unit::OnlineDdl(_) => 0,
        }
    }
}

/// The source's current binlog position (`SHOW BINARY LOG STATUS` or `SHOW MASTER STATUS`, as
/// its version spells it) and GTID position.
pub async fn source_head(conn: &mut Conn) -> crate::Result<Position> {
    let version = Version::read(conn).await.sql("read the source version")?;
    let (file, pos) =
        flavor::binlog_status(conn, &version).await?.ok_or(IncrementalError::BinlogOff)?;
    let gtid_set = flavor::gtid_executed(conn, &version).await?;
    Ok(Position { file, pos, gtid_set, gtid: None })
}

/// Reads of the head that may race with commits before the start goes without a GTID set.
const HEAD_READS: usize = 20;

/// Where replication starts when nothing says: [`source_head`], read until the position does
/// not move around the GTID set (two statements), since a resume by GTID trusts the set to be
/// exactly the transactions before the position. Under writes that never pause, the position
/// comes without a set (and the job then cannot follow a failover).
pub async fn start_head(conn: &mut Conn) -> crate::Result<Position> {
    let version = Version::read(conn).await.sql("read the source version")?;
    let status = flavor::binlog_status;
    let mut head = None;
    for _ in 0..HEAD_READS {
        let before = status(conn, &version).await?.ok_or(IncrementalError::BinlogOff)?;
        let gtid_set = flavor::gtid_executed(conn, &version).await?;
        let after = status(conn, &version).await?.ok_or(IncrementalError::BinlogOff)?;
        if before == after {
            let (file, pos) = after;
            return Ok(Position { file, pos, gtid_set, gtid: None });
        }
        head = Some(after);
    }
    let (file, pos) = head.ok_or(IncrementalError::BinlogOff)?;
    tracing::warn!(%file, pos, "the source's GTID set could not be read at a still position");
    Ok(Position { file, pos, gtid_set: None, gtid: None })
}

/// The source's binlog files and sizes, oldest first.
pub async fn binary_logs(conn: &mut Conn) -> crate::Result<Vec<(String, u64)>> {
    let rows: Vec<mysql_async::Row> =
        conn.query("SHOW BINARY LOGS").await.sql("list the source binlog files")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
        .collect())
}

/// Opens the replication stream at `start` (its file and pos; GTID set alone when no file).
/// Also says whether the source checksums its events.
pub async fn open(
    source: &Endpoint,
    start: &Position,
    server_id: u32,
) -> crate::Result<(BinlogStream, bool)> {
    let mut conn = crate::connect::connect(source, "source").await?;
    let checksum: Option<String> = conn
        .query_first("SELECT @@GLOBAL.binlog_checksum")
        .await
        .sql("read the source's binlog_checksum")?;
    let checksums = checksum.is_some_and(|c| c.eq_ignore_ascii_case("CRC32"));
    if !start.file.is_empty() {
        let files = binary_logs(&mut conn).await?;
        if !files.iter().any(|(f, _)| *f == start.file) {
            return Err(IncrementalError::BinlogPurged {
                file: start.file.clone(),
                oldest: files.first().map(|(f, _)| f.clone()).unwrap_or_default(),
            }
            .into());
        }
    }
    // MariaDB sends its GTID events only to replicas that announce capability 4, and checksums
    // only when asked; the heartbeat keeps an idle stream alive (nanoseconds).
    for sql in [
        "SET @mariadb_slave_capability = 4",
        "SET @master_binlog_checksum = @@global.binlog_checksum",
        "SET @master_heartbeat_period = 1000000000",
        // MySQL 8.0.26 renamed these; newer versions read only the source_ spellings.
        "SET @source_binlog_checksum = @@global.binlog_checksum",
        "SET @source_heartbeat_period = 1000000000",
    ] {
        // MySQL rejects the MariaDB-only variables; MariaDB accepts them all.
        if let Err(e) = conn.query_drop(sql).await {
            tracing::debug!(%sql, error = %e, "source refused a replication setting");
        }
    }
    let request = BinlogStreamRequest::new(server_id);
    let gtid = start.gtid_set.as_deref().unwrap_or("");
    let request = if !start.file.is_empty() {
        request.with_filename(start.file.as_bytes()).with_pos(start.pos.max(4))
    } else if let Some(sids) = mysql_gtid_set(gtid)? {
        // MySQL starts after a GTID set through COM_BINLOG_DUMP_GTID.
        request.with_gtid().with_gtid_set(sids)
    } else {
        // MariaDB starts after the GTID position in @slave_connect_state. Any other server would
        // take the variable and stream from its oldest binlog, so it is refused here.
        if !crate::connect::is_mariadb(&mut conn).await? {
            return Err(IncrementalError::BadGtidSet(format!(
                "`{gtid}` is a MariaDB GTID position but the source is not MariaDB: give a MySQL \
                 GTID set (uuid:first-last) or a file and pos"
            ))
            .into());
        }
        conn.query_drop(format!("SET @slave_connect_state = {}", crate::sql::quote_str(gtid)))
            .await
            .sql("set the source's @slave_connect_state")?;
        conn.query_drop("SET @slave_gtid_strict_mode = 0")
            .await
            .sql("set the source's @slave_gtid_strict_mode")?;
        request
    };
    let stream = conn.get_binlog_stream(request).await.map_err(|e| stream_error(e, start))?;
    Ok((stream, checksums))
}

/// The MySQL GTID set of a position (`uuid:1-5:7,...`) as the dump request carries it; `None`
/// when the position is MariaDB's (`domain-server-seq`, no colon) or empty.
fn mysql_gtid_set(text: &str) -> Result<Option<Vec<Sid<'static>>>, IncrementalError> {
    let parts: Vec<&str> = text.split(',').map(str::trim).filter(|p| p.contains(':')).collect();
    if parts.is_empty() {
        return Ok(None);
    }
    let sids = parts.into_iter().map(|part| {
        part.parse().map_err(|e| IncrementalError::BadGtidSet(format!("`{part}`: {e}")))
    });
    sids.collect::<Result<_, _>>().map(Some)
}

/// Maps a stream error; a missing binlog means the position is gone for good.
pub fn stream_error(error: mysql_async::Error, at: &Position) -> crate::Error {
    if let mysql_async::Error::Server(e) = &error
        && e.code == 1236
    {
        return IncrementalError::SourceRefused { at: describe(at), message: e.message.clone() }
            .into();
    }
    IncrementalError::Stream { at: describe(at), source: error }.into()
}

fn describe(p: &Position) -> String {
    if p.file.is_empty() {
        format!("GTID {}", p.gtid_set.as_deref().unwrap_or(""))
    } else {
        format!("{}:{}", p.file, p.pos)
    }
}

/// How long the binlog stream may send nothing before it is taken as lost: many heartbeats
/// (one a second, see [`open`]).
pub const STREAM_SILENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Assembles events into units and sends them until the stream ends or the receiver goes away.
pub struct Reader {
    pub decoder: Decoder,
    pub filter: Filter,
    pub position: Position,
    gtids: GtidState,
    current: Option<Vec<RowChange>>,
    /// A DDL statement of the transaction being read (see [`Txn::ddl`]).
    current_ddl: Option<Ddl>,
    /// The GTID of the event group being read, added to `gtids` when it commits.
    pending_gtid: Option<Decoded>,
    /// Whether `gtids` started from the source's whole executed set. A MySQL set accumulated from
    /// a start without one lacks everything before it, and resuming from it would replay that.
    whole_set: bool,
}

impl Reader {
    /// `gtids` is `start`'s GTID set, parsed.
    pub fn new(filter: Filter, start: Position, gtids: GtidState, checksums: bool) -> Self {
        let mut decoder = Decoder::new().with_selection(filter.clone());
        decoder.checksum_before_fde = checksums;
        decoder.file.clone_from(&start.file);
        let whole_set = start.gtid_set.is_some();
        Self {
            decoder,
            filter,
            position: start,
            gtids,
            current: None,
            current_ddl: None,
            pending_gtid: None,
            whole_set,
        }
    }

    /// Reads the stream into `tx` until it ends, fails or `tx` closes.
    /// A stream that sends nothing, heartbeats included, for [`STREAM_SILENCE`] is lost (a
    /// half-open connection: the socket stays up while nothing arrives).
    pub async fn run(mut self, mut stream: BinlogStream, tx: mpsc::Sender<crate::Result<Unit>>) {
        loop {
            let Ok(next) = tokio::time::timeout(STREAM_SILENCE, stream.next()).await else {
                let at = describe(&self.position);
                let silent = IncrementalError::StreamSilent { at, silent: STREAM_SILENCE };
                let _ = tx.send(Err(silent.into())).await;
                return;
            };
            let Some(event) = next else { break };
            let result = match event {
                Ok(event) => self.handle(&event),
                Err(e) => Err(stream_error(e, &self.position)),
            };
            let unit = match result {
                Ok(Some(unit)) => Ok(unit),
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            let failed = unit.is_err();
            if tx.send(unit).await.is_err() || failed {
                return;
            }
        }
        let _ = tx
            .send(Err(IncrementalError::StreamEnded { at: describe(&self.position) }.into()))
            .await;
    }

    /// One event: returns a unit when a transaction or DDL statement is complete.
    pub fn handle(
        &mut self,
        event: &mysql_async::binlog::events::Event,
    ) -> crate::Result<Option<Unit>> {
        let header = event.header();
        let decoded = self.decoder.decode(event).map_err(IncrementalError::Decode)?;
        if let Decoded::Rotate { file, pos } = &decoded {
            self.position.file.clone_from(file);
            self.position.pos = *pos;
            return Ok(None);
        }
        if header.log_pos() != 0 {
            self.position.pos = u64::from(header.log_pos());
        }
        let timestamp = header.timestamp();
        let Decoded::Payload(events) = decoded else {
            return self.assemble(decoded, timestamp);
        };
        // A payload holds one whole transaction; it ends where the payload event ends.
        let mut unit = None;
        for decoded in events {
            if let Some(done) = self.assemble(decoded, timestamp)?
                && unit.replace(done).is_some()
            {
                let at = describe(&self.position);
                return Err(IncrementalError::PayloadWithManyTransactions { at }.into());
            }
        }
        Ok(unit)
    }

    /// Adds a decoded event to the transaction being read; returns it when it is complete.
    fn assemble(&mut self, decoded: Decoded, timestamp: u32) -> crate::Result<Option<Unit>> {
        if let Decoded::Query { schema, sql, .. } = &decoded {
            self.refuse_statement_dml(schema, sql)?;
        }
        Ok(match decoded {
            Decoded::MariaGtid { standalone, .. } => {
                if !standalone {
                    self.current = Some(Vec::new());
                }
                self.pending_gtid = Some(decoded);
                None
            }
            Decoded::MysqlGtid(_) => {
                self.pending_gtid = Some(decoded);
                None
            }
            Decoded::Begin => {
                self.current.get_or_insert_with(Vec::new);
                None
            }
            Decoded::Rows(change) => {
                let (db, table) = (&change.database, &change.table);
                if self.filter.row(db, table, &self.position)
                    && !self.filter.drops_rows(
                        event_type(change.kind),
                        db,
                        table,
                        change.rows.len(),
                    )
                {
                    self.current.get_or_insert_with(Vec::new).push(change);
                }
                None
            }
            Decoded::Commit => {
                let changes = self.current.take().unwrap_or_default();
                let end = self.commit_position();
                let ddl = self.current_ddl.take().map(|ddl| Ddl { end: end.clone(), ..ddl });
                Some(Unit::Txn(Txn { ddl, changes, end, timestamp }))
            }
            Decoded::Query { schema, sql, session } if self.current.is_some() => {
                if self.ddl_decision(&schema, &sql) == DdlDecision::Apply {
                    let end = self.position.clone();
                    self.current_ddl = Some(self.routed(Ddl {
                        schema,
                        sql,
                        session,
                        end,
                        timestamp,
                        refused: None,
                    }));
                }
                None
            }
            Decoded::Query { schema, sql, session } => {
                let end = self.commit_position();
                let empty = |end| Unit::Txn(Txn { ddl: None, changes: Vec::new(), end, timestamp });
                let ddl = Ddl { schema, sql, session, end, timestamp, refused: None };
                if let Some(unit) = self.online_ddl(&ddl) {
                    return Ok(Some(unit));
                }
                let Ddl { schema, sql, session, end, .. } = ddl;
                Some(match self.ddl_decision(&schema, &sql) {
                    DdlDecision::Apply => Unit::Ddl(self.routed(Ddl {
                        schema,
                        sql,
                        session,
                        end,
                        timestamp,
                        refused: None,
                    })),
                    DdlDecision::Mixed => {
                        tracing::warn!(%sql, "skipping DDL that touches objects inside and outside the selection");
                        empty(end)
                    }
                    DdlDecision::Filtered => {
                        tracing::info!(sql = %redacted(&sql, 160), "DDL dropped as spec.filters says");
                        empty(end)
                    }
                    DdlDecision::Ignore => empty(end),
                })
            }
            _ => None,
        })
    }

    /// What to do with a statement; DDL of a table added to the selection that its target
    /// table, created later from the source's definition, already holds is ignored.
    fn ddl_decision(&self, schema: &str, sql: &str) -> DdlDecision {
        if self.filter.precedes_creation(schema, sql, &self.position) {
            return DdlDecision::Ignore;
        }
        self.filter.ddl(schema, sql)
    }

    /// The unit of a statement of an online schema-change tool on a selected table (an empty
    /// transaction for the tool's bookkeeping); `None` for any other statement.
    fn online_ddl(&self, ddl: &Ddl) -> Option<Unit> {
        let step = match online_ddl::classify(&self.filter, &ddl.schema, &ddl.sql) {
            online_ddl::Kind::NotTool => return None,
            online_ddl::Kind::Ignore => {
                tracing::debug!(sql = %redacted(&ddl.sql, 160), "online schema-change tool's bookkeeping ignored");
                let (end, timestamp) = (ddl.end.clone(), ddl.timestamp);
                return Some(Unit::Txn(Txn { ddl: None, changes: Vec::new(), end, timestamp }));
            }
            online_ddl::Kind::Reset(tables) => online_ddl::Step::Reset(tables),
            online_ddl::Kind::Record { table, alter } => {
                let alter = Ddl { schema: table.database.clone(), sql: alter, ..ddl.clone() };
                online_ddl::Step::Record { table, alter: self.routed(alter) }
            }
            online_ddl::Kind::Swap(table) => online_ddl::Step::Swap { table, rename: ddl.clone() },
        };
        let (end, timestamp) = (ddl.end.clone(), ddl.timestamp);
        Some(Unit::OnlineDdl(Box::new(OnlineDdl { step, end, timestamp })))
    }

    /// The statement as it runs on the target under `spec.routes`: in the routed database, or
    /// refused with the reason.
    fn routed(&self, ddl: Ddl) -> Ddl {
        match self.filter.ddl_route(&ddl.schema, &ddl.sql) {
            Ok(None) => ddl,
            Ok(Some(database)) => Ddl { schema: database, ..ddl },
            Err(why) => Ddl { refused: Some(why), ..ddl },
        }
    }

    /// Row changes the source logged as a statement (`binlog_format=STATEMENT` or `MIXED` in
    /// some session) cannot be replayed exactly: on a selected table they stop the job.
    fn refuse_statement_dml(&self, schema: &str, sql: &str) -> Result<(), IncrementalError> {
        let Some(tables) = dml_tables(schema, sql) else { return Ok(()) };
        let selected = |object: &Object| match object {
            Object::Table(database, table) => self.filter.row(database, table, &self.position),
            Object::Database(database) => self.filter.database(database),
        };
        // A statement whose table is not understood is treated as touching the selection.
        if !tables.is_empty() && !tables.iter().any(selected) {
            return Ok(());
        }
        Err(IncrementalError::StatementFormat {
            at: describe(&self.position),
            statement: redacted(sql, 160),
        })
    }

    /// The position after the event just read, with the GTID of its group applied.
    fn commit_position(&mut self) -> Position {
        let gtid = match self.pending_gtid.take() {
            Some(Decoded::MariaGtid { gtid, .. }) => {
                self.gtids.add_maria(gtid);
                Some(gtid.to_string())
            }
            Some(Decoded::MysqlGtid(Some(gtid))) => {
                self.gtids.add_mysql(&gtid.source, gtid.gno);
                Some(gtid.to_string())
            }
            _ => None,
        };
        // A MariaDB position is whole from any start: it holds the last GTID of each domain.
        let whole = self.whole_set || !self.gtids.has_mysql();
        let gtid_set = (whole && !self.gtids.is_empty()).then(|| self.gtids.to_string());
        Position {
            gtid_set: gtid_set.or_else(|| self.position.gtid_set.clone()),
            gtid,
            ..self.position.clone()
        }
    }
}

/// The `spec.filters` event type of a row change.
fn event_type(kind: RowKind) -> EventType {
    match kind {
        RowKind::Insert => EventType::Insert,
        RowKind::Update => EventType::Update,
        RowKind::Delete => EventType::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_gtid_sets_become_dump_request_blocks() {
        let sids = mysql_gtid_set(
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7, 3e11fa47-71ca-11e1-9e33-c80aa9429563:2",
        )
        .unwrap()
        .expect("a MySQL GTID set");
        assert_eq!(sids.len(), 2);
        let intervals: Vec<(u64, u64)> =
            sids[0].intervals().iter().map(|i| (i.start(), i.end())).collect();
        assert_eq!(intervals, vec![(1, 6), (7, 8)]);
        assert!(mysql_gtid_set("0-1-10").unwrap().is_none(), "a MariaDB position");
        assert!(mysql_gtid_set("").unwrap().is_none());
    }
}
