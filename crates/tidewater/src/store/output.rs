//! The output root of a run, on the local file system or on an object store: where
//! its side files (mapping file, rejects, the export ledger) are read and written, where
//! its staging goes, how it is held, and the window store that commits into it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::object::{LeaseLock, ObjectRoot, ObjectTarget, ObjectWindows};
use super::{is_data_file, staging_path, LocalStore, RootLock, SideFiles, WindowStore};
use crate::error::{Error, Result};
use crate::options::RunOptions;
use crate::write::Encoder;

/// Where a run's output goes.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// A local folder: `out[/prefix][/project_id]`.
    Local(PathBuf),
    /// An object store, below the URL's prefix.
    Object(Arc<ObjectRoot>),
}

/// A held output root: released when dropped.
pub(crate) enum OutputLock {
    Local(#[allow(dead_code)] RootLock),
    Object(Arc<LeaseLock>),
}

/// What a window folder holds, for the resume check (XC4).
#[derive(Debug, Default)]
pub(crate) struct FolderState {
    pub complete: bool,
    pub manifest: bool,
    pub data_files: u64,
}

impl Output {
    /// The output of `o`: its object store (given, or named by `--out URL`), else the
    /// local folder.
    pub(crate) fn resolve(o: &RunOptions) -> Result<Output> {
        let target = match &o.object_store {
            Some(t) => Some(t.clone()),
            None => {
                let out = o.out.to_string_lossy();
                super::object::is_url(&out)
                    .then(|| ObjectTarget::from_url_retrying(&out, o.store_retries))
                    .transpose()?
            }
        };
        let Some(target) = target else {
            return Ok(Output::Local(o.root()));
        };
        let below: Vec<String> = o
            .prefix
            .iter()
            .flat_map(|p| p.split('/').filter(|s| !s.is_empty()).map(str::to_string))
            .chain(o.project_id.map(|id| id.to_string()))
            .collect();
        Ok(Output::Object(Arc::new(ObjectRoot::open(&target, &below)?)))
    }

    /// Takes the root for this run: a file lock on a local folder (recovering what a
    /// crashed run left), a lease on an object store (aborting the multipart uploads a
    /// killed run left open).
    pub(crate) fn lock(&self, lease: Duration) -> Result<OutputLock> {
        match self {
            Output::Local(root) => RootLock::acquire(root).map(OutputLock::Local),
            Output::Object(root) => {
                let lock = LeaseLock::acquire(root.clone(), lease)?;
                // Holding the lock, no other run writes here: uploads still open were
                // left by a run that was killed.
                super::object::abort_left_uploads(root)?;
                Ok(OutputLock::Object(Arc::new(lock)))
            }
        }
    }

    /// The window store that commits into this output.
    pub(crate) fn window_store(
        &self,
        o: &RunOptions,
        encoder: &Encoder,
        lock: Option<&OutputLock>,
    ) -> Result<Box<dyn WindowStore + Send>> {
        let raw = o.schema == crate::options::SchemaMode::Raw;
        Ok(match self {
            Output::Local(root) => Box::new(LocalStore::open(
                root,
                o.layout,
                o.mode,
                raw,
                encoder.extension(),
            )?),
            Output::Object(root) => {
                let lease = match lock {
                    Some(OutputLock::Object(l)) => Some(l.clone()),
                    _ => None,
                };
                Box::new(ObjectWindows::open(
                    root.clone(),
                    lease,
                    o.layout,
                    o.mode,
                    raw,
                    encoder.extension(),
                )?)
            }
        })
    }

    /// The local folder where this run stages `what` (spills, downloads): inside a
    /// local root (so that commits are renames), in a temporary folder otherwise.
    pub(crate) fn staging(&self, what: &str) -> PathBuf {
        match self {
            Output::Local(root) => staging_path(root, what),
            Output::Object(root) => root.scratch().join(what),
        }
    }

    /// `rel` below the root as a path or URL, for messages.
    pub(crate) fn display(&self, rel: &str) -> PathBuf {
        match self {
            Output::Local(root) => root.join(rel),
            Output::Object(root) => root.url_of(rel),
        }
    }

    /// The file `rel` below the root, or `None` when there is none.
    pub(crate) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Output::Local(root) => {
                let path = root.join(rel);
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::output(path, e)),
                }
            }
            Output::Object(root) => Ok(root.read(rel)?.map(|b| b.to_vec())),
        }
    }

    /// Replaces the file `rel` below the root atomically.
    pub(crate) fn write(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Output::Local(_) => {
                let tmp = self.temporary(rel)?;
                std::fs::write(&tmp, bytes).map_err(|e| Error::output(&tmp, e))?;
                self.publish(&tmp, rel).map(|_| ())
            }
            Output::Object(root) => root.write(rel, bytes.to_vec()),
        }
    }

    /// A local path where the file `rel` is written before [`Output::publish`] puts
    /// it in place: beside it in a local root (so that the move is a rename), in the
    /// staging folder for an object store.
    pub(crate) fn temporary(&self, rel: &str) -> Result<PathBuf> {
        let (dir, name) = match self {
            Output::Local(root) => {
                let path = root.join(rel);
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let dir = path.parent().unwrap_or(root).to_path_buf();
                let name = format!(".{name}.tmp");
                (dir, name)
            }
            Output::Object(root) => (root.scratch().join("files"), rel.replace('/', "_")),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(&dir, e))?;
        Ok(dir.join(name))
    }

    /// Moves (uploads) a finished local file to `rel` below the root.
    pub(crate) fn publish(&self, local: &Path, rel: &str) -> Result<PathBuf> {
        let dest = self.display(rel);
        match self {
            Output::Local(_) => {
                std::fs::rename(local, &dest).map_err(|e| Error::output(&dest, e))?;
            }
            Output::Object(root) => {
                use super::DataFile;
                Box::new(super::object::Upload::new(root, rel)).adopt(local)?;
            }
        }
        Ok(dest)
    }

    /// The names of the files directly in the folder `rel`.
    pub(crate) fn names_in(&self, rel: &str) -> Result<Vec<String>> {
        match self {
            Output::Local(root) => {
                let dir = root.join(rel);
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return Ok(Vec::new());
                };
                Ok(entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect())
            }
            Output::Object(root) => Ok(root
                .list(rel)?
                .into_iter()
                .filter_map(|p| {
                    let name = p.strip_prefix(rel)?.strip_prefix('/')?;
                    (!name.contains('/')).then(|| name.to_string())
                })
                .collect()),
        }
    }

    /// What the window folder `rel`, whose side files are `side`, holds.
    pub(crate) fn folder_state(&self, rel: &str, side: SideFiles) -> Result<FolderState> {
        let names = self.names_in(rel)?;
        Ok(FolderState {
            complete: names.iter().any(|n| side.is_complete(n)),
            manifest: names.iter().any(|n| side.is_manifest(n)),
            data_files: names.iter().filter(|n| is_data_file(n)).count() as u64,
        })
    }
}
