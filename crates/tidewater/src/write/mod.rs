//! Write: encodes full row groups into spill files on workers, and at window close
//! turns a (table, window)'s spills into its final data file.

mod chunk;
mod column_order;
pub(crate) mod json;
pub(crate) mod parquet;

pub use parquet::properties as parquet_properties;

use std::fs::File;
use std::path::{Path, PathBuf};

use ::parquet::file::properties::WriterPropertiesPtr;

use crate::error::{Error, Result};
use crate::merge::RowGroup;
use crate::options::{Format, RunOptions, SchemaMode};
use crate::schema::registry::{ColumnInfo, Fixed};
use crate::store::DataSink;

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

    /// Writes the final file of one (table, window) from its spills, in order, to
    /// `dest`.
    pub(crate) fn finish(
        &self,
        spills: &[Spill],
        columns: &[ColumnInfo],
        fixed: Fixed,
        dest: &dyn DataSink,
    ) -> Result<()> {
        // A lone spill already is the final file: a Parquet spill holds exactly the
        // columns the final file would, a JSON spill is one gzip member. Moving it
        // saves creating, copying and re-reading a file per (table, window), which in
        // multischema runs was a sixth of the workers' time (most tables of a day fit
        // in one row group).
        if let [only] = spills {
            return dest.adopt(&only.path);
        }
        let name = dest.name();
        dest.write(&mut |out| match self {
            Encoder::Parquet(props) => parquet::finish_file(spills, columns, fixed, props, out)
                .map_err(|e| parquet_error(e, &name, name.display().to_string())),
            Encoder::Json(_) | Encoder::Raw => {
                for s in spills {
                    let mut f = File::open(&s.path).map_err(|e| Error::output(&s.path, e))?;
                    std::io::copy(&mut f, out).map_err(|e| Error::output(&name, e))?;
                }
                Ok(())
            }
        })
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
