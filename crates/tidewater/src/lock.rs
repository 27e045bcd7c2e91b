//! An exclusive lock on a file, for one process at a time: an advisory file lock
//! (`flock`) that the kernel releases when its holder exits, however it exits, so a
//! crash never leaves a lock to break by hand. The holder writes who it is into the
//! file, so that a refused process can name it; the file is emptied on release, so a
//! note found there means that the last holder did not end cleanly.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A held lock. Dropping it empties the file and releases the lock.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
    /// The note of a holder that ended without releasing the lock (empty if none).
    previous: String,
    /// Why the file system could not lock the file, when it cannot: then the process
    /// holds the file, but nothing keeps another process out.
    unsupported: Option<std::io::Error>,
}

/// Why a lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; its note says who.
    Held {
        /// The holder's note: process id, host, start time.
        holder: String,
    },
    /// The file cannot be opened or written.
    Io {
        /// The lock file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

impl FileLock {
    /// Takes the lock on `path` (created if missing) and writes this process's note
    /// into it. Fails at once, without waiting, when another process holds it.
    pub fn acquire(path: &Path) -> Result<FileLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut unsupported = None;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(path).unwrap_or_default();
                return Err(LockError::Held {
                    holder: holder.trim().to_string(),
                });
            }
            Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                unsupported = Some(e);
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let previous = fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .to_string();
        let note = format!(
            "pid {} on {}, since {}",
            std::process::id(),
            host_name(),
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
        );
        file.set_len(0)
            .and_then(|()| file.write_all(note.as_bytes()))
            .map_err(io)?;
        Ok(FileLock {
            file,
            path: path.to_path_buf(),
            previous,
            unsupported,
        })
    }

    /// The note of a holder that ended without releasing the lock (a crash), if any.
    pub fn left_by_crash(&self) -> Option<&str> {
        (!self.previous.is_empty()).then_some(self.previous.as_str())
    }

    /// Why this file system cannot lock the file, when it cannot.
    pub fn unsupported(&self) -> Option<&std::io::Error> {
        self.unsupported.as_ref()
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // An empty file tells the next holder that this one ended cleanly.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
        tracing::trace!(lock = %self.path.display(), "lock released");
    }
}

pub(crate) fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map_or_else(|| "this host".to_string(), |h| h.trim().to_string())
}
