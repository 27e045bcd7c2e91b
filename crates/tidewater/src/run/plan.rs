//! What a run is asked to do: its inputs (a [`Plan`]) and where its rows go.

use super::reader::Feed;
use super::TableBatch;
use crate::error::Result;

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
    pub ranges: Vec<(i64, i64)>,
    /// What happens around each input's commit.
    pub owner: &'a mut dyn WindowOwner,
}

/// What a run whose inputs own their windows does around each input's commit.
pub(crate) trait WindowOwner {
    /// The manifest written into each of the input's window folders after its data
    /// and before its `complete` marker; `None` writes none.
    fn manifest(&mut self, report: &InputReport) -> Result<Option<String>>;

    /// The input ended and its windows were committed, or, when it was incomplete,
    /// not (then nothing of it was).
    fn input_ended(&mut self, report: InputReport) -> Result<()>;
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
}

/// Where a run's rows go.
pub(crate) enum Destination<'a> {
    Files,
    Batches(&'a mut dyn FnMut(TableBatch) -> Result<()>),
}
