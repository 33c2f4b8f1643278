//! Reading the source's binlog: opening the replication stream (MariaDB's capability and
//! checksum handshake, file+pos or GTID starts), and turning events into whole transactions.

use std::collections::BTreeMap;

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn};
use tokio::sync::mpsc;

use super::IncrementalError;
use super::checkpoint::Position;
use super::event::{Decoded, Decoder, MariaGtid, RowChange};
use super::filter::{DdlDecision, Filter};
use crate::config::Endpoint;
use crate::error::SqlContext;

/// What the applier gets, in source order.
#[derive(Debug)]
pub enum Unit {
    /// A committed source transaction (its selected row changes, maybe none).
    Txn(Txn),
    /// A DDL statement to apply alone.
    Ddl(Ddl),
}

#[derive(Debug)]
pub struct Txn {
    pub changes: Vec<RowChange>,
    /// Position after the commit.
    pub end: Position,
    /// Source time of the commit.
    pub timestamp: u32,
}

#[derive(Debug)]
pub struct Ddl {
    pub schema: String,
    pub sql: String,
    pub end: Position,
    pub timestamp: u32,
}

impl Unit {
    pub fn end(&self) -> &Position {
        match self {
            Unit::Txn(t) => &t.end,
            Unit::Ddl(d) => &d.end,
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Unit::Txn(t) => t.changes.iter().map(|c| c.rows.len()).sum(),
            Unit::Ddl(_) => 0,
        }
    }
}

/// The source's current binlog position (`SHOW MASTER STATUS`) and GTID position.
pub async fn source_head(conn: &mut Conn) -> crate::Result<Position> {
    let row: Option<mysql_async::Row> =
        conn.query_first("SHOW MASTER STATUS").await.sql("read the source binlog position")?;
    let row = row.ok_or(IncrementalError::BinlogOff)?;
    let file: String = row.get(0).ok_or(IncrementalError::BinlogOff)?;
    let pos: u64 = row.get(1).ok_or(IncrementalError::BinlogOff)?;
    let gtid: Option<String> =
        conn.query_first("SELECT @@GLOBAL.gtid_binlog_pos").await.ok().flatten();
    Ok(Position { file, pos, gtid_set: gtid.filter(|g| !g.is_empty()) })
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
    let mut setup = vec![
        "SET @mariadb_slave_capability = 4".to_string(),
        "SET @master_binlog_checksum = @@global.binlog_checksum".to_string(),
        "SET @master_heartbeat_period = 1000000000".to_string(),
    ];
    if start.file.is_empty() {
        let gtid = start.gtid_set.clone().unwrap_or_default();
        setup.push(format!("SET @slave_connect_state = {}", crate::sql::quote_str(&gtid)));
        setup.push("SET @slave_gtid_strict_mode = 0".to_string());
    }
    for sql in setup {
        // MySQL rejects the MariaDB-only variables; MariaDB accepts them all.
        if let Err(e) = conn.query_drop(&sql).await {
            tracing::debug!(%sql, error = %e, "source refused a replication setting");
        }
    }
    let mut request = BinlogStreamRequest::new(server_id);
    if !start.file.is_empty() {
        request = request.with_filename(start.file.as_bytes()).with_pos(start.pos.max(4));
    }
    let stream = conn.get_binlog_stream(request).await.map_err(|e| stream_error(e, start))?;
    Ok((stream, checksums))
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

/// Assembles events into units and sends them until the stream ends or the receiver goes away.
pub struct Reader {
    pub decoder: Decoder,
    pub filter: Filter,
    pub position: Position,
    gtids: BTreeMap<u32, MariaGtid>,
    current: Option<Vec<RowChange>>,
    pending_gtid: Option<MariaGtid>,
}

impl Reader {
    pub fn new(filter: Filter, start: Position, checksums: bool) -> Self {
        let gtids = parse_maria_gtids(start.gtid_set.as_deref().unwrap_or(""));
        let mut decoder = Decoder::new();
        decoder.checksum_before_fde = checksums;
        decoder.file.clone_from(&start.file);
        Self { decoder, filter, position: start, gtids, current: None, pending_gtid: None }
    }

    /// Reads the stream into `tx` until it ends, fails or `tx` closes.
    pub async fn run(mut self, mut stream: BinlogStream, tx: mpsc::Sender<crate::Result<Unit>>) {
        while let Some(event) = stream.next().await {
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
        Ok(match decoded {
            Decoded::MariaGtid { gtid, standalone } => {
                self.pending_gtid = Some(gtid);
                if !standalone {
                    self.current = Some(Vec::new());
                }
                None
            }
            Decoded::Begin => {
                self.current.get_or_insert_with(Vec::new);
                None
            }
            Decoded::Rows(change) => {
                if self.filter.row(&change.database, &change.table, &self.position) {
                    self.current.get_or_insert_with(Vec::new).push(change);
                }
                None
            }
            Decoded::Commit => {
                let changes = self.current.take().unwrap_or_default();
                let end = self.commit_position();
                Some(Unit::Txn(Txn { changes, end, timestamp }))
            }
            Decoded::Query { schema, sql } if self.current.is_none() => {
                let end = self.commit_position();
                Some(match self.filter.ddl(&schema, &sql) {
                    DdlDecision::Apply => Unit::Ddl(Ddl { schema, sql, end, timestamp }),
                    DdlDecision::Mixed => {
                        tracing::warn!(%sql, "skipping DDL that touches objects inside and outside the selection");
                        Unit::Txn(Txn { changes: Vec::new(), end, timestamp })
                    }
                    DdlDecision::Ignore => Unit::Txn(Txn { changes: Vec::new(), end, timestamp }),
                })
            }
            _ => None,
        })
    }

    /// The position after the event just read, with the GTID of its group applied.
    fn commit_position(&mut self) -> Position {
        if let Some(gtid) = self.pending_gtid.take() {
            self.gtids.insert(gtid.domain, gtid);
        }
        let gtid_set = (!self.gtids.is_empty())
            .then(|| self.gtids.values().map(|g| g.to_string()).collect::<Vec<_>>().join(","));
        Position {
            gtid_set: gtid_set.or_else(|| self.position.gtid_set.clone()),
            ..self.position.clone()
        }
    }
}

/// Parses MariaDB `domain-server-seq,...`; anything else (a MySQL GTID set) yields nothing.
fn parse_maria_gtids(text: &str) -> BTreeMap<u32, MariaGtid> {
    text.split(',')
        .filter_map(|part| {
            let mut it = part.trim().split('-');
            let gtid = MariaGtid {
                domain: it.next()?.parse().ok()?,
                server: it.next()?.parse().ok()?,
                seq: it.next()?.parse().ok()?,
            };
            it.next().is_none().then_some((gtid.domain, gtid))
        })
        .collect()
}
