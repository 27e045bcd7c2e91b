//! The run driver: starts the reader, hands blocks to the workers, merges shaped blocks
//! in input order, dispatches full row groups to the encoders, commits windows, and
//! reports. Each step is a method of [`Driver`]; [`execute_plan`] runs them in order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use super::commit::{Finisher, PendingCommit};
use super::counts::RunState;
use super::encode::{EncodedGroup, Sink};
pub(crate) use super::plan::{Destination, Plan};
use super::reader::{spawn_reader, ReaderItem};
use super::warnings::nothing_kept;
use super::Cancel;
use crate::block::filter::EventFilter;
use crate::block::shape::{ShapedBlock, Shaper, Tables};
use crate::error::{Error, Result};
use crate::input::frame::{FrameConfig, InputEnd};
use crate::merge::{BufferLimits, Merger};
use crate::options::{OnWhereError, RunOptions, SchemaMode};
use crate::schema::registry::{Fixed, Registry};
use crate::store::{Output, RejectsWriter, WindowStore};
use crate::summary::{peak_rss_bytes, Progress, RunSummary};
use crate::validate::ValidOptions;
use crate::window::{WindowKey, Windowing};
use crate::write::Encoder;

thread_local! {
    /// Per-worker parse buffers, reused across blocks.
    static SHAPER: std::cell::RefCell<Shaper> = std::cell::RefCell::new(Shaper::default());
}

/// Runs the pipeline over the inputs of `plan`: set up, drive until the inputs are
/// read and merged, then commit what is left and report.
pub(crate) fn execute_plan(
    options: &RunOptions,
    valid: ValidOptions,
    plan: Plan<'_>,
    mut destination: Destination<'_>,
    progress: &Arc<Progress>,
    cancel: &Cancel,
) -> Result<RunSummary> {
    let started = Instant::now();
    progress
        .input_total
        .store(plan.total_bytes, Ordering::Relaxed);
    let setup = Setup::new(options, valid.threads, &destination)?;
    let registry = match &mut destination {
        Destination::Files(root) => root.registry.take(),
        Destination::Batches(_) => None,
    }
    .unwrap_or_else(|| Registry::for_source(options.schema, options.data_source));
    let mut driver = Driver::start(
        options,
        valid,
        &setup,
        registry,
        plan,
        destination,
        progress,
        cancel,
    )?;
    driver.drive();
    driver.finish(started)
}

/// What a run sets up before reading: the worker pool, the encoder, the window store.
struct Setup {
    threads: usize,
    pool: rayon::ThreadPool,
    encoder: Encoder,
    store: Option<Box<dyn WindowStore + Send>>,
    output: Output,
    raw: bool,
    /// Leading fixed columns of every table (unused for raw).
    fixed: Fixed,
}

impl Setup {
    fn new(o: &RunOptions, threads: usize, destination: &Destination<'_>) -> Result<Setup> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("tidewater-worker-{i}"))
            .build()
            .map_err(|e| Error::resource("the worker threads", e))?;
        let encoder = Encoder::for_options(o);
        let raw = o.schema == SchemaMode::Raw;
        let (store, output) = match destination {
            Destination::Files(root) => (
                Some(root.output.window_store(o, &encoder, Some(&root.lock))?),
                root.output.clone(),
            ),
            Destination::Batches(_) => (None, Output::Local(o.root())),
        };
        let fixed = Fixed::of_run(o.schema, o.data_source);
        Ok(Setup {
            threads,
            pool,
            encoder,
            store,
            output,
            raw,
            fixed,
        })
    }
}

/// What comes out of the queue of blocks, in input order.
enum Ordered {
    Shaped(ShapedBlock),
    End(InputEnd),
}

/// A run in progress.
struct Driver<'s, 'p, 'd> {
    tables: Tables,
    on_where_error: OnWhereError,
    windowing: Windowing,
    filter: Arc<EventFilter>,
    input_names: Vec<String>,
    /// Export: the windows each input owns, committed when it ends.
    owned: Option<super::plan::OwnedWindows<'p>>,
    pool: &'s rayon::ThreadPool,
    raw: bool,
    merger: Merger,
    rejects: RejectsWriter,
    sink: Sink<'s, 'd>,
    finisher: Option<Finisher<'s>>,
    st: RunState,
    progress: Arc<Progress>,
    cancel: Cancel,
    reader: Option<JoinHandle<()>>,
    reader_busy: Arc<AtomicU64>,
    block_rx: Receiver<ReaderItem>,
    shaped_tx: Sender<(u64, ShapedBlock, Duration)>,
    shaped_rx: Receiver<(u64, ShapedBlock, Duration)>,
    encoded_rx: Receiver<EncodedGroup>,
    /// Blocks (or input ends) numbered in the order the reader sent them.
    next_seq: u64,
    /// The next of them to merge.
    next_merge: u64,
    /// Blocks being shaped.
    in_flight: usize,
    max_in_flight: usize,
    /// Shaped blocks and input ends waiting for their turn to merge.
    ordered: BTreeMap<u64, Ordered>,
    reader_done: bool,
    /// An input whose windows are being committed: merging waits for the commit (so
    /// the registry, mapping file and rejects are exactly those of the inputs up to
    /// it), while the workers go on shaping the blocks that follow.
    pending: Option<PendingCommit>,
}

impl<'s, 'p, 'd> Driver<'s, 'p, 'd> {
    /// Sizes the queues from the memory budget and starts the reader thread.
    #[allow(clippy::too_many_arguments)]
    fn start(
        o: &RunOptions,
        valid: ValidOptions,
        setup: &'s Setup,
        registry: Registry,
        plan: Plan<'p>,
        destination: Destination<'d>,
        progress: &Arc<Progress>,
        cancel: &Cancel,
    ) -> Result<Self> {
        // Memory: about a third of the budget for buffered rows (counted as input bytes),
        // the rest for blocks in flight, row groups being encoded and their encoders.
        // A row group holds at most 1 GiB of input, so that no text column of it can
        // reach the 2 GiB that Arrow's 32-bit string offsets address.
        let limits = BufferLimits {
            row_group_rows: o.row_group_rows as u32,
            row_group_bytes: (o.memory_limit / 8).clamp(1 << 20, 1 << 30),
            total_bytes: o.memory_limit * 3 / 10,
        };
        let max_in_flight = (setup.threads * 2 + 2)
            .min((o.memory_limit as usize / 8 / o.block_bytes.max(1)).max(2));
        let Plan {
            names: input_names,
            feed,
            owned,
            ..
        } = plan;
        let reader_busy = Arc::new(AtomicU64::new(0));
        let (block_tx, block_rx) = bounded::<ReaderItem>(max_in_flight);
        let frame_config = FrameConfig {
            block_bytes: o.block_bytes,
            max_line_bytes: o.max_line_bytes,
        };
        let reader = spawn_reader(
            input_names.len(),
            feed,
            frame_config,
            block_tx,
            progress.clone(),
            reader_busy.clone(),
            cancel.clone(),
        )?;
        let (shaped_tx, shaped_rx) = unbounded();
        let sink = Sink::new(
            destination,
            &setup.pool,
            &setup.encoder,
            setup.store.as_deref().map(|s| s as &dyn WindowStore),
            setup.fixed,
            setup.raw,
            setup.threads + 1,
        );
        let encoded_rx = sink.encoded_rx.clone();
        let finisher = setup.store.as_deref().map(|store| Finisher {
            store,
            encoder: &setup.encoder,
            pool: &setup.pool,
            raw: setup.raw,
            output: &setup.output,
            mode: o.mode,
            progress: progress.clone(),
        });
        Ok(Driver {
            tables: Tables {
                schema: o.schema,
                source: o.data_source,
            },
            on_where_error: o.on_where_error,
            windowing: valid.windowing,
            filter: Arc::new(valid.filter),
            rejects: RejectsWriter::new(&setup.output, input_names.clone()),
            input_names,
            owned,
            pool: &setup.pool,
            raw: setup.raw,
            merger: Merger::new(registry, limits),
            sink,
            finisher,
            st: RunState::default(),
            progress: progress.clone(),
            cancel: cancel.clone(),
            reader: Some(reader),
            reader_busy,
            block_rx,
            shaped_tx,
            shaped_rx,
            encoded_rx,
            next_seq: 0,
            next_merge: 0,
            in_flight: 0,
            max_in_flight,
            ordered: BTreeMap::new(),
            reader_done: false,
            pending: None,
        })
    }

    /// Runs until every input is read, shaped and merged, or the run fails or is
    /// cancelled.
    fn drive(&mut self) {
        while self.sink.failure.is_none() {
            if self.cancel.is_cancelled() {
                self.sink.failure = Some(Error::Cancelled);
                break;
            }
            if self.pending.is_some() && self.sink.encoding == 0 {
                if let Err(e) = self.finish_pending_commit() {
                    self.sink.failure.get_or_insert(e);
                    break;
                }
            }
            let merge_start = Instant::now();
            if let Err(e) = self.merge_ready() {
                self.sink.failure.get_or_insert(e);
            }
            self.st.stages.merge += merge_start.elapsed().as_secs_f64();
            if self.sink.failure.is_some() || (self.pending.is_some() && self.sink.encoding == 0) {
                continue;
            }
            if !self.wait_for_work() {
                break;
            }
        }
    }

    /// Merges shaped blocks and input ends in input order, as far as they are ready,
    /// until an input starts committing its windows.
    fn merge_ready(&mut self) -> Result<()> {
        while self.pending.is_none() {
            let Some(item) = self.ordered.remove(&self.next_merge) else {
                return Ok(());
            };
            self.next_merge += 1;
            match item {
                Ordered::End(end) => self.end_input(end)?,
                Ordered::Shaped(block) => {
                    let sink = &mut self.sink;
                    self.st.merge_block(
                        block,
                        &mut self.merger,
                        &mut self.rejects,
                        &self.progress,
                        &self.input_names,
                        &mut |g| sink.flush(g),
                    )?
                }
            }
        }
        Ok(())
    }

    /// An input ended: counts it, and when each input owns its windows, starts
    /// committing them (XC1).
    fn end_input(&mut self, end: InputEnd) -> Result<()> {
        let input = end.input;
        self.st.end_input(end, &self.input_names);
        if let (Some(owned), Some(_)) = (&mut self.owned, &self.finisher) {
            self.pending = self.st.begin_commit(
                input,
                owned,
                &mut self.merger,
                &mut self.sink,
                &self.windowing,
            )?;
        }
        Ok(())
    }

    /// Commits the pending input's windows once their row groups are all encoded.
    fn finish_pending_commit(&mut self) -> Result<()> {
        let commit = self.pending.take().expect("checked by the caller");
        let owned = self
            .owned
            .as_mut()
            .expect("only inputs that own windows commit");
        let finisher = self.finisher.as_ref().expect("only file output commits");
        self.st.finish_commit(
            commit,
            owned,
            finisher,
            &mut self.merger,
            &mut self.sink,
            &mut self.rejects,
        )
    }

    /// Waits for the next thing to do: a block from the reader (handed to a worker),
    /// a shaped block, or an encoded row group. False when there is nothing left.
    fn wait_for_work(&mut self) -> bool {
        let mut shaped = None;
        // Shaped blocks waiting to be merged count against the limit too: they pile up
        // while a commit is pending.
        if !self.reader_done && self.in_flight + self.ordered.len() < self.max_in_flight {
            // Take the next block, and merge finished ones while waiting for it.
            crossbeam_channel::select! {
                recv(self.block_rx) -> item => match item {
                    Ok(ReaderItem::Block(block)) => self.dispatch(block),
                    Ok(ReaderItem::End(end)) => {
                        self.ordered.insert(self.next_seq, Ordered::End(end));
                        self.next_seq += 1;
                    }
                    Ok(ReaderItem::Failed(e)) => self.sink.failure = Some(e),
                    Err(_) => self.reader_done = true,
                },
                recv(self.shaped_rx) -> r => shaped = r.ok(),
                recv(self.encoded_rx) -> r => self.sink.record(r.expect("the sender lives in sink")),
            }
        } else if self.in_flight > 0 {
            crossbeam_channel::select! {
                recv(self.shaped_rx) -> r => shaped = r.ok(),
                recv(self.encoded_rx) -> r => self.sink.record(r.expect("the sender lives in sink")),
            }
        } else if self.pending.is_some() {
            let done = self.encoded_rx.recv().expect("the sender lives in sink");
            self.sink.record(done);
        } else if self.reader_done {
            return false;
        }
        if let Some((seq, block, took)) = shaped {
            self.in_flight -= 1;
            self.st.stages.parse_filter_shape += took.as_secs_f64();
            self.ordered.insert(seq, Ordered::Shaped(block));
        }
        true
    }

    /// Hands a block to a worker to parse, filter and shape.
    fn dispatch(&mut self, block: crate::input::frame::Block) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight += 1;
        let tx = self.shaped_tx.clone();
        let filter = self.filter.clone();
        let windowing = self.windowing.clone();
        let range = self
            .owned
            .as_ref()
            .map(|o| (o.requested[block.input], o.ranges[block.input]));
        let (tables, on_where_error) = (self.tables, self.on_where_error);
        self.pool.spawn(move || {
            let t = Instant::now();
            let shaped = SHAPER.with(|s| {
                s.borrow_mut()
                    .shape(&block, tables, &filter, on_where_error, &windowing, range)
            });
            let _ = tx.send((seq, shaped, t.elapsed()));
        });
    }

    /// Flushes and encodes what is left, stops the reader, commits every window no
    /// incomplete input touched, and reports.
    fn finish(mut self, started: Instant) -> Result<RunSummary> {
        if self.sink.failure.is_none() {
            let sink = &mut self.sink;
            self.merger.flush_all(&mut |g| sink.flush(g));
        }
        self.sink.wait_all();
        // Dropping the receiver stops a reader that is still sending (after a failure).
        self.block_rx = crossbeam_channel::never();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.st.stages.read_decode_frame =
            Duration::from_nanos(self.reader_busy.load(Ordering::Relaxed)).as_secs_f64();
        self.st.stages.encode = self.sink.encode_seconds;
        if let Some(e) = self.sink.failure.take() {
            return Err(e);
        }
        self.count_rows_per_table();
        let to_commit = self.windows_to_commit();
        match &self.finisher {
            Some(finisher) => {
                let done = finisher.commit(
                    &to_commit,
                    &BTreeSet::new(),
                    None,
                    &mut self.sink.files,
                    &mut self.merger.registry,
                    &mut self.st.stages,
                )?;
                self.st.summary.files_written += done.files;
                self.st.summary.windows_committed += done.windows;
            }
            None => self.st.summary.windows_committed += to_commit.len() as u64,
        }
        if let Some(path) = self.rejects.commit()? {
            self.st
                .summary
                .rejects_file
                .get_or_insert(path.display().to_string());
        }
        self.st.summary.data_source = self.tables.source;
        self.st.summary.warnings = nothing_kept(&self.st.summary, &self.filter, &self.st.unlisted);
        for warning in &self.st.summary.warnings {
            tracing::warn!("{warning}");
        }
        let mut summary = self.st.summary;
        summary.input_bytes_compressed = self.progress.input_bytes.load(Ordering::Relaxed);
        summary.seconds = started.elapsed().as_secs_f64();
        summary.stages = self.st.stages;
        summary.peak_rss_bytes = peak_rss_bytes();
        Ok(summary)
    }

    fn count_rows_per_table(&mut self) {
        for ((_, t), rows) in &self.merger.rows {
            let name = if self.raw {
                "raw".to_string()
            } else {
                self.merger.registry.tables[*t as usize].name.clone()
            };
            *self.st.summary.rows_per_table.entry(name).or_default() += rows;
        }
    }

    /// The windows with rows that are not committed yet, leaving out (and reporting)
    /// those holding an event of an incomplete input (IN5).
    fn windows_to_commit(&mut self) -> BTreeSet<WindowKey> {
        let st = &mut self.st;
        let bad: BTreeSet<usize> = st.incomplete.iter().map(|(i, _)| *i).collect();
        let windows: BTreeSet<WindowKey> = self.merger.rows.keys().map(|(w, _)| *w).collect();
        let failed: BTreeSet<WindowKey> = windows
            .iter()
            .filter(|w| {
                st.window_inputs
                    .get(w)
                    .is_some_and(|ins| !ins.is_disjoint(&bad))
            })
            .copied()
            .collect();
        st.summary.windows_not_committed = failed.iter().map(|w| w.to_string()).collect();
        windows
            .difference(&failed)
            .filter(|w| !st.committed.contains(w))
            .copied()
            .collect()
    }
}
