//! What a run is asked to do: its inputs (a [`Plan`]) and where its rows go.

use super::reader::Feed;
use super::TableBatch;
use crate::error::Result;
use crate::options::{RunOptions, SchemaMode};
use crate::schema::registry::Registry;
use crate::store::{Output, OutputLock};

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
    /// `[start, end)` in ms of each input's windows, committed when it ends.
    pub ranges: Vec<(i64, i64)>,
    /// `[start, end)` in ms of what each input was requested for: events outside it
    /// are rejected; events inside it but outside `ranges` are filtered (a request for
    /// a day whose one hour is kept).
    pub requested: Vec<(i64, i64)>,
    /// What happens around each input's commit.
    pub owner: &'a mut dyn WindowOwner,
}

/// What a run whose inputs own their windows does around each input's commit.
pub(crate) trait WindowOwner {
    /// The manifest written into each of the input's window folders after its data
    /// and before its commit marker; `None` writes none.
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
    /// The window folders committed, below the output root (`<table>/2024/01/03`).
    pub folders: Vec<String>,
    /// Why the input is incomplete (then nothing of it was committed).
    pub incomplete: Option<String>,
}

/// Where a run's rows go.
pub(crate) enum Destination<'a> {
    /// Data files in an output root, held by this run.
    Files(OutputRoot),
    Batches(&'a mut dyn FnMut(TableBatch) -> Result<()>),
}

/// An output root made ready for a run before anything is read or requested: held
/// exclusively, cleared of what a crashed run left half done, its mapping file read and
/// checked against the run's schema mode.
pub(crate) struct OutputRoot {
    /// Where the output goes.
    pub output: Output,
    /// Released when the run ends.
    pub lock: OutputLock,
    /// The mapping file's tables; `None` for raw output, which has none.
    pub registry: Option<Registry>,
}

impl OutputRoot {
    pub(crate) fn prepare(o: &RunOptions) -> Result<OutputRoot> {
        let output = Output::resolve(o)?;
        let lock = output.lock(o.lock_lease)?;
        let registry = match o.schema {
            SchemaMode::Raw => None,
            schema => Some(Registry::load_from(&output, schema, o.data_source)?),
        };
        Ok(OutputRoot {
            output,
            lock,
            registry,
        })
    }
}
