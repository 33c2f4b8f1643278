//! `ferry binlog decode [--verbose] [--start-position N] [--stop-position N] FILE...`: prints
//! the events of local binlog or relay-log files. Each event starts with the `# at POS` and
//! header lines of `mysqlbinlog` (local time, server id, end_log_pos, CRC32), followed by
//! Ferry's summary of the event; with `--verbose`, row changes in the pseudo-SQL form of
//! `mysqlbinlog --verbose`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use mysql_async::Value;
use mysql_async::consts::ColumnType;

use crate::incremental::event::{Decoded, Decoder, RowChange, RowKind, integer_bits};
use crate::incremental::file::{BinlogFile, FileError};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Decode local binlog or relay-log files and print their events.
    Decode {
        /// Also print row changes as `mysqlbinlog --verbose` does (`-vv` is accepted too).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Start at the first event at or after this offset (the format description at 4 is
        /// always printed), as mysqlbinlog's option of that name.
        #[arg(short = 'j', long, value_name = "POS")]
        start_position: Option<u64>,
        /// Stop before the first event at or after this offset.
        #[arg(long, value_name = "POS")]
        stop_position: Option<u64>,
        /// Binlog files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Why decoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeCliError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

/// Which events of a file to print, and how.
#[derive(Clone, Copy)]
struct Options {
    verbose: bool,
    start: u64,
    stop: u64,
}

pub async fn run(command: Command) -> crate::Result<ExitCode> {
    let Command::Decode { verbose, start_position, stop_position, files } = command;
    let options = Options {
        verbose: verbose > 0,
        start: start_position.unwrap_or(0),
        stop: stop_position.unwrap_or(u64::MAX),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for path in files {
        if let Err(e) = decode_file(&path, options, &mut out) {
            let _ = out.flush();
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    if let Err(e) = out.flush() {
        eprintln!("error: writing the output: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn decode_file(
    path: &std::path::Path,
    options: Options,
    out: &mut impl Write,
) -> Result<(), DecodeCliError> {
    let mut file = BinlogFile::open(path)?;
    let mut decoder = Decoder::new();
    decoder.file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let w = |e| DecodeCliError::Output(e);
    writeln!(out, "# file {}", path.display()).map_err(w)?;
    while let Some((pos, bytes)) = file.next_raw()? {
        if pos >= options.stop {
            break;
        }
        let event = file.parse(&decoder, pos, &bytes)?;
        let decoded = decoder
            .decode(&event)
            .map_err(|source| FileError::Decode { path: file.path().to_string(), source })?;
        // The format description is printed whatever the start, as mysqlbinlog does.
        if pos < options.start && pos != 4 {
            continue;
        }
        let crc32 = file.checksums().then(|| trailing_crc32(&bytes));
        writeln!(out, "# at {pos}").map_err(w)?;
        writeln!(out, "{}\t{}", header_line(&event, crc32), describe(&event, &decoded))
            .map_err(w)?;
        write_details(out, &decoded, options.verbose).map_err(w)?;
    }
    Ok(())
}

/// mysqlbinlog's event header: `#YYMMDD HH:MM:SS server id N  end_log_pos N CRC32 0x... `, in
/// local time (the TZ environment variable) as there.
fn header_line(event: &mysql_async::binlog::events::Event, crc32: Option<u32>) -> String {
    let header = event.header();
    let time = chrono::DateTime::from_timestamp(i64::from(header.timestamp()), 0)
        .map(|t| t.with_timezone(&chrono::Local).format("%y%m%d %k:%M:%S").to_string())
        .unwrap_or_default();
    let crc32 = crc32.map(|c| format!("CRC32 0x{c:08x} ")).unwrap_or_default();
    format!("#{time} server id {}  end_log_pos {} {crc32}", header.server_id(), header.log_pos())
}

fn trailing_crc32(bytes: &[u8]) -> u32 {
    let tail: [u8; 4] = bytes[bytes.len().saturating_sub(4)..].try_into().unwrap_or_default();
    u32::from_le_bytes(tail)
}

/// The summary of an event, or its type name for the events Ferry does not interpret.
fn describe(event: &mysql_async::binlog::events::Event, decoded: &Decoded) -> String {
    let summary = summary(decoded);
    if !summary.is_empty() {
        return summary;
    }
    match event.header().event_type() {
        Ok(kind) => format!("{kind:?}"),
        Err(raw) => format!("event type {raw}"),
    }
}

/// The rows of a rows event (with `--verbose`) and the events inside a transaction payload.
fn write_details(out: &mut impl Write, decoded: &Decoded, verbose: bool) -> std::io::Result<()> {
    match decoded {
        Decoded::Rows(change) if verbose => write_rows(out, change),
        Decoded::Payload(events) => {
            for event in events {
                let summary = summary(event);
                if !summary.is_empty() {
                    writeln!(out, "#   payload: {summary}")?;
                }
                write_details(out, event, verbose)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn summary(decoded: &Decoded) -> String {
    match decoded {
        Decoded::Rotate { file, pos } => format!("Rotate to {file}  pos: {pos}"),
        Decoded::MariaGtid { gtid, standalone } => {
            format!("GTID {gtid}{}", if *standalone { " (standalone)" } else { "" })
        }
        Decoded::MysqlGtid(Some(g)) => format!("GTID {g}"),
        Decoded::MysqlGtid(None) => "Anonymous GTID".into(),
        Decoded::Begin => "Query BEGIN".into(),
        Decoded::Commit => "Commit".into(),
        Decoded::Query { schema, sql, .. } => format!("Query  schema: {schema}  {sql}"),
        Decoded::Annotate(sql) => format!("Annotate_rows: {sql}"),
        Decoded::GtidList(list) => format!(
            "Gtid list [{}]",
            list.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",")
        ),
        Decoded::Rows(c) => {
            format!("{:?}_rows: `{}`.`{}` rows: {}", c.kind, c.database, c.table, c.rows.len())
        }
        Decoded::Heartbeat => "Heartbeat".into(),
        Decoded::Payload(events) => format!("Transaction_payload  events: {}", events.len()),
        Decoded::Other => String::new(),
    }
}

/// Writes rows as `mysqlbinlog --verbose` does.
fn write_rows(out: &mut impl Write, change: &RowChange) -> std::io::Result<()> {
    let table = format!("`{}`.`{}`", change.database, change.table);
    for (before, after) in &change.rows {
        match change.kind {
            RowKind::Insert => {
                writeln!(out, "### INSERT INTO {table}")?;
                writeln!(out, "### SET")?;
                write_image(out, change, after.as_deref())?;
            }
            RowKind::Update => {
                writeln!(out, "### UPDATE {table}")?;
                writeln!(out, "### WHERE")?;
                write_image(out, change, before.as_deref())?;
                writeln!(out, "### SET")?;
                write_image(out, change, after.as_deref())?;
            }
            RowKind::Delete => {
                writeln!(out, "### DELETE FROM {table}")?;
                writeln!(out, "### WHERE")?;
                write_image(out, change, before.as_deref())?;
            }
        }
    }
    Ok(())
}

fn write_image(
    out: &mut impl Write,
    change: &RowChange,
    image: Option<&[Option<Value>]>,
) -> std::io::Result<()> {
    for (i, cell) in image.unwrap_or_default().iter().enumerate() {
        let Some(value) = cell else { continue };
        let column_type =
            change.column_types.get(i).copied().unwrap_or(ColumnType::MYSQL_TYPE_NULL);
        writeln!(out, "###   @{}={}", i + 1, format_value(column_type, value))?;
    }
    Ok(())
}

/// A value as mysqlbinlog prints it: numbers bare, strings quoted with non-printable bytes as
/// `\xNN` (quotes are not escaped, as there), negative integers followed by their unsigned
/// reading, DATE with colons, TIMESTAMP as seconds since the epoch.
fn format_value(column_type: ColumnType, value: &Value) -> String {
    use ColumnType::*;
    match value {
        Value::NULL => "NULL".into(),
        Value::Int(n) if *n < 0 => {
            let bits = integer_bits(column_type).unwrap_or(64);
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            format!("{n} ({})", (*n as u64) & mask)
        }
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(f) => format!("{f}"),
        Value::Double(f) => format!("{f}"),
        Value::Bytes(b) if matches!(column_type, MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Value::Bytes(b) => quote_bytes(b),
        Value::Date(y, m, d, h, mi, s, us) => match column_type {
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => format!("'{y:04}:{m:02}:{d:02}'"),
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
                let epoch = NaiveDate::from_ymd_opt(i32::from(*y), u32::from(*m), u32::from(*d))
                    .and_then(|date| date.and_hms_opt(u32::from(*h), u32::from(*mi), u32::from(*s)))
                    .map(|t| t.and_utc().timestamp())
                    .unwrap_or(0);
                if *us > 0 { format!("{epoch}.{us:06}") } else { epoch.to_string() }
            }
            _ if *us > 0 => format!("'{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'"),
            _ => format!("'{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}'"),
        },
        Value::Time(neg, days, h, m, s, us) => {
            let hours = u32::from(*h) + days * 24;
            let sign = if *neg { "-" } else { "" };
            if *us > 0 {
                format!("'{sign}{hours:02}:{m:02}:{s:02}.{us:06}'")
            } else {
                format!("'{sign}{hours:02}:{m:02}:{s:02}'")
            }
        }
    }
}

fn quote_bytes(bytes: &[u8]) -> String {
    let mut text = String::from("'");
    for &b in bytes {
        match b {
            0x20..=0x7e => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
    }
    text.push('\'');
    text
}
