//! The resume ledger (XC4): what is recorded of each committed window, so that a re-run
//! skips windows committed for the same request. Today a folder of manifest files
//! (`<root>/.tidewater/export/<window>.json`); the service keeps them in its state store.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{Output, SideFiles, STATE_DIR};

/// Where committed windows are recorded. A window counts as done only once its record
/// exists, so [`Ledger::record`] is the last step of a window's commit.
pub trait Ledger: Send + Sync {
    /// The record of the window `name` (`YYYY-MM-DD` or `YYYY-MM-DD_YYYY-MM-DD`), if
    /// one was committed. An unreadable record counts as none: the window is exported
    /// again.
    fn committed(&self, name: &str) -> Option<Manifest>;

    /// Records a committed window, replacing an older record atomically.
    fn record(&self, name: &str, manifest: &Manifest) -> Result<()>;
}

/// A folder of manifest files, one per window: `<name>.json`.
#[derive(Debug, Clone)]
pub struct FileLedger {
    dir: PathBuf,
}

impl FileLedger {
    /// The ledger in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(&dir, e))?;
        Ok(FileLedger { dir })
    }
}

impl Ledger for FileLedger {
    fn committed(&self, name: &str) -> Option<Manifest> {
        let bytes = std::fs::read(self.dir.join(format!("{name}.json"))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn record(&self, name: &str, manifest: &Manifest) -> Result<()> {
        write_atomically(
            &self.dir.join(format!("{name}.json")),
            manifest.text().as_bytes(),
        )
    }
}

/// The ledger inside an output root, local or on an object store:
/// `<root>/.tidewater/export/<window>.json`.
pub(crate) struct OutputLedger(pub Output);

impl OutputLedger {
    fn rel(name: &str) -> String {
        format!("{STATE_DIR}/export/{name}.json")
    }
}

impl Ledger for OutputLedger {
    fn committed(&self, name: &str) -> Option<Manifest> {
        let bytes = self.0.read(&Self::rel(name)).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    fn record(&self, name: &str, manifest: &Manifest) -> Result<()> {
        self.0.write(&Self::rel(name), manifest.text().as_bytes())
    }
}

/// The request a window was committed for; a re-run skips the window only when it asks
/// for the same (XC4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRequest {
    /// First day asked for, `YYYY-MM-DD`.
    pub from_date: String,
    /// Last day asked for.
    pub to_date: String,
    /// The event whitelist.
    pub events: Vec<String>,
    /// The `where` expression.
    #[serde(rename = "where")]
    pub where_expr: Option<String>,
    /// Whether Tidewater filtered instead of the server.
    pub filter_locally: bool,
    /// Schema mode (`raw`, `monoschema`, `multischema`).
    pub schema: String,
    /// Output format (`parquet`, `json`).
    pub format: String,
    /// Time zone of the windows.
    pub tz: String,
    /// Window size (`daily`, `hourly`).
    pub partition: String,
    /// Whether JSON output writes `time` in milliseconds.
    pub time_in_ms: bool,
    /// Whether JSON output writes lists and objects as JSON text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nested_as_text: bool,
    /// The part of the days kept (`T05`: one hour), when not all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

/// What is recorded of a committed window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of the manifest.
    pub version: u32,
    /// The request the window was committed for.
    pub request: ManifestRequest,
    /// Requests made for the window.
    pub attempts: u32,
    /// Bytes received, as sent.
    pub bytes_received: u64,
    /// Decompressed bytes of the body.
    pub bytes: u64,
    /// SHA-256 of the decompressed body, hex.
    pub sha256: String,
    /// Whether the body came gzip.
    pub gzip: bool,
    /// Lines in the body.
    pub lines: u64,
    /// Events kept.
    pub events_kept: u64,
    /// Events the filter dropped.
    pub events_filtered: u64,
    /// Lines rejected.
    pub rejects: u64,
    /// Data files written.
    pub files_written: u64,
    /// The window folders committed, below the output root (version 2 on).
    #[serde(default)]
    pub folders: Vec<String>,
    /// When the window was committed (RFC 3339).
    pub committed_at: String,
}

/// The manifest version written now: 2 lists the window folders.
pub(crate) const MANIFEST_VERSION: u32 = 2;

impl Manifest {
    /// Why the window this manifest records is not (or no longer) whole in `output`:
    /// a folder, its commit marker, its manifest or data files missing. `None`
    /// when everything the manifest lists is there.
    pub(crate) fn missing_in(&self, output: &Output) -> Option<String> {
        if self.version < MANIFEST_VERSION {
            return Some(
                "its record is from an older version that did not list its folders".into(),
            );
        }
        let side = if self.request.schema == "raw" {
            SideFiles::RAW
        } else {
            SideFiles::TABLE
        };
        let mut data_files = 0;
        for folder in &self.folders {
            let state = match output.folder_state(folder, side) {
                Ok(state) => state,
                Err(e) => return Some(format!("it cannot be checked: {e}")),
            };
            for (marker, there) in [
                (side.complete, state.complete),
                (side.manifest, state.manifest),
            ] {
                if !there {
                    let path = output.display(&format!("{folder}/{marker}"));
                    return Some(format!("{} is missing", path.display()));
                }
            }
            data_files += state.data_files;
        }
        (data_files < self.files_written).then(|| {
            format!(
                "{} of its {} data files are missing",
                self.files_written - data_files,
                self.files_written
            )
        })
    }

    /// The manifest as written to the ledger and beside each window's commit marker.
    pub fn text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("manifest serializes");
        text.push('\n');
        text
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::output(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::output(path, e))
}
