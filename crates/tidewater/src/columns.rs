//! Sparse column storage shared by shape, merge and write.
//!
//! Monoschema tables have hundreds of mostly-null columns; storing them densely would
//! cost `rows × columns` cells. Here a column holds only its non-null values and their
//! row numbers; it becomes a dense Arrow array one column at a time, when encoded.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder, Float64Array, StringArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};

/// JSON type classes (T1). `null` has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypeClass {
    /// JSON string.
    String = 0,
    /// JSON number.
    Number = 1,
    /// JSON true/false.
    Boolean = 2,
    /// JSON array (stored as compact JSON text).
    List = 3,
    /// JSON object (stored as compact JSON text).
    Object = 4,
}

impl TypeClass {
    /// All classes, in index order.
    pub const ALL: [TypeClass; 5] = [
        TypeClass::String,
        TypeClass::Number,
        TypeClass::Boolean,
        TypeClass::List,
        TypeClass::Object,
    ];

    /// The name used in type columns (T2) and the mapping file (M1).
    pub fn as_str(self) -> &'static str {
        match self {
            TypeClass::String => "string",
            TypeClass::Number => "number",
            TypeClass::Boolean => "boolean",
            TypeClass::List => "list",
            TypeClass::Object => "object",
        }
    }

    /// Parses a mapping-file type name.
    pub fn parse(s: &str) -> Option<TypeClass> {
        TypeClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether values are stored as UTF-8 text.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            TypeClass::String | TypeClass::List | TypeClass::Object
        )
    }
}

/// Variable-length byte strings packed in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Strings {
    /// Concatenated bytes (always valid UTF-8 per value).
    pub(crate) data: Vec<u8>,
    /// End offset of each value in `data`.
    pub(crate) ends: Vec<u32>,
}

impl Strings {
    /// Empty, with room for `values` values of `bytes` bytes in all.
    pub fn with_capacity(values: usize, bytes: usize) -> Self {
        Strings {
            data: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(values),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends one value, which must be valid UTF-8 (see `get`).
    pub(crate) fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.close_value();
    }

    /// Ends a value whose bytes were appended to `data` directly.
    pub(crate) fn close_value(&mut self) {
        self.ends.push(self.data.len() as u32);
    }

    /// The value at `i`.
    pub fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let bytes = &self.data[start..self.ends[i] as usize];
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: values are only pushed from `&str` (parsed, validated JSON strings) or
        // from JSON text we wrote from such strings, and `ends` always falls on the end
        // of a pushed value, so every value is valid UTF-8. Re-validating cost ~3% of a
        // run (perf, 1M events).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Values `from..to` as a new `Strings`.
    pub fn slice(&self, from: usize, to: usize) -> Strings {
        let base = if from == 0 { 0 } else { self.ends[from - 1] };
        let end = if to == 0 { 0 } else { self.ends[to - 1] };
        Strings {
            data: self.data[base as usize..end as usize].to_vec(),
            ends: self.ends[from..to].iter().map(|e| e - base).collect(),
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() + self.ends.capacity() * 4
    }
}

/// The non-null values of a sparse column.
#[derive(Debug, Clone)]
pub enum Values {
    /// Strings, lists and objects (as JSON text).
    Text(Strings),
    /// Numbers as doubles (T3).
    Number(Vec<f64>),
    /// Booleans.
    Boolean(Vec<bool>),
}

impl Values {
    /// Empty values of the storage that a type class uses, with room for `values`
    /// values and `bytes` bytes of text.
    pub fn for_class(class: TypeClass, values: usize, bytes: usize) -> Values {
        match class {
            TypeClass::Number => Values::Number(Vec::with_capacity(values)),
            TypeClass::Boolean => Values::Boolean(Vec::with_capacity(values)),
            _ => Values::Text(Strings::with_capacity(values, bytes)),
        }
    }

    /// Whether the values are stored as text.
    pub fn is_text(&self) -> bool {
        matches!(self, Values::Text(_))
    }

    /// Number of values.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Values::Text(s) => s.len(),
            Values::Number(v) => v.len(),
            Values::Boolean(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values there is room for without reallocating.
    fn capacity(&self) -> usize {
        match self {
            Values::Text(s) => s.ends.capacity(),
            Values::Number(v) => v.capacity(),
            Values::Boolean(v) => v.capacity(),
        }
    }

    fn slice(&self, from: usize, to: usize) -> Values {
        match self {
            Values::Text(s) => Values::Text(s.slice(from, to)),
            Values::Number(v) => Values::Number(v[from..to].to_vec()),
            Values::Boolean(v) => Values::Boolean(v[from..to].to_vec()),
        }
    }
}

/// Which rows of its chunk hold a sparse column's values, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowNumbers {
    /// Rows 0, 1, 2, … one per value: the column has a value in every row from the
    /// chunk's first. Most columns of a multischema table are like this, and so are
    /// Mixpanel's default properties in monoschema (about half of all values); listing
    /// their rows cost four bytes a value and an allocation per column and block.
    Leading,
    /// The rows, listed.
    Listed(Vec<u32>),
}

/// A column that stores only its non-null values, with their row numbers (ascending,
/// relative to the start of the chunk that holds the column).
#[derive(Debug, Clone)]
pub struct SparseColumn {
    /// Row of each value.
    pub rows: RowNumbers,
    /// The values.
    pub values: Values,
}

impl Default for SparseColumn {
    /// An empty text column (the storage of `distinct_id`).
    fn default() -> Self {
        SparseColumn::text()
    }
}

impl SparseColumn {
    /// An empty column for a type class.
    pub fn new(class: TypeClass) -> Self {
        Self::with_capacity(class, 0, 0)
    }

    /// An empty column with room for `values` values and `bytes` bytes of text.
    pub fn with_capacity(class: TypeClass, values: usize, bytes: usize) -> Self {
        SparseColumn {
            rows: RowNumbers::Leading,
            values: Values::for_class(class, values, bytes),
        }
    }

    /// An empty text column.
    pub fn text() -> Self {
        SparseColumn {
            rows: RowNumbers::Leading,
            values: Values::Text(Strings::default()),
        }
    }

    /// A column of `values` at `rows` (ascending, one per value).
    pub fn at_rows(rows: Vec<u32>, values: Values) -> Self {
        debug_assert_eq!(rows.len(), values.len());
        let leading = rows.iter().enumerate().all(|(i, &r)| r as usize == i);
        SparseColumn {
            rows: if leading {
                RowNumbers::Leading
            } else {
                RowNumbers::Listed(rows)
            },
            values,
        }
    }

    /// Number of non-null values.
    #[inline]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the column has no non-null value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row of value `i`.
    #[inline]
    pub fn row(&self, i: usize) -> u32 {
        match &self.rows {
            RowNumbers::Leading => i as u32,
            RowNumbers::Listed(rows) => rows[i],
        }
    }

    /// The row of value `i`, or `None` past the last value.
    pub fn row_of(&self, i: usize) -> Option<u32> {
        (i < self.len()).then(|| self.row(i))
    }

    /// The rows of all values, in order.
    pub fn row_numbers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// Records that the next value pushed goes to `row`, which is after every row so
    /// far. Call it before pushing the value.
    #[inline]
    pub(crate) fn push_row(&mut self, row: u32) {
        match &mut self.rows {
            RowNumbers::Listed(rows) => rows.push(row),
            RowNumbers::Leading if row as usize == self.values.len() => {}
            RowNumbers::Leading => self.list_rows(row),
        }
    }

    /// The first gap: lists the rows so far and `row`, with room for as many values as
    /// the column was given.
    #[cold]
    fn list_rows(&mut self, row: u32) {
        let n = self.values.len() as u32;
        let mut rows = Vec::with_capacity(self.values.capacity().max(n as usize + 1));
        rows.extend(0..n);
        rows.push(row);
        self.rows = RowNumbers::Listed(rows);
    }

    /// Heap bytes held (for the memory budget).
    pub fn heap_bytes(&self) -> usize {
        let rows = match &self.rows {
            RowNumbers::Leading => 0,
            RowNumbers::Listed(rows) => rows.capacity() * 4,
        };
        rows + match &self.values {
            Values::Text(s) => s.heap_bytes(),
            Values::Number(v) => v.capacity() * 8,
            Values::Boolean(v) => v.capacity(),
        }
    }

    /// Splits off the values of rows `>= at`, renumbering them from 0.
    pub fn split_off(&mut self, at: u32) -> SparseColumn {
        let n = self.len();
        let (k, tail_rows) = match &mut self.rows {
            // Values k.. sit in rows k.., which become rows 0.. of the tail.
            RowNumbers::Leading => ((at as usize).min(n), RowNumbers::Leading),
            RowNumbers::Listed(rows) => {
                let k = rows.partition_point(|&r| r < at);
                let tail = rows[k..].iter().map(|r| r - at).collect();
                rows.truncate(k);
                (k, RowNumbers::Listed(tail))
            }
        };
        let tail = SparseColumn {
            rows: tail_rows,
            values: self.values.slice(k, n),
        };
        self.values = self.values.slice(0, k);
        tail
    }
}

/// Builds a dense Arrow array of `rows` rows from sparse parts, each placed at a row
/// offset. Parts are in row order and do not overlap.
///
/// The buffers are built whole (values scattered into place, one validity bit set per
/// value, text copied part by part) rather than through Arrow's builders, whose
/// per-value and per-gap appends were a fifth of Parquet encoding (callgrind).
pub fn densify(class_is_text: bool, parts: &[(u32, &SparseColumn)], rows: usize) -> ArrayRef {
    debug_assert!(parts
        .iter()
        .all(|(_, c)| c.values.is_text() == class_is_text));
    let valid = validity(parts, rows);
    match parts.first().map(|(_, c)| &c.values) {
        Some(Values::Number(_)) => {
            let mut values = vec![0.0f64; rows];
            for &(offset, col) in parts {
                let Values::Number(v) = &col.values else {
                    unreachable!("parts of one column share a storage kind")
                };
                let offset = offset as usize;
                match &col.rows {
                    RowNumbers::Leading => values[offset..offset + v.len()].copy_from_slice(v),
                    RowNumbers::Listed(rows) => {
                        for (&r, &x) in rows.iter().zip(v) {
                            values[offset + r as usize] = x;
                        }
                    }
                }
            }
            Arc::new(Float64Array::new(ScalarBuffer::from(values), valid))
        }
        Some(Values::Boolean(_)) => {
            let mut values = BooleanBufferBuilder::new(rows);
            values.append_n(rows, false);
            for &(offset, col) in parts {
                let Values::Boolean(v) = &col.values else {
                    unreachable!("parts of one column share a storage kind")
                };
                for (r, &x) in col.row_numbers().zip(v) {
                    if x {
                        values.set_bit(offset as usize + r as usize, true);
                    }
                }
            }
            Arc::new(BooleanArray::new(values.finish(), valid))
        }
        _ => {
            let bytes: usize = parts.iter().map(|(_, c)| text_of(c).data.len()).sum();
            let mut data = Vec::with_capacity(bytes);
            // offsets[r + 1] is where row r ends; a null row ends where the last value did.
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0i32);
            for &(offset, col) in parts {
                let text = text_of(col);
                let base = data.len() as i32;
                data.extend_from_slice(&text.data);
                match &col.rows {
                    RowNumbers::Leading => {
                        let last = *offsets.last().expect("starts with 0");
                        offsets.resize(offset as usize + 1, last);
                        offsets.extend(text.ends.iter().map(|&end| base + end as i32));
                    }
                    RowNumbers::Listed(rows) => {
                        for (&r, &end) in rows.iter().zip(&text.ends) {
                            let row = offset as usize + r as usize;
                            let last = *offsets.last().expect("starts with 0");
                            offsets.resize(row + 1, last);
                            offsets.push(base + end as i32);
                        }
                    }
                }
            }
            let last = *offsets.last().expect("starts with 0");
            offsets.resize(rows + 1, last);
            // SAFETY: offsets start at 0, never decrease and end at `data.len()`; every
            // value is valid UTF-8 (see `Strings::get`) and values are concatenated whole.
            Arc::new(unsafe {
                StringArray::new_unchecked(
                    OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
                    Buffer::from(data),
                    valid,
                )
            })
        }
    }
}

/// A string array without nulls holding the values of `parts` one after another.
pub fn concat_strings<'a>(parts: impl Iterator<Item = &'a Strings> + Clone) -> StringArray {
    let bytes: usize = parts.clone().map(|p| p.data.len()).sum();
    let values: usize = parts.clone().map(|p| p.len()).sum();
    let mut data = Vec::with_capacity(bytes);
    let mut offsets = Vec::with_capacity(values + 1);
    offsets.push(0i32);
    for part in parts {
        let base = data.len() as i32;
        data.extend_from_slice(&part.data);
        offsets.extend(part.ends.iter().map(|&end| base + end as i32));
    }
    // SAFETY: as in `densify`: ascending offsets from 0 to `data.len()` over whole,
    // valid UTF-8 values.
    unsafe {
        StringArray::new_unchecked(
            OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
            Buffer::from(data),
            None,
        )
    }
}

fn text_of(col: &SparseColumn) -> &Strings {
    match &col.values {
        Values::Text(s) => s,
        _ => unreachable!("parts of one column share a storage kind"),
    }
}

/// The validity bitmap of the rows that hold a value, or none when all do.
fn validity(parts: &[(u32, &SparseColumn)], rows: usize) -> Option<NullBuffer> {
    let present: usize = parts.iter().map(|(_, c)| c.len()).sum();
    if present == rows {
        return None;
    }
    let mut bits = BooleanBufferBuilder::new(rows);
    bits.append_n(rows, false);
    for &(offset, col) in parts {
        let offset = offset as usize;
        match &col.rows {
            RowNumbers::Leading => (offset..offset + col.len()).for_each(|r| bits.set_bit(r, true)),
            RowNumbers::Listed(rows) => {
                for &r in rows {
                    bits.set_bit(offset + r as usize, true);
                }
            }
        }
    }
    Some(NullBuffer::new(bits.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    fn text(rows: &[u32], vals: &[&str]) -> SparseColumn {
        let mut s = Strings::default();
        vals.iter().for_each(|v| s.push(v.as_bytes()));
        SparseColumn::at_rows(rows.to_vec(), Values::Text(s))
    }

    #[test]
    fn densify_places_values_at_offsets() {
        let a = text(&[1, 3], &["x", "y"]);
        let b = text(&[0], &["z"]);
        let arr = densify(true, &[(0, &a), (5, &b)], 7);
        let arr = arr.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = arr.iter().collect();
        assert_eq!(
            got,
            [None, Some("x"), None, Some("y"), None, Some("z"), None]
        );
        let n = SparseColumn::at_rows(vec![2], Values::Number(vec![1.5]));
        let arr = densify(false, &[(0, &n)], 3);
        let arr = arr.as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(arr.null_count(), 2);
        assert_eq!(arr.value(2), 1.5);
    }

    #[test]
    fn concat_strings_joins_parts() {
        let (a, b) = (text(&[0, 1], &["ab", ""]), text(&[0], &["é"]));
        let arr = concat_strings([text_of(&a), text_of(&b)].into_iter());
        assert_eq!(arr.null_count(), 0);
        assert_eq!(
            arr.iter().collect::<Vec<_>>(),
            [Some("ab"), Some(""), Some("é")]
        );
    }

    #[test]
    fn rows_are_listed_from_the_first_gap() {
        let mut col = SparseColumn::new(TypeClass::Number);
        let push = |col: &mut SparseColumn, row: u32| {
            col.push_row(row);
            if let Values::Number(v) = &mut col.values {
                v.push(row as f64);
            }
        };
        for row in 0..3 {
            push(&mut col, row);
        }
        assert_eq!(col.rows, RowNumbers::Leading);
        push(&mut col, 5);
        push(&mut col, 6);
        assert_eq!(col.rows, RowNumbers::Listed(vec![0, 1, 2, 5, 6]));
        assert_eq!(
            (col.len(), col.row(3), col.row_of(4), col.row_of(5)),
            (5, 5, Some(6), None)
        );
        // A column whose first value is not in the first row lists it at once.
        let mut late = SparseColumn::new(TypeClass::Number);
        push(&mut late, 2);
        assert_eq!(late.rows, RowNumbers::Listed(vec![2]));
    }

    #[test]
    fn split_off_leading_rows() {
        let mut a = text(&[0, 1, 2, 3], &["a", "b", "c", "d"]);
        assert_eq!(a.rows, RowNumbers::Leading);
        let tail = a.split_off(3);
        assert_eq!((a.rows.clone(), a.len()), (RowNumbers::Leading, 3));
        assert_eq!((tail.rows.clone(), tail.len()), (RowNumbers::Leading, 1));
        assert_eq!((text_of(&a).get(2), text_of(&tail).get(0)), ("c", "d"));
        // Past the last value, the tail is empty.
        let mut b = text(&[0, 1], &["a", "b"]);
        assert!(b.split_off(5).is_empty());
        assert_eq!(b.len(), 2);
        let arr = densify(true, &[(0, &a), (4, &tail)], 6);
        let arr = arr.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<Option<&str>> = arr.iter().collect();
        assert_eq!(
            got,
            [Some("a"), Some("b"), Some("c"), None, Some("d"), None]
        );
    }

    #[test]
    fn split_off_renumbers() {
        let mut a = text(&[0, 2, 5, 9], &["a", "b", "c", "d"]);
        let tail = a.split_off(5);
        assert_eq!(a.row_numbers().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(tail.row_numbers().collect::<Vec<_>>(), [0, 4]);
        match (&a.values, &tail.values) {
            (Values::Text(x), Values::Text(y)) => {
                assert_eq!((x.get(0), x.get(1)), ("a", "b"));
                assert_eq!((y.get(0), y.get(1)), ("c", "d"));
            }
            _ => panic!(),
        }
    }
}
