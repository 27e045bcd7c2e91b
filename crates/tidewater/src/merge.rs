//! Merge: takes shaped blocks in input order, resolves table and column names against the
//! registry (output-format §4) and buffers rows per (table, window) until a row group is
//! full. Doing this in one place, in order, is what makes output deterministic (FC3).
//!
//! Row-group boundaries depend only on the sequence of rows, never on block sizes or
//! thread timing: a buffer is flushed at exactly `row_group_rows` rows, when its rows'
//! input bytes reach `row_group_bytes`, or when all buffers together reach the memory
//! budget (then the buffer that has waited longest goes first). Rowss are split at the
//! exact row.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::block::shape::{BlockColumns, BlockTable};
use crate::block::Rows;
use crate::columns::{SparseColumn, TypeClass, Values};
use crate::schema::registry::{ColumnInfo, Registry, Target};
use crate::window::WindowKey;
use tidewater_event::{write_f64, write_json_string};

/// A full row group, ready to encode.
#[derive(Debug)]
pub struct RowGroup {
    /// Table number in the registry.
    pub table: u32,
    /// Window.
    pub window: WindowKey,
    /// Position of this row group in its (table, window) file.
    pub index: u32,
    /// Rows, in input order.
    pub chunks: Vec<Rows>,
    /// Total rows.
    pub rows: u32,
    /// The table's name.
    pub table_name: String,
    /// The table's source event (multischema).
    pub event: Option<String>,
    /// The table's columns when the group was flushed (the group uses a subset).
    pub columns: Arc<Vec<ColumnInfo>>,
}

#[derive(Debug, Default)]
struct Pending {
    chunks: Vec<Rows>,
    rows: u32,
    bytes: u64,
    flushed: u32,
    /// When rows were last added (a counter of appends, so deterministic).
    last_append: u64,
}

/// Row-group limits.
#[derive(Debug, Clone, Copy)]
pub struct BufferLimits {
    /// Rows per row group.
    pub row_group_rows: u32,
    /// Input bytes per row group.
    pub row_group_bytes: u64,
    /// Input bytes buffered across all (table, window) pairs.
    pub total_bytes: u64,
}

/// The merge state of a run.
pub struct Merger {
    /// Tables and columns.
    pub registry: Registry,
    limits: BufferLimits,
    pending: BTreeMap<(WindowKey, u32), Pending>,
    buffered: u64,
    appends: u64,
    /// Rows per (table, window), for the summary.
    pub rows: BTreeMap<(WindowKey, u32), u64>,
}

impl Merger {
    /// A merger over a registry.
    pub fn new(registry: Registry, limits: BufferLimits) -> Self {
        Merger {
            registry,
            limits,
            pending: BTreeMap::new(),
            buffered: 0,
            appends: 0,
            rows: BTreeMap::new(),
        }
    }

    /// Resolves one block table and buffers its rows; full row groups go to `flush`.
    pub fn add(&mut self, block_table: BlockTable, flush: &mut impl FnMut(RowGroup)) {
        let table = self.registry.table_for(block_table.event.as_deref());
        let t = &mut self.registry.tables[table as usize];
        let targets: Vec<Target> = block_table
            .columns
            .iter()
            .map(|(name, class)| t.resolve(name, class))
            .collect();
        for (window, rows) in block_table.parts {
            let chunk = to_chunk(rows, &targets, &block_table.columns);
            *self.rows.entry((window, table)).or_default() += u64::from(chunk.count);
            self.append((window, table), chunk, flush);
        }
    }

    fn append(&mut self, key: (WindowKey, u32), mut chunk: Rows, flush: &mut impl FnMut(RowGroup)) {
        let limits = self.limits;
        while chunk.count > 0 {
            let first = u64::from(chunk.row_bytes[0]);
            let global_room = limits.total_bytes.saturating_sub(self.buffered);
            if first > global_room && self.buffered > 0 {
                // Flush the buffer that has waited longest: with roughly time-ordered
                // input that is a window that has ended, so full row groups of the
                // current windows are not cut short.
                let stalest = self
                    .pending
                    .iter()
                    .filter(|(_, p)| p.rows > 0)
                    .min_by_key(|(_, p)| p.last_append)
                    .map(|(k, _)| *k)
                    .expect("buffered bytes belong to some buffer");
                self.flush_one(stalest, flush);
                continue;
            }
            let p = self.pending.entry(key).or_default();
            let local_room = limits.row_group_bytes.saturating_sub(p.bytes);
            if first > local_room && p.rows > 0 {
                self.flush_one(key, flush);
                continue;
            }
            let room = global_room.min(local_room).max(first);
            let max_rows = (limits.row_group_rows - p.rows).min(chunk.count);
            let mut take = 0u32;
            let mut bytes = 0u64;
            while take < max_rows {
                let b = u64::from(chunk.row_bytes[take as usize]);
                if take > 0 && bytes + b > room {
                    break;
                }
                bytes += b;
                take += 1;
            }
            let rest = if take < chunk.count {
                Some(chunk.split_off(take))
            } else {
                None
            };
            self.appends += 1;
            p.last_append = self.appends;
            p.rows += take;
            p.bytes += bytes;
            p.chunks.push(chunk);
            self.buffered += bytes;
            if p.rows >= limits.row_group_rows || p.bytes >= limits.row_group_bytes {
                self.flush_one(key, flush);
            }
            match rest {
                Some(r) => chunk = r,
                None => break,
            }
        }
    }

    fn flush_one(&mut self, key: (WindowKey, u32), flush: &mut impl FnMut(RowGroup)) {
        let p = self.pending.get_mut(&key).expect("flushing a known buffer");
        if p.rows == 0 {
            return;
        }
        self.buffered -= p.bytes;
        let table = &self.registry.tables[key.1 as usize];
        let group = RowGroup {
            table: key.1,
            window: key.0,
            index: p.flushed,
            chunks: std::mem::take(&mut p.chunks),
            rows: p.rows,
            table_name: table.name.clone(),
            event: table.event.clone(),
            columns: Arc::new(table.columns.clone()),
        };
        p.rows = 0;
        p.bytes = 0;
        p.flushed += 1;
        flush(group);
    }

    /// Flushes the buffers of some windows, in (window, table) order, and forgets them.
    pub fn flush_windows(
        &mut self,
        windows: &std::collections::BTreeSet<WindowKey>,
        flush: &mut impl FnMut(RowGroup),
    ) {
        let keys: Vec<_> = self
            .pending
            .keys()
            .filter(|(w, _)| windows.contains(w))
            .copied()
            .collect();
        for k in keys {
            self.flush_one(k, flush);
            self.pending.remove(&k);
        }
    }

    /// Flushes every buffer, in (window, table) order.
    pub fn flush_all(&mut self, flush: &mut impl FnMut(RowGroup)) {
        let keys: Vec<_> = self.pending.keys().copied().collect();
        for k in keys {
            self.flush_one(k, flush);
        }
    }
}

/// Renumbers a block part's columns to final column numbers, folding overflowing
/// properties (T5) into one `mp_properties` JSON object per row.
fn to_chunk(rows: Rows, targets: &[Target], block_columns: &BlockColumns) -> Rows {
    let mut columns = Vec::with_capacity(rows.columns.len());
    let mut overflow: Vec<(u32, u32, SparseColumn)> = Vec::new();
    for (local, col) in rows.columns {
        match targets[local as usize] {
            Target::Column(c) => columns.push((c, col)),
            Target::Overflow(c) => overflow.push((c, local, col)),
        }
    }
    if let Some(&(c, _, _)) = overflow.first() {
        columns.push((c, overflow_column(rows.count, &overflow, block_columns)));
    }
    columns.sort_unstable_by_key(|(c, _)| *c);
    Rows {
        count: rows.count,
        row_bytes: rows.row_bytes,
        time: rows.time,
        distinct_id: rows.distinct_id,
        event_name: rows.event_name,
        columns,
        raw: rows.raw,
    }
}

fn overflow_column(
    count: u32,
    overflow: &[(u32, u32, SparseColumn)],
    block_columns: &BlockColumns,
) -> SparseColumn {
    let mut per_row: Vec<Vec<u8>> = vec![Vec::new(); count as usize];
    for (_, local, col) in overflow {
        let (name, class) = block_columns.get(*local as usize);
        for (i, r) in col.row_numbers().enumerate() {
            let out = &mut per_row[r as usize];
            out.push(if out.is_empty() { b'{' } else { b',' });
            write_json_string(out, name);
            out.push(b':');
            match &col.values {
                Values::Text(s) if class == TypeClass::String => write_json_string(out, s.get(i)),
                Values::Text(s) => out.extend_from_slice(s.get(i).as_bytes()),
                Values::Number(v) => write_f64(out, v[i]),
                Values::Boolean(v) => out.extend_from_slice(if v[i] { b"true" } else { b"false" }),
            }
        }
    }
    let mut col = SparseColumn::text();
    for (r, mut obj) in per_row.into_iter().enumerate() {
        if !obj.is_empty() {
            obj.push(b'}');
            col.push_row(r as u32);
            if let Values::Text(s) = &mut col.values {
                s.push(&obj);
            }
        }
    }
    col
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::SchemaMode;

    fn rows(n: u32, bytes: u32) -> Rows {
        Rows {
            count: n,
            row_bytes: vec![bytes; n as usize],
            time: (0..n as i64).collect(),
            ..Default::default()
        }
    }

    fn window(d: i8) -> WindowKey {
        WindowKey {
            year: 2024,
            month: 1,
            day: d,
            hour: None,
        }
    }

    fn run(parts: &[(i8, u32)], limits: BufferLimits) -> Vec<(i8, u32, u32)> {
        let mut m = Merger::new(Registry::new(SchemaMode::Monoschema), limits);
        let mut out = Vec::new();
        let mut flush = |g: RowGroup| out.push((g.window.day, g.index, g.rows));
        for &(d, n) in parts {
            let bt = BlockTable {
                parts: vec![(window(d), rows(n, 10))],
                ..Default::default()
            };
            m.add(bt, &mut flush);
        }
        m.flush_all(&mut flush);
        out
    }

    #[test]
    fn fc3_row_groups_do_not_depend_on_block_boundaries() {
        let limits = BufferLimits {
            row_group_rows: 7,
            row_group_bytes: 1000,
            total_bytes: 1 << 30,
        };
        let a = run(&[(1, 20)], limits);
        let b = run(&[(1, 3), (1, 5), (1, 1), (1, 11)], limits);
        assert_eq!(a, b);
        assert_eq!(a, [(1, 0, 7), (1, 1, 7), (1, 2, 6)]);
    }

    #[test]
    fn memory_budget_flushes_stalest_buffer_deterministically() {
        let limits = BufferLimits {
            row_group_rows: 1000,
            row_group_bytes: 1 << 20,
            total_bytes: 100,
        };
        let a = run(&[(1, 6), (2, 3), (1, 4)], limits);
        let b = run(&[(1, 2), (1, 4), (2, 1), (2, 2), (1, 1), (1, 3)], limits);
        assert_eq!(a, b);
        let total: u32 = a.iter().map(|x| x.2).sum();
        assert_eq!(total, 13);
    }
}
