//! The generated MySQL binlog files of `support::mysql_binlog` are well formed: `mariadb-binlog`
//! (an independent decoder) and `ferry binlog decode` print the same rows for a MySQL 5.7 file,
//! and mysql_common reads a MySQL 8.0 file's compressed transaction and partial JSON update.

mod support;

use std::path::Path;
use std::process::Command;

use mysql_async::Value;
use mysql_async::binlog::events::{Event, EventData, FormatDescriptionEvent, RowsEventData};
use mysql_async::binlog::jsondiff::JsonDiffOperation;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::binlog::{BinlogChecksumAlg, BinlogVersion};
use support::mysql_binlog::{
    BinlogWriter, Cell, ColumnDef, DiffOp, Flavor, Json, JsonDiff, Row, RowsKind,
};

const UUID: [u8; 16] = [
    0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x63,
];
const UUID_TEXT: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429563";
const TABLE_ID: u64 = 108;

/// app.t (id INT, u INT UNSIGNED, big BIGINT, ubig BIGINT UNSIGNED, name VARCHAR(30) latin1,
/// note VARCHAR(255) utf8mb4, data BLOB, at DATETIME).
const COLUMNS: [ColumnDef; 8] = [
    ColumnDef::Long { unsigned: false },
    ColumnDef::Long { unsigned: true },
    ColumnDef::LongLong { unsigned: false },
    ColumnDef::LongLong { unsigned: true },
    ColumnDef::VarChar { max_bytes: 30 },
    ColumnDef::VarChar { max_bytes: 1020 },
    ColumnDef::Blob,
    ColumnDef::Datetime2,
];

fn row(id: i64, u: u64, big: i64, ubig: u64, name: Cell, note: Cell) -> Vec<Cell> {
    let data = if id % 2 == 0 { Cell::Null } else { Cell::Str(vec![0, 0x1f, b'\'', b'x']) };
    vec![
        Cell::Int(id),
        Cell::UInt(u),
        Cell::Int(big),
        Cell::UInt(ubig),
        name,
        note,
        data,
        Cell::Datetime(2024, 2, 29, 23, 59, u8::try_from(id).expect("small id")),
    ]
}

/// Each rows event after its own table map, as MySQL logs one statement.
fn statement(w: &mut BinlogWriter, kind: RowsKind, rows: &[Row]) {
    w.table_map(TABLE_ID, "app", "t", &COLUMNS);
    w.rows(kind, TABLE_ID, &COLUMNS, rows);
}

/// A MySQL 5.7 file with checksums: DDL, a GTID transaction of rows events v1 and an anonymous
/// one of rows events v2, then a rotate.
fn mysql57_file() -> Vec<u8> {
    let one = row(1, 4_294_967_295, i64::MIN, u64::MAX, Cell::text("it's \"quoted\""), Cell::Null);
    let two = row(2, 0, -5, 1 << 63, Cell::Null, Cell::text("tab\there"));
    let one_updated = row(1, 7, 42, 9, Cell::text("uno"), Cell::text(&"long ".repeat(60)));
    let three = row(3, 2_147_483_648, -1, 0, Cell::text(""), Cell::text("'"));
    let three_updated = row(3, 3, 3, 3, Cell::Null, Cell::Null);

    let mut w = BinlogWriter::new(Flavor::Mysql57, true);
    w.anonymous_gtid();
    w.query("app", "CREATE TABLE t (id INT PRIMARY KEY, u INT UNSIGNED, big BIGINT)");
    w.gtid(UUID, 7);
    w.query("app", "BEGIN");
    statement(&mut w, RowsKind::WriteV1, &[(None, Some(one.clone())), (None, Some(two.clone()))]);
    statement(&mut w, RowsKind::UpdateV1, &[(Some(one.clone()), Some(one_updated.clone()))]);
    statement(&mut w, RowsKind::DeleteV1, &[(Some(two), None)]);
    w.xid(100);
    w.anonymous_gtid();
    w.query("app", "BEGIN");
    statement(&mut w, RowsKind::Write, &[(None, Some(three.clone()))]);
    statement(
        &mut w,
        RowsKind::Update,
        &[(Some(three), Some(three_updated.clone())), (Some(one_updated), Some(one))],
    );
    statement(&mut w, RowsKind::Delete, &[(Some(three_updated), None)]);
    w.xid(101);
    w.rotate("mysql-bin.000002");
    w.bytes()
}

fn run(program: &str, args: &[&str], file: &Path) -> (Option<i32>, String, String) {
    let output = Command::new(program).args(args).arg(file).output().expect("run decoder");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn row_lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("###")).map(|l| l.trim_end().to_string()).collect()
}

/// Walks the events by their sizes: each header's end position is where the next event starts.
fn assert_positions(bytes: &[u8]) {
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let mut pos = 4;
    while pos < bytes.len() {
        let (size, end) = (word(pos + 9) as usize, word(pos + 13) as usize);
        assert_eq!(end, pos + size, "event at {pos}");
        pos = end;
    }
    assert_eq!(pos, bytes.len());
}

#[test]
fn mysql57_rows_decode_as_mariadb_binlog_decodes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mysql-bin.000001");
    let bytes = mysql57_file();
    std::fs::write(&file, &bytes).expect("write binlog");
    assert_positions(&bytes);

    let (code, ours, err) =
        run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode", "--verbose"], &file);
    assert_eq!(code, Some(0), "{err}");
    let (code, theirs, err) =
        run("mariadb-binlog", &["--verbose", "--verify-binlog-checksum"], &file);
    assert_eq!(code, Some(0), "{err}");
    let (ours_rows, theirs_rows) = (row_lines(&ours), row_lines(&theirs));
    assert_eq!(ours_rows, theirs_rows);

    let count = |line: &str| ours_rows.iter().filter(|l| *l == line).count();
    assert_eq!(count("### INSERT INTO `app`.`t`"), 3, "{ours_rows:#?}");
    assert_eq!(count("### UPDATE `app`.`t`"), 3, "{ours_rows:#?}");
    assert_eq!(count("### DELETE FROM `app`.`t`"), 2, "{ours_rows:#?}");
    for line in [
        "###   @2=-1 (4294967295)",
        "###   @3=-9223372036854775808 (9223372036854775808)",
        "###   @5='it's \"quoted\"'",
        "###   @5=NULL",
        "###   @6='tab\\x09here'",
        "###   @7='\\x00\\x1f'x'",
        "###   @8='2024-02-29 23:59:01'",
    ] {
        assert!(count(line) > 0, "{line} in {ours_rows:#?}");
    }
    assert!(ours.contains(&format!("GTID {UUID_TEXT}:7")), "{ours}");
    assert_eq!(ours.matches("Anonymous GTID").count(), 2, "{ours}");
    assert!(ours.contains("Rotate to mysql-bin.000002  pos: 4"), "{ours}");
}

#[test]
fn a_flipped_byte_in_a_row_value_is_a_checksum_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = mysql57_file();
    let at = bytes.windows(6).position(|w| w == b"quoted").expect("the row value");
    bytes[at] ^= 0x20;
    let file = dir.path().join("mysql-bin.000001");
    std::fs::write(&file, &bytes).expect("write binlog");
    let (code, _, err) = run(env!("CARGO_BIN_EXE_ferry"), &["binlog", "decode", "-v"], &file);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    // The independent decoder agrees, so its check of the unflipped file means something.
    let (code, _, err) = run("mariadb-binlog", &["--verify-binlog-checksum"], &file);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("crc check failed"), "{err}");
}

/// app.docs (id INT, u INT UNSIGNED, doc JSON).
const DOC_COLUMNS: [ColumnDef; 3] =
    [ColumnDef::Long { unsigned: false }, ColumnDef::Long { unsigned: true }, ColumnDef::Json];

fn document() -> Json {
    Json::Object(vec![
        ("bb".into(), Json::Array(vec![Json::Bool(true), Json::Null, Json::Str("x".repeat(200))])),
        ("a".into(), Json::Int(1)),
        (
            "c".into(),
            Json::Object(vec![("big".into(), Json::Int(1 << 40)), ("f".into(), Json::Double(1.5))]),
        ),
        ("ab".into(), Json::Int(-70_000)),
    ])
}

fn document_as_serde() -> serde_json::Value {
    serde_json::json!({
        "a": 1, "ab": -70000, "bb": [true, null, "x".repeat(200)], "c": {"big": 1u64 << 40, "f": 1.5}
    })
}

fn diffs() -> Vec<JsonDiff> {
    vec![
        JsonDiff { op: DiffOp::Replace, path: "$.a".into(), value: Some(Json::Int(2)) },
        JsonDiff { op: DiffOp::Insert, path: "$.bb[1]".into(), value: Some(Json::Str("y".into())) },
        JsonDiff { op: DiffOp::Remove, path: "$.c".into(), value: None },
    ]
}

fn mysql80_file() -> Vec<u8> {
    let mut w = BinlogWriter::new(Flavor::Mysql80, true);
    w.gtid(UUID, 1);
    w.compressed(|tx| {
        tx.query("app", "BEGIN");
        tx.table_map(TABLE_ID, "app", "docs", &DOC_COLUMNS);
        let after = vec![Cell::Int(1), Cell::UInt(4_294_967_295), Cell::Json(document())];
        tx.rows(RowsKind::Write, TABLE_ID, &DOC_COLUMNS, &[(None, Some(after))]);
        tx.xid(20);
    });
    w.gtid(UUID, 2);
    w.query("app", "BEGIN");
    w.table_map(TABLE_ID, "app", "docs", &DOC_COLUMNS);
    let before = vec![Cell::Int(1), Cell::UInt(4_294_967_295), Cell::Json(document())];
    let after = vec![Cell::Int(1), Cell::UInt(5), Cell::JsonDiffs(diffs())];
    w.rows(RowsKind::PartialUpdate, TABLE_ID, &DOC_COLUMNS, &[(Some(before), Some(after))]);
    w.xid(21);
    w.rotate("binlog.000002");
    w.bytes()
}

/// Reads the events of a file with mysql_common, following its format description.
fn read_file(bytes: &[u8]) -> (FormatDescriptionEvent<'static>, Vec<Event>) {
    assert_eq!(&bytes[..4], b"\xfebin");
    let mut input = &bytes[4..];
    let mut fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut events = Vec::new();
    while !input.is_empty() {
        let event = Event::read(&fde, &mut input).expect("read event");
        if let Some(EventData::FormatDescriptionEvent(new)) = event.read_data().expect("data") {
            fde = new.into_owned();
        }
        events.push(event);
    }
    (fde, events)
}

fn types(events: &[Event]) -> Vec<u8> {
    events.iter().map(|e| e.header().event_type_raw()).collect()
}

fn json(value: BinlogValue<'_>) -> serde_json::Value {
    match value {
        BinlogValue::Jsonb(j) => serde_json::Value::try_from(j).expect("JSON"),
        other => panic!("not JSON: {other:?}"),
    }
}

#[test]
fn mysql80_compressed_transaction_and_partial_json_update_parse() {
    let bytes = mysql80_file();
    assert_positions(&bytes);
    let (fde, events) = read_file(&bytes);
    assert_eq!(types(&events), [15, 35, 33, 40, 33, 2, 19, 39, 16, 4]);
    assert_eq!(fde.server_version().trim_end_matches('\0'), "8.0.36");
    assert_eq!(
        fde.get_event_type_header_length(mysql_async::binlog::EventType::PARTIAL_UPDATE_ROWS_EVENT),
        10
    );
    for event in &events {
        let stored = u32::from_le_bytes(event.checksum().expect("a CRC32"));
        let computed = event.calc_checksum(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32);
        assert_eq!(stored, computed, "{:?}", event.header());
    }

    // GTID events: the transaction length covers the GTID event and the events up to the next.
    let size = |range: std::ops::Range<usize>| -> u64 {
        events[range].iter().map(|e| u64::from(e.header().event_size())).sum()
    };
    for (at, gno, length) in [(2, 1, size(2..4)), (4, 2, size(4..9))] {
        let Some(EventData::GtidEvent(gtid)) = events[at].read_data().expect("GTID") else {
            panic!("no GTID event at {at}");
        };
        assert_eq!((gtid.sid(), gtid.gno(), gtid.tx_length()), (UUID, gno, length));
        assert_eq!(gtid.immediate_server_version(), 80036);
        assert_eq!((gtid.last_committed(), gtid.sequence_number()), (gno - 1, gno));
    }

    // The compressed transaction: events without checksums and with end position 0.
    let Some(EventData::TransactionPayloadEvent(payload)) = events[3].read_data().expect("payload")
    else {
        panic!("no transaction payload");
    };
    let mut footer = fde.footer();
    footer.set_checksum_enabled(false);
    let inner_fde = fde.clone().with_footer(footer);
    let mut reader = payload.decompressed().expect("zstd payload");
    let mut inner = Vec::new();
    while reader.has_data_left().expect("decompress") {
        inner.push(Event::read(&inner_fde, &mut reader).expect("inner event"));
    }
    assert_eq!(types(&inner), [2, 19, 30, 16]);
    assert!(inner.iter().all(|e| e.header().log_pos() == 0));
    let Some(EventData::QueryEvent(begin)) = inner[0].read_data().expect("query") else {
        panic!("no query event");
    };
    assert_eq!(begin.query(), "BEGIN");
    let Some(EventData::TableMapEvent(tme)) = inner[1].read_data().expect("table map") else {
        panic!("no table map");
    };
    let Some(EventData::RowsEvent(write)) = inner[2].read_data().expect("rows") else {
        panic!("no rows event");
    };
    assert!(matches!(write, RowsEventData::WriteRowsEvent(_)));
    let rows: Vec<_> = write.rows(&tme).collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 1);
    let mut after = rows[0].1.clone().expect("after image");
    assert_eq!(after.take(0), Some(BinlogValue::Value(Value::Int(1))));
    // SIGNEDNESS metadata marks the second column unsigned: not -1.
    assert_eq!(after.take(1), Some(BinlogValue::Value(Value::Int(4_294_967_295))));
    assert_eq!(json(after.take(2).expect("doc")), document_as_serde());
    let Some(EventData::XidEvent(xid)) = inner[3].read_data().expect("xid") else {
        panic!("no XID");
    };
    assert_eq!(xid.xid, 20);

    // The partial update: the before image holds the document, the after image its diffs.
    let Some(EventData::TableMapEvent(tme)) = events[6].read_data().expect("table map") else {
        panic!("no table map");
    };
    let Some(EventData::RowsEvent(update)) = events[7].read_data().expect("rows") else {
        panic!("no rows event");
    };
    assert!(matches!(update, RowsEventData::PartialUpdateRowsEvent(_)));
    let rows: Vec<_> = update.rows(&tme).collect::<Result<_, _>>().expect("rows");
    assert_eq!(rows.len(), 1);
    let (before, after) = rows[0].clone();
    let (mut before, mut after) = (before.expect("before"), after.expect("after"));
    assert_eq!(json(before.take(2).expect("doc")), document_as_serde());
    assert_eq!(after.take(1), Some(BinlogValue::Value(Value::Int(5))));
    let Some(BinlogValue::JsonDiff(written)) = after.take(2) else {
        panic!("the after image holds no JSON diffs");
    };
    let ops: Vec<_> = written.iter().map(|d| d.operation()).collect();
    assert_eq!(
        ops,
        [JsonDiffOperation::REPLACE, JsonDiffOperation::INSERT, JsonDiffOperation::REMOVE]
    );
    let paths: Vec<_> = written.iter().map(|d| d.path_str().into_owned()).collect();
    assert_eq!(paths, ["$.a", "$.bb[1]", "$.c"]);
    let values: Vec<_> = written
        .iter()
        .map(|d| d.value().map(|v| serde_json::Value::try_from(v.clone()).expect("JSON")))
        .collect();
    assert_eq!(values, [Some(serde_json::json!(2)), Some(serde_json::json!("y")), None]);
}
