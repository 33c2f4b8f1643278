//! The low watermark of the parallel apply: source units get sequence numbers in stream order,
//! workers finish them out of order, and the checkpoint may only advance to the end of the
//! longest prefix of units that are all applied. Units above it that a worker already committed
//! are recorded in `ferry_meta.incremental_applied` (see [`crate::meta::incremental`]).

use std::collections::BTreeMap;

use crate::meta::incremental::Position;

struct Unit {
    end: Position,
    timestamp: u32,
    done: bool,
}

/// Units in flight and the position below which everything is applied.
pub struct Watermark {
    next: u64,
    pending: BTreeMap<u64, Unit>,
    low: Position,
    low_timestamp: u32,
}

impl Watermark {
    /// Starts at `start`, where everything before is applied.
    pub fn new(start: Position) -> Self {
        Self { next: 0, pending: BTreeMap::new(), low: start, low_timestamp: 0 }
    }

    /// Registers the next unit in stream order; returns its sequence number.
    pub fn register(&mut self, end: Position, timestamp: u32) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.pending.insert(seq, Unit { end, timestamp, done: false });
        seq
    }

    /// Marks a unit applied and advances the watermark past every applied prefix.
    pub fn done(&mut self, seq: u64) {
        if let Some(unit) = self.pending.get_mut(&seq) {
            unit.done = true;
        }
        while let Some(entry) = self.pending.first_entry() {
            if !entry.get().done {
                break;
            }
            let unit = entry.remove();
            self.low = unit.end;
            self.low_timestamp = unit.timestamp;
        }
    }

    /// Everything up to this position is applied.
    pub fn low(&self) -> &Position {
        &self.low
    }

    /// Source time of the commit at the watermark (0 before the first unit).
    pub fn low_timestamp(&self) -> u32 {
        self.low_timestamp
    }

    /// Source time of the oldest unit registered and not yet applied.
    pub fn oldest_pending_timestamp(&self) -> Option<u32> {
        self.pending.values().find(|unit| !unit.done).map(|unit| unit.timestamp)
    }

    /// Units registered and not yet below the watermark.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pos: u64) -> Position {
        Position { file: "bin.000001".into(), pos, ..Default::default() }
    }

    #[test]
    fn advances_over_applied_prefixes_only() {
        let mut w = Watermark::new(at(4));
        let a = w.register(at(100), 1);
        let b = w.register(at(200), 2);
        let c = w.register(at(300), 3);
        w.done(b);
        assert_eq!(w.low(), &at(4));
        w.done(a);
        assert_eq!((w.low(), w.low_timestamp()), (&at(200), 2));
        assert_eq!(w.in_flight(), 1);
        w.done(c);
        assert_eq!(w.low(), &at(300));
        assert_eq!(w.in_flight(), 0);
    }
}
