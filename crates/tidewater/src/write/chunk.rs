//! Parquet column chunks encoded straight from sparse columns.
//!
//! Going through Arrow arrays and parquet's generic column writer cost a third of a
//! monoschema run (callgrind): a wide table is mostly null, and that path builds,
//! walks and run-length encodes one definition level per row and column, then
//! copies every value twice more. Here the levels come from a validity bitmap whose
//! bytes already are Parquet's bit-packed form, values are encoded once into the page,
//! and the dictionary is built over the chunk's own values. Pages are plain v1 data
//! pages (PLAIN or RLE_DICTIONARY values, RLE/bit-packed definition levels), as any
//! Parquet reader expects, of at most [`PAGE_VALUES`] values each, and every chunk
//! has its page index (offset index, and column index of each page's min/max) so that
//! engines can skip pages.

use std::hash::BuildHasher;
use std::io::Write;
use std::ops::Range;

use bytes::Bytes;
use parquet::basic::{Compression as Codec, Encoding, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::page_index::offset_index::OffsetIndexMetaData;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use crate::columns::{RowNumbers, SparseColumn, Strings, Values};

/// Values per data page before a new page starts (uncompressed bytes), as parquet's
/// default `data_page_size_limit`.
const PAGE_BYTES: usize = 1 << 20;

/// Values per data page at most, as parquet's default `data_page_row_count_limit`: a
/// chunk of 122,880 numbers otherwise made one page, and a page index of one page per
/// chunk tells a reader nothing the chunk's statistics do not.
const PAGE_VALUES: usize = 20_000;

/// A dictionary whose plain size passes this is dropped for plain values, as parquet's
/// default `dictionary_page_size_limit`.
const DICTIONARY_BYTES: usize = 1 << 20;

/// Statistics keep at most this many bytes of a text min or max, as parquet's default
/// `statistics_truncate_length`.
const STATISTICS_PREFIX: usize = 64;

/// The present (non-null) values of one column of a row group, in row order.
pub enum ColumnValues<'a> {
    /// `time`, one per row.
    Times(Vec<&'a [i64]>),
    /// Text values, from one or more parts.
    Text(Vec<&'a Strings>),
    /// Numbers.
    Numbers(Vec<&'a [f64]>),
    /// Booleans.
    Booleans(Vec<&'a [bool]>),
}

/// One column of a row group: its values and which rows hold them.
pub struct ColumnInput<'a> {
    /// Rows in the row group.
    pub rows: usize,
    /// Row number (in the row group) of each value; `None` when every row has one.
    pub value_rows: Option<Vec<u32>>,
    /// The values.
    pub values: ColumnValues<'a>,
}

impl<'a> ColumnInput<'a> {
    /// A nullable column from sparse parts placed at row offsets.
    pub fn sparse(parts: &[(u32, &'a SparseColumn)], rows: usize) -> Self {
        let present: usize = parts.iter().map(|(_, c)| c.len()).sum();
        let value_rows = (present != rows).then(|| {
            let mut at = Vec::with_capacity(present);
            for &(offset, col) in parts {
                match &col.rows {
                    RowNumbers::Leading => at.extend(offset..offset + col.len() as u32),
                    RowNumbers::Listed(rows) => at.extend(rows.iter().map(|r| offset + r)),
                }
            }
            at
        });
        let values = match parts.first().map(|(_, c)| &c.values) {
            Some(Values::Number(_)) => ColumnValues::Numbers(storage(parts, |v| match v {
                Values::Number(v) => Some(&v[..]),
                _ => None,
            })),
            Some(Values::Boolean(_)) => ColumnValues::Booleans(storage(parts, |v| match v {
                Values::Boolean(v) => Some(&v[..]),
                _ => None,
            })),
            _ => ColumnValues::Text(storage(parts, |v| match v {
                Values::Text(s) => Some(s),
                _ => None,
            })),
        };
        ColumnInput {
            rows,
            value_rows,
            values,
        }
    }
}

/// The storage of each part, all of the kind `pick` accepts.
fn storage<'a, T: ?Sized>(
    parts: &[(u32, &'a SparseColumn)],
    pick: impl Fn(&'a Values) -> Option<&'a T>,
) -> Vec<&'a T> {
    parts
        .iter()
        .map(|(_, c)| pick(&c.values).expect("parts of one column share a storage kind"))
        .collect()
}

/// An encoded column chunk, ready for `SerializedRowGroupWriter::append_column`.
pub struct EncodedChunk {
    /// The chunk's pages.
    pub bytes: Bytes,
    /// Its metadata, with offsets relative to `bytes`.
    pub close: ColumnCloseResult,
}

/// Encodes one column chunk. `dictionary` asks for dictionary encoding of text and
/// number values (kept only while the dictionary stays under 1 MiB).
pub fn encode_chunk(
    descr: ColumnDescPtr,
    input: &ColumnInput<'_>,
    codec: Codec,
    dictionary: bool,
) -> Result<EncodedChunk> {
    let nullable = descr.max_def_level() > 0;
    if !nullable && input.value_rows.is_some() {
        return Err(ParquetError::General(format!(
            "column {} is required but has null rows",
            descr.name()
        )));
    }
    let mut compressor = Compressor::new(codec)?;
    let mut sink = TrackedWrite::new(Vec::new());
    let mut pages = SerializedPageWriter::new(&mut sink);
    let mut uncompressed_total = 0usize;
    let mut encodings = vec![Encoding::PLAIN];
    if nullable {
        encodings.push(Encoding::RLE);
    }

    let value_count = input.value_rows.as_ref().map_or(input.rows, Vec::len);
    let dict = dictionary
        .then(|| dictionary_of(input, value_count))
        .flatten();

    let mut data_page_offset = 0u64;
    if let Some(d) = &dict {
        let compressed = compressor.compress(&d.page)?;
        let spec = pages.write_page(CompressedPage::new(
            Page::DictionaryPage {
                buf: compressed,
                num_values: d.len,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            },
            d.page.len(),
        ))?;
        uncompressed_total += spec.uncompressed_size;
        data_page_offset = spec.bytes_written;
        encodings.push(Encoding::RLE_DICTIONARY);
    }

    let written = write_data_pages(
        &mut pages,
        &mut compressor,
        input,
        dict.as_ref(),
        value_count,
        nullable,
        descr.physical_type(),
    )?;
    uncompressed_total += written.uncompressed;
    let bytes = sink.into_inner()?;
    let total = bytes.len();

    let metadata = ColumnChunkMetaData::builder(descr)
        .set_encodings(encodings)
        .set_compression(codec)
        .set_num_values(input.rows as i64)
        .set_total_compressed_size(total as i64)
        .set_total_uncompressed_size(uncompressed_total as i64)
        .set_data_page_offset(data_page_offset as i64)
        .set_dictionary_page_offset(dict.as_ref().map(|_| 0))
        .set_statistics(
            written
                .bounds
                .statistics(Some((input.rows - value_count) as u64)),
        )
        .build()?;
    Ok(EncodedChunk {
        bytes: Bytes::from(bytes),
        close: ColumnCloseResult {
            bytes_written: total as u64,
            rows_written: input.rows as u64,
            metadata,
            bloom_filter: None,
            column_index: written.column_index,
            offset_index: Some(written.offset_index),
        },
    })
}

/// The chunk's dictionary page and indices, when it stays small.
fn dictionary_of(input: &ColumnInput<'_>, value_count: usize) -> Option<EncodedDictionary> {
    match &input.values {
        ColumnValues::Text(parts) => {
            let values = parts.iter().flat_map(|p| text_values(p));
            Dictionary::build(values, value_count, |v| 4 + v.len()).map(|d| {
                d.encode(|v, out| {
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                })
            })
        }
        ColumnValues::Numbers(parts) => {
            let bits = parts.iter().flat_map(|p| p.iter().map(|x| x.to_bits()));
            Dictionary::build(bits, value_count, |_| 8)
                .map(|d| d.encode(|v, out| out.extend_from_slice(&v.to_le_bytes())))
        }
        ColumnValues::Booleans(_) | ColumnValues::Times(_) => None,
    }
}

/// What writing a chunk's data pages gave.
struct DataPages<'v> {
    /// Their size before compression.
    uncompressed: usize,
    /// The bounds of all their values: the chunk's statistics.
    bounds: Bounds<'v>,
    /// Min, max and nulls of each page; `None` when a page with values has no min or
    /// max (all NaN, or text whose max has no upper bound at the length kept).
    column_index: Option<ColumnIndexMetaData>,
    /// Where each page is and its first row.
    offset_index: OffsetIndexMetaData,
}

/// Writes the data pages of a chunk, each ending after the value that brings it to
/// PAGE_BYTES or at PAGE_VALUES values, with their page index.
fn write_data_pages<'v>(
    pages: &mut impl PageWriter,
    compressor: &mut Compressor,
    input: &ColumnInput<'v>,
    dict: Option<&EncodedDictionary>,
    value_count: usize,
    nullable: bool,
    physical: PhysicalType,
) -> Result<DataPages<'v>> {
    let mut uncompressed_total = 0usize;
    let mut bounds = Bounds::none(&input.values);
    let mut column_index = ColumnIndexBuilder::new(physical);
    let mut offset_index = OffsetIndexBuilder::new();
    let mut cursor = ValueCursor::new(&input.values);
    let (mut first_value, mut first_row) = (0usize, 0usize);
    // The worker's page buffers from its previous chunk: grown from empty for each chunk
    // they were reallocated about ten times each (callgrind).
    let (mut values, mut levels, mut body) = PAGE_BUFFERS.take();
    loop {
        values.clear();
        let end_value = match dict {
            Some(d) => {
                let end = (first_value + (PAGE_BYTES / 4).min(PAGE_VALUES)).min(value_count);
                encode_indices(&d.indices[first_value..end], d.bit_width, &mut values);
                end
            }
            None => cursor.encode_until(
                &mut values,
                PAGE_BYTES,
                value_count.min(first_value + PAGE_VALUES),
            ),
        };
        let end_row = match &input.value_rows {
            None => end_value,
            Some(_) if end_value == value_count => input.rows,
            Some(at) => at[end_value] as usize,
        };
        body.clear();
        if nullable {
            levels.clear();
            encode_levels(input, first_row, end_row, &mut levels);
            body.extend_from_slice(&(levels.len() as u32).to_le_bytes());
            body.extend_from_slice(&levels);
        }
        body.extend_from_slice(&values);
        let compressed = compressor.compress(&body)?;
        let spec = pages.write_page(CompressedPage::new(
            Page::DataPage {
                buf: compressed,
                num_values: (end_row - first_row) as u32,
                encoding: if dict.is_some() {
                    Encoding::RLE_DICTIONARY
                } else {
                    Encoding::PLAIN
                },
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            },
            body.len(),
        ))?;
        uncompressed_total += spec.uncompressed_size;
        offset_index.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
        offset_index.append_row_count((end_row - first_row) as i64);
        let page = Bounds::of(&input.values, first_value..end_value);
        let nulls = (end_row - first_row) - (end_value - first_value);
        append_page(&mut column_index, page, end_value - first_value, nulls);
        bounds = bounds.merge(page);
        (first_value, first_row) = (end_value, end_row);
        if first_row >= input.rows {
            break;
        }
    }
    PAGE_BUFFERS.set((values, levels, body));
    Ok(DataPages {
        uncompressed: uncompressed_total,
        bounds,
        column_index: if column_index.valid() {
            Some(column_index.build()?)
        } else {
            None
        },
        offset_index: offset_index.build(),
    })
}

/// Adds the entry of a page of `values` values (and `nulls` nulls) within `page` to the
/// column index.
fn append_page(index: &mut ColumnIndexBuilder, page: Bounds<'_>, values: usize, nulls: usize) {
    if values == 0 {
        index.append(true, Vec::new(), Vec::new(), nulls as i64, page.nan_count());
        return;
    }
    let statistics = page.statistics(None);
    match (statistics.min_bytes_opt(), statistics.max_bytes_opt()) {
        (Some(min), Some(max)) => index.append(
            false,
            min.to_vec(),
            max.to_vec(),
            nulls as i64,
            page.nan_count(),
        ),
        _ => index.to_invalid(),
    }
}

/// The parts (by number) and the index ranges within them that hold the values `range`
/// of a column split into parts of lengths `lens`.
fn part_ranges(
    lens: impl Iterator<Item = usize>,
    range: Range<usize>,
) -> Vec<(usize, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (part, len) in lens.enumerate() {
        let end = start + len;
        if end > range.start && start < range.end {
            out.push((
                part,
                range.start.max(start) - start..range.end.min(end) - start,
            ));
        }
        if end >= range.end {
            break;
        }
        start = end;
    }
    out
}

/// The values `range` of a column split into slices.
fn in_range<'a, T>(parts: &[&'a [T]], range: Range<usize>) -> Vec<&'a [T]> {
    part_ranges(parts.iter().map(|p| p.len()), range)
        .into_iter()
        .map(|(part, r)| &parts[part][r])
        .collect()
}

/// The bytes of each value of a `Strings`.
fn text_values(s: &Strings) -> impl Iterator<Item = &[u8]> + '_ {
    (0..s.len()).map(|i| s.get(i).as_bytes())
}

/// Walks the values of a column across its parts, plain-encoding them into pages.
struct ValueCursor<'v, 'a> {
    values: &'v ColumnValues<'a>,
    part: usize,
    index: usize,
    done: usize,
}

impl<'v, 'a> ValueCursor<'v, 'a> {
    fn new(values: &'v ColumnValues<'a>) -> Self {
        ValueCursor {
            values,
            part: 0,
            index: 0,
            done: 0,
        }
    }

    /// Appends PLAIN values until `budget` bytes are reached or all `total` are done;
    /// returns the number of values done so far.
    fn encode_until(&mut self, out: &mut Vec<u8>, budget: usize, total: usize) -> usize {
        let start = out.len();
        match self.values {
            ColumnValues::Text(parts) => {
                while self.done < total && out.len() - start < budget {
                    let (part, i) = self.next(|p| parts[p].len());
                    let v = parts[part].get(i).as_bytes();
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                    self.index += 1;
                    self.done += 1;
                }
            }
            ColumnValues::Numbers(parts) => self.fixed(parts, out, budget, total, |x, out| {
                out.extend_from_slice(&x.to_le_bytes())
            }),
            ColumnValues::Times(parts) => self.fixed(parts, out, budget, total, |x, out| {
                out.extend_from_slice(&x.to_le_bytes())
            }),
            ColumnValues::Booleans(parts) => {
                // PLAIN booleans are bit-packed, least significant bit first.
                let mut bits = 0u8;
                let mut n = 0;
                while self.done < total && (out.len() - start) < budget {
                    let (part, i) = self.next(|p| parts[p].len());
                    bits |= u8::from(parts[part][i]) << n;
                    n += 1;
                    if n == 8 {
                        out.push(bits);
                        bits = 0;
                        n = 0;
                    }
                    self.index += 1;
                    self.done += 1;
                }
                if n > 0 {
                    out.push(bits);
                }
            }
        }
        self.done
    }

    /// Steps past used-up parts to the next value, which must exist: (part, index).
    fn next(&mut self, part_len: impl Fn(usize) -> usize) -> (usize, usize) {
        while self.index == part_len(self.part) {
            self.part += 1;
            self.index = 0;
        }
        (self.part, self.index)
    }

    fn fixed<T: Copy>(
        &mut self,
        parts: &[&[T]],
        out: &mut Vec<u8>,
        budget: usize,
        total: usize,
        put: impl Fn(T, &mut Vec<u8>),
    ) {
        let start = out.len();
        while self.done < total && out.len() - start < budget {
            let (part, _) = self.next(|p| parts[p].len());
            let p = parts[part];
            // A run of this part within the budget at once.
            let room = (budget - (out.len() - start))
                .div_ceil(size_of::<T>())
                .max(1);
            let end = (self.index + room)
                .min(p.len())
                .min(self.index + (total - self.done));
            for &x in &p[self.index..end] {
                put(x, out);
            }
            self.done += end - self.index;
            self.index = end;
        }
    }
}

/// How many of a chunk's first values decide whether it gets a dictionary.
const DICTIONARY_SAMPLE: usize = 512;

/// The smallest sample that decides: a chunk of at most [`DICTIONARY_SAMPLE`] values is
/// decided on its first this many. Multischema's small chunks of `$insert_id`, URLs and
/// long texts otherwise built a whole dictionary only to drop it (0.7% of a
/// multischema run's instructions), and those dictionaries did not make files smaller.
const DICTIONARY_MIN_SAMPLE: usize = 64;

/// Whether a sample of at least [`DICTIONARY_MIN_SAMPLE`] values is at least 90%
/// distinct: `$insert_id`, `distinct_id`, URLs and the like, which a dictionary only
/// slows down (building one until it overflowed was a quarter of encoding time).
/// Decided from the chunk's own values, so the output is the same at any thread count.
fn mostly_distinct(distinct: usize, sampled: usize) -> bool {
    sampled >= DICTIONARY_MIN_SAMPLE && distinct * 10 >= sampled * 9
}

/// A chunk's distinct values, in first-seen order, and each value's index.
struct Dictionary<V> {
    values: Vec<V>,
    indices: Vec<u32>,
}

impl<V: Copy + Eq + std::hash::Hash> Dictionary<V> {
    /// The dictionary of `count` values, or `None` when its first values are mostly
    /// distinct or its PLAIN size (`plain_size` per entry) passes `DICTIONARY_BYTES`.
    fn build(
        values: impl Iterator<Item = V>,
        count: usize,
        plain_size: impl Fn(V) -> usize,
    ) -> Option<Self> {
        let hash = |v: &V| rustc_hash::FxBuildHasher.hash_one(v);
        // Sized for the sample up front: growing from empty rehashed the table several
        // times per chunk, a fifth of building in multischema's many small chunks.
        let room = count.min(2 * DICTIONARY_SAMPLE);
        let decide_at = if count <= DICTIONARY_SAMPLE {
            DICTIONARY_MIN_SAMPLE
        } else {
            DICTIONARY_SAMPLE
        };
        let mut table: hashbrown::HashTable<u32> = hashbrown::HashTable::with_capacity(room);
        let mut distinct: Vec<V> = Vec::with_capacity(room);
        let mut indices = Vec::with_capacity(count);
        let mut plain_bytes = 0usize;
        for (n, v) in values.enumerate() {
            if n == decide_at && mostly_distinct(distinct.len(), n) {
                return None;
            }
            let h = hash(&v);
            let index = match table.find(h, |&i| distinct[i as usize] == v) {
                Some(&i) => i,
                None => {
                    plain_bytes += plain_size(v);
                    if plain_bytes > DICTIONARY_BYTES {
                        return None;
                    }
                    let i = distinct.len() as u32;
                    distinct.push(v);
                    table.insert_unique(h, i, |&j| hash(&distinct[j as usize]));
                    i
                }
            };
            indices.push(index);
        }
        if count <= DICTIONARY_SAMPLE && mostly_distinct(distinct.len(), count) {
            return None;
        }
        Some(Dictionary {
            values: distinct,
            indices,
        })
    }

    /// The dictionary page (entries PLAIN-encoded by `put`) and the indices.
    fn encode(self, put: impl Fn(V, &mut Vec<u8>)) -> EncodedDictionary {
        let mut page = Vec::new();
        for &v in &self.values {
            put(v, &mut page);
        }
        let max = self.values.len().saturating_sub(1) as u32;
        EncodedDictionary {
            page,
            len: self.values.len() as u32,
            indices: self.indices,
            bit_width: (32 - max.leading_zeros()).max(1) as u8,
        }
    }
}

/// A dictionary ready to write.
struct EncodedDictionary {
    page: Vec<u8>,
    len: u32,
    indices: Vec<u32>,
    bit_width: u8,
}

/// RLE_DICTIONARY page values: the bit width, then the indices as bit-packed runs.
fn encode_indices(indices: &[u32], bit_width: u8, out: &mut Vec<u8>) {
    out.push(bit_width);
    for run in indices.chunks(MAX_GROUPS_PER_RUN * 8) {
        let groups = run.len().div_ceil(8);
        put_varint(out, ((groups as u64) << 1) | 1);
        let mut acc = 0u64;
        let mut bits = 0u32;
        let width = u32::from(bit_width);
        for i in 0..groups * 8 {
            acc |= u64::from(run.get(i).copied().unwrap_or(0)) << bits;
            bits += width;
            while bits >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        debug_assert_eq!(bits, 0, "eight values of any width end on a byte");
    }
}

/// Bit-packed runs hold at most this many groups of eight, which every reader accepts.
const MAX_GROUPS_PER_RUN: usize = 63;

/// Definition levels (0 null, 1 present) of rows `from..to` as RLE/bit-packed hybrid:
/// the validity bits themselves as bit-packed runs, with long stretches of only nulls
/// or only values as RLE runs.
fn encode_levels(input: &ColumnInput<'_>, from: usize, to: usize, out: &mut Vec<u8>) {
    let n = to - from;
    let mut bits = vec![0u8; n.div_ceil(8)];
    match &input.value_rows {
        None => bits.iter_mut().for_each(|b| *b = 0xff),
        Some(at) => {
            let lo = at.partition_point(|&r| (r as usize) < from);
            let hi = at.partition_point(|&r| (r as usize) < to);
            for &r in &at[lo..hi] {
                let i = r as usize - from;
                bits[i / 8] |= 1 << (i % 8);
            }
        }
    }
    if !n.is_multiple_of(8) {
        // Only whole groups may be run-length encoded; the last, partial group is
        // bit-packed with zero padding, which readers ignore past `num_values`.
        let last = bits.len() - 1;
        bits[last] &= (1u8 << (n % 8)) - 1;
    }
    let full = n / 8;
    let mut packed_from = 0;
    let mut i = 0;
    while i < full {
        let b = bits[i];
        if b == 0 || b == 0xff {
            let mut j = i + 1;
            while j < full && bits[j] == b {
                j += 1;
            }
            if j - i >= 8 {
                put_packed(&bits[packed_from..i], out);
                put_varint(out, (((j - i) * 8) as u64) << 1);
                out.push(b & 1);
                packed_from = j;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    put_packed(&bits[packed_from..], out);
}

/// Bit-packed runs (bit width 1) of whole bytes of levels.
fn put_packed(bytes: &[u8], out: &mut Vec<u8>) {
    for run in bytes.chunks(MAX_GROUPS_PER_RUN) {
        put_varint(out, ((run.len() as u64) << 1) | 1);
        out.extend_from_slice(run);
    }
}

/// An unsigned LEB128 varint, as Parquet's RLE headers and thrift's compact protocol use.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

thread_local! {
    /// Each worker's buffers for a data page's values, definition levels and body.
    static PAGE_BUFFERS: std::cell::Cell<(Vec<u8>, Vec<u8>, Vec<u8>)> =
        const { std::cell::Cell::new((Vec::new(), Vec::new(), Vec::new())) };
    /// Each worker's snappy encoder and output buffer. A fresh encoder allocates and
    /// zeroes its hash table, and `compress_vec` a zeroed worst-case output, for every
    /// chunk: a twentieth of a multischema run, whose chunks are small and many.
    static SNAPPY: std::cell::RefCell<(snap::raw::Encoder, Vec<u8>)> =
        std::cell::RefCell::new((snap::raw::Encoder::new(), Vec::new()));
}

/// Page compression with the file's codec.
enum Compressor {
    None,
    Snappy,
    Gzip(u32),
    Lz4,
    Zstd(Box<zstd::bulk::Compressor<'static>>),
}

impl Compressor {
    fn new(codec: Codec) -> Result<Self> {
        Ok(match codec {
            Codec::UNCOMPRESSED => Compressor::None,
            Codec::SNAPPY => Compressor::Snappy,
            Codec::GZIP(level) => Compressor::Gzip(level.compression_level()),
            Codec::LZ4_RAW => Compressor::Lz4,
            Codec::ZSTD(level) => Compressor::Zstd(Box::new(
                zstd::bulk::Compressor::new(level.compression_level())
                    .map_err(|e| ParquetError::External(Box::new(e)))?,
            )),
            other => return Err(ParquetError::NYI(format!("page compression with {other}"))),
        })
    }

    fn compress(&mut self, data: &[u8]) -> Result<Bytes> {
        let external = |e: std::io::Error| ParquetError::External(Box::new(e));
        Ok(Bytes::from(match self {
            Compressor::None => data.to_vec(),
            Compressor::Snappy => SNAPPY.with_borrow_mut(|(encoder, out)| {
                let need = snap::raw::max_compress_len(data.len());
                if out.len() < need {
                    out.resize(need, 0);
                }
                let n = encoder
                    .compress(data, out)
                    .map_err(|e| ParquetError::External(Box::new(e)))?;
                Ok::<_, ParquetError>(out[..n].to_vec())
            })?,
            Compressor::Gzip(level) => {
                let mut e = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2),
                    flate2::Compression::new(*level),
                );
                e.write_all(data).map_err(external)?;
                e.finish().map_err(external)?
            }
            Compressor::Lz4 => lz4_flex::block::compress(data),
            Compressor::Zstd(c) => c.compress(data).map_err(external)?,
        }))
    }
}

/// The min and max of some of a column's values, kept as the values themselves (text
/// untruncated, numbers before Parquet's zero rule), so that pages' bounds fold into
/// their chunk's: each value is compared once, for its page's column-index entry, and
/// the chunk's statistics come from its pages' bounds.
#[derive(Debug, Clone, Copy)]
enum Bounds<'v> {
    /// By bytes.
    Text(Option<(&'v [u8], &'v [u8])>),
    /// NaN is left out of min and max, and counted.
    Numbers {
        span: Option<(f64, f64)>,
        nans: u64,
    },
    /// Whether every value is true (the min), whether any is (the max).
    Booleans(Option<(bool, bool)>),
    Times(Option<(i64, i64)>),
}

impl<'v> Bounds<'v> {
    /// The bounds of none of a column's values.
    fn none(values: &ColumnValues<'_>) -> Self {
        match values {
            ColumnValues::Text(_) => Bounds::Text(None),
            ColumnValues::Numbers(_) => Bounds::Numbers {
                span: None,
                nans: 0,
            },
            ColumnValues::Booleans(_) => Bounds::Booleans(None),
            ColumnValues::Times(_) => Bounds::Times(None),
        }
    }

    /// The bounds of a column's values `range`.
    fn of(values: &ColumnValues<'v>, range: Range<usize>) -> Self {
        match values {
            ColumnValues::Text(parts) => Bounds::text(
                part_ranges(parts.iter().map(|p| p.len()), range)
                    .into_iter()
                    .flat_map(|(part, r)| {
                        let strings: &'v Strings = parts[part];
                        r.map(move |i| strings.get(i).as_bytes())
                    }),
            ),
            ColumnValues::Numbers(parts) => {
                let (mut min, mut max, mut nans) = (None, None, 0);
                for &x in in_range(parts, range).iter().flat_map(|p| p.iter()) {
                    if x.is_nan() {
                        nans += 1;
                        continue;
                    }
                    if min.is_none_or(|m| x < m) {
                        min = Some(x);
                    }
                    if max.is_none_or(|m| x > m) {
                        max = Some(x);
                    }
                }
                Bounds::Numbers {
                    span: min.zip(max),
                    nans,
                }
            }
            ColumnValues::Booleans(parts) => {
                let parts = in_range(parts, range);
                let any = parts.iter().any(|p| !p.is_empty());
                let all_true = parts.iter().all(|p| p.iter().all(|&b| b));
                let any_true = parts.iter().any(|p| p.iter().any(|&b| b));
                Bounds::Booleans(any.then_some((all_true, any_true)))
            }
            ColumnValues::Times(parts) => {
                let values = in_range(parts, range);
                let values = values.iter().flat_map(|p| p.iter().copied());
                Bounds::Times(values.clone().min().zip(values.max()))
            }
        }
    }

    /// The bounds of text values, by bytes.
    fn text(values: impl Iterator<Item = &'v [u8]>) -> Self {
        // Each value is compared by its first eight bytes as a number first, and as bytes
        // only when those are equal: two byte comparisons per value were 1.6% of a
        // monoschema run's instructions.
        let mut min: Option<(u64, &[u8])> = None;
        let mut max: Option<(u64, &[u8])> = None;
        for v in values {
            let key = order_key(v);
            if min.is_none_or(|(k, m)| key < k || (key == k && v < m)) {
                min = Some((key, v));
            }
            if max.is_none_or(|(k, m)| key > k || (key == k && v > m)) {
                max = Some((key, v));
            }
        }
        Bounds::Text(min.map(|(_, m)| m).zip(max.map(|(_, m)| m)))
    }

    /// The bounds of these values and `later` ones together (of the same column).
    fn merge(self, later: Self) -> Self {
        match (self, later) {
            (Bounds::Text(a), Bounds::Text(b)) => Bounds::Text(span(a, b)),
            (
                Bounds::Numbers { span: a, nans },
                Bounds::Numbers {
                    span: b,
                    nans: more,
                },
            ) => Bounds::Numbers {
                span: span(a, b),
                nans: nans + more,
            },
            (Bounds::Booleans(a), Bounds::Booleans(b)) => Bounds::Booleans(match (a, b) {
                (Some((all, any)), Some((all_later, any_later))) => {
                    Some((all && all_later, any || any_later))
                }
                (a, b) => a.or(b),
            }),
            (Bounds::Times(a), Bounds::Times(b)) => Bounds::Times(span(a, b)),
            _ => unreachable!("the bounds of one column are of one kind"),
        }
    }

    /// NaN values among them (numbers only, as the column index records).
    fn nan_count(self) -> Option<i64> {
        match self {
            Bounds::Numbers { nans, .. } => Some(nans as i64),
            _ => None,
        }
    }

    /// Parquet statistics: text min and max truncated to `STATISTICS_PREFIX` bytes (the
    /// min to a prefix, still a lower bound; the max to a prefix whose last character is
    /// incremented, an upper bound, or left out when no such character exists); a zero
    /// number min written as -0.0 and a zero max as +0.0.
    fn statistics(self, nulls: Option<u64>) -> Statistics {
        match self {
            Bounds::Text(bounds) => {
                let (min, max) = (bounds.map(|b| b.0), bounds.map(|b| b.1));
                let (min, min_exact) = match min {
                    Some(m) if m.len() > STATISTICS_PREFIX => {
                        (Some(utf8_prefix(m).to_vec()), false)
                    }
                    Some(m) => (Some(m.to_vec()), true),
                    None => (None, false),
                };
                let (max, max_exact) = match max {
                    Some(m) if m.len() > STATISTICS_PREFIX => {
                        (increment_utf8(utf8_prefix(m)), false)
                    }
                    Some(m) => (Some(m.to_vec()), true),
                    None => (None, false),
                };
                Statistics::ByteArray(
                    ValueStatistics::new(
                        min.map(ByteArray::from),
                        max.map(ByteArray::from),
                        None,
                        nulls,
                        false,
                    )
                    .with_min_is_exact(min_exact)
                    .with_max_is_exact(max_exact),
                )
            }
            Bounds::Numbers { span, .. } => {
                let min = span.map(|s| if s.0 == 0.0 { -0.0 } else { s.0 });
                let max = span.map(|s| if s.1 == 0.0 { 0.0 } else { s.1 });
                Statistics::double(min, max, None, nulls, false)
            }
            Bounds::Booleans(b) => {
                Statistics::boolean(b.map(|b| b.0), b.map(|b| b.1), None, nulls, false)
            }
            Bounds::Times(t) => {
                Statistics::int64(t.map(|t| t.0), t.map(|t| t.1), None, nulls, false)
            }
        }
    }
}

/// The smaller of the mins and the larger of the maxes; the earlier bound on a tie.
fn span<T: PartialOrd + Copy>(a: Option<(T, T)>, b: Option<(T, T)>) -> Option<(T, T)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((
            if b.0 < a.0 { b.0 } else { a.0 },
            if b.1 > a.1 { b.1 } else { a.1 },
        )),
        (a, b) => a.or(b),
    }
}

/// The first eight bytes of `v` (zero-padded) as a big-endian number: when the numbers of
/// two values differ, they order the values as their bytes do.
fn order_key(v: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    let n = v.len().min(8);
    first[..n].copy_from_slice(&v[..n]);
    u64::from_be_bytes(first)
}

/// The longest prefix of `v` of at most `STATISTICS_PREFIX` bytes ending on a character
/// boundary (values are valid UTF-8).
fn utf8_prefix(v: &[u8]) -> &[u8] {
    let mut end = STATISTICS_PREFIX.min(v.len());
    while end > 0 && end < v.len() && (v[end] & 0xc0) == 0x80 {
        end -= 1;
    }
    &v[..end]
}

/// The shortest string greater than every string starting with `prefix`: the prefix up
/// to its last character that can be incremented, with that character incremented.
fn increment_utf8(prefix: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(prefix).ok()?;
    let mut chars: Vec<char> = text.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next.filter(|n| n.len_utf8() == last.len_utf8()) {
            chars.push(next);
            return Some(chars.into_iter().collect::<String>().into_bytes());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn text_statistics_are_the_byte_order_min_and_max(
            values in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b', 0xff]), 0..12),
                1..40,
            )
        ) {
            for (a, b) in values.iter().zip(values.iter().skip(1)) {
                if order_key(a) < order_key(b) {
                    proptest::prop_assert!(a < b);
                }
            }
            // Short values keep the statistics exact; they must be the plain minimum
            // and maximum.
            let stats = Bounds::text(values.iter().map(|v| &v[..])).statistics(None);
            let Statistics::ByteArray(s) = stats else { panic!("text statistics") };
            let min = values.iter().min().unwrap();
            let max = values.iter().max().unwrap();
            proptest::prop_assert_eq!(s.min_opt().unwrap().data(), &min[..]);
            proptest::prop_assert_eq!(s.max_opt().unwrap().data(), &max[..]);
        }
    }

    #[test]
    fn dictionary_decided_on_a_sample() {
        let build = |values: &[u32]| Dictionary::build(values.iter().copied(), values.len(), |_| 4);
        // A small chunk is decided on its first 64 values: distinct there, no dictionary
        // even though the rest repeats.
        let small: Vec<u32> = (0..300).map(|i| i.min(100)).collect();
        assert!(build(&small).is_none());
        // Repeating from the start: a dictionary of every distinct value.
        let cycling: Vec<u32> = (0..300).map(|i| i % 50).collect();
        let d = build(&cycling).expect("50 distinct values repeat");
        assert_eq!(d.values, (0..50).collect::<Vec<_>>());
        assert_eq!(d.indices, cycling);
        // A large chunk is decided on its first 512: 64 distinct values there repeat.
        let large: Vec<u32> = (0..2000).map(|i| i % 64).collect();
        assert!(build(&large).is_some());
        // Fewer than 64 values always keep their dictionary.
        assert!(build(&[1, 2, 3]).is_some());
    }

    #[test]
    fn levels_runs_and_packing() {
        // 200 rows: values at 0..3, then nulls up to 150, then values to the end.
        let value_rows: Vec<u32> = (0..3).chain(150..200).collect();
        let input = ColumnInput {
            rows: 200,
            value_rows: Some(value_rows),
            values: ColumnValues::Numbers(vec![]),
        };
        let mut out = Vec::new();
        encode_levels(&input, 0, 200, &mut out);
        // Rows 0..8 bit-packed (one group), rows 8..144 an RLE run of 136 nulls
        // (varint 272), rows 144..200 bit-packed: seven groups, too short for a run.
        let mut want = vec![3, 0b0000_0111, 0x90, 2, 0, 15, 0b1100_0000];
        want.extend([0xff; 6]);
        assert_eq!(out, want);
    }

    #[test]
    fn increment_utf8_bounds_the_prefix() {
        assert_eq!(increment_utf8(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(increment_utf8("a\u{7f}".as_bytes()), Some(b"b".to_vec()));
        assert_eq!(
            increment_utf8("é".as_bytes()),
            Some("ê".as_bytes().to_vec())
        );
        assert_eq!(increment_utf8(b""), None);
    }

    use arrow::array::{Array, ArrayRef};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;

    use crate::columns::{densify, TypeClass};

    /// The Arrow type a column of `class` is read as.
    fn arrow_type(class: TypeClass) -> arrow::datatypes::DataType {
        match class {
            TypeClass::Number => arrow::datatypes::DataType::Float64,
            TypeClass::Boolean => arrow::datatypes::DataType::Boolean,
            _ => arrow::datatypes::DataType::Utf8,
        }
    }

    /// A Parquet file of one column chunk encoded from `parts`.
    fn one_chunk_file(
        class: TypeClass,
        parts: &[(u32, &SparseColumn)],
        rows: usize,
        dictionary: bool,
    ) -> Bytes {
        let data_type = arrow_type(class);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("c", data_type, true),
        ]));
        let parquet_schema = parquet::arrow::ArrowSchemaConverter::new()
            .convert(&schema)
            .unwrap();
        let mut out = Vec::new();
        let mut writer = SerializedFileWriter::new(
            &mut out,
            parquet_schema.root_schema_ptr(),
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        let descr = writer.schema_descr().column(0);
        let input = ColumnInput::sparse(parts, rows);
        let chunk = encode_chunk(descr, &input, Codec::SNAPPY, dictionary).unwrap();
        let mut rg = writer.next_row_group().unwrap();
        rg.append_column(&chunk.bytes, chunk.close).unwrap();
        rg.close().unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    /// Writes `parts` as the one column of a file with the chunk encoder and reads it
    /// back with parquet's Arrow reader.
    fn round_trip(
        class: TypeClass,
        parts: &[(u32, &SparseColumn)],
        rows: usize,
        dictionary: bool,
    ) -> ArrayRef {
        let file = one_chunk_file(class, parts, rows, dictionary);
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap().column(0).clone()).collect();
        let refs: Vec<&dyn Array> = batches.iter().map(|a| a.as_ref()).collect();
        if refs.is_empty() {
            return arrow::array::new_empty_array(&arrow_type(class));
        }
        arrow::compute::concat(&refs).unwrap()
    }

    fn sparse_text(rows: &[u32], value: impl Fn(u32) -> String) -> SparseColumn {
        let mut s = Strings::default();
        rows.iter().for_each(|&r| s.push(value(r).as_bytes()));
        SparseColumn::at_rows(rows.to_vec(), Values::Text(s))
    }

    #[test]
    fn the_page_index_locates_each_page_and_bounds_its_values() {
        use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
        // 50,000 rows, every fifth null, a NaN now and then: three pages of numbers.
        let rows: Vec<u32> = (0..50_000).filter(|r| r % 5 != 0).collect();
        let value = |r: u32| {
            if r.is_multiple_of(997) {
                f64::NAN
            } else {
                f64::from(r)
            }
        };
        let col = SparseColumn::at_rows(
            rows.clone(),
            Values::Number(rows.iter().map(|&r| value(r)).collect()),
        );
        for dictionary in [false, true] {
            let file = one_chunk_file(TypeClass::Number, &[(0, &col)], 50_000, dictionary);
            let meta = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Required)
                .parse_and_finish(&file)
                .unwrap();
            let index = meta.page_index_for_row_group(0);
            let offsets = &index.offset_index(0).unwrap().page_locations;
            let first_rows: Vec<i64> = offsets.iter().map(|p| p.first_row_index).collect();
            // 40,000 values in pages of 20,000: the second starts at the row of value
            // 20,000 (rows 0, 5, 10, … are null, and a page ends before a value).
            assert_eq!(
                first_rows,
                [0, i64::from(rows[20_000])],
                "dictionary {dictionary}"
            );
            let Some(ColumnIndexMetaData::DOUBLE(index)) = index.column_index(0) else {
                panic!("a DOUBLE column index");
            };
            for (page, start) in first_rows.iter().enumerate() {
                let end = first_rows.get(page + 1).copied().unwrap_or(50_000);
                let values: Vec<f64> = (*start as u32..end as u32)
                    .filter(|r| r % 5 != 0)
                    .map(value)
                    .filter(|v| !v.is_nan())
                    .collect();
                let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                assert_eq!(index.min_value(page), Some(&min));
                assert_eq!(index.max_value(page), Some(&max));
                let nulls = (*start..end).filter(|r| r % 5 == 0).count() as i64;
                assert_eq!(index.null_count(page), Some(nulls));
            }
            // The pages read back whole.
            let got = round_trip(TypeClass::Number, &[(0, &col)], 50_000, dictionary);
            assert_eq!(got.len(), 50_000);
        }
    }

    #[test]
    fn multi_page_text_round_trips() {
        // About 3 MiB of values: several data pages, with and without a dictionary.
        let rows: Vec<u32> = (0..4000).filter(|r| r % 3 != 1).collect();
        let col = sparse_text(&rows, |r| format!("{r:0>800}"));
        let parts = [(0, &col)];
        for dictionary in [false, true] {
            let got = round_trip(TypeClass::String, &parts, 4100, dictionary);
            assert_eq!(got.as_ref(), densify(true, &parts, 4100).as_ref());
        }
        // A dictionary kept over more indices than one page holds.
        let rows: Vec<u32> = (0..600_000).filter(|r| r % 7 != 0).collect();
        let col = sparse_text(&rows, |r| format!("value {}", r % 50));
        let parts = [(0, &col)];
        let got = round_trip(TypeClass::String, &parts, 600_003, true);
        assert_eq!(got.as_ref(), densify(true, &parts, 600_003).as_ref());
    }

    proptest::proptest! {
        #[test]
        fn sparse_columns_round_trip(
            rows in 0usize..700,
            seed in proptest::collection::vec(0u8..4, 0..700),
            split in 0usize..700,
            dense_until in 0u32..700,
            dictionary in proptest::bool::ANY,
        ) {
            // Rows with a value: all below `dense_until` (so that parts may hold leading
            // rows), then where the seed says so; two parts split at `split`.
            let present: Vec<u32> = (0..rows as u32)
                .filter(|&r| r < dense_until || seed.get(r as usize).is_some_and(|&s| s > 0))
                .collect();
            let split = split.min(rows) as u32;
            let (a, b): (Vec<u32>, Vec<u32>) = present.iter().partition(|&&r| r < split);
            let b: Vec<u32> = b.iter().map(|r| r - split).collect();
            let text = |r: u32| ["x", "", "é long", "\"q\""][(r % 4) as usize].repeat(r as usize % 5);
            let number = |r: u32| [0.0, -0.0, 1.5, f64::NAN, -3e300][(r % 5) as usize];
            let (ta, tb) = (sparse_text(&a, text), sparse_text(&b, |r| text(r + split)));
            let nums = |rows: &[u32], base: u32| SparseColumn::at_rows(
                rows.to_vec(),
                Values::Number(rows.iter().map(|&r| number(r + base)).collect()),
            );
            let bools = |rows: &[u32], base: u32| SparseColumn::at_rows(
                rows.to_vec(),
                Values::Boolean(rows.iter().map(|&r| (r + base).is_multiple_of(3)).collect()),
            );
            let (na, nb) = (nums(&a, 0), nums(&b, split));
            let (ba, bb) = (bools(&a, 0), bools(&b, split));
            for (class, pa, pb) in [
                (TypeClass::String, &ta, &tb),
                (TypeClass::Number, &na, &nb),
                (TypeClass::Boolean, &ba, &bb),
            ] {
                let parts: Vec<(u32, &SparseColumn)> =
                    [(0, pa), (split, pb)].into_iter().filter(|(_, c)| !c.is_empty()).collect();
                if parts.is_empty() {
                    continue;
                }
                let got = round_trip(class, &parts, rows, dictionary);
                let want = densify(class.is_text(), &parts, rows);
                // NaN != NaN in Arrow's equality: compare the text of the values.
                proptest::prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
            }
        }
    }
}
