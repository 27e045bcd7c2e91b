//! Run options shared by the library builder and the CLI.

use std::path::PathBuf;

use crate::block::EventFilter;
use crate::error::{Error, Result};
use crate::window::Windowing;

/// How events become tables (output-format §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaMode {
    /// S1: kept lines are written unaltered as gzip JSONL.
    Raw,
    /// S2: one table, `mp_master_event`.
    Monoschema,
    /// S3: one table per event name.
    Multischema,
}

/// Data file format for schematized output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Gzip JSONL, one object per row, keys in column order.
    Json,
}

/// Window size (W1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// One window per local calendar day.
    Daily,
    /// One window per local hour.
    Hourly,
}

/// Folder naming of windows (§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `YYYY/MM/DD[/HH]`.
    Mixpanel,
    /// `mp_date=YYYY-MM-DD[/mp_hour=HH]`.
    Hive,
}

/// What happens to windows that already exist in the output root (C2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Replace the windows this run produces.
    Replace,
    /// Add new part files after the existing ones.
    Append,
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Snappy (the default).
    Snappy,
    /// Zstandard at its default level.
    Zstd,
    /// LZ4 (raw).
    Lz4,
    /// Gzip.
    Gzip,
    /// Uncompressed.
    None,
}

/// What a run does when `where` raises a runtime error on an event (where-language §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnWhereError {
    /// Stop the run, naming the event's input, line and `$insert_id`; nothing is committed.
    Fail,
    /// Drop the event (counted as filtered and as a `where` error) and go on.
    Skip,
}

/// An option, as every surface names it. The library reports a bad value by its field;
/// the CLI shows it as its flag (`--tz`), an HTTP API as its JSON name (`tz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The inputs of a conversion.
    Input,
    /// [`RunOptions::out`].
    Out,
    /// [`RunOptions::where_expr`].
    Where,
    /// [`RunOptions::tz`].
    Tz,
    /// [`RunOptions::prefix`].
    Prefix,
    /// [`RunOptions::project_id`].
    ProjectId,
    /// [`RunOptions::threads`].
    Threads,
    /// [`RunOptions::memory_limit`].
    MemoryLimit,
    /// [`RunOptions::row_group_rows`].
    RowGroupRows,
    /// [`RunOptions::block_bytes`].
    BlockBytes,
    /// An export's first day.
    From,
    /// An export's last day.
    To,
    /// Days per export request.
    WindowDays,
    /// Export requests in flight at once.
    Concurrency,
    /// Attempts per export window.
    MaxAttempts,
    /// Export request limits.
    Pace,
    /// The export API's base URL.
    BaseUrl,
    /// A file of export credentials.
    CredentialsFile,
    /// The address a server listens on.
    Listen,
}

impl Field {
    /// The field's name in JSON bodies and configuration files.
    pub fn json_name(self) -> &'static str {
        match self {
            Field::Input => "inputs",
            Field::Out => "out",
            Field::Where => "where",
            Field::Tz => "tz",
            Field::Prefix => "prefix",
            Field::ProjectId => "project_id",
            Field::Threads => "threads",
            Field::MemoryLimit => "memory_limit",
            Field::RowGroupRows => "row_group_rows",
            Field::BlockBytes => "block_bytes",
            Field::From => "from_date",
            Field::To => "to_date",
            Field::WindowDays => "window_days",
            Field::Concurrency => "concurrency",
            Field::MaxAttempts => "max_attempts",
            Field::Pace => "pace",
            Field::BaseUrl => "base_url",
            Field::CredentialsFile => "credentials_file",
            Field::Listen => "listen",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json_name())
    }
}

/// Everything that decides what a run writes. Built by [`crate::Converter`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Schema mode.
    pub schema: SchemaMode,
    /// Output format (ignored for raw, which is always gzip JSONL).
    pub format: Format,
    /// F1 whitelist; empty means all events.
    pub events: Vec<String>,
    /// F2 `where` expression; `None` (or empty) means no filter.
    pub where_expr: Option<String>,
    /// What a `where` runtime error does.
    pub on_where_error: OnWhereError,
    /// Window size.
    pub partition: Partition,
    /// IANA time zone name for windows.
    pub tz: String,
    /// Folder layout.
    pub layout: Layout,
    /// Destination folder.
    pub out: PathBuf,
    /// Optional prefix folder under `out`.
    pub prefix: Option<String>,
    /// Optional project id folder under the prefix.
    pub project_id: Option<u64>,
    /// Replace or append.
    pub mode: WriteMode,
    /// Parquet compression.
    pub compression: Compression,
    /// Worker threads for parse/shape/encode (0 = number of cores).
    pub threads: usize,
    /// Memory budget in bytes for buffered rows and blocks in flight.
    pub memory_limit: u64,
    /// JSON output writes `time` in milliseconds instead of seconds.
    pub time_in_ms: bool,
    /// Rows per Parquet row group (and per JSON gzip member).
    pub row_group_rows: usize,
    /// Target size of one framed block of lines.
    pub block_bytes: usize,
    /// Longest accepted line; longer lines are rejected.
    pub max_line_bytes: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            schema: SchemaMode::Monoschema,
            format: Format::Parquet,
            events: Vec::new(),
            where_expr: None,
            on_where_error: OnWhereError::Fail,
            partition: Partition::Daily,
            tz: "UTC".to_string(),
            layout: Layout::Mixpanel,
            out: PathBuf::from("out"),
            prefix: None,
            project_id: None,
            mode: WriteMode::Replace,
            compression: Compression::Snappy,
            threads: 0,
            memory_limit: 1 << 30,
            time_in_ms: false,
            row_group_rows: 122_880,
            block_bytes: 4 << 20,
            max_line_bytes: 64 << 20,
        }
    }
}

/// Options that passed [`RunOptions::validate`], with what checking them produced.
#[derive(Debug, Clone)]
pub struct ValidOptions {
    /// The windows of the options' time zone and partition.
    pub windowing: Windowing,
    /// The event whitelist and the compiled `where` (F1–F3).
    pub filter: EventFilter,
    /// Worker threads, `threads` resolved (0 means one per core).
    pub threads: usize,
}

impl RunOptions {
    /// Checks every option once, for every command and the library alike, and compiles
    /// what the run needs (time zone, `where`). An error names the [`Field`] at fault.
    pub fn validate(&self) -> Result<ValidOptions> {
        if self.memory_limit < 64 << 20 {
            return Err(Error::config(Field::MemoryLimit, "must be at least 64MiB"));
        }
        if self.row_group_rows == 0 || self.row_group_rows > u32::MAX as usize / 2 {
            return Err(Error::config(
                Field::RowGroupRows,
                "must be between 1 and 2^31",
            ));
        }
        if self.block_bytes == 0 || self.block_bytes > 1 << 30 {
            return Err(Error::config(
                Field::BlockBytes,
                "must be between 1 byte and 1GiB",
            ));
        }
        if self.threads > 256 {
            return Err(Error::config(Field::Threads, "must be at most 256"));
        }
        if let Some(p) = &self.prefix {
            if p.is_empty() || p.split('/').any(|s| s == ".." || s == ".") {
                return Err(Error::config(
                    Field::Prefix,
                    format!("{p:?} is not a plain relative folder"),
                ));
            }
        }
        let windowing = Windowing::new(&self.tz, self.partition)?;
        let threads = if self.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.threads
        };
        Ok(ValidOptions {
            windowing,
            filter: self.filter()?,
            threads,
        })
    }

    /// The run's filter: the event whitelist and the compiled `where` (F1–F3). An empty
    /// `where` means no filter (where-language §2.5).
    fn filter(&self) -> Result<EventFilter> {
        let filter = EventFilter::new(&self.events);
        let Some(expr) = self.where_expr.as_deref().filter(|e| !e.is_empty()) else {
            return Ok(filter);
        };
        let ctx =
            tidewater_where::Context::new(&self.tz).map_err(|m| Error::config(Field::Tz, m))?;
        let program = tidewater_where::compile(expr, ctx)
            .map_err(|e| Error::config(Field::Where, e.to_string()))?;
        Ok(filter.with_where(program))
    }

    /// The output root: `out[/prefix][/project_id]`.
    pub fn root(&self) -> PathBuf {
        let mut root = self.out.clone();
        if let Some(p) = &self.prefix {
            root.push(p);
        }
        if let Some(id) = self.project_id {
            root.push(id.to_string());
        }
        root
    }
}
