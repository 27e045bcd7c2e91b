//! Taking an output root for a run: an exclusive lock on `<root>/.tidewater/lock`
//! ([`FileLock`]) held until the run ends, and the recovery of what a run that crashed
//! left half done.

use std::fs;
use std::path::Path;

use super::local::{JOURNAL, STAGING_PREFIX};
use super::SideFiles;
use crate::error::{Error, Result};
use crate::lock::{FileLock, LockError};

/// The folder of Tidewater's own state inside an output root.
pub(crate) const STATE_DIR: &str = ".tidewater";

/// An output root held by this run. Dropping it releases the lock.
#[derive(Debug)]
pub struct RootLock {
    _lock: FileLock,
}

impl RootLock {
    /// Takes `root` (created if missing) for this run, and finishes or rolls back what a
    /// crashed run left half done there. Fails at once when another run holds it.
    pub fn acquire(root: &Path) -> Result<RootLock> {
        let dir = root.join(STATE_DIR);
        fs::create_dir_all(&dir).map_err(|e| Error::output_root(&dir, e))?;
        let lock = match FileLock::acquire(&dir.join("lock")) {
            Ok(lock) => lock,
            Err(LockError::Held { holder }) => {
                return Err(Error::Locked {
                    root: root.to_path_buf(),
                    holder,
                })
            }
            Err(LockError::Io { path, source }) => return Err(Error::output_root(path, source)),
        };
        if let Some(e) = lock.unsupported() {
            tracing::warn!(
                "{} cannot be locked on this file system ({e}); make sure no other run writes into {}",
                lock.path().display(),
                root.display()
            );
        }
        if let Some(previous) = lock.left_by_crash() {
            tracing::warn!(
                "the last run in {} ({previous}) ended without releasing it; recovering its unfinished commits",
                root.display()
            );
        }
        recover(root)?;
        Ok(RootLock { _lock: lock })
    }
}

/// Under the lock every staging folder in the root is a dead run's. A commit it cut
/// short (its journal entry says which) is undone: a replace interrupted between moving
/// the old window aside and moving the new one in gets the old window back; an append
/// interrupted before its new manifest was in place loses the parts it added. That run
/// committed nothing of the window, and the window is as it was before. Then the
/// staging folder goes.
fn recover(root: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            continue;
        }
        let staging = entry.path();
        if let Ok(journal) = fs::read_dir(staging.join(JOURNAL)) {
            for record in journal.flatten() {
                roll_back(root, &staging, &record.path())?;
            }
        }
        fs::remove_dir_all(&staging).map_err(|e| Error::output_root(&staging, e))?;
    }
    Ok(())
}

/// Undoes the commit that one journal record describes, as far as it got.
fn roll_back(root: &Path, staging: &Path, record: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(record) else {
        return Ok(());
    };
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        ["append", target, saved, parts @ ..] => {
            roll_back_append(&root.join(target), staging, saved, parts)
        }
        [target, aside] => roll_back_replace(&root.join(target), &staging.join(aside)),
        _ => Ok(()), // written only partly: nothing was changed yet
    }
}

/// Puts back the window a replace moved aside, unless the new one made it into place.
fn roll_back_replace(target: &Path, aside: &Path) -> Result<()> {
    if !target.exists() && aside.is_dir() {
        fs::rename(aside, target).map_err(|e| Error::output_root(target, e))?;
        tracing::warn!(
            "restored window {} that a crashed run was replacing",
            target.display()
        );
    }
    Ok(())
}

/// Takes out the parts an unfinished append added and puts the old manifest back.
fn roll_back_append(target: &Path, staging: &Path, saved: &str, parts: &[&str]) -> Result<()> {
    for part in parts.iter().filter(|p| !p.is_empty()) {
        let path = target.join(part);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::output_root(&path, e))
            }
            _ => {}
        }
    }
    if saved != "-" {
        // Saved under its own name (`aside/<n>/<name>`); `aside/<n>.manifest` is the
        // journal of an earlier version, when every manifest was `manifest.json`.
        let name = Path::new(saved)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".manifest"))
            .unwrap_or_else(|| SideFiles::RAW.manifest.to_string());
        let manifest = target.join(&name);
        fs::copy(staging.join(saved), &manifest).map_err(|e| Error::output_root(&manifest, e))?;
        if name == SideFiles::RAW.manifest {
            // A table folder of an earlier version: the manifest the append wrote under
            // this version's name goes too (raw folders never have one).
            let written = target.join(SideFiles::TABLE.manifest);
            if written.exists() {
                fs::remove_file(&written).map_err(|e| Error::output_root(&written, e))?;
            }
        }
    }
    tracing::warn!(
        "took out of window {} the parts that a crashed run was appending",
        target.display()
    );
    Ok(())
}
