//! Write: encodes full row groups into spill files on workers, and lays out a (table,
//! window)'s final data file from them, sent as they come ([`FileInProgress`]).

mod assemble;
mod chunk;
mod column_order;
pub(crate) mod json;
pub(crate) mod parquet;
mod stream;

pub use parquet::properties as parquet_properties;
pub(crate) use stream::FileInProgress;

use std::path::{Path, PathBuf};

use ::parquet::file::properties::WriterPropertiesPtr;

use crate::error::{Error, Result};
use crate::merge::RowGroup;
use crate::options::{Format, RunOptions, SchemaMode};
use crate::schema::registry::{ColumnInfo, Fixed};
use assemble::{Assembly, Segment};

/// One encoded row group on disk.
#[derive(Debug, Clone)]
pub struct Spill {
    /// The spill file.
    pub path: PathBuf,
    /// Rows in it.
    pub rows: u32,
    /// Final column numbers it holds (Parquet only), ascending.
    pub columns: Vec<u32>,
}

/// The encoder of a run's output format.
#[derive(Debug, Clone)]
pub enum Encoder {
    /// Parquet with writer properties.
    Parquet(WriterPropertiesPtr),
    /// Gzip JSONL rows, written in a style.
    Json(json::JsonStyle),
    /// Gzip JSONL of the unaltered lines.
    Raw,
}

impl Encoder {
    /// The encoder for a run.
    pub fn for_options(o: &RunOptions) -> Self {
        match (o.schema, o.format) {
            (SchemaMode::Raw, _) => Encoder::Raw,
            (_, Format::Json) => Encoder::Json(json::JsonStyle {
                time_in_ms: o.time_in_ms,
                nested_as_text: o.nested_as_text,
            }),
            (_, Format::Parquet) => Encoder::Parquet(parquet::properties(o.compression)),
        }
    }

    /// Data file extension.
    pub fn extension(&self) -> &'static str {
        match self {
            Encoder::Parquet(_) => "parquet",
            Encoder::Json(_) | Encoder::Raw => "json.gz",
        }
    }

    /// Encodes a row group into the spill file `path`.
    pub fn encode(&self, group: &RowGroup, fixed: Fixed, path: &Path) -> Result<Spill> {
        let what = || format!("row group {} of window {}", group.index, group.window);
        match self {
            Encoder::Parquet(props) => parquet::encode_row_group(group, fixed, props, path)
                .map_err(|e| parquet_error(e, path, what())),
            Encoder::Json(style) => {
                write_member(path, &json::json_text(group, &group.columns, fixed, *style))?;
                Ok(Spill {
                    path: path.to_path_buf(),
                    rows: group.rows,
                    columns: Vec::new(),
                })
            }
            Encoder::Raw => {
                write_member(path, &json::raw_text(group))?;
                Ok(Spill {
                    path: path.to_path_buf(),
                    rows: group.rows,
                    columns: Vec::new(),
                })
            }
        }
    }

    /// Places a row group's encoded bytes at the end of a file's layout.
    pub(crate) fn place(&self, file: &mut Assembly, spill: &Spill) -> Result<Vec<Segment>> {
        file.place(spill, matches!(self, Encoder::Parquet(_)))
            .map_err(|e| parquet_error(e, &spill.path, spill.path.display().to_string()))
    }

    /// The bytes that end a file after its row groups (Parquet: the null chunks of
    /// FC2, the page index and the footer).
    pub(crate) fn tail(&self, file: Assembly, columns: &[ColumnInfo]) -> Result<Vec<u8>> {
        match self {
            Encoder::Parquet(props) => file.finish(columns, props).map_err(|e| Error::Encode {
                what: "the end of a Parquet file".to_string(),
                message: e.to_string(),
            }),
            Encoder::Json(_) | Encoder::Raw => Ok(Vec::new()),
        }
    }
}

/// A file-system failure inside the Parquet writer (a full disk, a file that cannot be
/// created) is an output error naming the file, like JSON output's; anything else is an
/// encoding failure of `what`.
fn parquet_error(e: ::parquet::errors::ParquetError, path: &Path, what: String) -> Error {
    if let ::parquet::errors::ParquetError::External(source) = e {
        return match source.downcast::<std::io::Error>() {
            Ok(io) => Error::output(path, *io),
            Err(other) => Error::Encode {
                what,
                message: other.to_string(),
            },
        };
    }
    Error::Encode {
        what,
        message: e.to_string(),
    }
}

fn write_member(path: &Path, text: &[u8]) -> Result<()> {
    let member = json::gzip_member(text).map_err(|e| Error::output(path, e))?;
    std::fs::write(path, member).map_err(|e| Error::output(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_io_failures_name_the_file() {
        let full = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let e = ::parquet::errors::ParquetError::External(Box::new(full));
        let e = parquet_error(e, Path::new("out/part.parquet"), "row group 0".into());
        // A full disk mid-run is a run-time failure (exit 1), not a usage error.
        assert!(!e.is_usage(), "{e}");
        assert_eq!(
            e.to_string(),
            "cannot write output out/part.parquet: no space left"
        );
        let e = ::parquet::errors::ParquetError::General("bad schema".into());
        let e = parquet_error(e, Path::new("out/part.parquet"), "row group 0".into());
        assert_eq!(
            e.to_string(),
            "encoding row group 0 failed: Parquet error: bad schema"
        );
    }
}
