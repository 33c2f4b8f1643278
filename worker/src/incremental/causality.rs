//! Conflict detection for the parallel apply: which source transactions may run on different
//! workers at once.
//!
//! Every row change yields keys: per unique key of its table (primary included) the table and
//! that key's values, for the before and the after image (a NULL in a unique key never
//! conflicts). Values are compared as the column's collation compares them, approximately: text
//! ignores trailing spaces, and case and Latin accents unless the collation is binary or
//! case-sensitive (other accents, expansions and ignorable characters are not modelled). A table without a usable key yields one
//! key for the whole table, so its changes stay in order on one worker. Every table with foreign
//! keys, or referenced by one, yields the same group key: all their changes stay in source order
//! on one worker, and cascades on the target end as on the source.
//!
//! A transaction goes to the worker already holding one of its keys (that worker applies its
//! queue in order); if keys are held by two workers it waits until only one holds them.
//! Keys are 64-bit hashes: a collision only costs parallelism, never order.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::event::{Cell, RowChange};
use super::key;
use super::schema::TableSchema;

/// A conflict key.
pub type Key = u64;

/// The keys of a transaction's row changes, sorted and without duplicates.
pub fn txn_keys<'a>(
    changes: impl IntoIterator<Item = (&'a Arc<TableSchema>, &'a RowChange)>,
) -> Vec<Key> {
    let mut keys = Vec::new();
    for (schema, change) in changes {
        change_keys(schema, change, &mut keys);
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn change_keys(schema: &TableSchema, change: &RowChange, keys: &mut Vec<Key>) {
    if schema.foreign {
        keys.push(hash(&"foreign key group"));
        return;
    }
    let table = (&schema.database, &schema.table);
    if schema.key.is_none() {
        keys.push(hash(&table));
        return;
    }
    for (before, after) in &change.rows {
        for image in [before, after].into_iter().flatten() {
            if !image_keys(schema, image, keys) {
                // The image lacks its row key: order the whole table.
                keys.push(hash(&table));
            }
        }
    }
}

/// Pushes the image's unique key values; false when the row key is not in the image.
fn image_keys(schema: &TableSchema, image: &[Cell], keys: &mut Vec<Key>) -> bool {
    let mut has_row_key = false;
    for (n, columns) in schema.unique_keys.iter().enumerate() {
        let mut material = Vec::with_capacity(32);
        let complete = columns.iter().all(|&i| match image.get(i) {
            Some(Some(value)) if *value != mysql_async::Value::NULL => {
                key::key_bytes(&mut material, value, &schema.columns[i]);
                material.push(0);
                true
            }
            _ => false,
        });
        if complete {
            keys.push(hash(&(&schema.database, &schema.table, n, &material)));
            has_row_key |= schema.key.as_ref() == Some(columns);
        }
    }
    has_row_key
}

fn hash(value: &impl Hash) -> Key {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Which worker holds which keys, and how many of its queued transactions hold each.
#[derive(Default)]
pub struct Tracker {
    owners: HashMap<Key, (usize, u32)>,
}

impl Tracker {
    /// The workers holding any of `keys`, without duplicates.
    pub fn holders(&self, keys: &[Key]) -> Vec<usize> {
        let mut workers: Vec<usize> =
            keys.iter().filter_map(|k| self.owners.get(k).map(|&(w, _)| w)).collect();
        workers.sort_unstable();
        workers.dedup();
        workers
    }

    /// Records that `worker` holds `keys` (call only when no other worker holds any of them).
    pub fn acquire(&mut self, keys: &[Key], worker: usize) {
        for &key in keys {
            let entry = self.owners.entry(key).or_insert((worker, 0));
            debug_assert_eq!(entry.0, worker, "a key moved between workers");
            entry.1 += 1;
        }
    }

    /// Releases `keys` of one applied transaction.
    pub fn release(&mut self, keys: &[Key]) {
        for key in keys {
            if let Some(entry) = self.owners.get_mut(key) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    self.owners.remove(key);
                }
            }
        }
    }

    /// Keys held, for tests and diagnostics.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use mysql_async::Value;

    use super::*;
    use crate::incremental::event::{Image, RowKind};
    use crate::incremental::schema::{ColumnInfo, Fold};

    fn schema(
        key: Option<Vec<usize>>,
        unique_keys: Vec<Vec<usize>>,
        foreign: bool,
    ) -> Arc<TableSchema> {
        let column = ColumnInfo::varchar;
        Arc::new(TableSchema {
            database: "db".into(),
            table: "t".into(),
            columns: vec![column("id", Fold::Exact), column("code", Fold::TrimLower)],
            key,
            unique_keys,
            foreign,
        })
    }

    fn change(kind: RowKind, rows: Vec<(Option<Image>, Option<Image>)>) -> RowChange {
        RowChange {
            database: "db".into(),
            table: "t".into(),
            kind,
            column_types: vec![],
            column_names: None,
            unsigned: None,
            no_foreign_key_checks: false,
            rows,
        }
    }

    fn row(id: i64, code: &str) -> Option<Image> {
        Some(vec![Some(Value::Int(id)), Some(Value::Bytes(code.as_bytes().to_vec()))])
    }

    #[test]
    fn unique_keys_fold_case_and_trailing_spaces() {
        let s = schema(Some(vec![0]), vec![vec![0], vec![1]], false);
        let a = txn_keys([(&s, &change(RowKind::Insert, vec![(None, row(1, "A "))]))]);
        let b = txn_keys([(&s, &change(RowKind::Insert, vec![(None, row(2, "a"))]))]);
        let c = txn_keys([(&s, &change(RowKind::Insert, vec![(None, row(3, "b"))]))]);
        assert_eq!(a.len(), 2);
        assert!(a.iter().any(|k| b.contains(k)), "same unique value, other case");
        assert!(!a.iter().any(|k| c.contains(k)));
    }

    #[test]
    fn updates_hold_before_and_after_keys() {
        let s = schema(Some(vec![0]), vec![vec![0]], false);
        let moved = txn_keys([(&s, &change(RowKind::Update, vec![(row(1, "x"), row(2, "x"))]))]);
        let one = txn_keys([(&s, &change(RowKind::Delete, vec![(row(1, "x"), None)]))]);
        let two = txn_keys([(&s, &change(RowKind::Insert, vec![(None, row(2, "y"))]))]);
        assert_eq!(moved.len(), 2);
        assert!(moved.contains(&one[0]) && moved.contains(&two[0]));
    }

    #[test]
    fn keyless_and_foreign_key_tables_share_one_key() {
        let keyless = schema(None, vec![], false);
        let a = txn_keys([(&keyless, &change(RowKind::Insert, vec![(None, row(1, "a"))]))]);
        let b = txn_keys([(&keyless, &change(RowKind::Insert, vec![(None, row(2, "b"))]))]);
        assert_eq!(a, b);
        let parent = schema(Some(vec![0]), vec![vec![0]], true);
        let c = txn_keys([(&parent, &change(RowKind::Insert, vec![(None, row(1, "a"))]))]);
        let d = txn_keys([(&parent, &change(RowKind::Delete, vec![(row(9, "z"), None)]))]);
        assert_eq!(c, d);
    }

    #[test]
    fn tracker_follows_holders() {
        let mut tracker = Tracker::default();
        tracker.acquire(&[1, 2], 0);
        tracker.acquire(&[2], 0);
        tracker.acquire(&[3], 1);
        assert_eq!(tracker.holders(&[2, 3, 4]), vec![0, 1]);
        tracker.release(&[1, 2]);
        assert_eq!(tracker.holders(&[1, 2]), vec![0]);
        tracker.release(&[2]);
        tracker.release(&[3]);
        assert!(tracker.is_empty());
    }
}
