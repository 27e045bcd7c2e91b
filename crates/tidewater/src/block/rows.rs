//! Rows of one table in one window, as sparse columns: what shaping produces and merge
//! and the encoders consume.

use crate::columns::{SparseColumn, Strings};

/// Rows of one table in one window: from one block with block-local column numbers
/// (shaping), then with final column numbers (merge, encode).
#[derive(Debug, Default)]
pub struct Rows {
    /// Number of rows.
    pub count: u32,
    /// Input bytes of each row's line (memory accounting and raw output).
    pub row_bytes: Vec<u32>,
    /// `time` in ms, one per row.
    pub time: Vec<i64>,
    /// `distinct_id` as text (§4.3).
    pub distinct_id: SparseColumn,
    /// Original event names, one per row (monoschema only).
    pub event_name: Strings,
    /// Property columns: (column number, values), ascending once merged.
    pub columns: Vec<(u32, SparseColumn)>,
    /// The kept lines themselves (raw mode only).
    pub raw: Strings,
}

impl Rows {
    /// Splits off rows `at..`, renumbered from 0.
    pub(crate) fn split_off(&mut self, at: u32) -> Rows {
        let a = at as usize;
        let tail = Rows {
            count: self.count - at,
            row_bytes: self.row_bytes.split_off(a),
            time: self.time.split_off(a),
            distinct_id: self.distinct_id.split_off(at),
            event_name: if self.event_name.is_empty() {
                Strings::default()
            } else {
                self.event_name.slice(a, self.event_name.len())
            },
            columns: self
                .columns
                .iter_mut()
                .map(|(c, col)| (*c, col.split_off(at)))
                .filter(|(_, col)| !col.is_empty())
                .collect(),
            raw: if self.raw.is_empty() {
                Strings::default()
            } else {
                self.raw.slice(a, self.raw.len())
            },
        };
        self.count = at;
        if !self.event_name.is_empty() {
            self.event_name = self.event_name.slice(0, a);
        }
        if !self.raw.is_empty() {
            self.raw = self.raw.slice(0, a);
        }
        self.columns.retain(|(_, col)| !col.is_empty());
        tail
    }
}
