//! Writes MySQL binlog files (format v4) for tests. No MySQL server runs here, so tests that need
//! MySQL's own events (its GTIDs, rows events v1 and v2, partial JSON updates, compressed
//! transactions) build the files from the documented layouts.
//!
//! A file is the magic `\xfebin` and then events. Each event is a 19-byte header (timestamp,
//! type, server id, event size, end offset of the event in the file, flags), a fixed post-header,
//! a body and, when checksums are on, the CRC32 of all that. Events are framed only in
//! [`BinlogWriter::bytes`], because a MySQL 8.0 GTID event carries the byte length of its whole
//! transaction, which is known once the transaction is written.

use std::path::Path;

const MAGIC: &[u8] = b"\xfebin";
const TIMESTAMP: u32 = 1_700_000_000;
const SERVER_ID: u32 = 1;
const THREAD_ID: u32 = 8;
const HEADER_LEN: usize = 19;

const QUERY: u8 = 2;
const ROTATE: u8 = 4;
const FORMAT_DESCRIPTION: u8 = 15;
const XID: u8 = 16;
const TABLE_MAP: u8 = 19;
const GTID: u8 = 33;
const ANONYMOUS_GTID: u8 = 34;
const PREVIOUS_GTIDS: u8 = 35;
const TRANSACTION_PAYLOAD: u8 = 40;

/// Post-header length of each event type from 1 to 38, as MySQL 5.7 lists them in its format
/// description event (index 14, the format description's own, is 2 + 50 + 4 + 1 + 38).
const POST_HEADER_LENGTHS_57: [u8; 38] = [
    56, 13, 0, 8, 0, 18, 0, 4, 4, 4, 4, 18, 0, 0, 95, 0, 4, 26, 8, 0, 0, 0, 8, 8, 8, 2, 0, 0, 0,
    10, 10, 10, 42, 42, 0, 18, 52, 0,
];

/// The server that wrote the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `5.7.44-log`: GTID events of 42 bytes, no optional table map metadata.
    Mysql57,
    /// `8.0.36`: GTID events end with commit time, transaction length and server version; table
    /// maps carry signedness; partial JSON updates and compressed transactions exist.
    Mysql80,
}

impl Flavor {
    fn server_version(self) -> &'static str {
        match self {
            Flavor::Mysql57 => "5.7.44-log",
            Flavor::Mysql80 => "8.0.36",
        }
    }

    fn post_header_lengths(self) -> Vec<u8> {
        let mut lengths = POST_HEADER_LENGTHS_57.to_vec();
        if self == Flavor::Mysql80 {
            lengths[usize::from(FORMAT_DESCRIPTION) - 1] = 98;
            // Types 39 to 41: partial update rows, transaction payload, heartbeat v2. MySQL 8.0
            // writes the payload's type code (40) where its post-header length (0) belongs;
            // readers ignore that entry, and the file says what a real server's says.
            lengths.extend([10, TRANSACTION_PAYLOAD, 0]);
        }
        lengths
    }
}

/// A column as the table map describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnDef {
    Long {
        unsigned: bool,
    },
    LongLong {
        unsigned: bool,
    },
    /// `max_bytes`: the column's length in bytes (characters times the charset's width).
    VarChar {
        max_bytes: u16,
    },
    /// BLOB (2 length bytes).
    Blob,
    /// DATETIME(0).
    Datetime2,
    Json,
}

impl ColumnDef {
    fn type_code(self) -> u8 {
        match self {
            ColumnDef::Long { .. } => 3,
            ColumnDef::LongLong { .. } => 8,
            ColumnDef::VarChar { .. } => 15,
            ColumnDef::Datetime2 => 18,
            ColumnDef::Json => 245,
            ColumnDef::Blob => 252,
        }
    }

    /// The column's bytes in the table map's metadata block.
    fn metadata(self) -> Vec<u8> {
        match self {
            ColumnDef::VarChar { max_bytes } => max_bytes.to_le_bytes().to_vec(),
            ColumnDef::Blob => vec![2],      // length bytes of each value
            ColumnDef::Datetime2 => vec![0], // fractional digits
            ColumnDef::Json => vec![4],      // length bytes of each value
            ColumnDef::Long { .. } | ColumnDef::LongLong { .. } => Vec::new(),
        }
    }

    /// `Some(unsigned)` for the numeric columns the SIGNEDNESS metadata has a bit for.
    fn signedness(self) -> Option<bool> {
        match self {
            ColumnDef::Long { unsigned } | ColumnDef::LongLong { unsigned } => Some(unsigned),
            _ => None,
        }
    }
}

/// A column value of a row image.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Str(Vec<u8>),
    /// Year, month, day, hour, minute, second.
    Datetime(u16, u8, u8, u8, u8, u8),
    Json(Json),
    /// A partial JSON update (after images of [`RowsKind::PartialUpdate`] only).
    JsonDiffs(Vec<JsonDiff>),
}

impl Cell {
    pub fn text(s: &str) -> Cell {
        Cell::Str(s.as_bytes().to_vec())
    }
}

/// A row of a rows event: its (before, after) images, one cell per column.
pub type Row = (Option<Vec<Cell>>, Option<Vec<Cell>>);

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffOp {
    Replace = 0,
    Insert = 1,
    Remove = 2,
}

/// One change of a partial JSON update: Replace and Insert carry a value, Remove none.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonDiff {
    pub op: DiffOp,
    pub path: String,
    pub value: Option<Json>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    WriteV1,
    UpdateV1,
    DeleteV1,
    Write,
    Update,
    Delete,
    PartialUpdate,
}

impl RowsKind {
    fn type_code(self) -> u8 {
        match self {
            RowsKind::WriteV1 => 23,
            RowsKind::UpdateV1 => 24,
            RowsKind::DeleteV1 => 25,
            RowsKind::Write => 30,
            RowsKind::Update => 31,
            RowsKind::Delete => 32,
            RowsKind::PartialUpdate => 39,
        }
    }

    /// Which images each row has: (before, after).
    fn images(self) -> (bool, bool) {
        match self {
            RowsKind::WriteV1 | RowsKind::Write => (false, true),
            RowsKind::DeleteV1 | RowsKind::Delete => (true, false),
            RowsKind::UpdateV1 | RowsKind::Update | RowsKind::PartialUpdate => (true, true),
        }
    }
}

/// An event before framing.
struct Event {
    type_code: u8,
    body: Vec<u8>,
    /// A MySQL 8.0 GTID event: its transaction's length and the server version still follow.
    needs_tx_length: bool,
}

/// Builds a binlog file event by event; see the module docs.
pub struct BinlogWriter {
    flavor: Flavor,
    checksums: bool,
    events: Vec<Event>,
    /// Transactions begun so far: the GTID events' logical clock.
    transactions: u64,
}

impl BinlogWriter {
    /// A file with its format description and an empty PREVIOUS_GTIDS event, as a server
    /// starts each binlog file.
    pub fn new(flavor: Flavor, checksums: bool) -> Self {
        let mut writer = Self::empty(flavor, checksums);
        let mut fde = 4u16.to_le_bytes().to_vec();
        let mut version = flavor.server_version().as_bytes().to_vec();
        version.resize(50, 0);
        fde.extend(version);
        fde.extend(TIMESTAMP.to_le_bytes());
        fde.push(HEADER_LEN as u8);
        fde.extend(flavor.post_header_lengths());
        writer.push(FORMAT_DESCRIPTION, fde);
        writer.push(PREVIOUS_GTIDS, 0u64.to_le_bytes().to_vec()); // number of server UUIDs
        writer
    }

    fn empty(flavor: Flavor, checksums: bool) -> Self {
        Self { flavor, checksums, events: Vec::new(), transactions: 0 }
    }

    fn push(&mut self, type_code: u8, body: Vec<u8>) {
        self.events.push(Event { type_code, body, needs_tx_length: false });
    }

    /// GTID_LOG_EVENT: the next transaction is `uuid:gno`.
    pub fn gtid(&mut self, uuid: [u8; 16], gno: u64) {
        self.gtid_event(GTID, uuid, gno);
    }

    /// ANONYMOUS_GTID_LOG_EVENT (gtid_mode=OFF): a transaction without a GTID.
    pub fn anonymous_gtid(&mut self) {
        self.gtid_event(ANONYMOUS_GTID, [0; 16], 0);
    }

    fn gtid_event(&mut self, type_code: u8, uuid: [u8; 16], gno: u64) {
        self.transactions += 1;
        // 5.7 sets its commit flag; 8.0 sets FLAG_MAY_HAVE_SBR only for statement-based logging.
        let mut body = vec![u8::from(self.flavor == Flavor::Mysql57)];
        body.extend(uuid);
        body.extend(gno.to_le_bytes());
        body.push(2); // logical clock: last committed and sequence number follow
        body.extend((self.transactions - 1).to_le_bytes());
        body.extend(self.transactions.to_le_bytes());
        if self.flavor == Flavor::Mysql57 {
            return self.push(type_code, body);
        }
        // Immediate commit time in microseconds, 7 bytes; the top bit clear says the original
        // commit time is the same and not written.
        body.extend(&(u64::from(TIMESTAMP) * 1_000_000).to_le_bytes()[..7]);
        self.events.push(Event { type_code, body, needs_tx_length: true });
    }

    /// QUERY_EVENT: `BEGIN`, `COMMIT` or a statement such as DDL, without status variables.
    pub fn query(&mut self, schema: &str, sql: &str) {
        let mut body = THREAD_ID.to_le_bytes().to_vec();
        body.extend(0u32.to_le_bytes()); // execution time
        body.push(u8::try_from(schema.len()).expect("schema name up to 255 bytes"));
        body.extend(0u16.to_le_bytes()); // error code
        body.extend(0u16.to_le_bytes()); // status variables length
        body.extend(schema.as_bytes());
        body.push(0);
        body.extend(sql.as_bytes());
        self.push(QUERY, body);
    }

    /// TABLE_MAP_EVENT. Every column nullable; MySQL 8.0 adds the SIGNEDNESS metadata when the
    /// table has numeric columns (binlog_row_metadata=MINIMAL), 5.7 has no optional metadata.
    pub fn table_map(&mut self, table_id: u64, db: &str, table: &str, columns: &[ColumnDef]) {
        let mut body = table_id_bytes(table_id);
        body.extend(1u16.to_le_bytes()); // TM_BIT_LEN_EXACT_F, as MySQL sets it
        for name in [db, table] {
            body.push(u8::try_from(name.len()).expect("names up to 255 bytes"));
            body.extend(name.as_bytes());
            body.push(0);
        }
        put_lenenc(&mut body, columns.len() as u64);
        body.extend(columns.iter().map(|c| c.type_code()));
        let metadata: Vec<u8> = columns.iter().flat_map(|c| c.metadata()).collect();
        put_lenenc(&mut body, metadata.len() as u64);
        body.extend(metadata);
        body.extend(bitmap(columns.iter().map(|_| true)));
        let signedness: Vec<bool> = columns.iter().filter_map(|c| c.signedness()).collect();
        if self.flavor == Flavor::Mysql80 && !signedness.is_empty() {
            // Type 1, length, one bit per numeric column from the top bit down, 1 = unsigned.
            let mut flags = vec![0u8; signedness.len().div_ceil(8)];
            for (i, _) in signedness.iter().enumerate().filter(|(_, unsigned)| **unsigned) {
                flags[i / 8] |= 0x80 >> (i % 8);
            }
            body.push(1);
            put_lenenc(&mut body, flags.len() as u64);
            body.extend(flags);
        }
        self.push(TABLE_MAP, body);
    }

    /// A rows event of `kind` with STMT_END_F set, so each statement's rows event must follow
    /// its own table map (mysqlbinlog forgets table maps at a statement's end). Every column is
    /// in the images.
    pub fn rows(&mut self, kind: RowsKind, table_id: u64, columns: &[ColumnDef], rows: &[Row]) {
        let mut body = table_id_bytes(table_id);
        body.extend(1u16.to_le_bytes()); // STMT_END_F
        if kind.type_code() >= 30 {
            body.extend(2u16.to_le_bytes()); // extra data: only its own 2-byte length
        }
        put_lenenc(&mut body, columns.len() as u64);
        let (has_before, has_after) = kind.images();
        let present = bitmap(columns.iter().map(|_| true));
        for _ in 0..(usize::from(has_before) + usize::from(has_after)) {
            body.extend(&present);
        }
        for (before, after) in rows {
            assert_eq!((before.is_some(), after.is_some()), kind.images(), "images of {kind:?}");
            if let Some(before) = before {
                put_image(&mut body, columns, before);
            }
            if let (RowsKind::PartialUpdate, Some(after)) = (kind, after) {
                put_partial_columns(&mut body, columns, after);
            }
            if let Some(after) = after {
                put_image(&mut body, columns, after);
            }
        }
        self.push(kind.type_code(), body);
    }

    /// XID_EVENT: the transaction commits.
    pub fn xid(&mut self, xid: u64) {
        self.push(XID, xid.to_le_bytes().to_vec());
    }

    /// A TRANSACTION_PAYLOAD_EVENT holding the events `build` writes, zstd-compressed. As in
    /// MySQL 8.0 (binlog_transaction_compression=ON), the events inside have no checksum and
    /// an end position of 0; the GTID event stays outside, before the payload.
    pub fn compressed(&mut self, build: impl FnOnce(&mut BinlogWriter)) {
        let mut inner = Self::empty(self.flavor, false);
        build(&mut inner);
        let mut raw = Vec::new();
        inner.frame_events(&mut raw, true);
        let payload = zstd::bulk::compress(&raw, 3).expect("zstd compression");
        // Header fields: (type, length of the value, value), all packed integers; type 0 ends.
        let mut body = Vec::new();
        for (field, value) in [(1, payload.len() as u64), (2, 0), (3, raw.len() as u64)] {
            let mut encoded = Vec::new();
            put_lenenc(&mut encoded, value); // field 2 is the algorithm, 0 = zstd
            put_lenenc(&mut body, field);
            put_lenenc(&mut body, encoded.len() as u64);
            body.extend(encoded);
        }
        body.push(0);
        body.extend(payload);
        self.push(TRANSACTION_PAYLOAD, body);
    }

    /// ROTATE_EVENT: the server goes on in `next_file` at position 4.
    pub fn rotate(&mut self, next_file: &str) {
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend(next_file.as_bytes());
        self.push(ROTATE, body);
    }

    /// The file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        self.frame_events(&mut out, false);
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.bytes()).expect("write the binlog file");
    }

    fn frame_events(&self, out: &mut Vec<u8>, in_payload: bool) {
        for (i, event) in self.events.iter().enumerate() {
            let mut body = event.body.clone();
            if event.needs_tx_length {
                body.extend(self.gtid_tail(i));
            }
            self.frame(out, event.type_code, &body, in_payload);
        }
    }

    /// What ends the MySQL 8.0 GTID event at `index`: the byte length of its transaction (this
    /// event up to the next GTID or rotate, packed) and the server version.
    fn gtid_tail(&self, index: usize) -> Vec<u8> {
        let rest: usize = self.events[index + 1..]
            .iter()
            .take_while(|e| !matches!(e.type_code, GTID | ANONYMOUS_GTID | ROTATE))
            .map(|e| self.framed_len(e.body.len()))
            .sum();
        let without_length = self.framed_len(self.events[index].body.len() + 4) + rest;
        // The length counts its own packed bytes: take the first size that fits the total.
        let length = [1, 3, 4, 9]
            .into_iter()
            .map(|n| without_length + n)
            .find(|&total| lenenc_len(total as u64) == total - without_length)
            .expect("a packed length size fits");
        let mut tail = Vec::new();
        put_lenenc(&mut tail, length as u64);
        tail.extend(80036u32.to_le_bytes()); // top bit clear: the original server is the same
        tail
    }

    /// Size of a framed event (not a format description) with a body of `body_len` bytes.
    fn framed_len(&self, body_len: usize) -> usize {
        HEADER_LEN + body_len + if self.checksums { 4 } else { 0 }
    }

    /// Appends header, body and footer. A format description always ends with the checksum
    /// algorithm (1 = CRC32, 0 = none) and a CRC32, so that readers learn whether the other
    /// events have one.
    fn frame(&self, out: &mut Vec<u8>, type_code: u8, body: &[u8], in_payload: bool) {
        let fde = type_code == FORMAT_DESCRIPTION;
        let crc = !in_payload && (fde || self.checksums);
        let size = HEADER_LEN + body.len() + usize::from(fde) + if crc { 4 } else { 0 };
        let start = out.len();
        let end_pos = if in_payload { 0 } else { start + size };
        out.extend(TIMESTAMP.to_le_bytes());
        out.push(type_code);
        out.extend(SERVER_ID.to_le_bytes());
        out.extend(u32::try_from(size).expect("event size").to_le_bytes());
        out.extend(u32::try_from(end_pos).expect("file size").to_le_bytes());
        out.extend(0u16.to_le_bytes()); // flags
        out.extend(body);
        if fde {
            out.push(u8::from(self.checksums));
        }
        if crc {
            let checksum = crc32fast::hash(&out[start..]);
            out.extend(checksum.to_le_bytes());
        }
    }
}

fn table_id_bytes(table_id: u64) -> Vec<u8> {
    assert!(table_id < 1 << 48, "table ids have 6 bytes");
    table_id.to_le_bytes()[..6].to_vec()
}

/// A bitmap with the first flag in the lowest bit of the first byte.
fn bitmap(flags: impl Iterator<Item = bool>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, flag) in flags.enumerate() {
        if i % 8 == 0 {
            bytes.push(0);
        }
        if flag {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    bytes
}

/// A row image: its NULL bitmap, then the values of the columns that are not NULL.
fn put_image(out: &mut Vec<u8>, columns: &[ColumnDef], cells: &[Cell]) {
    assert_eq!(columns.len(), cells.len(), "one cell per column");
    out.extend(bitmap(cells.iter().map(|c| *c == Cell::Null)));
    for (column, cell) in columns.iter().zip(cells) {
        put_value(out, *column, cell);
    }
}

/// Before a partial update's after image: the value options (PARTIAL_JSON_UPDATES) and one bit
/// per JSON column, set when the after image holds diffs for it.
fn put_partial_columns(out: &mut Vec<u8>, columns: &[ColumnDef], after: &[Cell]) {
    put_lenenc(out, 1);
    let json = columns.iter().zip(after).filter(|(c, _)| **c == ColumnDef::Json);
    out.extend(bitmap(json.map(|(_, cell)| matches!(cell, Cell::JsonDiffs(_)))));
}

fn put_value(out: &mut Vec<u8>, column: ColumnDef, cell: &Cell) {
    let fits = "value fits its column";
    match (column, cell) {
        (_, Cell::Null) => {}
        (ColumnDef::Long { .. }, Cell::Int(n)) => {
            out.extend(i32::try_from(*n).expect(fits).to_le_bytes())
        }
        (ColumnDef::Long { .. }, Cell::UInt(n)) => {
            out.extend(u32::try_from(*n).expect(fits).to_le_bytes())
        }
        (ColumnDef::LongLong { .. }, Cell::Int(n)) => out.extend(n.to_le_bytes()),
        (ColumnDef::LongLong { .. }, Cell::UInt(n)) => out.extend(n.to_le_bytes()),
        (ColumnDef::VarChar { max_bytes }, Cell::Str(s)) => {
            // One length byte when the column holds at most 255 bytes, else two.
            if max_bytes < 256 {
                out.push(u8::try_from(s.len()).expect(fits));
            } else {
                out.extend(u16::try_from(s.len()).expect(fits).to_le_bytes());
            }
            out.extend(s);
        }
        (ColumnDef::Blob, Cell::Str(s)) => {
            out.extend(u16::try_from(s.len()).expect(fits).to_le_bytes());
            out.extend(s);
        }
        (ColumnDef::Datetime2, Cell::Datetime(y, mo, d, h, mi, s)) => {
            // 40 bits, big-endian: year * 13 + month (17 bits), day (5), hour (5), minute (6),
            // second (6), offset by 2^39 so that the sign bit is set for positive values.
            let ymd = ((u64::from(*y) * 13 + u64::from(*mo)) << 5) | u64::from(*d);
            let hms = (u64::from(*h) << 12) | (u64::from(*mi) << 6) | u64::from(*s);
            let packed = ((ymd << 17) | hms) + (1 << 39);
            out.extend(&packed.to_be_bytes()[3..]);
        }
        (ColumnDef::Json, Cell::Json(value)) => put_u32_prefixed(out, &jsonb(value)),
        (ColumnDef::Json, Cell::JsonDiffs(diffs)) => put_u32_prefixed(out, &json_diffs(diffs)),
        (column, cell) => panic!("cannot write {cell:?} into a {column:?} column"),
    }
}

fn put_u32_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend(u32::try_from(bytes.len()).expect("JSON size").to_le_bytes());
    out.extend(bytes);
}

/// Each diff: operation, packed path length and path, then for Replace and Insert the packed
/// length and binary JSON of the new value.
fn json_diffs(diffs: &[JsonDiff]) -> Vec<u8> {
    let mut out = Vec::new();
    for diff in diffs {
        out.push(diff.op as u8);
        put_lenenc(&mut out, diff.path.len() as u64);
        out.extend(diff.path.as_bytes());
        match (diff.op, &diff.value) {
            (DiffOp::Remove, None) => {}
            (DiffOp::Replace | DiffOp::Insert, Some(value)) => {
                let value = jsonb(value);
                put_lenenc(&mut out, value.len() as u64);
                out.extend(value);
            }
            _ => panic!("Replace and Insert need a value, Remove has none: {diff:?}"),
        }
    }
    out
}

/// MySQL's binary JSON: a type byte, then the value.
fn jsonb(value: &Json) -> Vec<u8> {
    let (type_byte, data) = json_parts(value);
    let mut out = vec![type_byte];
    out.extend(data);
    out
}

const JSON_SMALL_OBJECT: u8 = 0x00;
const JSON_SMALL_ARRAY: u8 = 0x02;
const JSON_LITERAL: u8 = 0x04;
const JSON_INT16: u8 = 0x05;

/// A value's binary JSON type and its bytes; integers take the smallest type that holds them.
fn json_parts(value: &Json) -> (u8, Vec<u8>) {
    match value {
        Json::Null => (JSON_LITERAL, vec![0]),
        Json::Bool(b) => (JSON_LITERAL, vec![if *b { 1 } else { 2 }]),
        Json::Int(n) => match (i16::try_from(*n), i32::try_from(*n)) {
            (Ok(n), _) => (JSON_INT16, n.to_le_bytes().to_vec()),
            (_, Ok(n)) => (0x07, n.to_le_bytes().to_vec()),
            _ => (0x09, n.to_le_bytes().to_vec()),
        },
        Json::Double(f) => (0x0b, f.to_le_bytes().to_vec()),
        Json::Str(s) => {
            let mut data = Vec::new();
            put_varlen(&mut data, s.len());
            data.extend(s.as_bytes());
            (0x0c, data)
        }
        Json::Array(items) => (JSON_SMALL_ARRAY, container(&[], &items.iter().collect::<Vec<_>>())),
        Json::Object(members) => {
            // MySQL sorts keys by length, then bytewise.
            let mut members: Vec<_> = members.iter().collect();
            members.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
            let values: Vec<&Json> = members.iter().map(|(_, v)| v).collect();
            (JSON_SMALL_OBJECT, container(&keys, &values))
        }
    }
}

/// A small object (with keys) or array: element count and byte size (2 bytes each), key
/// entries (offset, length), value entries (type, then the value itself for literals and
/// int16, else its offset), then the keys and the other values. Offsets count from the
/// container's first byte.
fn container(keys: &[&str], values: &[&Json]) -> Vec<u8> {
    let small = |n: usize| u16::try_from(n).expect("small JSON containers only").to_le_bytes();
    let header = 4 + 4 * keys.len() + 3 * values.len();
    let (mut entries, mut tail) = (Vec::new(), Vec::new());
    for key in keys {
        entries.extend(small(header + tail.len()));
        entries.extend(small(key.len()));
        tail.extend(key.as_bytes());
    }
    for value in values {
        let (type_byte, mut data) = json_parts(value);
        entries.push(type_byte);
        if matches!(type_byte, JSON_LITERAL | JSON_INT16) {
            data.resize(2, 0);
            entries.extend(data);
        } else {
            entries.extend(small(header + tail.len()));
            tail.extend(data);
        }
    }
    let mut out = small(values.len()).to_vec();
    out.extend(small(header + tail.len()));
    out.extend(entries);
    out.extend(tail);
    out
}

/// Binary JSON's string length: 7 bits a byte, lowest first, the top bit set when more follow.
fn put_varlen(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A packed (length-encoded) integer.
fn put_lenenc(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend(&n.to_le_bytes()[..2]);
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend(&n.to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend(n.to_le_bytes());
        }
    }
}

fn lenenc_len(n: u64) -> usize {
    let mut out = Vec::new();
    put_lenenc(&mut out, n);
    out.len()
}
