//! Options shared by `convert`, `export` and `bench`, as the user types them, and their
//! translation into the library's [`RunOptions`].

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tidewater::{
    Compression, DataSource, Format, Layout, OnWhereError, Partition, RunOptions, SchemaMode,
    WriteMode,
};

/// Options shared by convert, export and bench.
#[derive(Args, Clone)]
pub(crate) struct OutputArgs {
    /// What the input is: events, or user profiles (Engage API results, one
    /// {"$distinct_id": …, "$properties": {…}} per line), which become the one table
    /// mp_people_data, a snapshot that each run replaces.
    #[arg(long, value_enum, default_value_t = DataSourceArg::Events)]
    pub(crate) data_source: DataSourceArg,
    /// raw (lines as they are), monoschema (one table) or multischema (one table per event).
    #[arg(long, value_enum, default_value_t = SchemaArg::Monoschema)]
    schema: SchemaArg,
    /// Data file format (raw output is always gzip JSONL).
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    format: FormatArg,
    /// Keep only this event name (exact, case-sensitive); repeat for several.
    #[arg(long = "events", value_name = "NAME")]
    pub(crate) events: Vec<String>,
    /// Keep only events for which this Mixpanel `where` expression is true, e.g.
    /// 'properties["$os"] == "Linux"' (see `tidewater where explain`).
    #[arg(long = "where", value_name = "EXPR", allow_hyphen_values = true)]
    where_expr: Option<String>,
    /// What a `where` runtime error on an event does: fail the run (naming the input,
    /// line and $insert_id) or skip the event.
    #[arg(long, value_enum, default_value_t = OnWhereErrorArg::Fail)]
    on_where_error: OnWhereErrorArg,
    /// Window size.
    #[arg(long, value_enum, default_value_t = PartitionArg::Daily)]
    partition: PartitionArg,
    /// Time zone of windows (IANA name).
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    pub(crate) tz: String,
    /// Folder layout: YYYY/MM/DD (mixpanel) or mp_date=YYYY-MM-DD (hive).
    #[arg(long, value_enum, default_value_t = LayoutArg::Mixpanel)]
    layout: LayoutArg,
    /// Folder below --out.
    #[arg(long, value_name = "P")]
    prefix: Option<String>,
    /// Project id folder below the prefix.
    #[arg(long, value_name = "N")]
    project_id: Option<u64>,
    /// replace: windows this run produces replace old ones; append: add part files.
    #[arg(long, value_enum, default_value_t = ModeArg::Replace)]
    mode: ModeArg,
    /// Parquet compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Snappy)]
    compression: CompressionArg,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Memory budget, e.g. 512MiB or 2GiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size, value_name = "SIZE")]
    memory_limit: u64,
    /// JSON output writes `time` in milliseconds.
    #[arg(long)]
    time_in_ms: bool,
    /// JSON output writes lists and objects as their JSON text (a string, as Parquet
    /// holds them), for readers that need one type per column (pyarrow).
    #[arg(long)]
    nested_as_text: bool,
    /// Rows per Parquet row group (and per gzip member of JSON output).
    #[arg(long, default_value_t = 122_880, value_name = "N")]
    row_group_rows: usize,
    /// Size of the blocks of lines handed to workers (output does not depend on it).
    #[arg(long, default_value = "4MiB", value_parser = parse_size, value_name = "SIZE")]
    block_size: u64,
    /// Object-store output: seconds the run's lease on the output lasts unless
    /// renewed; after a crash the next run takes the output over once it has passed.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(3..))]
    lock_lease: u64,
    /// Object-store output: retries of one request (timeouts, 5xx, throttling, with
    /// exponential backoff) before the run fails.
    #[arg(long, default_value_t = 10, value_name = "N")]
    store_retries: usize,
    /// Print the run summary as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress or summary on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DataSourceArg {
    Events,
    People,
}
#[derive(Clone, Copy, ValueEnum)]
enum SchemaArg {
    Raw,
    Monoschema,
    Multischema,
}
#[derive(Clone, Copy, ValueEnum)]
enum OnWhereErrorArg {
    Fail,
    Skip,
}
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Parquet,
    Json,
}
#[derive(Clone, Copy, ValueEnum)]
enum PartitionArg {
    Daily,
    Hourly,
}
#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Mixpanel,
    Hive,
}
#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Replace,
    Append,
}
#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    Snappy,
    Zstd,
    Lz4,
    Gzip,
    None,
}

/// Parses `1GiB`, `512MiB`, `64M`, `1000000` into bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; use e.g. 512MiB or 2GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown size unit {u:?}; use KiB, MiB or GiB")),
    };
    Ok((n * mult as f64) as u64)
}

impl OutputArgs {
    pub(crate) fn to_options(&self, out: PathBuf) -> RunOptions {
        RunOptions {
            data_source: match self.data_source {
                DataSourceArg::Events => DataSource::Events,
                DataSourceArg::People => DataSource::People,
            },
            schema: match self.schema {
                SchemaArg::Raw => SchemaMode::Raw,
                SchemaArg::Monoschema => SchemaMode::Monoschema,
                SchemaArg::Multischema => SchemaMode::Multischema,
            },
            format: match self.format {
                FormatArg::Parquet => Format::Parquet,
                FormatArg::Json => Format::Json,
            },
            events: self.events.clone(),
            where_expr: self.where_expr.clone(),
            on_where_error: match self.on_where_error {
                OnWhereErrorArg::Fail => OnWhereError::Fail,
                OnWhereErrorArg::Skip => OnWhereError::Skip,
            },
            partition: match self.partition {
                PartitionArg::Daily => Partition::Daily,
                PartitionArg::Hourly => Partition::Hourly,
            },
            tz: self.tz.clone(),
            layout: match self.layout {
                LayoutArg::Mixpanel => Layout::Mixpanel,
                LayoutArg::Hive => Layout::Hive,
            },
            out,
            prefix: self.prefix.clone(),
            project_id: self.project_id,
            mode: match self.mode {
                ModeArg::Replace => WriteMode::Replace,
                ModeArg::Append => WriteMode::Append,
            },
            compression: match self.compression {
                CompressionArg::Snappy => Compression::Snappy,
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::None => Compression::None,
            },
            threads: self.threads.unwrap_or(0),
            memory_limit: self.memory_limit,
            time_in_ms: self.time_in_ms,
            nested_as_text: self.nested_as_text,
            row_group_rows: self.row_group_rows,
            block_bytes: self.block_size as usize,
            lock_lease: std::time::Duration::from_secs(self.lock_lease),
            store_retries: self.store_retries,
            ..RunOptions::default()
        }
    }
}
