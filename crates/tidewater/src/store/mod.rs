//! Where committed windows go, behind one commit contract: a window's data files are
//! staged first, then its manifest, then its `complete` marker; a window without
//! `complete` is not committed, and readers see the old window or the new one, never a
//! mix. The local folder ([`LocalStore`]) is today's store; object stores come next.
//! Rejected lines go to the rejects file ([`RejectsWriter`]).

mod local;
mod rejects;
mod root;

use std::path::PathBuf;

use crate::error::Result;
use crate::window::WindowKey;

pub(crate) use local::{list_parts, staging_path, LocalStore};
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
    /// A fresh staged folder for a table's window, where its data files are written.
    fn stage(&self, table: Option<&str>, window: WindowKey) -> Result<PathBuf>;

    /// The name of a window's `n`-th data file.
    fn part_name(&self, n: u32) -> String;

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
