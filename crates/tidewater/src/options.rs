//! Run options shared by the library builder and the CLI.

use std::path::PathBuf;

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

/// What the input lines are (export-api §5): events, or user profiles, which become
/// the one table `mp_people_data`, a full snapshot replaced by each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// Event lines of the export API.
    #[default]
    Events,
    /// Profiles of the Engage API, one `{"$distinct_id": …, "$properties": {…}}` per line.
    People,
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

/// Everything that decides what a run writes. Built by [`crate::Converter`].
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What the input lines are.
    pub data_source: DataSource,
    /// Schema mode (people are always [`SchemaMode::Monoschema`]).
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
    /// JSON output writes list and object values as their compact JSON text (a JSON
    /// string, as Parquet holds them) instead of native JSON (T3), so that readers that
    /// need one type per column (pyarrow's JSON reader) read every file.
    pub nested_as_text: bool,
    /// Rows per Parquet row group (and per JSON gzip member).
    pub row_group_rows: usize,
    /// Target size of one framed block of lines.
    pub block_bytes: usize,
    /// Longest accepted line; longer lines are rejected.
    pub max_line_bytes: usize,
    /// A ready object store to write to instead of `out` (a library caller's); an
    /// `out` that is a URL (`s3://…`) names one too.
    pub object_store: Option<crate::store::ObjectTarget>,
    /// How long a run's lock on an object-store output lasts unless renewed: after a
    /// crash, the next run can take the output over once this has passed.
    pub lock_lease: std::time::Duration,
    /// Retries of one object-store request (timeouts, 5xx, throttling) before the run
    /// fails.
    pub store_retries: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            data_source: DataSource::Events,
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
            nested_as_text: false,
            row_group_rows: 122_880,
            block_bytes: 4 << 20,
            max_line_bytes: 64 << 20,
            object_store: None,
            lock_lease: std::time::Duration::from_secs(60),
            store_retries: crate::store::object::DEFAULT_RETRIES,
        }
    }
}

impl RunOptions {
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
