//! Where committed windows go, behind one commit contract: a window's data files are
//! staged first, then its manifest, then its `complete` marker; a window without
//! `complete` is not committed, and readers see the old window or the new one, never a
//! mix. The local folder ([`LocalStore`]) commits by renames; object stores
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

pub(crate) use local::{list_parts, staging_path, LocalStore};
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

/// The marker that makes a window folder committed (C1).
pub(crate) const COMPLETE: &str = "complete";

/// The export manifest beside a window's data (XC4).
pub(crate) const MANIFEST: &str = "manifest.json";

/// A destination of committed windows. `table` is `None` for raw output, whose windows
/// are not per table.
pub(crate) trait WindowStore: Sync {
    /// The local file where a row group's spill goes (staging, removed with the store).
    fn spill_path(&self, table: u32, window: WindowKey, index: u32) -> PathBuf;

    /// Where the data file of a table's window goes (not yet committed).
    fn data<'s>(&'s self, table: Option<&str>, window: WindowKey)
        -> Result<Box<dyn DataSink + 's>>;

    /// The folder of a table's window below the root.
    fn folder(&self, table: Option<&str>, window: WindowKey) -> String;

    /// Commits a staged window: its data files, then `manifest` (when given), then the
    /// `complete` marker, so that the window appears whole or not at all (C1, C2).
    fn commit(&self, table: Option<&str>, window: WindowKey, manifest: Option<&[u8]>)
        -> Result<()>;

    /// Replace mode: removes a table's committed window that this run replaced but
    /// produced no rows for.
    fn remove(&self, table: Option<&str>, window: WindowKey) -> Result<()>;
}

/// Where one data file of a window goes before its commit.
pub(crate) trait DataSink {
    /// Takes a finished local file as the data file (moved or uploaded as it is).
    fn adopt(&self, file: &Path) -> Result<()>;

    /// Writes the data file through `fill`; the file is whole once this returns.
    fn write(&self, fill: &mut dyn FnMut(&mut (dyn Write + Send)) -> Result<()>) -> Result<()>;

    /// The file's path or URL, for messages.
    fn name(&self) -> PathBuf;
}
