//! The conversion builder: what ETL code and the CLI configure before a run.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;

use super::driver::execute_plan;
use super::plan::{Destination, OutputRoot, Plan};
use super::pull::{BatchStream, Batches};
use super::reader::LocalFeed;
use super::Cancel;
use crate::error::{Error, Result};
use crate::field::Field;
use crate::input::source::{self, Input};
use crate::options::{
    Compression, DataSource, Format, Layout, Partition, RunOptions, SchemaMode, WriteMode,
};
use crate::summary::{Progress, RunSummary};
use crate::validate::ValidOptions;
use crate::window::WindowKey;

/// A batch of rows of one table in one window, for callers that do their own writing.
///
/// How schemas evolve: a table's columns are created in first-seen order and never
/// renamed, retyped or removed (output-format T4, T6). `table_schema` is every column
/// the table has when the batch is delivered; the next batch's `table_schema` is the
/// same or the same with columns appended. `batch` holds the fixed columns and those
/// property columns with a value in it, in the order of `table_schema`, each with the
/// type it has there: a caller that wants every batch in one schema fills the missing
/// columns with nulls (arrow's `new_null_array`).
#[derive(Debug, Clone)]
pub struct TableBatch {
    /// Final table name (`mp_master_event` in monoschema).
    pub table: String,
    /// Source event of a multischema table.
    pub event: Option<String>,
    /// The window.
    pub window: WindowKey,
    /// The table's columns so far, in column order.
    pub table_schema: arrow::datatypes::SchemaRef,
    /// The rows: fixed columns, then the property columns that have a value in this
    /// batch, in column order.
    pub batch: RecordBatch,
}

/// An input as the caller gave it: a path (a folder expands to its files), or an input
/// that needs no expanding.
#[derive(Debug, Clone)]
enum Given {
    Path(PathBuf),
    Input(Input),
}

/// Builds and runs a conversion from local event files.
///
/// ```no_run
/// use tidewater::{Converter, SchemaMode};
///
/// let summary = Converter::new("out")
///     .input("events.jsonl.gz")
///     .schema(SchemaMode::Multischema)
///     .events(["Sign Up", "Purchase"])
///     .tz("America/New_York")
///     .run()?;
/// println!("{} events in {} files", summary.events_kept, summary.files_written);
/// # Ok::<(), tidewater::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Converter {
    inputs: Vec<Given>,
    options: RunOptions,
    progress: Arc<Progress>,
    cancel: Cancel,
}

impl Converter {
    /// A conversion writing below `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Converter {
            inputs: Vec::new(),
            options: RunOptions {
                out: out.into(),
                ..Default::default()
            },
            progress: Arc::new(Progress::default()),
            cancel: Cancel::default(),
        }
    }

    /// Writes to a ready object store (below `target`'s prefix) instead of `out`. An
    /// `out` that is a URL (`s3://bucket/prefix`, `gs://`, `az://`, `file://`) needs
    /// no store: it is made from the URL and the environment.
    pub fn object_store(mut self, target: crate::ObjectTarget) -> Self {
        self.options.object_store = Some(target);
        self
    }

    /// Adds an input: a file (plain or gzip), a directory, or `-` for stdin.
    pub fn input(mut self, path: impl Into<PathBuf>) -> Self {
        self.inputs.push(Given::Path(path.into()));
        self
    }

    /// Adds several inputs.
    pub fn inputs<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.inputs
            .extend(paths.into_iter().map(|p| Given::Path(p.into())));
        self
    }

    /// Adds an input held in memory (plain or gzip JSONL), named `name` in messages
    /// and the rejects file.
    ///
    /// ```
    /// let lines = br#"{"event":"A","properties":{"time":1700000000,"x":1}}"#;
    /// let mut rows = 0;
    /// tidewater::Converter::new("unused")
    ///     .input_bytes("inline", &lines[..])
    ///     .run_batches(|b| {
    ///         rows += b.batch.num_rows();
    ///         Ok(())
    ///     })?;
    /// assert_eq!(rows, 1);
    /// # Ok::<(), tidewater::Error>(())
    /// ```
    pub fn input_bytes(mut self, name: impl Into<String>, data: impl Into<bytes::Bytes>) -> Self {
        let input = Input::Memory {
            name: name.into(),
            data: data.into(),
        };
        self.inputs.push(Given::Input(input));
        self
    }

    /// Adds an input read from `reader` (plain or gzip JSONL: a socket, a decoder, a
    /// pipe), named `name` in messages and the rejects file. A reader is read once: a
    /// second run of this converter finds it taken and fails naming it.
    pub fn input_reader(
        mut self,
        name: impl Into<String>,
        reader: impl std::io::Read + Send + 'static,
    ) -> Self {
        let input = Input::Reader(source::SharedReader::new(name, reader));
        self.inputs.push(Given::Input(input));
        self
    }

    /// What the inputs are (default events). People profiles become the one table
    /// `mp_people_data`, a snapshot that replaces the previous one.
    pub fn data_source(mut self, source: DataSource) -> Self {
        self.options.data_source = source;
        self
    }

    /// Schema mode (default monoschema).
    pub fn schema(mut self, schema: SchemaMode) -> Self {
        self.options.schema = schema;
        self
    }

    /// Output format (default Parquet).
    pub fn format(mut self, format: Format) -> Self {
        self.options.format = format;
        self
    }

    /// Keeps only these event names (F1).
    pub fn events<S: Into<String>>(mut self, events: impl IntoIterator<Item = S>) -> Self {
        self.options.events = events.into_iter().map(Into::into).collect();
        self
    }

    /// Keeps only events for which the Mixpanel `where` expression is `true` (F2). It is
    /// compiled when the run starts: a bad expression fails the run with
    /// [`Error::Config`] before any input is read.
    pub fn where_expr(mut self, expr: impl Into<String>) -> Self {
        self.options.where_expr = Some(expr.into());
        self
    }

    /// What a `where` runtime error on an event does (default: fail the run).
    pub fn on_where_error(mut self, policy: crate::OnWhereError) -> Self {
        self.options.on_where_error = policy;
        self
    }

    /// Daily or hourly windows.
    pub fn partition(mut self, partition: Partition) -> Self {
        self.options.partition = partition;
        self
    }

    /// Time zone of windows (IANA name, default `UTC`).
    pub fn tz(mut self, tz: impl Into<String>) -> Self {
        self.options.tz = tz.into();
        self
    }

    /// Folder layout.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.options.layout = layout;
        self
    }

    /// Prefix folder below the destination.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.options.prefix = Some(prefix.into());
        self
    }

    /// Project id folder below the prefix.
    pub fn project_id(mut self, id: u64) -> Self {
        self.options.project_id = Some(id);
        self
    }

    /// Replace (default) or append.
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.options.mode = mode;
        self
    }

    /// Parquet compression (default snappy).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.options.compression = compression;
        self
    }

    /// Worker threads (0 = one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.options.threads = threads;
        self
    }

    /// Memory budget in bytes (default 1 GiB).
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.options.memory_limit = bytes;
        self
    }

    /// JSON output writes `time` in milliseconds.
    pub fn time_in_ms(mut self, yes: bool) -> Self {
        self.options.time_in_ms = yes;
        self
    }

    /// JSON output writes lists and objects as their JSON text (see
    /// [`RunOptions::nested_as_text`]).
    pub fn nested_as_text(mut self, yes: bool) -> Self {
        self.options.nested_as_text = yes;
        self
    }

    /// Rows per row group (default 122,880).
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.options.row_group_rows = rows;
        self
    }

    /// Target size of framed blocks (default 4 MiB). Output does not depend on it.
    pub fn block_bytes(mut self, bytes: usize) -> Self {
        self.options.block_bytes = bytes;
        self
    }

    /// Replaces all options at once.
    pub fn with_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The options as configured.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// Live counters, for a progress display.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Runs the conversion and writes files. Incomplete inputs (IN5) are reported in the
    /// summary (`incomplete_inputs`, `windows_not_committed`); `summary.check()` turns
    /// them into an error.
    pub fn run(&self) -> Result<RunSummary> {
        let (valid, plan) = self.plan()?;
        let root = OutputRoot::prepare(&self.options)?;
        self.execute(valid, plan, Destination::Files(root))
    }

    /// Runs the conversion and hands each row group to `sink` as an Arrow batch, in
    /// input order, instead of writing data files. Nothing is written to disk except
    /// the rejects file. Batches of an input that later turns out incomplete (IN5) have
    /// already been delivered: check `windows_not_committed` in the summary.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let input = dir.path().join("in.jsonl");
    /// # std::fs::write(&input, r#"{"event":"A","properties":{"time":1700000000,"x":1}}"#)?;
    /// let mut rows = 0;
    /// tidewater::Converter::new(dir.path().join("out"))
    ///     .input(&input)
    ///     .run_batches(|b| {
    ///         rows += b.batch.num_rows();
    ///         Ok(())
    ///     })?;
    /// assert_eq!(rows, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_batches(
        &self,
        mut sink: impl FnMut(TableBatch) -> Result<()>,
    ) -> Result<RunSummary> {
        let (valid, plan) = self.plan()?;
        self.execute(valid, plan, Destination::Batches(&mut sink))
    }

    /// Runs the conversion on a thread of its own and returns its batches as an
    /// iterator, in the order [`Converter::run_batches`] gives them. The run goes at
    /// most `ahead` batches ahead of the caller and waits while the caller is busy;
    /// dropping the iterator cancels the run and waits until it has stopped. A run that
    /// fails gives its error as the last item.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let input = dir.path().join("in.jsonl");
    /// # std::fs::write(&input, r#"{"event":"A","properties":{"time":1700000000,"x":1}}"#)?;
    /// let mut batches = tidewater::Converter::new(dir.path().join("out"))
    ///     .input(&input)
    ///     .batches(4)?;
    /// let mut rows = 0;
    /// for batch in batches.by_ref() {
    ///     let batch = batch?;
    ///     assert_eq!(batch.batch.schema().field(0).name(), "time");
    ///     rows += batch.batch.num_rows();
    /// }
    /// assert_eq!(rows, 1);
    /// assert_eq!(batches.summary().unwrap().events_kept, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn batches(self, ahead: usize) -> Result<Batches> {
        Batches::start(self, ahead)
    }

    /// [`Converter::batches`] as a `futures::Stream`, for async callers: the run stays
    /// on a thread of its own, so the executor is never blocked; dropping the stream
    /// cancels the run (it stops at its next batch or block).
    pub fn batch_stream(self, ahead: usize) -> Result<BatchStream> {
        BatchStream::start(self, ahead)
    }

    /// Cancels the run from another thread: `cancel.cancel()` makes the run stop
    /// reading, commit nothing further and return [`Error::Cancelled`] promptly.
    /// Windows committed before stay committed.
    pub fn cancel_token(&self) -> Cancel {
        self.cancel.clone()
    }

    /// Uses `cancel` as the run's cancel token (for a caller that cancels several runs
    /// at once).
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Checks the options and inputs; the plan of reading the inputs.
    fn plan(&self) -> Result<(ValidOptions, Plan<'static>)> {
        if self.inputs.is_empty() {
            return Err(Error::config(
                Field::Input,
                "no input given; pass files, directories or - for stdin",
            ));
        }
        let mut inputs = Vec::new();
        for given in &self.inputs {
            match given {
                Given::Path(p) => inputs.extend(source::expand_inputs(std::slice::from_ref(p))?),
                Given::Input(input) => inputs.push(input.clone()),
            }
        }
        let valid = self.options.validate()?;
        let plan = Plan {
            names: inputs.iter().map(Input::name).collect(),
            total_bytes: inputs.iter().filter_map(Input::size).sum(),
            feed: Box::new(LocalFeed(inputs)),
            owned: None,
        };
        Ok((valid, plan))
    }

    fn execute(
        &self,
        valid: ValidOptions,
        plan: Plan<'_>,
        destination: Destination<'_>,
    ) -> Result<RunSummary> {
        execute_plan(
            &self.options,
            valid,
            plan,
            destination,
            &self.progress,
            &self.cancel,
        )
    }
}
