//! Versioned migrations: the file's `user_version` says which have run; each later one
//! runs in its own transaction, so a crash leaves the file at a whole version.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// The migrations, in order: version `n` is `MIGRATIONS[n - 1]`. Never edit one that
/// has shipped; add the next.
const MIGRATIONS: &[&str] = &[
    // 1: what the engine's seams need. `windows`: the ledger of each pipeline, one
    // manifest per committed window (export-api XC4). `budget_requests`: when each
    // request of a project was sent (ms since the epoch), for its shared rate budget.
    "CREATE TABLE windows (
         pipeline_id INTEGER NOT NULL,
         window TEXT NOT NULL,
         manifest TEXT NOT NULL,
         PRIMARY KEY (pipeline_id, window)
     ) STRICT;
     CREATE TABLE budget_requests (
         project TEXT NOT NULL,
         sent_ms INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX budget_requests_by_project ON budget_requests (project, sent_ms);",
    // 2: facts about the file itself, e.g. the sealed marker that proves the secret key.
    "CREATE TABLE meta (
         key TEXT PRIMARY KEY,
         value TEXT NOT NULL
     ) STRICT;",
    // 3: REST API keys (P28): only the SHA-256 of each key, and the projects it may
    // reach (a JSON array; NULL: all).
    "CREATE TABLE api_keys (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         label TEXT NOT NULL,
         key_sha256 TEXT NOT NULL UNIQUE,
         projects TEXT,
         created_at TEXT NOT NULL
     ) STRICT;",
    // 4: pipelines (P2) and their runs (P4). A pipeline's spec is JSON (what create and
    // edit decide); its Mixpanel credentials are sealed (P40). `cursor`: the first
    // instant (ms) of the next window the scheduler has not planned. Times are ms since
    // the epoch. `trials`: every project that ever had a trial (P15: one, ever).
    "CREATE TABLE pipelines (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         project_id INTEGER NOT NULL,
         name TEXT NOT NULL,
         spec TEXT NOT NULL,
         credentials TEXT NOT NULL,
         state TEXT NOT NULL,
         reason TEXT,
         created_at INTEGER NOT NULL,
         cursor INTEGER,
         UNIQUE (project_id, name)
     ) STRICT;
     CREATE TABLE runs (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
         kind TEXT NOT NULL,
         from_date TEXT NOT NULL,
         to_date TEXT NOT NULL,
         interval_start INTEGER NOT NULL,
         interval_end INTEGER NOT NULL,
         state TEXT NOT NULL,
         attempt INTEGER NOT NULL,
         run_at INTEGER NOT NULL,
         started_at INTEGER,
         ended_at INTEGER,
         error TEXT,
         steps TEXT,
         changed INTEGER
     ) STRICT;
     CREATE INDEX runs_by_pipeline ON runs (pipeline_id, id);
     CREATE INDEX runs_by_state ON runs (state, run_at);
     CREATE TABLE trials (
         project_id INTEGER PRIMARY KEY,
         created_at INTEGER NOT NULL
     ) STRICT;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(super) fn version(connection: &Connection) -> Result<u32, StoreError> {
    connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(StoreError::sqlite("reading the schema version"))
}

/// Brings the file up to [`SCHEMA_VERSION`]; refuses a file from a newer build.
pub(super) fn apply(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = version(connection)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let next = n as u32 + 1;
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("starting a migration"))?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", next))
            .and_then(|()| tx.commit())
            .map_err(StoreError::sqlite("migrating the schema"))?;
        tracing::info!(
            "state file {} migrated to schema version {next}",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StateStore;

    #[test]
    fn p41_migrations_run_once_and_a_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        // Reopening applies nothing again (a second CREATE TABLE would fail).
        let store = StateStore::open(&path).unwrap();
        store
            .connection()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(store);
        let err = StateStore::open(&path).err().expect("refused").to_string();
        assert!(err.contains("newer than this Tidewater knows"), "{err}");
    }
}
