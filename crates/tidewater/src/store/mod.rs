//! Where committed windows go, behind one commit contract: a window's data files are
//! staged first, then its manifest, then its commit marker ([`SideFiles`]: `_complete`
//! in a table's window, `complete` in a raw one); a window without it is not
//! committed, and readers see the old window or the new one, never a mix. The local folder ([`LocalStore`]) commits by renames; object stores
//! ([`object`]) by the order of their objects. [`Output`] is the output root of a run
//! on either. Rejected lines go to the rejects file ([`RejectsWriter`]).

mod local;
pub(crate) mod object;
mod output;
mod rejects;
mod root;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::window::WindowKey;

pub(crate) use local::{staging_path, LocalStore};
pub use object::ObjectTarget;

/// An object store's error message with the query of every URL in it (where a SAS
/// token or a signature would be) cut out.
pub fn redact_store_error(message: &str) -> String {
    object::redact(message)
}
pub(crate) use output::{Output, OutputLock};
pub(crate) use rejects::RejectsWriter;
pub use root::RootLock;
pub(crate) use root::STATE_DIR;

/// The names of a window folder's side files: the empty marker that makes the window
/// committed (C1) and the manifest beside its data (an export's request, XC4, and on
/// object stores the folder's data files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SideFiles {
    pub complete: &'static str,
    pub manifest: &'static str,
}

impl SideFiles {
    /// A raw window's: Mixpanel's raw layout has an empty `complete` in each window.
    pub const RAW: SideFiles = SideFiles {
        complete: "complete",
        manifest: "manifest.json",
    };

    /// A table window's: names that start with `_`, which dataset readers (pyarrow,
    /// Spark, Hadoop) skip, so that a table folder reads in one call without options.
    pub const TABLE: SideFiles = SideFiles {
        complete: "_complete",
        manifest: "_manifest.json",
    };

    /// The side files of `table`'s windows; `None` is raw output.
    pub fn of(table: Option<&str>) -> SideFiles {
        if table.is_some() {
            Self::TABLE
        } else {
            Self::RAW
        }
    }

    /// The names the same folder had in earlier versions, which wrote table windows'
    /// side files under the raw names. A folder committed under them counts as
    /// committed (a resumed backfill does not fetch it again); they are removed when
    /// the window is committed again.
    pub fn legacy(self) -> Option<SideFiles> {
        (self == Self::TABLE).then_some(Self::RAW)
    }

    /// The manifest's names, this version's first, then the legacy one.
    pub fn manifest_names(self) -> impl Iterator<Item = &'static str> {
        [Some(self), self.legacy()]
            .into_iter()
            .flatten()
            .map(|s| s.manifest)
    }

    /// Whether `name` is this folder's commit marker, current or legacy.
    pub fn is_complete(self, name: &str) -> bool {
        name == self.complete || self.legacy().is_some_and(|l| name == l.complete)
    }

    /// Whether `name` is this folder's manifest, current or legacy.
    pub fn is_manifest(self, name: &str) -> bool {
        name == self.manifest || self.legacy().is_some_and(|l| name == l.manifest)
    }

    /// Whether `name` is a legacy side file of this folder.
    pub fn is_legacy(self, name: &str) -> bool {
        self.legacy()
            .is_some_and(|l| name == l.complete || name == l.manifest)
    }
}

/// A destination of committed windows. `table` is `None` for raw output, whose windows
/// are not per table.
pub(crate) trait WindowStore: Sync {
    /// The local file where a row group's spill goes (staging, removed with the store).
    fn spill_path(&self, table: u32, window: WindowKey, index: u32) -> PathBuf;

    /// Opens the data file of a table's window (not committed until [`Self::commit`]).
    fn data<'s>(&'s self, table: Option<&str>, window: WindowKey)
        -> Result<Box<dyn DataFile + 's>>;

    /// For a store that takes a file in parts as it is written (an object store's
    /// multipart upload), the size of one part: a run sends a window's parts as soon
    /// as its row groups are encoded instead of all at its commit. `None` for a local
    /// folder, where writing early gains nothing.
    fn part_bytes(&self) -> Option<u64> {
        None
    }

    /// The folder of a table's window below the root.
    fn folder(&self, table: Option<&str>, window: WindowKey) -> String;

    /// Commits a staged window: its data files, then `manifest` (when given), then the
    /// commit marker, so that the window appears whole or not at all (C1, C2).
    fn commit(&self, table: Option<&str>, window: WindowKey, manifest: Option<&[u8]>)
        -> Result<()>;

    /// Replace mode: removes a table's committed window that this run replaced but
    /// produced no rows for.
    fn remove(&self, table: Option<&str>, window: WindowKey) -> Result<()>;
}

/// The name of a window folder's `n`-th data file (§5).
pub(crate) fn part_name(raw: bool, extension: &str, n: u32) -> String {
    let stem = if raw { "export" } else { "part" };
    format!("{stem}-{n:05}.{extension}")
}

/// Whether a file of a window folder is one of its data files.
pub(crate) fn is_data_file(name: &str) -> bool {
    name.starts_with("part-") || name.starts_with("export-")
}

/// The number in a data file's name (`part-00003.parquet` → 3).
pub(crate) fn part_number(name: &str) -> Option<u32> {
    let digits: String = name
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The folder of a table's window below the root (`<table>/2024/01/03`; raw output,
/// `table = None`, has no table folder).
pub(crate) fn window_folder(
    layout: crate::options::Layout,
    raw: bool,
    table: Option<&str>,
    window: WindowKey,
) -> String {
    let folder = window.folder(layout, raw);
    match table {
        Some(t) if folder.is_empty() => t.to_string(),
        Some(t) => format!("{t}/{folder}"),
        None => folder,
    }
}

/// The spill file of a table's row group in a staging folder.
pub(crate) fn spill_file(dir: &Path, table: u32, window: WindowKey, index: u32) -> PathBuf {
    dir.join(format!("{table}-{window}-{index:05}"))
}

/// One data file of a window being written, before its commit. Dropped without
/// [`DataFile::close`], it is discarded (an object store's upload is aborted).
pub(crate) trait DataFile: Write + Send {
    /// Takes a finished local file as the whole data file (moved, or uploaded as it is)
    /// instead of written bytes.
    fn adopt(self: Box<Self>, file: &Path) -> Result<()>;

    /// Completes the file: whole once this returns.
    fn close(self: Box<Self>) -> Result<()>;

    /// The file's path or URL, for messages.
    fn name(&self) -> PathBuf;
}
