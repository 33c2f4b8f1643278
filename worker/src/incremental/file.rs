//! Reading binlog and relay-log files: each event's bytes are checked against its header before
//! mysql_common sees them, so a truncated or corrupt file is an error, never a panic.

use std::io::Read;
use std::path::Path;

use mysql_async::binlog::events::Event;

use super::event::DecodeError;

/// The four bytes every binlog file starts with.
const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
const HEADER_LEN: usize = 19;

/// Why a file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a binlog file (no binlog magic bytes at the start)")]
    NotBinlog { path: String },
    #[error("{path}: event at {pos} is truncated: {message}")]
    Truncated { path: String, pos: u64, message: String },
    #[error("{path}: event at {pos} is corrupt: {message}")]
    Corrupt { path: String, pos: u64, message: String },
    #[error("{path}: {source}")]
    Decode { path: String, source: DecodeError },
}

/// Iterates over a file's events, yielding each with its start offset.
pub struct BinlogFile<R> {
    read: R,
    path: String,
    pos: u64,
    checksums: bool,
}

impl BinlogFile<std::io::BufReader<std::fs::File>> {
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|source| FileError::Io { path: name.clone(), source })?;
        Self::new(std::io::BufReader::new(file), name)
    }
}

impl<R: Read> BinlogFile<R> {
    pub fn new(mut read: R, path: String) -> Result<Self, FileError> {
        let mut magic = [0u8; 4];
        read.read_exact(&mut magic).map_err(|_| FileError::NotBinlog { path: path.clone() })?;
        if magic != MAGIC {
            return Err(FileError::NotBinlog { path });
        }
        Ok(Self { read, path, pos: 4, checksums: false })
    }

    /// The next event's raw bytes and start offset, or `None` at the end of the file.
    pub fn next_raw(&mut self) -> Result<Option<(u64, Vec<u8>)>, FileError> {
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.read, &mut header)
            .map_err(|source| FileError::Io { path: self.path.clone(), source })?;
        if got == 0 {
            return Ok(None);
        }
        let truncated = |message: String| FileError::Truncated {
            path: self.path.clone(),
            pos: self.pos,
            message,
        };
        if got < HEADER_LEN {
            return Err(truncated(format!("{got} of {HEADER_LEN} header bytes")));
        }
        let size = u32::from_le_bytes([header[9], header[10], header[11], header[12]]) as usize;
        let event_type = header[4];
        let is_fde = event_type == 15;
        // The smallest valid events: the header, plus the checksum when the file has them; a
        // format description also carries its algorithm byte and checksum.
        let min = if is_fde {
            HEADER_LEN + 57
        } else if self.checksums {
            HEADER_LEN + 4
        } else {
            HEADER_LEN
        };
        if size < min {
            return Err(FileError::Corrupt {
                path: self.path.clone(),
                pos: self.pos,
                message: format!("event size {size} is below the minimum {min}"),
            });
        }
        // Memory grows with the bytes actually read, not with what the header claims: a corrupt
        // length of 4 GiB in a small file ends at its end, as a truncated event.
        let mut bytes = header.to_vec();
        let body = (size - HEADER_LEN) as u64;
        let got = (&mut self.read)
            .take(body)
            .read_to_end(&mut bytes)
            .map_err(|source| FileError::Io { path: self.path.clone(), source })?;
        if (got as u64) < body {
            return Err(truncated(format!("{} of {size} bytes", HEADER_LEN + got)));
        }
        if is_fde {
            // Checksum algorithm: the byte before the trailing 4-byte checksum (1 = CRC32).
            self.checksums = bytes[size - 5] == 1;
        }
        let start = self.pos;
        self.pos += size as u64;
        Ok(Some((start, bytes)))
    }

    /// Parses raw event bytes with the decoder's current format description.
    pub fn parse(
        &self,
        decoder: &super::event::Decoder,
        pos: u64,
        bytes: &[u8],
    ) -> Result<Event, FileError> {
        let fde = decoder.fde();
        let parsed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Event::read(fde, bytes)));
        match parsed {
            Ok(Ok(event)) => Ok(event),
            Ok(Err(e)) => {
                Err(FileError::Corrupt { path: self.path.clone(), pos, message: e.to_string() })
            }
            Err(_) => Err(FileError::Corrupt {
                path: self.path.clone(),
                pos,
                message: "event bytes do not match their header".into(),
            }),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the events read so far end with a CRC32 (as the format description said).
    pub fn checksums(&self) -> bool {
        self.checksums
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(read: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
