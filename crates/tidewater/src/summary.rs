//! The run summary (M3) and live progress counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::error::Error;

/// Counters the pipeline bumps once per block; a progress display reads them.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from inputs as stored (compressed for gzip).
    pub input_bytes: Arc<AtomicU64>,
    /// Total size of the inputs, where known (0 when unknown).
    pub input_total: AtomicU64,
    /// Decompressed bytes framed.
    pub decompressed_bytes: AtomicU64,
    /// Events kept so far.
    pub events: AtomicU64,
    /// Lines read so far.
    pub lines: AtomicU64,
    /// Data files to write in the finishing phase, once it started (0 before).
    pub files_total: AtomicU64,
    /// Data files written so far.
    pub files_written: AtomicU64,
    /// Windows committed so far.
    pub windows_committed: AtomicU64,
}

impl Progress {
    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// An input that ended early (IN5).
#[derive(Debug, Clone, Serialize)]
pub struct IncompleteInput {
    /// The input as given.
    pub input: String,
    /// Why.
    pub reason: String,
}

/// Seconds spent per stage. Worker stages add up time across threads (CPU seconds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    /// Reading, decompressing and framing (reader thread, excluding waits on workers).
    pub read_decode_frame: f64,
    /// Parse, filter and shape, summed over workers.
    pub parse_filter_shape: f64,
    /// In-order merge (names, types, buffering).
    pub merge: f64,
    /// Row-group encoding, summed over workers.
    pub encode: f64,
    /// Writing final files from encoded row groups (wall time).
    pub finish_files: f64,
    /// Moving windows into place (wall time).
    pub commit: f64,
}

/// What a run did (M3).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// What the lines were: events, or people profiles (then "events" below counts
    /// profiles).
    pub data_source: crate::options::DataSource,
    /// Bytes read from the inputs as stored.
    pub input_bytes_compressed: u64,
    /// Bytes after decompression.
    pub input_bytes_uncompressed: u64,
    /// Physical lines read.
    pub lines_read: u64,
    /// Events kept (written or handed to the sink).
    pub events_kept: u64,
    /// Events dropped by the filter.
    pub events_filtered: u64,
    /// Lines rejected (IN4).
    pub events_rejected: u64,
    /// Events dropped because `where` raised a runtime error (`--on-where-error skip`);
    /// included in `events_filtered`.
    pub where_errors: u64,
    /// Rows per table.
    pub rows_per_table: BTreeMap<String, u64>,
    /// Windows committed.
    pub windows_committed: u64,
    /// Windows not committed because an input was incomplete (IN5).
    pub windows_not_committed: Vec<String>,
    /// Data files written.
    pub files_written: u64,
    /// Inputs that ended early.
    pub incomplete_inputs: Vec<IncompleteInput>,
    /// The rejects file, if any line was rejected.
    pub rejects_file: Option<String>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Time per stage.
    pub stages: StageTimes,
    /// Peak resident memory of the process, in bytes (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// What looks wrong about a run that succeeded: it kept no event, or rejected
    /// every line. Also emitted as `tracing` warnings.
    pub warnings: Vec<String>,
}

impl RunSummary {
    /// Turns incomplete inputs into an error (IN5), for callers that want one.
    pub fn check(&self) -> Result<(), Error> {
        match self.incomplete_inputs.first() {
            None => Ok(()),
            Some(i) => Err(Error::Incomplete {
                input: i.input.clone(),
                reason: i.reason.clone(),
            }),
        }
    }
}

/// Peak resident set size of this process (`VmHWM`), on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
