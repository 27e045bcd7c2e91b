//! The state store (P41): one SQLite file, opened by one server at a time, its schema
//! brought up to date by versioned migrations. Everything else in the service reaches
//! the state through it.

mod budget;
mod keys;
mod ledger;
mod migrations;
mod pipelines;
mod runs;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension};
use tidewater::{FileLock, LockError};

use crate::secrets::{SecretBox, SecretError};

pub use budget::ProjectBudget;
pub use keys::{ApiKeyGrant, ApiKeys};
pub use ledger::WindowLedger;
pub use migrations::SCHEMA_VERSION;
pub use pipelines::{CreateRefused, ProjectFacts};
pub use runs::{RunEnd, RunFilter};

/// A time kept as ms since the epoch (out-of-range values, which this store never
/// writes, read as the epoch).
pub(crate) fn from_ms(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Why the state store cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another server holds the state file (P42: one server per state file).
    #[error("state file {path} is in use by another server ({holder}); stop it or choose another --state")]
    Locked {
        /// The state file.
        path: PathBuf,
        /// Who holds it: process id, host and start time.
        holder: String,
    },
    /// The state file was written by a newer Tidewater.
    #[error("state file {path} has schema version {found}, newer than this Tidewater knows ({known}); use a newer Tidewater")]
    TooNew {
        /// The state file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// The newest this build knows.
        known: u32,
    },
    /// The file or its lock cannot be opened or written.
    #[error("cannot use state file {path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The state file holds secrets and no key was given to open them.
    #[error(
        "state file {path} holds sealed secrets: set {} to the key they were sealed with",
        crate::secrets::KEY_ENV
    )]
    KeyMissing {
        /// The state file.
        path: PathBuf,
    },
    /// A secret could not be sealed or opened.
    #[error(transparent)]
    Secrets(SecretError),
    /// SQLite refused an operation.
    #[error("state store: {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl StoreError {
    pub(crate) fn sqlite(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { context, source }
    }
}

/// The state of one server: cheap to clone, shared by its parts.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connection: Mutex<Connection>,
    /// Read-only connections for the APIs' reads, so that they run in parallel with
    /// each other and with the writer (WAL).
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    /// Held while a server has the store open: a second server on the same file is
    /// refused. `None` for the administrative commands.
    _lock: Option<FileLock>,
}

impl StateStore {
    /// Opens (or creates) the state file, takes it for this server and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        let lock = lock_state_file(path)?;
        Self::open_with(path, Some(lock))
    }

    /// Opens a state file beside the server that may hold it, for the administrative
    /// commands (API keys): SQLite serializes their writes with the server's.
    pub fn open_shared(path: &Path) -> Result<StateStore, StoreError> {
        Self::open_with(path, None)
    }

    fn open_with(path: &Path, lock: Option<FileLock>) -> Result<StateStore, StoreError> {
        let mut connection =
            Connection::open(path).map_err(StoreError::sqlite("opening the state file"))?;
        // WAL: readers (the APIs) do not wait for the scheduler's writes; a busy
        // timeout rather than an error when a write is in progress.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| connection.pragma_update(None, "foreign_keys", true))
            .and_then(|()| connection.busy_timeout(std::time::Duration::from_secs(5)))
            .map_err(StoreError::sqlite("configuring the connection"))?;
        migrations::apply(&mut connection, path)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader =
                    Connection::open(path).map_err(StoreError::sqlite("opening the state file"))?;
                reader
                    .pragma_update(None, "query_only", true)
                    .and_then(|()| reader.busy_timeout(std::time::Duration::from_secs(5)))
                    .map_err(StoreError::sqlite("configuring the connection"))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(StateStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                connection: Mutex::new(connection),
                readers,
                next_reader: Default::default(),
                _lock: lock,
            }),
        })
    }

    /// Checks the secret key against the state file before any secret is used (P40).
    /// The first key given is recorded as a sealed marker; later, a different key, or
    /// none at all, is refused, so that a server never runs unable to open its secrets.
    pub fn unlock_secrets(&self, key: Option<&SecretBox>) -> Result<(), StoreError> {
        const MARKER: &[u8] = b"tidewater state file";
        const CONTEXT: &str = "meta:key-check";
        let connection = self.connection();
        let recorded: Option<String> = connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'key_check'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::sqlite("reading the key check"))?;
        match (recorded, key) {
            (Some(sealed), Some(key)) => match key.open(&sealed, CONTEXT) {
                Ok(marker) if marker == MARKER => Ok(()),
                _ => Err(StoreError::Secrets(SecretError::WrongKey)),
            },
            (Some(_), None) => Err(StoreError::KeyMissing {
                path: self.inner.path.clone(),
            }),
            (None, Some(key)) => {
                let sealed = key.seal(MARKER, CONTEXT).map_err(StoreError::Secrets)?;
                connection
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('key_check', ?1)",
                        [sealed],
                    )
                    .map(drop)
                    .map_err(StoreError::sqlite("recording the key check"))
            }
            (None, None) => Ok(()),
        }
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        migrations::version(&self.connection())
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A read-only connection: a free one if there is one, else the next in turn.
    pub(crate) fn reader(&self) -> MutexGuard<'_, Connection> {
        let readers = &self.inner.readers;
        for r in readers {
            if let Ok(guard) = r.try_lock() {
                return guard;
            }
        }
        let i = self
            .inner
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % readers.len();
        readers[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn connection(&self) -> MutexGuard<'_, Connection> {
        self.inner
            .connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Read-only connections beside the writer (the server has 2 worker threads).
const READERS: usize = 2;

/// Takes `<state>.lock` for this server (the engine's [`FileLock`]).
fn lock_state_file(path: &Path) -> Result<FileLock, StoreError> {
    let lock = match FileLock::acquire(&path.with_extension("lock")) {
        Ok(lock) => lock,
        Err(LockError::Held { holder }) => {
            return Err(StoreError::Locked {
                path: path.to_path_buf(),
                holder,
            })
        }
        Err(LockError::Io { path, source }) => return Err(StoreError::Io { path, source }),
    };
    match lock.unsupported() {
        // One server per file cannot be ensured there: refuse, as before any lock.
        Some(e) => Err(StoreError::Io {
            path: lock.path().to_path_buf(),
            source: std::io::Error::new(e.kind(), e.to_string()),
        }),
        None => Ok(lock),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p42_one_server_per_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let first = StateStore::open(&path).unwrap();
        let err = StateStore::open(&path).err().expect("refused").to_string();
        assert!(err.contains("in use by another server"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        StateStore::open(&path).expect("free again once the first closed");
    }

    #[test]
    fn p40_the_key_is_checked_before_any_secret_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        store
            .unlock_secrets(None)
            .expect("no secrets yet, no key needed");
        let key = SecretBox::from_key_text(&SecretBox::generate_key_text().unwrap()).unwrap();
        let other = SecretBox::from_key_text(&SecretBox::generate_key_text().unwrap()).unwrap();
        store
            .unlock_secrets(Some(&key))
            .expect("the first key is recorded");
        store
            .unlock_secrets(Some(&key))
            .expect("the same key again");
        let wrong = store.unlock_secrets(Some(&other)).unwrap_err().to_string();
        assert!(
            wrong.contains("not the one the secrets were sealed with"),
            "{wrong}"
        );
        let missing = store.unlock_secrets(None).unwrap_err().to_string();
        assert!(missing.contains("TIDEWATER_SECRET_KEY"), "{missing}");
    }
}
