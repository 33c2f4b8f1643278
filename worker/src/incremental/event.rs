//! Binlog events to row changes, shared by replication and `ferry binlog decode`.
//!
//! mysql_common parses the standard events; this module adds what it lacks: CRC32 verification,
//! MariaDB's own events (GTID, GTID list, annotate, binlog checkpoint), MySQL's compressed
//! transaction payloads, and the value fixes that its row decoder needs (YEAR 0, TIMESTAMP as a
//! UTC instant, SET and BIT as numbers, MySQL's binary JSON and partial JSON updates as text).
//! Unsigned integers need the table's schema and are fixed by the applier.

use std::collections::{HashMap, VecDeque};
use std::io::Read;

use chrono::{DateTime, Datelike, Timelike};
use mysql_async::Value;
use mysql_async::binlog::events::{
    Event, EventData, FormatDescriptionEvent, OptionalMetaExtractor, RowsEventData, TableMapEvent,
    TransactionPayloadEvent,
};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::binlog::{BinlogChecksumAlg, BinlogVersion, EventType, RowsEventFlags};
use mysql_async::consts::ColumnType;

use super::filter::Filter;
use super::json;

/// MariaDB event types mysql_common does not know.
pub const MARIA_ANNOTATE_ROWS: u8 = 160;
pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
pub const MARIA_GTID: u8 = 162;
pub const MARIA_GTID_LIST: u8 = 163;
pub const MARIA_START_ENCRYPTION: u8 = 164;
/// MariaDB's compressed query and rows events (`log_bin_compress=ON`).
const MARIA_COMPRESSED_FIRST: u8 = 165;
const MARIA_COMPRESSED_LAST: u8 = 171;

/// MariaDB GTID event flag: the event group is a single statement with no COMMIT (DDL).
const MARIA_FL_STANDALONE: u8 = 1;

/// A binlog that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "{file}:{pos}: event checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the binlog is corrupt"
    )]
    Checksum { file: String, pos: u64, stored: u32, computed: u32 },
    #[error("{file}:{pos}: cannot decode event type {event_type}: {message}")]
    Event { file: String, pos: u64, event_type: u8, message: String },
    #[error(
        "{file}:{pos}: rows event for table id {table_id} without its table map event: start \
         replication at a transaction boundary"
    )]
    MissingTableMap { file: String, pos: u64, table_id: u64 },
    #[error("{file}:{pos}: {what} is not supported: {remedy}")]
    Unsupported { file: String, pos: u64, what: String, remedy: String },
}

/// A MariaDB GTID `domain-server-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl std::fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// A MySQL GTID: its source (`uuid`, or `uuid:tag` on MySQL 8.4) and transaction number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlGtid {
    pub source: String,
    pub gno: u64,
}

impl std::fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.gno)
    }
}

/// Kind of a row change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    Insert,
    Update,
    Delete,
}

/// One column value of a row image: `None` when the image does not carry the column.
pub type Cell = Option<Value>;

/// A row image: one cell per column.
pub type Image = Vec<Cell>;

/// The rows of one rows event, decoded.
#[derive(Debug, Clone)]
pub struct RowChange {
    pub database: String,
    pub table: String,
    pub kind: RowKind,
    /// Binlog column types (the real type for ENUM and SET), in the source's column order.
    pub column_types: Vec<ColumnType>,
    /// Column names, when the table map carries them (`binlog_row_metadata=FULL`).
    pub column_names: Option<Vec<String>>,
    /// Per column, whether it is an unsigned number, when the table map says so
    /// (`binlog_row_metadata=MINIMAL` or `FULL`).
    pub unsigned: Option<Vec<bool>>,
    /// The source changed these rows with foreign key checks off (the rows event's
    /// NO_FOREIGN_KEY_CHECKS flag), so the target must too: MySQL 9 logs the child rows of its
    /// cascades itself, before the parent's, flagged so; or a session ran with
    /// `foreign_key_checks=0`. With checks on, the target would refuse a child row that points
    /// to a parent key not written yet, or cascade what the source did not.
    pub no_foreign_key_checks: bool,
    /// (before image, after image); inserts have no before image, deletes no after image.
    pub rows: Vec<(Option<Image>, Option<Image>)>,
}

/// What one event means.
#[derive(Debug)]
pub enum Decoded {
    /// Next events come from this file and position.
    Rotate {
        file: String,
        pos: u64,
    },
    /// A MariaDB GTID: starts an event group (a transaction unless `standalone`).
    MariaGtid {
        gtid: MariaGtid,
        standalone: bool,
    },
    /// A MySQL GTID, or an anonymous GTID (`None`): the next event group starts.
    MysqlGtid(Option<MysqlGtid>),
    /// `BEGIN`.
    Begin,
    /// Row changes of a table.
    Rows(RowChange),
    /// The transaction commits (XID or `COMMIT`).
    Commit,
    /// Any other statement: DDL and what else the server logs as a statement.
    Query {
        schema: String,
        sql: String,
        /// The session the source ran it in.
        session: super::ddl::QuerySession,
    },
    /// MariaDB annotate event: the statement that made the next rows events.
    Annotate(String),
    /// MariaDB GTID list at the start of a file: the binlog state then.
    GtidList(Vec<MariaGtid>),
    Heartbeat,
    /// A MySQL transaction payload (`binlog_transaction_compression=ON`): the events it holds.
    Payload(Vec<Decoded>),
    /// Format description, table map, checkpoint and other events with nothing to apply.
    Other,
}

/// Decodes events in order, keeping the format description and table maps they need.
pub struct Decoder {
    fde: FormatDescriptionEvent<'static>,
    tables: HashMap<u64, TableMapEvent<'static>>,
    /// Current binlog file (from rotate events), for positions and messages.
    pub file: String,
    /// The server checksums its events: the rotate event it sends before the format
    /// description carries a checksum the decoder cannot know about yet.
    pub checksum_before_fde: bool,
    seen_fde: bool,
    /// Rows of tables outside this selection are not decoded (a value the decoder cannot read
    /// there must not stop the job).
    selection: Option<Filter>,
    /// Types of the events of the last transaction payload, which mysql_async's binlog stream
    /// yields once more (see [`Decoder::decode`]).
    payload_repeats: VecDeque<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            fde: FormatDescriptionEvent::new(BinlogVersion::Version4),
            tables: HashMap::new(),
            file: String::new(),
            checksum_before_fde: false,
            seen_fde: false,
            selection: None,
            payload_repeats: VecDeque::new(),
        }
    }

    /// Decodes only the rows of tables `filter` selects; other rows events become
    /// [`Decoded::Other`].
    pub fn with_selection(mut self, filter: Filter) -> Self {
        self.selection = Some(filter);
        self
    }

    /// Whether the rows of the table behind `table_id` are to be decoded (unknown ids are, so
    /// that their error is reported).
    fn selected(&self, table_id: u64) -> bool {
        let (Some(filter), Some(tme)) = (&self.selection, self.tables.get(&table_id)) else {
            return true;
        };
        filter.table(&tme.database_name(), &tme.table_name())
    }

    /// The format description to read the next event's bytes with (files only).
    pub fn fde(&self) -> &FormatDescriptionEvent<'static> {
        &self.fde
    }

    /// The table map event for `table_id`, if seen.
    pub fn table_map(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.tables.get(&table_id)
    }

    /// Verifies the event's checksum and decodes it.
    ///
    /// mysql_async's binlog stream yields a transaction payload's events a second time,
    /// decompressed and without checksums, right after the payload event, which this decoder
    /// has already decoded whole: those repeats are [`Decoded::Other`]. They are told apart by
    /// their types, in the payload's order, and their lack of a position (events inside a
    /// payload have none); a file has no repeats, and its next event ends the expectation.
    pub fn decode(&mut self, event: &Event) -> Result<Decoded, DecodeError> {
        let header = event.header();
        let pos = u64::from(header.log_pos());
        let repeat = pos == 0 && self.payload_repeats.front() == Some(&header.event_type_raw());
        if repeat {
            self.payload_repeats.pop_front();
            return Ok(Decoded::Other);
        }
        self.payload_repeats.clear();
        verify_checksum(event, &self.file, pos)?;
        self.decode_unverified(event, pos)
    }

    /// Decodes an event whose checksum was verified, or that has none (inside a payload).
    fn decode_unverified(&mut self, event: &Event, pos: u64) -> Result<Decoded, DecodeError> {
        let raw_type = event.header().event_type_raw();
        let file = self.file.clone();
        let fail = |message: String| DecodeError::Event {
            file: file.clone(),
            pos,
            event_type: raw_type,
            message,
        };
        match raw_type {
            MARIA_GTID => return parse_maria_gtid(event).map_err(fail),
            MARIA_GTID_LIST => return parse_maria_gtid_list(event.data()).map_err(fail),
            MARIA_ANNOTATE_ROWS => {
                return Ok(Decoded::Annotate(String::from_utf8_lossy(event.data()).into_owned()));
            }
            MARIA_BINLOG_CHECKPOINT => return Ok(Decoded::Other),
            MARIA_START_ENCRYPTION => {
                return Err(self.unsupported(
                    pos,
                    "an encrypted binlog",
                    "turn off encrypt_binlog",
                ));
            }
            MARIA_COMPRESSED_FIRST..=MARIA_COMPRESSED_LAST => {
                return Err(self.unsupported(
                    pos,
                    "a compressed MariaDB binlog event",
                    "set log_bin_compress=OFF on the source",
                ));
            }
            _ => {}
        }
        let data = event.read_data().map_err(|e| fail(e.to_string()))?;
        let Some(data) = data else { return Ok(Decoded::Other) };
        self.decode_data(data, pos).map_err(|e| match e {
            Step::Fail(message) => fail(message),
            Step::Error(e) => e,
        })
    }

    /// The events of a transaction payload, decompressed and decoded in order. They carry no
    /// checksums (the payload event's own covers them) and no positions of their own.
    fn decode_payload(
        &mut self,
        payload: &TransactionPayloadEvent<'_>,
        pos: u64,
    ) -> Result<Decoded, Step> {
        let mut reader =
            payload.decompressed().map_err(|e| Step::Fail(format!("transaction payload: {e}")))?;
        let mut footer = self.fde.footer();
        footer.set_checksum_enabled(false);
        let inner_fde = self.fde.clone().with_footer(footer);
        let mut events = Vec::new();
        let mut types = VecDeque::new();
        while let Some(bytes) = next_inner_event(&mut reader, payload.uncompressed_size())? {
            types.push_back(bytes[4]);
            if bytes[4] == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
                return Err(Step::Fail(
                    "a transaction payload inside a transaction payload".into(),
                ));
            }
            let event = Event::read(&inner_fde, &bytes[..])
                .map_err(|e| Step::Fail(format!("transaction payload event: {e}")))?;
            events.push(self.decode_unverified(&event, pos).map_err(Step::Error)?);
        }
        self.payload_repeats = types;
        Ok(Decoded::Payload(events))
    }

    fn decode_data(&mut self, data: EventData<'_>, pos: u64) -> Result<Decoded, Step> {
        Ok(match data {
            EventData::FormatDescriptionEvent(fde) => {
                self.fde = fde.into_owned();
                self.seen_fde = true;
                Decoded::Other
            }
            EventData::RotateEvent(rotate) => {
                let mut name = rotate.name_raw();
                if !self.seen_fde && self.checksum_before_fde && name.len() > 4 {
                    name = &name[..name.len() - 4];
                }
                let file = String::from_utf8_lossy(name).into_owned();
                if !rotate.is_fake() {
                    self.tables.clear();
                }
                self.file.clone_from(&file);
                Decoded::Rotate { file, pos: rotate.position() }
            }
            EventData::TableMapEvent(tme) => {
                self.tables.insert(tme.table_id(), tme.into_owned());
                Decoded::Other
            }
            EventData::RowsEvent(rows) if !self.selected(rows.table_id()) => Decoded::Other,
            EventData::RowsEvent(rows) => Decoded::Rows(self.decode_rows(&rows, pos)?),
            EventData::XidEvent(_) => Decoded::Commit,
            EventData::QueryEvent(query) => {
                let session = super::ddl::QuerySession::of(&query);
                let sql = super::ddl::statement_text(&query, &session);
                match sql.trim() {
                    "BEGIN" => Decoded::Begin,
                    "COMMIT" => Decoded::Commit,
                    _ => Decoded::Query { schema: query.schema().into_owned(), sql, session },
                }
            }
            // LOAD DATA logged as a statement: its rows are in the event's file, not in rows events.
            EventData::ExecuteLoadQueryEvent(load) => Decoded::Query {
                schema: load.schema().into_owned(),
                sql: load.query().into_owned(),
                session: Default::default(),
            },
            EventData::GtidEvent(gtid) => {
                let uuid = format_uuid(&gtid.sid());
                let source = match gtid.tag() {
                    Some(tag) => format!("{uuid}:{tag}"),
                    None => uuid,
                };
                Decoded::MysqlGtid(Some(MysqlGtid { source, gno: gtid.gno() }))
            }
            EventData::AnonymousGtidEvent(_) => Decoded::MysqlGtid(None),
            EventData::HeartbeatEvent => Decoded::Heartbeat,
            EventData::RowsQueryEvent(q) => Decoded::Annotate(q.query().into_owned()),
            EventData::TransactionPayloadEvent(payload) => self.decode_payload(&payload, pos)?,
            _ => Decoded::Other,
        })
    }

    fn decode_rows(&self, rows: &RowsEventData<'_>, pos: u64) -> Result<RowChange, Step> {
        let table_id = rows.table_id();
        let tme = self.tables.get(&table_id).ok_or_else(|| {
            Step::Error(DecodeError::MissingTableMap { file: self.file.clone(), pos, table_id })
        })?;
        let kind = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                RowKind::Insert
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                RowKind::Delete
            }
            _ => RowKind::Update,
        };
        let column_types = real_column_types(tme)?;
        let (column_names, unsigned) = optional_metadata(tme, &column_types)?;
        let mut change = RowChange {
            database: tme.database_name().into_owned(),
            table: tme.table_name().into_owned(),
            kind,
            column_types,
            column_names,
            unsigned,
            no_foreign_key_checks: rows.flags().contains(RowsEventFlags::NO_FOREIGN_KEY_CHECKS),
            rows: Vec::new(),
        };
        // mysql_common's row parser can panic on values it gets wrong (negative TIME(1|2) with a
        // fraction, through an overflow check that the release profile keeps on for it); a panic
        // here becomes an error naming the event.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rows.rows(tme).collect::<Vec<_>>()
        }))
        .map_err(|_| {
            Step::Fail(
                "the rows event holds a value the decoder cannot read (known case: a negative \
                 TIME(1) or TIME(2) value with a fraction of a second)"
                    .into(),
            )
        })?;
        let count = tme.columns_count() as usize;
        // Which columns each image carries (all of them with `binlog_row_image=FULL`).
        let present = |bits: Option<Vec<bool>>| bits.unwrap_or_else(|| vec![false; count]);
        let before_columns =
            present(rows.columns_before_image().map(|b| b.iter().by_vals().collect()));
        let after_columns =
            present(rows.columns_after_image().map(|b| b.iter().by_vals().collect()));
        for row in parsed {
            let (before, after) = row.map_err(|e| Step::Fail(format!("rows event: {e}")))?;
            let before = before.map(|r| binlog_values(r, &before_columns));
            let after = after
                .map(|r| after_image(binlog_values(r, &after_columns), before.as_deref(), &change))
                .transpose()?;
            let before = before.map(|values| image(values, &change.column_types)).transpose()?;
            change.rows.push((before, after));
        }
        Ok(change)
    }

    fn unsupported(&self, pos: u64, what: &str, remedy: &str) -> DecodeError {
        DecodeError::Unsupported {
            file: self.file.clone(),
            pos,
            what: what.to_string(),
            remedy: remedy.to_string(),
        }
    }
}

/// Internal: a message to wrap with the event's place, or a finished error.
enum Step {
    Fail(String),
    Error(DecodeError),
}

fn verify_checksum(event: &Event, file: &str, pos: u64) -> Result<(), DecodeError> {
    let Some(stored) = event.checksum() else { return Ok(()) };
    let Ok(Some(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32)) = event.footer().get_checksum_alg()
    else {
        return Ok(());
    };
    let stored = u32::from_le_bytes(stored);
    let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
    if stored != computed {
        return Err(DecodeError::Checksum { file: file.to_string(), pos, stored, computed });
    }
    Ok(())
}

fn parse_maria_gtid(event: &Event) -> Result<Decoded, String> {
    let data = event.data();
    if data.len() < 13 {
        return Err(format!("MariaDB GTID event of {} bytes, expected at least 13", data.len()));
    }
    let seq = u64::from_le_bytes(data[0..8].try_into().map_err(|_| "short GTID")?);
    let domain = u32::from_le_bytes(data[8..12].try_into().map_err(|_| "short GTID")?);
    let flags = data[12];
    let gtid = MariaGtid { domain, server: event.header().server_id(), seq };
    Ok(Decoded::MariaGtid { gtid, standalone: flags & MARIA_FL_STANDALONE != 0 })
}

fn parse_maria_gtid_list(data: &[u8]) -> Result<Decoded, String> {
    if data.len() < 4 {
        return Err("MariaDB GTID list event shorter than its count".into());
    }
    let count = (u32::from_le_bytes([data[0], data[1], data[2], data[3]]) & 0x0fff_ffff) as usize;
    let mut list = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let start = 4 + i * 16;
        let chunk = data
            .get(start..start + 16)
            .ok_or_else(|| format!("MariaDB GTID list truncated at entry {i} of {count}"))?;
        let word = |r: std::ops::Range<usize>| -> u32 {
            u32::from_le_bytes([
                chunk[r.start],
                chunk[r.start + 1],
                chunk[r.start + 2],
                chunk[r.start + 3],
            ])
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&chunk[8..16]);
        list.push(MariaGtid {
            domain: word(0..4),
            server: word(4..8),
            seq: u64::from_le_bytes(seq),
        });
    }
    Ok(Decoded::GtidList(list))
}

fn format_uuid(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Column names from a table map, when it has them.
type ColumnNames = Option<Vec<String>>;
/// Per column, whether it is an unsigned number, when the table map says.
type Signedness = Option<Vec<bool>>;

/// Column names and integer signedness from the table map's optional metadata, when it has
/// them (names with `binlog_row_metadata=FULL`, signedness with `MINIMAL` too).
fn optional_metadata(
    tme: &TableMapEvent<'_>,
    types: &[ColumnType],
) -> Result<(ColumnNames, Signedness), Step> {
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| Step::Fail(format!("table map optional metadata: {e}")))?;
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|name| name.map(|n| String::from_utf8_lossy(n.name_raw()).into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| Step::Fail(format!("table map column names: {e}")))?;
    let names = (names.len() == types.len()).then_some(names);
    // One bit per numeric column of the table map (ENUM and SET are strings there).
    let mut bits = meta.iter_signedness().peekable();
    let unsigned = bits.peek().is_some().then(|| {
        (0..types.len())
            .map(|i| {
                let numeric =
                    tme.get_column_type(i).ok().flatten().is_some_and(|t| t.is_numeric_type());
                numeric && bits.next().unwrap_or(false)
            })
            .collect()
    });
    Ok((names, unsigned))
}

/// Column types with ENUM and SET unwrapped from the STRING type that carries them.
fn real_column_types(tme: &TableMapEvent<'_>) -> Result<Vec<ColumnType>, Step> {
    let count = tme.columns_count() as usize;
    let mut types = Vec::with_capacity(count);
    for i in 0..count {
        let t = tme
            .get_column_type(i)
            .map_err(|e| Step::Fail(format!("table map column {i}: {e}")))?
            .ok_or_else(|| Step::Fail(format!("table map has no type for column {i}")))?;
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let real = match (t, meta.first()) {
            (ColumnType::MYSQL_TYPE_STRING, Some(&b)) if b == ColumnType::MYSQL_TYPE_ENUM as u8 => {
                ColumnType::MYSQL_TYPE_ENUM
            }
            (ColumnType::MYSQL_TYPE_STRING, Some(&b)) if b == ColumnType::MYSQL_TYPE_SET as u8 => {
                ColumnType::MYSQL_TYPE_SET
            }
            _ => t,
        };
        types.push(real);
    }
    Ok(types)
}

type BinlogCells = Vec<Option<BinlogValue<'static>>>;

/// The row's values by column position: mysql_common's row holds only the present columns.
fn binlog_values(mut row: mysql_async::binlog::row::BinlogRow, present: &[bool]) -> BinlogCells {
    let mut next = 0;
    present
        .iter()
        .map(|&is_present| {
            is_present.then(|| {
                next += 1;
                row.take(next - 1).map(BinlogValue::into_owned)
            })?
        })
        .collect()
}

/// The after image; a partial JSON update is applied to the same column's before image.
fn after_image(
    mut after: BinlogCells,
    before: Option<&[Option<BinlogValue<'static>>]>,
    change: &RowChange,
) -> Result<Image, Step> {
    for (i, cell) in after.iter_mut().enumerate() {
        let Some(BinlogValue::JsonDiff(diffs)) = cell else { continue };
        let Some(Some(BinlogValue::Jsonb(base))) = before.and_then(|b| b.get(i)) else {
            return Err(Step::Fail(format!(
                "partial JSON update of column {} of `{}`.`{}` without the column's JSON before \
                 image: set binlog_row_image=FULL on the source",
                i + 1,
                change.database,
                change.table
            )));
        };
        let text = json::apply_diffs(base.clone(), diffs).map_err(Step::Fail)?;
        *cell = Some(BinlogValue::Value(Value::Bytes(text)));
    }
    image(after, &change.column_types)
}

fn image(values: BinlogCells, types: &[ColumnType]) -> Result<Image, Step> {
    values
        .into_iter()
        .zip(types)
        .map(|(value, column_type)| {
            value.map(|v| fix_value(*column_type, v)).transpose().map_err(Step::Fail)
        })
        .collect()
}

/// Turns mysql_common's value into the one the target must receive.
fn fix_value(column_type: ColumnType, value: BinlogValue<'_>) -> Result<Value, String> {
    let value = match value {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => return Ok(Value::Bytes(json::text(j)?)),
        BinlogValue::JsonDiff(_) => return Err("a partial JSON update without its column".into()),
    };
    if value == Value::NULL {
        return Ok(value);
    }
    Ok(match column_type {
        ColumnType::MYSQL_TYPE_TINY
        | ColumnType::MYSQL_TYPE_SHORT
        | ColumnType::MYSQL_TYPE_INT24
        | ColumnType::MYSQL_TYPE_LONG
        | ColumnType::MYSQL_TYPE_LONGLONG => signed_integer(column_type, value),
        ColumnType::MYSQL_TYPE_YEAR => year(value)?,
        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => timestamp(value)?,
        ColumnType::MYSQL_TYPE_SET => match value {
            Value::Bytes(b) => Value::UInt(le_number(&b)),
            other => other,
        },
        ColumnType::MYSQL_TYPE_BIT => match value {
            Value::Bytes(b) => {
                Value::UInt(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
            }
            other => other,
        },
        _ => value,
    })
}

/// Bits of an integer column type.
pub fn integer_bits(column_type: ColumnType) -> Option<u32> {
    match column_type {
        ColumnType::MYSQL_TYPE_TINY => Some(8),
        ColumnType::MYSQL_TYPE_SHORT => Some(16),
        ColumnType::MYSQL_TYPE_INT24 => Some(24),
        ColumnType::MYSQL_TYPE_LONG => Some(32),
        ColumnType::MYSQL_TYPE_LONGLONG => Some(64),
        _ => None,
    }
}

/// An integer as the signed number its bits make at the column's width, whatever signedness
/// the decoder assumed: mysql_common reads MEDIUMINT without sign extension (-1 as 16777215)
/// and unsigned columns as unsigned when the table map says so. The binlog itself carries no
/// signedness (without optional metadata), so one form is kept and the column's signedness is
/// applied where it is known ([`to_unsigned`]). This is also how mysqlbinlog prints them.
fn signed_integer(column_type: ColumnType, value: Value) -> Value {
    let Some(bits) = integer_bits(column_type) else { return value };
    let raw = match value {
        Value::Int(n) => n as u64,
        Value::UInt(n) => n,
        other => return other,
    };
    let shift = 64 - bits;
    Value::Int(((raw << shift) as i64) >> shift)
}

/// The value of an unsigned integer column from its signed form ([`signed_integer`]).
pub fn to_unsigned(column_type: ColumnType, value: Value) -> Value {
    let (Some(bits), Value::Int(n)) = (integer_bits(column_type), &value) else { return value };
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    Value::UInt((*n as u64) & mask)
}

/// The next event's bytes in a decompressed payload, checked against its header's size.
fn next_inner_event(read: &mut impl Read, payload_size: u64) -> Result<Option<Vec<u8>>, Step> {
    const HEADER_LEN: usize = 19;
    let truncated = |what: String| Step::Fail(format!("transaction payload truncated: {what}"));
    let mut header = [0u8; HEADER_LEN];
    let got = super::file::read_full(read, &mut header).map_err(|e| truncated(e.to_string()))?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(truncated(format!("{got} of {HEADER_LEN} header bytes")));
    }
    let size = u32::from_le_bytes([header[9], header[10], header[11], header[12]]) as usize;
    if size < HEADER_LEN || (payload_size > 0 && size as u64 > payload_size) {
        return Err(Step::Fail(format!(
            "event size {size} in a transaction payload of {payload_size} bytes"
        )));
    }
    let mut bytes = header.to_vec();
    bytes.resize(size, 0);
    read.read_exact(&mut bytes[HEADER_LEN..]).map_err(|e| truncated(e.to_string()))?;
    Ok(Some(bytes))
}

fn le_number(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

/// mysql_common gives YEAR as the text of 1900 + the stored byte; byte 0 is year 0000.
fn year(value: Value) -> Result<Value, String> {
    match value {
        Value::Bytes(b) => {
            let text = String::from_utf8_lossy(&b);
            let year: u64 = text.parse().map_err(|_| format!("YEAR value {text:?}"))?;
            Ok(Value::UInt(if year == 1900 { 0 } else { year }))
        }
        other => Ok(other),
    }
}

/// TIMESTAMP comes as seconds since the epoch (with a fraction); the target session runs in
/// UTC, so the instant goes over as a UTC datetime. Zero is the zero timestamp.
fn timestamp(value: Value) -> Result<Value, String> {
    let (seconds, micros) = match &value {
        Value::Int(s) => (*s, 0),
        Value::UInt(s) => (*s as i64, 0),
        Value::Bytes(b) => {
            let text = String::from_utf8_lossy(b);
            let (s, frac) = text.split_once('.').unwrap_or((&text, "0"));
            let s: i64 = s.parse().map_err(|_| format!("TIMESTAMP value {text:?}"))?;
            let mut frac = frac.to_string();
            frac.truncate(6);
            while frac.len() < 6 {
                frac.push('0');
            }
            let us: u32 = frac.parse().map_err(|_| format!("TIMESTAMP value {text:?}"))?;
            (s, us)
        }
        _ => return Ok(value),
    };
    if seconds == 0 && micros == 0 {
        return Ok(Value::Date(0, 0, 0, 0, 0, 0, 0));
    }
    let t = DateTime::from_timestamp(seconds, micros * 1000)
        .ok_or_else(|| format!("TIMESTAMP {seconds} out of range"))?;
    Ok(Value::Date(
        t.year() as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        micros,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_zero_and_timestamps_decode_exactly() {
        assert_eq!(year(Value::Bytes(b"1900".to_vec())).ok(), Some(Value::UInt(0)));
        assert_eq!(year(Value::Bytes(b"2155".to_vec())).ok(), Some(Value::UInt(2155)));
        assert_eq!(
            timestamp(Value::Bytes(b"1700000000.123000".to_vec())).ok(),
            Some(Value::Date(2023, 11, 14, 22, 13, 20, 123000))
        );
        assert_eq!(
            timestamp(Value::Bytes(b"0".to_vec())).ok(),
            Some(Value::Date(0, 0, 0, 0, 0, 0, 0))
        );
    }

    #[test]
    fn set_and_bit_become_numbers() {
        assert_eq!(le_number(&[0x01, 0x02]), 0x0201);
        let bit =
            fix_value(ColumnType::MYSQL_TYPE_BIT, BinlogValue::Value(Value::Bytes(vec![1, 0])));
        assert_eq!(bit.ok(), Some(Value::UInt(256)));
    }

    /// Every integer width and signedness, at its limits and at random values: whatever form
    /// mysql_common gives (signed, unsigned when the table map says so, MEDIUMINT without sign
    /// extension), the value that reaches the target is the one the source stored.
    #[test]
    fn integers_of_every_width_decode_to_their_value() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for (column_type, bits) in [
            (ColumnType::MYSQL_TYPE_TINY, 8u32),
            (ColumnType::MYSQL_TYPE_SHORT, 16),
            (ColumnType::MYSQL_TYPE_INT24, 24),
            (ColumnType::MYSQL_TYPE_LONG, 32),
            (ColumnType::MYSQL_TYPE_LONGLONG, 64),
        ] {
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            let (min, max) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
            for unsigned in [false, true] {
                let (low, high) = if unsigned { (0, i128::from(mask)) } else { (min, max) };
                let edges = [low, low + 1, high - 1, high, 0, 1, -1, max, max + 1, min];
                let random = (0..200).map(|_| rng.random_range(low..=high));
                for v in edges.into_iter().filter(|v| (low..=high).contains(v)).chain(random) {
                    let raw = (v as u64) & mask;
                    let sign_extended = ((raw << (64 - bits)) as i64) >> (64 - bits);
                    // What mysql_common gives without signedness metadata, and with it.
                    let without =
                        if bits == 24 { Value::Int(raw as i64) } else { Value::Int(sign_extended) };
                    let with = match (unsigned, bits) {
                        (true, 24) => Value::Int(raw as i64),
                        (true, _) => Value::UInt(raw),
                        (false, _) => Value::Int(sign_extended),
                    };
                    for decoded in [without, with] {
                        let fixed = fix_value(column_type, BinlogValue::Value(decoded.clone()))
                            .expect("fix");
                        assert_eq!(fixed, Value::Int(sign_extended), "{column_type:?} {decoded:?}");
                        let stored = if unsigned { to_unsigned(column_type, fixed) } else { fixed };
                        let expected =
                            if unsigned { Value::UInt(v as u64) } else { Value::Int(v as i64) };
                        assert_eq!(stored, expected, "{column_type:?} unsigned={unsigned} {v}");
                    }
                }
            }
        }
    }

    #[test]
    fn truncated_maria_events_are_errors() {
        assert!(parse_maria_gtid_list(&[2, 0, 0, 0, 1]).is_err());
        assert!(parse_maria_gtid_list(&[]).is_err());
    }
}
