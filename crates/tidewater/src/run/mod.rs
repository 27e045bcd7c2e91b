//! The conversion pipeline and its builder.
//!
//! ```text
//! reader thread ──blocks──▶ rayon: parse → filter → shape ──▶ merge (in order) ──row groups──▶ rayon: encode
//!   (open, gunzip, frame)      one task per block                 this thread                    spill files
//!                                                                     │ at the end
//!                                                                     ▼
//!                                                 finish files (rayon) → mapping file → commit windows
//! ```
//!
//! Every queue is bounded: the reader blocks when too many blocks are in flight, and
//! merge waits for encoders when too many row groups are being encoded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use crossbeam_channel::{bounded, unbounded, Receiver};
use rayon::prelude::*;

use crate::block::filter::EventFilter;
use crate::block::shape::{ShapedBlock, Shaper};
use crate::error::{Error, Result};
use crate::input::frame::{frame_input, Block, FrameConfig, InputEnd};
use crate::input::source::{self, Input};
use crate::merge::{BufferLimits, Merger, RowGroup};
use crate::options::{Compression, Format, Layout, Partition, RunOptions, SchemaMode, WriteMode};
use crate::schema::registry::{fixed_columns, Registry};
use crate::store::{RejectsWriter, Store};
use crate::summary::{peak_rss_bytes, IncompleteInput, Progress, RunSummary};
use crate::window::{WindowKey, Windowing};
use crate::write::{Encoder, Spill};
use tidewater_where as wherelang;

/// A batch of rows of one table in one window, for callers that do their own writing.
#[derive(Debug, Clone)]
pub struct TableBatch {
    /// Final table name (`mp_master_event` in monoschema).
    pub table: String,
    /// Source event of a multischema table.
    pub event: Option<String>,
    /// The window.
    pub window: WindowKey,
    /// The rows: fixed columns, then the property columns that have a value in this
    /// batch, in column order.
    pub batch: RecordBatch,
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
    inputs: Vec<PathBuf>,
    options: RunOptions,
    progress: Arc<Progress>,
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
        }
    }

    /// Adds an input: a file (plain or gzip), a directory, or `-` for stdin.
    pub fn input(mut self, path: impl Into<PathBuf>) -> Self {
        self.inputs.push(path.into());
        self
    }

    /// Adds several inputs.
    pub fn inputs<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.inputs.extend(paths.into_iter().map(Into::into));
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

    /// Shares live counters with another run's display.
    pub(crate) fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Live counters, for a progress display.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Runs the conversion and writes files. Incomplete inputs (IN5) are reported in the
    /// summary (`incomplete_inputs`, `windows_not_committed`); `summary.check()` turns
    /// them into an error.
    pub fn run(&self) -> Result<RunSummary> {
        self.execute(Destination::Files)
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
        self.execute(Destination::Batches(&mut sink))
    }

    fn validate(&self) -> Result<()> {
        let o = &self.options;
        if o.memory_limit < 64 << 20 {
            return Err(Error::config("--memory-limit", "must be at least 64MiB"));
        }
        if o.row_group_rows == 0 || o.row_group_rows > u32::MAX as usize / 2 {
            return Err(Error::config(
                "--row-group-rows",
                "must be between 1 and 2^31",
            ));
        }
        if o.block_bytes == 0 || o.block_bytes > 1 << 30 {
            return Err(Error::config(
                "--block-size",
                "must be between 1 byte and 1GiB",
            ));
        }
        if o.threads > 256 {
            return Err(Error::config("--threads", "must be at most 256"));
        }
        if let Some(p) = &o.prefix {
            if p.is_empty() || p.split('/').any(|s| s == ".." || s == ".") {
                return Err(Error::config(
                    "--prefix",
                    format!("{p:?} is not a plain relative folder"),
                ));
            }
        }
        Ok(())
    }

    fn execute(&self, destination: Destination<'_>) -> Result<RunSummary> {
        if self.inputs.is_empty() {
            return Err(Error::config(
                "INPUT",
                "no input given; pass files, directories or - for stdin",
            ));
        }
        let inputs = source::expand_inputs(&self.inputs)?;
        let plan = Plan {
            names: inputs.iter().map(Input::name).collect(),
            total_bytes: inputs.iter().filter_map(Input::size).sum(),
            feed: Box::new(LocalFeed(inputs)),
            owned: None,
        };
        self.execute_plan(plan, destination)
    }

    /// Runs the pipeline over the inputs of `plan`.
    pub(crate) fn execute_plan(
        &self,
        mut plan: Plan<'_>,
        destination: Destination<'_>,
    ) -> Result<RunSummary> {
        let started = Instant::now();
        self.validate()?;
        let o = &self.options;
        let windowing = Windowing::new(&o.tz, o.partition)?;
        self.progress
            .input_total
            .store(plan.total_bytes, Ordering::Relaxed);
        let threads = if o.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            o.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tidewater-worker-{i}"))
            .build()
            .map_err(|e| Error::config("--threads", e.to_string()))?;
        let root = o.root();
        let encoder = Encoder::for_options(o);
        let raw = o.schema == SchemaMode::Raw;
        let store = match destination {
            Destination::Files => Some(Store::open(
                &root,
                o.layout,
                o.mode,
                raw,
                encoder.extension(),
            )?),
            Destination::Batches(_) => None,
        };
        let registry = match (&destination, o.schema) {
            (Destination::Files, SchemaMode::Monoschema | SchemaMode::Multischema) => {
                Registry::load(&root, o.schema)?
            }
            _ => Registry::new(o.schema),
        };
        let input_names = plan.names.clone();
        let mut rejects = RejectsWriter::new(&root, input_names.clone());
        let filter = Arc::new(build_filter(o)?);
        let on_where_error = o.on_where_error;
        let fixed = if raw {
            0
        } else {
            fixed_columns(o.schema == SchemaMode::Monoschema)
        };
        let owned_ranges = plan.owned.as_ref().map(|w| w.ranges.clone());

        // Memory: about a third of the budget for buffered rows (counted as input bytes),
        // the rest for blocks in flight, row groups being encoded and their encoders.
        // A row group holds at most 1 GiB of input, so that no text column of it can
        // reach the 2 GiB that Arrow's 32-bit string offsets address.
        let limits = BufferLimits {
            row_group_rows: o.row_group_rows as u32,
            row_group_bytes: (o.memory_limit / 8).clamp(1 << 20, 1 << 30),
            total_bytes: o.memory_limit * 3 / 10,
        };
        let mut merger = Merger::new(registry, limits);
        let max_in_flight =
            (threads * 2 + 2).min((o.memory_limit as usize / 8 / o.block_bytes.max(1)).max(2));

        let reader_busy = Arc::new(AtomicU64::new(0));
        let (block_tx, block_rx) = bounded::<ReaderItem>(max_in_flight);
        let frame_config = FrameConfig {
            block_bytes: o.block_bytes,
            max_line_bytes: o.max_line_bytes,
        };
        let reader = {
            let count = input_names.len();
            let mut feed = std::mem::replace(&mut plan.feed, Box::new(LocalFeed(Vec::new())));
            let progress = self.progress.clone();
            let busy = reader_busy.clone();
            std::thread::Builder::new()
                .name("tidewater-reader".into())
                .spawn(move || {
                    read_inputs(count, &mut *feed, frame_config, &block_tx, &progress, &busy)
                })
                .map_err(|e| {
                    Error::config("--threads", format!("cannot start the reader thread: {e}"))
                })?
        };

        let (shaped_tx, shaped_rx) = unbounded::<(u64, ShapedBlock, Duration)>();
        let (encoded_tx, encoded_rx) = unbounded::<EncodedGroup>();
        let mut sink = Sink {
            destination,
            pool: &pool,
            encoder: &encoder,
            store: store.as_ref(),
            fixed,
            encoded_tx,
            encoded_rx,
            encoding: 0,
            max_encoding: threads + 1,
            spills: BTreeMap::new(),
            encode_seconds: 0.0,
            failure: None,
        };
        let finisher = store.as_ref().map(|store| Finisher {
            store,
            encoder: &encoder,
            pool: &pool,
            fixed,
            raw,
            root: &root,
            mode: o.mode,
        });
        let mut st = RunState::default();
        let mut next_seq = 0u64;
        let mut next_merge = 0u64;
        let mut in_flight = 0usize;
        let mut ordered: BTreeMap<u64, Ordered> = BTreeMap::new();
        let mut reader_done = false;
        let schema = o.schema;

        // Encoded row groups are collected while waiting for anything else, so that a
        // pending window commit learns when its last row group is done.
        let encoded_rx = sink.encoded_rx.clone();
        // An input whose windows are being committed: merging waits for the commit (so
        // the registry, mapping file and rejects are exactly those of the inputs up to
        // it), while the workers go on shaping the blocks that follow.
        let mut pending: Option<PendingCommit> = None;

        while sink.failure.is_none() {
            if pending.is_some() && sink.encoding == 0 {
                let commit = pending.take().expect("checked");
                let owned = plan
                    .owned
                    .as_mut()
                    .expect("only inputs that own windows commit");
                let finisher = finisher.as_ref().expect("only file output commits");
                if let Err(e) = st.finish_commit(
                    commit,
                    owned,
                    finisher,
                    &mut merger,
                    &mut sink,
                    &mut rejects,
                ) {
                    sink.failure.get_or_insert(e);
                    break;
                }
            }
            let merge_start = Instant::now();
            while pending.is_none() {
                let Some(item) = ordered.remove(&next_merge) else {
                    break;
                };
                next_merge += 1;
                let result = match item {
                    Ordered::End(end) => {
                        let input = end.input;
                        st.end_input(end, &input_names);
                        match (&mut plan.owned, &finisher) {
                            // Each input owns its windows: commit them now (XC1).
                            (Some(owned), Some(_)) => st
                                .begin_commit(input, owned, &mut merger, &mut sink, &windowing)
                                .map(|p| pending = p),
                            _ => Ok(()),
                        }
                    }
                    Ordered::Shaped(block) => st.merge_block(
                        block,
                        &mut merger,
                        &mut rejects,
                        &self.progress,
                        &input_names,
                        &mut |g| sink.flush(g),
                    ),
                };
                if let Err(e) = result {
                    sink.failure.get_or_insert(e);
                    break;
                }
            }
            st.stages.merge += merge_start.elapsed().as_secs_f64();
            if sink.failure.is_some() || (pending.is_some() && sink.encoding == 0) {
                continue;
            }

            let mut shaped = None;
            // Shaped blocks waiting to be merged count against the limit too: they pile up
            // while a commit is pending.
            if !reader_done && in_flight + ordered.len() < max_in_flight {
                // Take the next block, and merge finished ones while waiting for it.
                crossbeam_channel::select! {
                    recv(block_rx) -> item => match item {
                        Ok(ReaderItem::Block(block)) => {
                            let seq = next_seq;
                            next_seq += 1;
                            in_flight += 1;
                            let tx = shaped_tx.clone();
                            let filter = filter.clone();
                            let windowing = windowing.clone();
                            let range = owned_ranges.as_ref().map(|r| r[block.input]);
                            pool.spawn(move || {
                                let t = Instant::now();
                                let shaped = SHAPER.with(|s| s.borrow_mut().shape(&block, schema, &filter, on_where_error, &windowing, range));
                                let _ = tx.send((seq, shaped, t.elapsed()));
                            });
                        }
                        Ok(ReaderItem::End(end)) => {
                            ordered.insert(next_seq, Ordered::End(end));
                            next_seq += 1;
                        }
                        Ok(ReaderItem::Failed(e)) => sink.failure = Some(e),
                        Err(_) => reader_done = true,
                    },
                    recv(shaped_rx) -> r => shaped = r.ok(),
                    recv(encoded_rx) -> r => sink.record(r.expect("the sender lives in sink")),
                }
            } else if in_flight > 0 {
                crossbeam_channel::select! {
                    recv(shaped_rx) -> r => shaped = r.ok(),
                    recv(encoded_rx) -> r => sink.record(r.expect("the sender lives in sink")),
                }
            } else if pending.is_some() {
                sink.record(encoded_rx.recv().expect("the sender lives in sink"));
            } else if reader_done {
                break;
            }
            if let Some((seq, block, took)) = shaped {
                in_flight -= 1;
                st.stages.parse_filter_shape += took.as_secs_f64();
                ordered.insert(seq, Ordered::Shaped(block));
            }
        }
        if sink.failure.is_none() {
            merger.flush_all(&mut |g| sink.flush(g));
        }
        sink.wait_all();
        drop(block_rx);
        let _ = reader.join();
        st.stages.read_decode_frame =
            Duration::from_nanos(reader_busy.load(Ordering::Relaxed)).as_secs_f64();
        st.stages.encode = sink.encode_seconds;
        if let Some(e) = sink.failure.take() {
            return Err(e);
        }

        // Windows holding an event of an incomplete input are not committed (IN5).
        let bad: BTreeSet<usize> = st.incomplete.iter().map(|(i, _)| *i).collect();
        let windows: BTreeSet<WindowKey> = merger.rows.keys().map(|(w, _)| *w).collect();
        let failed: BTreeSet<WindowKey> = windows
            .iter()
            .filter(|w| {
                st.window_inputs
                    .get(w)
                    .is_some_and(|ins| !ins.is_disjoint(&bad))
            })
            .copied()
            .collect();
        for ((_, t), rows) in &merger.rows {
            let name = if raw {
                "raw".to_string()
            } else {
                merger.registry.tables[*t as usize].name.clone()
            };
            *st.summary.rows_per_table.entry(name).or_default() += rows;
        }
        st.summary.windows_not_committed = failed.iter().map(|w| w.to_string()).collect();
        let to_commit: BTreeSet<WindowKey> = windows
            .difference(&failed)
            .filter(|w| !st.committed.contains(w))
            .copied()
            .collect();
        match &finisher {
            Some(finisher) => {
                let done = finisher.commit(
                    &to_commit,
                    &BTreeSet::new(),
                    &mut sink.spills,
                    &mut merger.registry,
                    &mut st.stages,
                )?;
                st.summary.files_written += done.files;
                st.summary.windows_committed += done.windows;
            }
            None => st.summary.windows_committed += to_commit.len() as u64,
        }
        if let Some(path) = rejects.commit()? {
            st.summary
                .rejects_file
                .get_or_insert(path.display().to_string());
        }
        st.summary.input_bytes_compressed = self.progress.input_bytes.load(Ordering::Relaxed);
        st.summary.seconds = started.elapsed().as_secs_f64();
        st.summary.stages = st.stages;
        st.summary.peak_rss_bytes = peak_rss_bytes();
        Ok(st.summary)
    }
}

/// The inputs of a run as the reader thread sees them.
pub(crate) struct Plan<'a> {
    /// Input names for messages and the rejects file, by input number.
    pub names: Vec<String>,
    /// Total size of the inputs where known, for progress.
    pub total_bytes: u64,
    /// Opens each input in turn.
    pub feed: Box<dyn Feed>,
    /// Export: each input owns a time range of windows, committed when it ends.
    pub owned: Option<OwnedWindows<'a>>,
}

/// Inputs that own their windows (an export response per requested window).
pub(crate) struct OwnedWindows<'a> {
    /// `[start, end)` in ms of each input's windows; events outside are rejected.
    pub ranges: Arc<Vec<(i64, i64)>>,
    /// Called when an input has ended and its windows were committed (or, when the
    /// input was incomplete, not committed).
    pub on_input_end: &'a mut (dyn FnMut(InputReport) -> Result<()> + 'a),
}

/// What became of one input of a run whose inputs own their windows.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InputReport {
    /// Input number.
    pub input: usize,
    /// Physical lines read.
    pub lines: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Events kept.
    pub events_kept: u64,
    /// Events filtered out.
    pub events_filtered: u64,
    /// Lines rejected.
    pub events_rejected: u64,
    /// Windows committed.
    pub windows_committed: u64,
    /// Data files written.
    pub files_written: u64,
    /// Why the input is incomplete (then nothing of it was committed).
    pub incomplete: Option<String>,
    /// The window folders committed (each now holds a `complete` marker).
    #[serde(skip)]
    pub committed_folders: Vec<PathBuf>,
}

/// Where the reader thread gets its inputs from.
pub(crate) trait Feed: Send {
    /// Opens input `i`, blocking until it can be read. `raw_bytes` counts the bytes
    /// read as stored.
    fn open(&mut self, i: usize, raw_bytes: &Arc<AtomicU64>) -> Result<Opened>;

    /// Input `i` was read to its end.
    fn close(&mut self, _i: usize) {}
}

/// An input ready to read, or the reason it cannot be had (treated as IN5).
pub(crate) enum Opened {
    Stream(Box<dyn std::io::Read + Send>),
    Unavailable(String),
}

/// The local inputs of `convert`.
struct LocalFeed(Vec<Input>);

impl Feed for LocalFeed {
    fn open(&mut self, i: usize, raw_bytes: &Arc<AtomicU64>) -> Result<Opened> {
        source::open(&self.0[i], raw_bytes.clone()).map(|o| Opened::Stream(o.reader))
    }
}

/// Turns encoded row groups into final files and commits windows (C1, C2).
struct Finisher<'a> {
    store: &'a Store,
    encoder: &'a Encoder,
    pool: &'a rayon::ThreadPool,
    fixed: usize,
    raw: bool,
    root: &'a std::path::Path,
    mode: WriteMode,
}

#[derive(Default)]
struct Committed {
    windows: u64,
    files: u64,
    folders: Vec<PathBuf>,
}

impl Finisher<'_> {
    /// Writes the final files of `windows` from their spills, saves the mapping file if
    /// it grew, then moves each window folder into place. In replace mode, tables without
    /// rows in a committed window, and every table in the windows of `empty`, lose their
    /// old folders there.
    fn commit(
        &self,
        windows: &BTreeSet<WindowKey>,
        empty: &BTreeSet<WindowKey>,
        spills: &mut BTreeMap<(WindowKey, u32), Vec<Option<Spill>>>,
        registry: &mut Registry,
        stages: &mut crate::summary::StageTimes,
    ) -> Result<Committed> {
        let raw = self.raw;
        let table_name = |t: u32| (!raw).then(|| registry.tables[t as usize].name.as_str());
        let finish_start = Instant::now();
        let jobs: Vec<_> = spills
            .iter()
            .filter(|((w, _), _)| windows.contains(w))
            .collect();
        self.pool.install(|| {
            jobs.par_iter().try_for_each(|((w, t), spills)| {
                let dir = self.store.make_staged_dir(table_name(*t), *w)?;
                let spills: Vec<Spill> = spills
                    .iter()
                    .map(|s| s.clone().expect("every dispatched row group was encoded"))
                    .collect();
                self.encoder.finish(
                    &spills,
                    &registry.tables[*t as usize].columns,
                    self.fixed,
                    &dir.join(self.store.part_name(0)),
                )
            })
        })?;
        stages.finish_files += finish_start.elapsed().as_secs_f64();
        if !raw && registry.changed() {
            registry.save(self.root)?;
            registry.mark_saved();
        }
        let commit_start = Instant::now();
        let mut done = Committed::default();
        let tables = if raw { 1 } else { registry.tables.len() as u32 };
        let table_name = |t: u32| (!raw).then(|| registry.tables[t as usize].name.as_str());
        for w in windows {
            for t in 0..tables {
                if spills.contains_key(&(*w, t)) {
                    // The finisher wrote one data file per staged folder.
                    self.store.commit(table_name(t), *w)?;
                    done.files += 1;
                    done.folders.push(self.store.final_dir(table_name(t), *w));
                } else if self.mode == WriteMode::Replace {
                    self.store.remove_window(table_name(t), *w)?;
                }
            }
            done.windows += 1;
        }
        if self.mode == WriteMode::Replace {
            for w in empty.difference(windows) {
                for t in 0..tables {
                    self.store.remove_window(table_name(t), *w)?;
                }
            }
        }
        spills.retain(|(w, _), _| !windows.contains(w));
        stages.commit += commit_start.elapsed().as_secs_f64();
        Ok(done)
    }
}

pub(crate) enum Destination<'a> {
    Files,
    Batches(&'a mut dyn FnMut(TableBatch) -> Result<()>),
}

enum ReaderItem {
    Block(Block),
    End(InputEnd),
    Failed(Error),
}

enum Ordered {
    Shaped(ShapedBlock),
    End(InputEnd),
}

struct EncodedGroup {
    key: (WindowKey, u32),
    index: u32,
    spill: Result<Spill>,
    took: Duration,
}

thread_local! {
    /// Per-worker parse buffers, reused across blocks.
    static SHAPER: std::cell::RefCell<Shaper> = std::cell::RefCell::new(Shaper::default());
}

/// Where full row groups go: encoders on the pool (files) or the caller's sink.
struct Sink<'a, 'd> {
    destination: Destination<'d>,
    pool: &'a rayon::ThreadPool,
    encoder: &'a Encoder,
    store: Option<&'a Store>,
    fixed: usize,
    encoded_tx: crossbeam_channel::Sender<EncodedGroup>,
    encoded_rx: Receiver<EncodedGroup>,
    encoding: usize,
    max_encoding: usize,
    spills: BTreeMap<(WindowKey, u32), Vec<Option<Spill>>>,
    encode_seconds: f64,
    failure: Option<Error>,
}

impl Sink<'_, '_> {
    fn flush(&mut self, group: RowGroup) {
        if self.failure.is_some() {
            return;
        }
        match &mut self.destination {
            Destination::Batches(sink) => {
                let batch = match crate::write::parquet::record_batch(&group, self.fixed) {
                    Ok(b) => b,
                    Err(e) => {
                        self.failure = Some(Error::Encode {
                            what: format!("batch of window {}", group.window),
                            message: e.to_string(),
                        });
                        return;
                    }
                };
                let table = TableBatch {
                    table: group.table_name,
                    event: group.event,
                    window: group.window,
                    batch,
                };
                if let Err(e) = sink(table) {
                    self.failure = Some(e);
                }
            }
            Destination::Files => {
                while self.encoding >= self.max_encoding {
                    let done = self.encoded_rx.recv().expect("the sender lives in self");
                    self.record(done);
                }
                let key = (group.window, group.table);
                let slots = self.spills.entry(key).or_default();
                if slots.len() <= group.index as usize {
                    slots.resize(group.index as usize + 1, None);
                }
                let path = self.store.expect("file output has a store").spill_path(
                    group.table,
                    group.window,
                    group.index,
                );
                let (encoder, fixed, tx) =
                    (self.encoder.clone(), self.fixed, self.encoded_tx.clone());
                self.encoding += 1;
                self.pool.spawn(move || {
                    let t = Instant::now();
                    let spill = encoder.encode(&group, fixed, &path);
                    let _ = tx.send(EncodedGroup {
                        key,
                        index: group.index,
                        spill,
                        took: t.elapsed(),
                    });
                });
            }
        }
    }

    fn record(&mut self, done: EncodedGroup) {
        self.encoding -= 1;
        self.encode_seconds += done.took.as_secs_f64();
        match done.spill {
            Ok(s) => {
                self.spills
                    .get_mut(&done.key)
                    .expect("slot reserved at dispatch")[done.index as usize] = Some(s)
            }
            Err(e) => {
                self.failure.get_or_insert(e);
            }
        }
    }

    fn wait_all(&mut self) {
        while self.encoding > 0 {
            let done = self.encoded_rx.recv().expect("the sender lives in self");
            self.record(done);
        }
    }
}

/// Counters and IN5 bookkeeping of a run.
#[derive(Default)]
struct RunState {
    summary: RunSummary,
    stages: crate::summary::StageTimes,
    window_inputs: BTreeMap<WindowKey, BTreeSet<usize>>,
    incomplete: Vec<(usize, String)>,
    /// Windows committed while the run went on (inputs that own their windows).
    committed: BTreeSet<WindowKey>,
    /// Per-input counts (inputs that own their windows).
    per_input: BTreeMap<usize, InputReport>,
}

impl RunState {
    fn end_input(&mut self, end: InputEnd, names: &[String]) {
        self.summary.lines_read += end.lines;
        self.summary.input_bytes_uncompressed += end.bytes;
        let report = self.per_input.entry(end.input).or_default();
        report.lines = end.lines;
        report.bytes = end.bytes;
        report.incomplete = end.incomplete.clone();
        if let Some(reason) = end.incomplete {
            self.summary.incomplete_inputs.push(IncompleteInput {
                input: names[end.input].clone(),
                reason: reason.clone(),
            });
            self.incomplete.push((end.input, reason));
        }
    }

    fn merge_block(
        &mut self,
        block: ShapedBlock,
        merger: &mut Merger,
        rejects: &mut RejectsWriter,
        progress: &Progress,
        input_names: &[String],
        flush: &mut impl FnMut(RowGroup),
    ) -> Result<()> {
        self.summary.events_kept += block.kept;
        self.summary.events_filtered += block.filtered;
        self.summary.events_rejected += block.rejects.len() as u64;
        self.summary.where_errors += block.where_errors;
        let report = self.per_input.entry(block.input).or_default();
        report.events_kept += block.kept;
        report.events_filtered += block.filtered;
        report.events_rejected += block.rejects.len() as u64;
        if let Some(f) = block.where_failure {
            return Err(Error::Where {
                input: input_names[block.input].clone(),
                line: f.line,
                insert_id: f.insert_id,
                message: f.message,
            });
        }
        progress.add(&progress.events, block.kept);
        progress.add(&progress.lines, block.lines);
        for r in &block.rejects {
            rejects.write(r)?;
        }
        for table in block.tables {
            for (w, _) in &table.parts {
                self.window_inputs
                    .entry(*w)
                    .or_default()
                    .insert(block.input);
            }
            merger.add(table, flush);
        }
        Ok(())
    }
}

/// An input's windows, flushed and waiting for their row groups to be encoded.
struct PendingCommit {
    report: InputReport,
    /// Windows the input has rows in.
    windows: BTreeSet<WindowKey>,
    /// Every window of the input's range (replace mode empties those without rows).
    all: BTreeSet<WindowKey>,
}

impl RunState {
    /// Starts committing the windows an input owns, once the input has ended: flushes
    /// the row groups of the windows it has rows in. Nothing is committed for an
    /// incomplete input: it is reported at once and `None` returned.
    fn begin_commit(
        &mut self,
        input: usize,
        owned: &mut OwnedWindows<'_>,
        merger: &mut Merger,
        sink: &mut Sink<'_, '_>,
        windowing: &Windowing,
    ) -> Result<Option<PendingCommit>> {
        let mut report = self.per_input.remove(&input).unwrap_or_default();
        report.input = input;
        if report.incomplete.is_some() {
            (owned.on_input_end)(report)?;
            return Ok(None);
        }
        let windows: BTreeSet<WindowKey> = self
            .window_inputs
            .iter()
            .filter(|(_, ins)| ins.contains(&input))
            .map(|(w, _)| *w)
            .collect();
        let (start, end) = owned.ranges[input];
        let mut all = BTreeSet::new();
        let mut walker = windowing.clone();
        let mut t = start;
        while t < end {
            let Some((w, next)) = walker.window_and_end(t) else {
                break;
            };
            all.insert(w);
            t = next.max(t + 1);
        }
        merger.flush_windows(&windows, &mut |g| sink.flush(g));
        Ok(Some(PendingCommit {
            report,
            windows,
            all,
        }))
    }

    /// Finishes a commit once every row group was encoded: writes the windows' files,
    /// moves them into place, commits the rejects and reports the input. Called only
    /// while no row group failed (the run loop stops on the first failure).
    fn finish_commit(
        &mut self,
        commit: PendingCommit,
        owned: &mut OwnedWindows<'_>,
        finisher: &Finisher<'_>,
        merger: &mut Merger,
        sink: &mut Sink<'_, '_>,
        rejects: &mut RejectsWriter,
    ) -> Result<()> {
        let PendingCommit {
            mut report,
            windows,
            all,
        } = commit;
        let done = finisher.commit(
            &windows,
            &all,
            &mut sink.spills,
            &mut merger.registry,
            &mut self.stages,
        )?;
        if let Some(path) = rejects.commit()? {
            self.summary
                .rejects_file
                .get_or_insert(path.display().to_string());
        }
        self.summary.files_written += done.files;
        self.summary.windows_committed += done.windows;
        report.windows_committed = done.windows;
        report.files_written = done.files;
        report.committed_folders = done.folders;
        self.committed.extend(windows);
        (owned.on_input_end)(report)
    }
}

/// The run's filter: the event whitelist and the compiled `where` (F1–F3). An empty
/// `where` means no filter (where-language §2.5).
fn build_filter(o: &RunOptions) -> Result<EventFilter> {
    let filter = EventFilter::new(&o.events);
    let Some(expr) = o.where_expr.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(filter);
    };
    let ctx = wherelang::Context::new(&o.tz).map_err(|m| Error::config("--tz", m))?;
    let program =
        wherelang::compile(expr, ctx).map_err(|e| Error::config("--where", e.to_string()))?;
    Ok(filter.with_where(program))
}

fn read_inputs(
    count: usize,
    feed: &mut dyn Feed,
    config: FrameConfig,
    tx: &crossbeam_channel::Sender<ReaderItem>,
    progress: &Progress,
    busy: &AtomicU64,
) {
    for i in 0..count {
        let opened = match feed.open(i, &progress.input_bytes) {
            Ok(Opened::Stream(reader)) => reader,
            Ok(Opened::Unavailable(reason)) => {
                let end = InputEnd {
                    input: i,
                    lines: 0,
                    bytes: 0,
                    incomplete: Some(reason),
                };
                if tx.send(ReaderItem::End(end)).is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                let _ = tx.send(ReaderItem::Failed(e));
                return;
            }
        };
        let start = Instant::now();
        let mut waiting = Duration::ZERO;
        let end = frame_input(opened, i, config, |block| {
            progress.add(&progress.decompressed_bytes, block.data.len() as u64);
            let t = Instant::now();
            let sent = tx.send(ReaderItem::Block(block)).is_ok();
            waiting += t.elapsed();
            sent
        });
        busy.fetch_add(
            (start.elapsed().saturating_sub(waiting)).as_nanos() as u64,
            Ordering::Relaxed,
        );
        feed.close(i);
        match end {
            Some(end) => {
                if tx.send(ReaderItem::End(end)).is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}
