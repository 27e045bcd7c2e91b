//! The final file of a (table, window), laid out from its encoded row groups in order,
//! so that its bytes can be handed on as soon as each row group is encoded: an object
//! store uploads a window's first parts while the run still encodes the rest, and a
//! local file is written at commit by the same code, byte for byte.
//!
//! A Parquet file is `PAR1`, the column chunks of each row group as its spill holds
//! them, then the all-null chunks of the columns a row group lacks (FC2: only known when
//! the window's last row group is encoded), then the page index and the footer. Readers
//! find every chunk through the footer's offsets, so a row group's chunks need not be
//! next to each other. A JSON file is its spills' gzip members, one after another.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parquet::arrow::ArrowSchemaConverter;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::page_index::PageIndexBuilder;
use parquet::file::metadata::{
    ColumnChunkMetaData, FileMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
    ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::page_index::offset_index::OffsetIndexMetaData;
use parquet::file::properties::WriterPropertiesPtr;
use parquet::file::writer::TrackedWrite;
use parquet::schema::types::ColumnDescPtr;

use super::chunk::{self, ColumnInput, ColumnValues};
use super::column_order::type_defined_orders;
use super::Spill;
use crate::columns::TypeClass;
use crate::schema::registry::{ColumnInfo, ColumnType};

/// A run of the final file's bytes.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    /// Bytes in memory.
    Bytes(Bytes),
    /// `len` bytes of a spill file from `start`.
    File { path: PathBuf, start: u64, len: u64 },
}

impl Segment {
    pub(crate) fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::File { len, .. } => *len,
        }
    }
}

/// The layout of one final file, growing a row group at a time.
#[derive(Debug, Default)]
pub(crate) struct Assembly {
    /// Bytes placed so far.
    len: u64,
    /// Row groups placed so far.
    placed: u32,
    /// Parquet: where each placed row group's chunks are.
    groups: Vec<PlacedGroup>,
    /// Parquet: the footer fields every spill shares.
    file: Option<(i32, Option<String>)>,
}

/// A Parquet row group's chunks, with offsets in the final file.
#[derive(Debug)]
struct PlacedGroup {
    rows: u32,
    /// The final column numbers it has chunks for, ascending.
    columns: Vec<u32>,
    /// Its chunks as its spill describes them.
    chunks: Vec<PlacedChunk>,
    /// How far its chunks moved from their place in the spill.
    shift: i64,
}

/// A chunk's metadata and page index.
#[derive(Debug)]
struct PlacedChunk {
    metadata: ColumnChunkMetaData,
    column_index: Option<ColumnIndexMetaData>,
    offset_index: Option<OffsetIndexMetaData>,
}

const MAGIC: &[u8; 4] = b"PAR1";

impl Assembly {
    /// Row groups placed so far.
    pub(crate) fn placed(&self) -> u32 {
        self.placed
    }

    /// Places the next row group's encoded bytes (from its spill) at the end of the
    /// file, and returns them as the segments to write next.
    pub(crate) fn place(&mut self, spill: &Spill, parquet: bool) -> Result<Vec<Segment>> {
        self.placed += 1;
        if !parquet {
            let len = std::fs::metadata(&spill.path)?.len();
            self.len += len;
            return Ok(vec![Segment::File {
                path: spill.path.clone(),
                start: 0,
                len,
            }]);
        }
        let mut segments = Vec::new();
        if self.len == 0 {
            segments.push(Segment::Bytes(Bytes::from_static(MAGIC)));
            self.len = MAGIC.len() as u64;
        }
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&File::open(&spill.path)?)?;
        self.file.get_or_insert_with(|| {
            let f = meta.file_metadata();
            (f.version(), f.created_by().map(str::to_string))
        });
        let group = meta.row_group(0);
        let index = meta.page_index_for_row_group(0);
        // The spill holds its chunks one after another right after its magic.
        let start = MAGIC.len() as i64;
        let len: i64 = group.columns().iter().map(|c| c.compressed_size()).sum();
        let at = self.len as i64;
        let mut chunks = Vec::with_capacity(group.num_columns());
        for (j, c) in group.columns().iter().enumerate() {
            let (from, size) = c.byte_range();
            if (from as i64) < start || (from + size) as i64 > start + len {
                return Err(ParquetError::General(format!(
                    "spill {} has a chunk outside its data",
                    spill.path.display()
                )));
            }
            chunks.push(PlacedChunk {
                metadata: c.clone(),
                column_index: index.column_index(j).cloned(),
                offset_index: index.offset_index(j).cloned(),
            });
        }
        self.groups.push(PlacedGroup {
            rows: spill.rows,
            columns: spill.columns.clone(),
            chunks,
            shift: at - start,
        });
        self.len += len as u64;
        segments.push(Segment::File {
            path: spill.path.clone(),
            start: start as u64,
            len: len as u64,
        });
        Ok(segments)
    }

    /// The bytes after the placed row groups: for Parquet, the all-null chunks of the
    /// columns each row group lacks, the page index and the footer; nothing for JSON.
    pub(crate) fn finish(
        self,
        columns: &[ColumnInfo],
        props: &WriterPropertiesPtr,
    ) -> Result<Vec<u8>> {
        let Some((version, created_by)) = self.file else {
            return Ok(Vec::new());
        };
        let mut present: Vec<u32> = self
            .groups
            .iter()
            .flat_map(|g| g.columns.iter().copied())
            .collect();
        present.sort_unstable();
        present.dedup();
        let schema = super::parquet::schema_of(columns, &present);
        let descr = Arc::new(ArrowSchemaConverter::new().convert(&schema)?);
        let mut tail = Vec::new();
        let mut page_index = PageIndexBuilder::new(self.groups.len(), present.len());
        let mut row_groups = Vec::with_capacity(self.groups.len());
        let mut num_rows = 0i64;
        for (i, group) in self.groups.into_iter().enumerate() {
            let mut spilled = group.chunks.into_iter();
            let mut chunks = Vec::with_capacity(present.len());
            for (pos, &c) in present.iter().enumerate() {
                let column = descr.column(pos);
                let chunk = if group.columns.binary_search(&c).is_ok() {
                    let chunk = spilled.next().expect("a chunk per column of the spill");
                    placed(
                        column,
                        &chunk.metadata,
                        chunk.column_index,
                        chunk.offset_index,
                        group.shift,
                    )?
                } else {
                    let codec = props.compression(column.path());
                    let nulls = chunk::encode_chunk(
                        column.clone(),
                        &null_input(&columns[c as usize], group.rows as usize),
                        codec,
                        true,
                    )?;
                    let at = (self.len + tail.len() as u64) as i64;
                    tail.extend_from_slice(&nulls.bytes);
                    let close = nulls.close;
                    placed(
                        column,
                        &close.metadata,
                        close.column_index,
                        close.offset_index,
                        at,
                    )?
                };
                chunks.push(chunk);
            }
            let file_offset = chunks[0].metadata.byte_range().0 as i64;
            let total: i64 = chunks.iter().map(|c| c.metadata.uncompressed_size()).sum();
            let mut metadata = Vec::with_capacity(chunks.len());
            for (pos, chunk) in chunks.into_iter().enumerate() {
                if let Some(ci) = chunk.column_index {
                    page_index.put_column_index(ci, i, pos);
                }
                if let Some(oi) = chunk.offset_index {
                    page_index.put_offset_index(oi, i, pos);
                }
                metadata.push(chunk.metadata);
            }
            row_groups.push(
                RowGroupMetaData::builder(descr.clone())
                    .set_column_metadata(metadata)
                    .set_total_byte_size(total)
                    .set_num_rows(i64::from(group.rows))
                    .set_ordinal(i as i32)
                    .set_file_offset(file_offset)
                    .build()?,
            );
            num_rows += i64::from(group.rows);
        }
        let file = FileMetaData::new(version, num_rows, created_by, None, descr.clone(), None);
        let metadata = ParquetMetaData::new(file, row_groups)
            .into_builder()
            .set_page_index(Some(Arc::new(page_index.build())))
            .build();
        // The footer's offsets (of the page index) count from the file's start, and the
        // metadata writer counts from the bytes it has written: it is given as many
        // bytes as precede the footer first, and drops them.
        let before = self.len + tail.len() as u64;
        let mut footer = Vec::new();
        let mut out = TrackedWrite::new(SkipFirst {
            skip: before,
            inner: &mut footer,
        });
        let zeros = [0u8; 64 << 10];
        let mut left = before;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            out.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        ParquetMetaDataWriter::new_with_tracked(out, &metadata).finish()?;
        type_defined_orders(&mut footer, present.len());
        tail.extend_from_slice(&footer);
        Ok(tail)
    }
}

/// A chunk's metadata and page index with its offsets moved by `shift`, described by
/// `column` (the final file's column).
fn placed(
    column: ColumnDescPtr,
    m: &ColumnChunkMetaData,
    column_index: Option<ColumnIndexMetaData>,
    mut offset_index: Option<OffsetIndexMetaData>,
    shift: i64,
) -> Result<PlacedChunk> {
    let mut b = ColumnChunkMetaData::builder(column)
        .set_compression_codec(m.compression_codec())
        .set_encodings_mask(*m.encodings_mask())
        .set_total_compressed_size(m.compressed_size())
        .set_total_uncompressed_size(m.uncompressed_size())
        .set_num_values(m.num_values())
        .set_data_page_offset(m.data_page_offset() + shift)
        .set_dictionary_page_offset(m.dictionary_page_offset().map(|o| o + shift))
        .set_unencoded_byte_array_data_bytes(m.unencoded_byte_array_data_bytes());
    if let Some(h) = m.repetition_level_histogram() {
        b = b.set_repetition_level_histogram(Some(h.clone()));
    }
    if let Some(h) = m.definition_level_histogram() {
        b = b.set_definition_level_histogram(Some(h.clone()));
    }
    if let Some(s) = m.statistics() {
        b = b.set_statistics(s.clone());
    }
    if let Some(s) = m.page_encoding_stats() {
        b = b.set_page_encoding_stats(s.clone());
    }
    if let Some(oi) = offset_index.as_mut() {
        for page in &mut oi.page_locations {
            page.offset += shift;
        }
    }
    Ok(PlacedChunk {
        metadata: b.build()?,
        column_index,
        offset_index,
    })
}

/// A column with no value in any of `rows` rows, stored as its type is.
fn null_input(column: &ColumnInfo, rows: usize) -> ColumnInput<'static> {
    ColumnInput {
        rows,
        value_rows: Some(Vec::new()),
        values: match column.ty {
            ColumnType::Class(TypeClass::Number) => ColumnValues::Numbers(Vec::new()),
            ColumnType::Class(TypeClass::Boolean) => ColumnValues::Booleans(Vec::new()),
            _ => ColumnValues::Text(Vec::new()),
        },
    }
}

/// A writer that drops the first `skip` bytes written to it.
struct SkipFirst<W> {
    skip: u64,
    inner: W,
}

impl<W: Write> Write for SkipFirst<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let dropped = self.skip.min(buf.len() as u64) as usize;
        self.skip -= dropped as u64;
        self.inner.write_all(&buf[dropped..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use arrow::array::RecordBatch;
    use arrow::datatypes::DataType;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

    use super::*;
    use crate::options::Compression;

    /// Events of one day; `late` first appears in the last of them.
    fn events(n: usize) -> String {
        (0..n)
            .map(|i| {
                let late = if i + 1 == n { r#","late":true"# } else { "" };
                format!(
                    r#"{{"event":"e{}","properties":{{"time":{},"distinct_id":"u{i}","n":{i}{late}}}}}"#,
                    i % 3,
                    1_704_067_200 + i
                ) + "\n"
            })
            .collect()
    }

    fn convert(out: &Path, rows_per_group: usize, input: &str) -> std::path::PathBuf {
        crate::Converter::new(out)
            .input_bytes("events.jsonl", input.to_string())
            .row_group_rows(rows_per_group)
            .run()
            .unwrap();
        out.join("mp_master_event/2024/01/01/part-00000.parquet")
    }

    fn read(path: &Path) -> (Vec<RecordBatch>, usize) {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(path).unwrap(),
            options,
        )
        .unwrap();
        let groups = reader.metadata().num_row_groups();
        let batches = reader
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        (batches, groups)
    }

    /// The columns of a file as the registry would list them.
    fn columns_of(path: &Path) -> Vec<ColumnInfo> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
        reader
            .schema()
            .fields()
            .iter()
            .map(|f| ColumnInfo {
                name: f.name().clone(),
                property: (f.name() != "mp_event_name").then(|| f.name().clone()),
                ty: match f.data_type() {
                    DataType::Timestamp(..) => ColumnType::Timestamp,
                    DataType::Float64 => ColumnType::Class(TypeClass::Number),
                    DataType::Boolean => ColumnType::Class(TypeClass::Boolean),
                    _ => ColumnType::Class(TypeClass::String),
                },
            })
            .collect()
    }

    fn lay_out(spills: &[Spill], columns: &[ColumnInfo]) -> Vec<u8> {
        let mut file = Assembly::default();
        let mut bytes = Vec::new();
        for spill in spills {
            for segment in file.place(spill, true).unwrap() {
                match segment {
                    Segment::Bytes(b) => bytes.extend_from_slice(&b),
                    Segment::File { path, start, len } => {
                        let all = std::fs::read(path).unwrap();
                        bytes.extend_from_slice(&all[start as usize..(start + len) as usize]);
                    }
                }
            }
        }
        let props = super::super::parquet::properties(Compression::Snappy);
        bytes.extend(file.finish(columns, &props).unwrap());
        bytes
    }

    #[test]
    fn the_layout_of_one_row_group_is_its_spill_byte_for_byte() {
        // A lone spill is moved into place as it is, while a store that sends parts
        // early lays the same file out: the two must not differ.
        let tmp = tempfile::tempdir().unwrap();
        let file = convert(&tmp.path().join("one"), 1000, &events(50));
        let columns = columns_of(&file);
        let spill = Spill {
            path: file.clone(),
            rows: 50,
            columns: (0..columns.len() as u32).collect(),
        };
        assert_eq!(lay_out(&[spill], &columns), std::fs::read(&file).unwrap());
    }

    #[test]
    fn row_groups_laid_out_in_order_read_as_one_with_nulls_where_a_group_lacks_a_column() {
        let tmp = tempfile::tempdir().unwrap();
        let input = events(50);
        let whole = convert(&tmp.path().join("one"), 1000, &input);
        let split = convert(&tmp.path().join("split"), 7, &input);
        let (expected, one) = read(&whole);
        let (batches, groups) = read(&split);
        assert_eq!((one, groups), (1, 8));
        let expected = arrow::compute::concat_batches(&expected[0].schema(), &expected).unwrap();
        let got = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(got, expected);
        // `late` has its value in the last group only; the others hold null chunks,
        // which follow all the groups' own chunks.
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&File::open(&split).unwrap())
            .unwrap();
        let late = got.schema().index_of("late").unwrap();
        // The last group's own chunk of `late`, its newest column, ends the row groups'
        // own chunks.
        let (at, len) = meta.row_group(7).column(late).byte_range();
        for g in &meta.row_groups()[..7] {
            assert!(g.column(late).byte_range().0 >= at + len);
        }
    }
}
