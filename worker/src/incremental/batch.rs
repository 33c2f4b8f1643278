//! Turns the row changes of a worker's target transaction into few statements.
//!
//! Tables with a row key, no foreign keys and full row images are batched: their changes are
//! reduced to the net effect per key (the first before image of a row that existed, the last
//! after image of a row that exists at the end) and written as one `DELETE ... WHERE key IN
//! (...)` of the rows that existed, then one multi-row `INSERT` (`REPLACE` in safe mode) of the
//! final rows, each statement at most [`MAX_STATEMENT`] bytes. When the row key is the table's
//! only unique key (and no column is a BIT), rows that existed before and after the batch are instead written in place by
//! one `INSERT ... ON DUPLICATE KEY UPDATE` (no other unique value can collide). An UPDATE is thus a delete of its
//! before key and an insert of its after image: key-changing updates, chains of updates and
//! unique-key swaps between rows all end as on the source, whatever order the rows had in the
//! batch, and a key that was first inserted still fails on a target row that holds it (a
//! conflict). Tables without a key net their whole rows in exact mode (see
//! [`net_rows_without_key`]). Everything else goes row by row in source order ([`Step::Row`]):
//! tables without a key in safe mode, tables with foreign keys (a DELETE + INSERT of a parent
//! would cascade, and parents and children must change in the source's order), and images
//! without every column. A batch whose keys differ only in ways the collation may ignore
//! (case, trailing spaces) also goes row by row, so the net effect never merges or splits a row
//! differently from the target.

use std::collections::HashMap;
use std::sync::Arc;

use super::IncrementalError;
use super::apply::{Mode, writable};
use super::event::{Image, RowChange, RowKind};
use super::key;
use super::schema::TableSchema;
use crate::sql::{MAX_STATEMENT, literal, quote_ident};

/// One row change, with values as the target takes them.
#[derive(Debug, Clone)]
pub struct Op {
    pub schema: Arc<TableSchema>,
    pub kind: RowKind,
    pub before: Option<Image>,
    pub after: Option<Image>,
    /// Applied with the target session's foreign key checks off, as on the source (see
    /// [`RowChange::no_foreign_key_checks`]). Only tables with foreign keys heed it, and their
    /// changes go row by row in source order, so the setting holds for exactly their statements.
    pub no_foreign_key_checks: bool,
}

impl Op {
    /// The row changes of one rows event.
    pub fn from_change(schema: &Arc<TableSchema>, change: RowChange) -> crate::Result<Vec<Op>> {
        let (kind, no_foreign_key_checks) = (change.kind, change.no_foreign_key_checks);
        change
            .rows
            .into_iter()
            .map(|(before, after)| {
                let op = Op { schema: schema.clone(), kind, before, after, no_foreign_key_checks };
                let complete = match op.kind {
                    RowKind::Insert => op.after.is_some(),
                    RowKind::Delete => op.before.is_some(),
                    RowKind::Update => op.before.is_some() && op.after.is_some(),
                };
                if complete {
                    Ok(op)
                } else {
                    Err(IncrementalError::BadRowImage { table: schema.name() }.into())
                }
            })
            .collect()
    }

    /// Whether the change can join its table's net effect.
    fn batchable(&self) -> bool {
        self.schema.key.is_some() && !self.schema.foreign && self.full_images()
    }

    /// Whether the change of a table without a row key can join its table's net effect: the
    /// table is a multiset of whole rows, so an insert and a delete of the same image cancel.
    fn nettable_without_key(&self) -> bool {
        self.schema.key.is_none() && !self.schema.foreign && self.full_images()
    }

    fn full_images(&self) -> bool {
        [&self.before, &self.after].into_iter().flatten().all(|image| {
            image.len() == self.schema.columns.len() && image.iter().all(Option::is_some)
        })
    }
}

/// What a worker executes, in order.
#[derive(Debug)]
pub enum Step {
    /// A multi-row statement on `schema`'s table; a DELETE in exact mode must find
    /// `expect_rows` rows.
    Text { schema: Arc<TableSchema>, sql: Vec<u8>, expect_rows: Option<usize> },
    /// One row change applied on its own.
    Row(Op),
}

/// Plans the statements for `ops`, given in source order.
pub fn plan(ops: Vec<Op>, mode: Mode) -> Vec<Step> {
    // Overwriting tries each row as it is first, to find and count the conflicting ones.
    if mode == Mode::Overwrite {
        return ops.into_iter().map(Step::Row).collect();
    }
    // Each table's slot, in order of first appearance, and whether all its changes batch: by
    // key, or (exact mode only: safe mode replays what the target may hold) as whole rows.
    let mut batchable: Vec<(bool, bool)> = Vec::new();
    let slots: Vec<usize> = {
        let mut slot_of: HashMap<(&str, &str), usize> = HashMap::new();
        ops.iter()
            .map(|op| {
                let next = slot_of.len();
                let table = (op.schema.database.as_str(), op.schema.table.as_str());
                let slot = *slot_of.entry(table).or_insert(next);
                if slot == batchable.len() {
                    batchable.push((true, mode == Mode::Exact));
                }
                batchable[slot].0 &= op.batchable();
                batchable[slot].1 &= op.nettable_without_key();
                slot
            })
            .collect()
    };
    let mut table_ops: Vec<Vec<Op>> = batchable.iter().map(|_| Vec::new()).collect();
    let mut rows = Vec::new();
    for (op, slot) in ops.into_iter().zip(slots) {
        if batchable[slot].0 || batchable[slot].1 {
            table_ops[slot].push(op);
        } else {
            rows.push(Step::Row(op));
        }
    }
    let mut steps = Vec::new();
    for ops in table_ops.into_iter().filter(|ops| !ops.is_empty()) {
        if ops[0].schema.key.is_none() {
            net_rows_without_key(ops, &mut steps);
            continue;
        }
        match net_effect(&ops) {
            Some(net) => statements(&ops[0].schema, &net, mode, &mut steps),
            None => steps.extend(ops.into_iter().map(Step::Row)),
        }
    }
    steps.extend(rows);
    steps
}

/// A table without a row key holds a multiset of rows: each image's inserts less its deletes
/// is what the changes did to it. Images inserted and deleted within the batch cancel; the rest
/// are deleted one by one (by the whole image, `LIMIT 1`, as on the row path, and each must be
/// found) and then inserted by one multi-row INSERT. Deleting first never meets a unique value
/// that the source had not freed, since every delete is of a row that existed before.
fn net_rows_without_key(ops: Vec<Op>, steps: &mut Vec<Step>) {
    let schema = ops[0].schema.clone();
    let mut order: Vec<Vec<u8>> = Vec::new();
    // Per image: inserts less deletes, and the image.
    let mut counts: HashMap<Vec<u8>, (i64, Image)> = HashMap::new();
    for op in ops {
        for (image, delta) in [(op.before, -1), (op.after, 1)] {
            let Some(image) = image else { continue };
            let mut exact = Vec::new();
            for (value, column) in image.iter().zip(&schema.columns) {
                if let Some(value) = value {
                    literal::push_binlog(&mut exact, value, column.convert_charset.as_deref());
                }
                exact.push(0);
            }
            match counts.get_mut(&exact) {
                Some((count, _)) => *count += delta,
                None => {
                    order.push(exact.clone());
                    counts.insert(exact, (delta, image));
                }
            }
        }
    }
    let mut inserts: Vec<Image> = Vec::new();
    for key in order {
        let Some((count, image)) = counts.remove(&key) else { continue };
        for _ in count..0 {
            let before = Some(image.clone());
            let kind = RowKind::Delete;
            let op = Op {
                schema: schema.clone(),
                kind,
                before,
                after: None,
                no_foreign_key_checks: false,
            };
            steps.push(Step::Row(op));
        }
        inserts.extend((0..count).map(|_| image.clone()));
    }
    let inserts: Vec<&Image> = inserts.iter().collect();
    insert_rows(&schema, &inserts, Verb::Insert, steps);
}

/// The net effect of a table's changes on the rows they touch.
struct NetEffect<'a> {
    /// Before images of rows to delete first.
    deletes: Vec<&'a Image>,
    /// Final images of rows to insert.
    inserts: Vec<&'a Image>,
    /// Final images of rows that existed before and still exist, when the row key is the
    /// table's only unique key: written in place by an upsert, no delete needed.
    updates: Vec<&'a Image>,
}

struct RowState<'a> {
    existed: Option<&'a Image>,
    last: Option<&'a Image>,
}

/// `None` when two keys of the batch may be equal for the collation without being equal bytes.
fn net_effect(ops: &[Op]) -> Option<NetEffect<'_>> {
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut rows: HashMap<Vec<u8>, RowState<'_>> = HashMap::new();
    let mut folded: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for op in ops {
        let schema = &op.schema;
        for (image, is_before) in [(&op.before, true), (&op.after, false)] {
            let Some(image) = image else { continue };
            let (exact, fold) = row_key(schema, image);
            if !rows.contains_key(&exact) {
                if folded.entry(fold).or_insert_with(|| exact.clone()) != &exact {
                    return None;
                }
                order.push(exact.clone());
                rows.insert(
                    exact.clone(),
                    RowState { existed: is_before.then_some(image), last: None },
                );
            }
            let state = rows.get_mut(&exact)?;
            state.last = (!is_before).then_some(image);
        }
    }
    // With other unique keys, rows may trade unique values within the batch: every touched row
    // is deleted before any is written back.
    // Not with BIT columns either: TiDB's VALUES() of a BIT column wider than 56 bits gives its
    // bytes shifted (1 becomes 0x0100000000000000).
    let in_place = ops.first().is_some_and(|op| {
        op.schema.unique_keys.len() <= 1 && !op.schema.columns.iter().any(|c| c.data_type == "bit")
    });
    let mut net = NetEffect { deletes: Vec::new(), inserts: Vec::new(), updates: Vec::new() };
    for key in &order {
        let state = rows.get(key)?;
        match (state.existed, state.last) {
            (Some(_), Some(last)) if in_place => net.updates.push(last),
            (existed, last) => {
                net.deletes.extend(existed);
                net.inserts.extend(last);
            }
        }
    }
    Some(net)
}

/// The row key's values as exact literals and as the collation compares them.
fn row_key(schema: &TableSchema, image: &Image) -> (Vec<u8>, Vec<u8>) {
    let (mut exact, mut fold) = (Vec::new(), Vec::new());
    for &i in schema.key.iter().flatten() {
        if let Some(Some(value)) = image.get(i) {
            literal::push_binlog(&mut exact, value, schema.columns[i].convert_charset.as_deref());
            key::key_bytes(&mut fold, value, &schema.columns[i]);
        }
        exact.push(0);
        fold.push(0);
    }
    (exact, fold)
}

fn statements(schema: &Arc<TableSchema>, net: &NetEffect<'_>, mode: Mode, steps: &mut Vec<Step>) {
    let key = schema.key.as_deref().unwrap_or_default();
    let delete_header = delete_header(schema, key);
    let delete_tail: &[u8] = if key.len() == 1 { b")" } else { b"" };
    let separator: &[u8] = if key.len() == 1 { b"," } else { b" OR " };
    let delete = Chunking { header: &delete_header, separator, tail: delete_tail };
    // In exact mode every deleted row must be found (see `Applier::require_found`).
    let must_find = mode == Mode::Exact;
    delete
        .split(schema, &net.deletes, must_find, steps, |out, row| push_key(out, schema, key, row));
    insert_rows(schema, &net.inserts, Verb::for_mode(mode), steps);
    insert_rows(schema, &net.updates, Verb::Upsert, steps);
}

/// How rows are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Insert,
    Replace,
    /// `INSERT ... ON DUPLICATE KEY UPDATE` every column.
    Upsert,
}

impl Verb {
    fn for_mode(mode: Mode) -> Verb {
        if mode == Mode::Upsert { Verb::Replace } else { Verb::Insert }
    }
}

fn insert_rows(schema: &Arc<TableSchema>, rows: &[&Image], verb: Verb, steps: &mut Vec<Step>) {
    let Some(first) = rows.first() else { return };
    let columns = writable(schema, first);
    let header = insert_header(schema, &columns, verb);
    let tail = if verb == Verb::Upsert { upsert_tail(schema, &columns) } else { Vec::new() };
    let insert = Chunking { header: &header, separator: b",", tail: &tail };
    insert.split(schema, rows, false, steps, |out, row| {
        out.push(b'(');
        for (n, &i) in columns.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            if let Some(Some(value)) = row.get(i) {
                literal::push_binlog(out, value, schema.columns[i].convert_charset.as_deref());
            }
        }
        out.push(b')');
    });
}

fn upsert_tail(schema: &TableSchema, columns: &[usize]) -> Vec<u8> {
    let set: Vec<String> = columns
        .iter()
        .map(|&i| {
            let name = quote_ident(&schema.columns[i].name);
            format!("{name}=VALUES({name})")
        })
        .collect();
    format!(" ON DUPLICATE KEY UPDATE {}", set.join(",")).into_bytes()
}

fn delete_header(schema: &TableSchema, key: &[usize]) -> Vec<u8> {
    let mut header = format!("DELETE FROM {} WHERE ", schema.name());
    if let [column] = key {
        header.push_str(&quote_ident(&schema.columns[*column].name));
        header.push_str(" IN (");
    }
    header.into_bytes()
}

/// `v` for a one-column key (inside `IN (...)`), else `(a = v AND b = w)`.
fn push_key(out: &mut Vec<u8>, schema: &TableSchema, key: &[usize], row: &Image) {
    let value = |out: &mut Vec<u8>, i: usize| {
        if let Some(Some(value)) = row.get(i) {
            literal::push_binlog(out, value, schema.columns[i].convert_charset.as_deref());
        }
    };
    if let [column] = key {
        return value(out, *column);
    }
    out.push(b'(');
    for (n, &i) in key.iter().enumerate() {
        if n > 0 {
            out.extend_from_slice(b" AND ");
        }
        out.extend_from_slice(quote_ident(&schema.columns[i].name).as_bytes());
        out.extend_from_slice(b" = ");
        value(out, i);
    }
    out.push(b')');
}

fn insert_header(schema: &TableSchema, columns: &[usize], verb: Verb) -> Vec<u8> {
    let verb = if verb == Verb::Replace { "REPLACE" } else { "INSERT" };
    let names: Vec<String> =
        columns.iter().map(|&i| quote_ident(&schema.columns[i].name)).collect();
    format!("{verb} INTO {} ({}) VALUES ", schema.name(), names.join(",")).into_bytes()
}

/// Statements of `header` + items separated by `separator` + `tail`, each at most about
/// [`MAX_STATEMENT`] bytes.
struct Chunking<'a> {
    header: &'a [u8],
    separator: &'a [u8],
    tail: &'a [u8],
}

impl Chunking<'_> {
    /// The statements for `items`; with `must_find`, each expects to find as many rows as it
    /// names.
    fn split<T>(
        &self,
        schema: &Arc<TableSchema>,
        items: &[T],
        must_find: bool,
        steps: &mut Vec<Step>,
        mut push: impl FnMut(&mut Vec<u8>, &T),
    ) {
        let mut sql = self.header.to_vec();
        let mut count = 0;
        for (n, item) in items.iter().enumerate() {
            if count > 0 {
                sql.extend_from_slice(self.separator);
            }
            push(&mut sql, item);
            count += 1;
            if sql.len() >= MAX_STATEMENT || n + 1 == items.len() {
                sql.extend_from_slice(self.tail);
                steps.push(Step::Text {
                    schema: schema.clone(),
                    sql: std::mem::replace(&mut sql, self.header.to_vec()),
                    expect_rows: must_find.then_some(count),
                });
                count = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mysql_async::Value;

    use super::*;
    use crate::incremental::schema::{ColumnInfo, Fold};

    fn schema(foreign: bool) -> Arc<TableSchema> {
        let column = ColumnInfo::varchar;
        Arc::new(TableSchema {
            database: "d".into(),
            table: "t".into(),
            columns: vec![column("id", Fold::TrimLower), column("v", Fold::Exact)],
            key: Some(vec![0]),
            unique_keys: vec![vec![0]],
            foreign,
        })
    }

    fn image(id: &str, v: i64) -> Option<Image> {
        Some(vec![Some(Value::Bytes(id.as_bytes().to_vec())), Some(Value::Int(v))])
    }

    fn op(s: &Arc<TableSchema>, kind: RowKind, before: Option<Image>, after: Option<Image>) -> Op {
        Op { schema: s.clone(), kind, before, after, no_foreign_key_checks: false }
    }

    fn sql(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Text { sql, .. } => String::from_utf8_lossy(sql).into_owned(),
                Step::Row(op) => format!("row {:?}", op.kind),
            })
            .collect()
    }

    #[test]
    fn changes_reduce_to_deletes_then_inserts() {
        let s = schema(false);
        let ops = vec![
            op(&s, RowKind::Insert, None, image("a", 1)),
            op(&s, RowKind::Update, image("a", 1), image("a", 2)),
            op(&s, RowKind::Update, image("b", 1), image("c", 1)),
            op(&s, RowKind::Delete, image("d", 1), None),
            op(&s, RowKind::Insert, None, image("d", 5)),
            op(&s, RowKind::Insert, None, image("e", 1)),
            op(&s, RowKind::Delete, image("e", 1), None),
        ];
        assert_eq!(
            sql(&plan(ops.clone(), Mode::Exact)),
            vec![
                "DELETE FROM `d`.`t` WHERE `id` IN ('b')",
                "INSERT INTO `d`.`t` (`id`,`v`) VALUES ('a',2),('c',1)",
                "INSERT INTO `d`.`t` (`id`,`v`) VALUES ('d',5) ON DUPLICATE KEY UPDATE \
                 `id`=VALUES(`id`),`v`=VALUES(`v`)",
            ]
        );
        // Another unique key: rows that stay are deleted and written back too.
        let mut other = (*s).clone();
        other.unique_keys.push(vec![1]);
        let other = Arc::new(other);
        let ops = ops.into_iter().map(|op| Op { schema: other.clone(), ..op }).collect();
        assert_eq!(
            sql(&plan(ops, Mode::Exact)),
            vec![
                "DELETE FROM `d`.`t` WHERE `id` IN ('b','d')",
                "INSERT INTO `d`.`t` (`id`,`v`) VALUES ('a',2),('c',1),('d',5)",
            ]
        );
    }

    #[test]
    fn rows_without_key_cancel_and_the_rest_is_deleted_then_inserted() {
        let mut keyless = (*schema(false)).clone();
        keyless.key = None;
        keyless.unique_keys.clear();
        let s = Arc::new(keyless);
        let ops = vec![
            // Inserted twice, deleted once: one insert is left.
            op(&s, RowKind::Insert, None, image("a", 1)),
            op(&s, RowKind::Insert, None, image("a", 1)),
            op(&s, RowKind::Delete, image("a", 1), None),
            // An existing row updated twice: its first image deleted, its last inserted.
            op(&s, RowKind::Update, image("b", 1), image("b", 2)),
            op(&s, RowKind::Update, image("b", 2), image("b", 3)),
            // Inserted then updated then deleted: nothing.
            op(&s, RowKind::Insert, None, image("c", 1)),
            op(&s, RowKind::Update, image("c", 1), image("c", 2)),
            op(&s, RowKind::Delete, image("c", 2), None),
            // Two existing duplicates deleted: two deletes.
            op(&s, RowKind::Delete, image("d", 1), None),
            op(&s, RowKind::Delete, image("d", 1), None),
        ];
        assert_eq!(
            sql(&plan(ops.clone(), Mode::Exact)),
            vec![
                "row Delete",
                "row Delete",
                "row Delete",
                "INSERT INTO `d`.`t` (`id`,`v`) VALUES ('a',1),('b',3)",
            ]
        );
        let steps = plan(ops.clone(), Mode::Exact);
        let deleted: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Row(op) => op.before.clone(),
                Step::Text { .. } => None,
            })
            .collect();
        assert_eq!(
            deleted,
            vec![image("b", 1).unwrap(), image("d", 1).unwrap(), image("d", 1).unwrap()]
        );
        // Safe mode replays changes the target may hold: row by row, in source order.
        assert_eq!(plan(ops, Mode::Upsert).len(), 10);
    }

    #[test]
    fn safe_mode_replaces() {
        let s = schema(false);
        let steps = plan(vec![op(&s, RowKind::Insert, None, image("a", 1))], Mode::Upsert);
        assert_eq!(sql(&steps), vec!["REPLACE INTO `d`.`t` (`id`,`v`) VALUES ('a',1)"]);
    }

    #[test]
    fn foreign_keys_and_collation_twins_go_row_by_row() {
        let fk = schema(true);
        let steps = plan(vec![op(&fk, RowKind::Insert, None, image("a", 1))], Mode::Exact);
        assert_eq!(sql(&steps), vec!["row Insert"]);
        let s = schema(false);
        let ops = vec![
            op(&s, RowKind::Update, image("a", 1), image("A", 1)),
            op(&s, RowKind::Insert, None, image("b", 1)),
        ];
        assert_eq!(sql(&plan(ops, Mode::Exact)), vec!["row Update", "row Insert"]);
    }
}
