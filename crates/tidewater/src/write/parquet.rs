//! Parquet output. Each row group is encoded on its own (one column at a time, from the
//! sparse columns) into a spill file holding only the columns it has values for. At
//! window close the final file is written by copying the encoded column chunks and
//! adding all-null chunks for columns a row group lacks, so every value is encoded once
//! and memory never holds more than one row group (DESIGN.md, "Memory and time").

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;

use crate::columns::{concat_strings, densify, SparseColumn, TypeClass};
use crate::merge::RowGroup;
use crate::options::Compression;
use crate::schema::registry::{ColumnInfo, ColumnType, Fixed};

use super::chunk::{self, ColumnInput, ColumnValues};
use super::column_order::TypeDefinedOrders;
use super::Spill;

/// Writer properties for a codec.
pub fn properties(compression: Compression) -> WriterPropertiesPtr {
    let codec = match compression {
        Compression::Snappy => Codec::SNAPPY,
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
        Compression::Lz4 => Codec::LZ4_RAW,
        Compression::Gzip => Codec::GZIP(Default::default()),
        Compression::None => Codec::UNCOMPRESSED,
    };
    Arc::new(WriterProperties::builder().set_compression(codec).build())
}

/// The Arrow field of a column (T3, §4.3).
pub fn field(column: &ColumnInfo) -> Field {
    match column.ty {
        ColumnType::Timestamp => Field::new(
            &column.name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        ColumnType::Class(TypeClass::Number) => Field::new(&column.name, DataType::Float64, true),
        ColumnType::Class(TypeClass::Boolean) => Field::new(&column.name, DataType::Boolean, true),
        // mp_event_name is always set; every other text column may be null.
        ColumnType::Class(_) => Field::new(
            &column.name,
            DataType::Utf8,
            !(column.property.is_none() && column.name == "mp_event_name"),
        ),
    }
}

pub(crate) fn schema_of(columns: &[ColumnInfo], present: &[u32]) -> SchemaRef {
    Arc::new(Schema::new(
        present
            .iter()
            .map(|&c| field(&columns[c as usize]))
            .collect::<Vec<_>>(),
    ))
}

/// Output buffer of a Parquet file. The writer copies each column chunk through an
/// 8 KiB buffer, so writing to the file directly made one `write` per 8 KiB: 36k system
/// calls for a 1M-event convert (strace).
const FILE_BUFFER_BYTES: usize = 1 << 20;

/// The file writer of our Parquet files: buffered, and declaring the column order
/// every reader knows (see [`TypeDefinedOrders`]).
type FileWriter<W> = SerializedFileWriter<BufWriter<TypeDefinedOrders<W>>>;

fn writer_for<W: Write + Send>(
    out: W,
    schema: &SchemaRef,
    props: &WriterPropertiesPtr,
) -> Result<FileWriter<W>, ParquetError> {
    let parquet_schema = ArrowSchemaConverter::new().convert(schema)?;
    let out = TypeDefinedOrders::new(out, parquet_schema.num_columns());
    let out = BufWriter::with_capacity(FILE_BUFFER_BYTES, out);
    SerializedFileWriter::new(out, parquet_schema.root_schema_ptr(), props.clone())
}

/// Writes the footer and flushes the file, so that write errors are reported rather
/// than lost when the buffer is dropped.
fn close_file<W: Write + Send>(writer: FileWriter<W>) -> Result<(), ParquetError> {
    writer
        .into_inner()?
        .into_inner()
        .map_err(|e| ParquetError::External(Box::new(e.into_error())))?
        .finish()
        .map_err(|e| ParquetError::External(Box::new(e)))?;
    Ok(())
}

/// The fixed columns plus the property columns with a value in the group, in order.
fn present_columns(group: &RowGroup, fixed: Fixed) -> Vec<u32> {
    let mut present: Vec<u32> = (0..fixed.count() as u32).collect();
    let mut props_cols: Vec<u32> = group
        .chunks
        .iter()
        .flat_map(|c| c.columns.iter().map(|(id, _)| *id))
        .collect();
    props_cols.sort_unstable();
    props_cols.dedup();
    present.extend(props_cols);
    present
}

/// A table's Arrow schema: every column it has (so far), in column order.
pub fn table_schema(columns: &[ColumnInfo]) -> SchemaRef {
    Arc::new(Schema::new(columns.iter().map(field).collect::<Vec<_>>()))
}

/// A row group as one Arrow batch (for the streaming API).
pub fn record_batch(
    group: &RowGroup,
    fixed: Fixed,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let present = present_columns(group, fixed);
    let schema = schema_of(&group.columns, &present);
    let arrays = present
        .iter()
        .map(|&c| dense_column(group, c, fixed, &group.columns))
        .collect();
    RecordBatch::try_new(schema, arrays)
}

/// Row groups smaller than this encode their columns one after another: splitting a
/// few hundred rows across the pool cost more than it saved (multischema runs write
/// thousands of such groups).
const PARALLEL_COLUMNS_MIN_ROWS: u32 = 4096;

/// Encodes one row group into a spill file.
pub fn encode_row_group(
    group: &RowGroup,
    fixed: Fixed,
    props: &WriterPropertiesPtr,
    path: &Path,
) -> Result<Spill, ParquetError> {
    let columns = &group.columns[..];
    let present = present_columns(group, fixed);
    let schema = schema_of(columns, &present);
    let mut writer = writer_for(File::create(path)?, &schema, props)?;
    let descriptors = writer.schema_descr();
    // The columns of large row groups encode in parallel (on the caller's rayon pool)
    // and are appended in order, so the file is the same at any thread count. A
    // window's last row group is often encoded while little else runs (an export
    // commits each window as its response ends), and one column at a time left the
    // other cores idle.
    let min_columns_per_task = if group.rows >= PARALLEL_COLUMNS_MIN_ROWS {
        1
    } else {
        present.len().max(1)
    };
    let chunks = present
        .par_iter()
        .enumerate()
        .with_min_len(min_columns_per_task)
        .map(|(pos, &c)| {
            let descr = descriptors.column(pos);
            let codec = props.compression(descr.path());
            let input = column_input(group, c, fixed, columns);
            chunk::encode_chunk(descr, &input, codec, true)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rg = writer.next_row_group()?;
    for chunk in chunks {
        rg.append_column(&chunk.bytes, chunk.close)?;
    }
    rg.close()?;
    close_file(writer)?;
    Ok(Spill {
        path: path.to_path_buf(),
        rows: group.rows,
        columns: present,
    })
}

/// One column of a row group as the values the chunk encoder takes.
fn column_input<'g>(
    group: &'g RowGroup,
    column: u32,
    fixed: Fixed,
    columns: &[ColumnInfo],
) -> ColumnInput<'g> {
    let rows = group.rows as usize;
    match column {
        c if fixed.time() == Some(c) => ColumnInput {
            rows,
            value_rows: None,
            values: ColumnValues::Times(group.chunks.iter().map(|c| &c.time[..]).collect()),
        },
        c if fixed.event_name() == Some(c) => ColumnInput {
            rows,
            value_rows: None,
            values: ColumnValues::Text(group.chunks.iter().map(|c| &c.event_name).collect()),
        },
        c => {
            let parts = column_parts(group, c, fixed);
            let mut input = ColumnInput::sparse(&parts, rows);
            if parts.is_empty() {
                // No values: the storage kind comes from the column's type.
                input.values = match columns[c as usize].ty {
                    ColumnType::Class(TypeClass::Number) => ColumnValues::Numbers(Vec::new()),
                    ColumnType::Class(TypeClass::Boolean) => ColumnValues::Booleans(Vec::new()),
                    _ => ColumnValues::Text(Vec::new()),
                };
            }
            input
        }
    }
}

/// One column of a row group as a dense Arrow array.
fn dense_column(group: &RowGroup, column: u32, fixed: Fixed, columns: &[ColumnInfo]) -> ArrayRef {
    let rows = group.rows as usize;
    match column {
        c if fixed.time() == Some(c) => {
            let times: Vec<i64> = group
                .chunks
                .iter()
                .flat_map(|c| c.time.iter().copied())
                .collect();
            Arc::new(TimestampMillisecondArray::from(times).with_timezone("UTC"))
        }
        c if fixed.event_name() == Some(c) => {
            Arc::new(concat_strings(group.chunks.iter().map(|c| &c.event_name)))
        }
        c => {
            let parts = column_parts(group, c, fixed);
            if parts.is_empty() {
                return new_null_array(field(&columns[c as usize]).data_type(), rows);
            }
            densify(parts[0].1.values.is_text(), &parts, rows)
        }
    }
}

/// The non-empty parts of column `c` (`distinct_id` or a property column) in a row
/// group's chunks, each with the row offset of its chunk.
fn column_parts(group: &RowGroup, c: u32, fixed: Fixed) -> Vec<(u32, &SparseColumn)> {
    let mut parts = Vec::new();
    let mut offset = 0u32;
    for chunk in &group.chunks {
        let col = if c == fixed.distinct_id() {
            Some(&chunk.distinct_id)
        } else {
            chunk
                .columns
                .binary_search_by_key(&c, |(id, _)| *id)
                .ok()
                .map(|i| &chunk.columns[i].1)
        };
        if let Some(col) = col.filter(|col| !col.is_empty()) {
            parts.push((offset, col));
        }
        offset += chunk.count;
    }
    parts
}
