//! The window ledger of one pipeline, in the state store: the engine's resume seam
//! (`tidewater::export::Ledger`), so that a pipeline's runs skip windows it committed
//! for the same request, also after a crash of the server (P10, P19).

use rusqlite::{params, OptionalExtension};
use tidewater::export::{Ledger, Manifest};

use super::{StateStore, StoreError};

/// The committed windows of one pipeline.
#[derive(Clone)]
pub struct WindowLedger {
    store: StateStore,
    pipeline_id: i64,
}

impl WindowLedger {
    /// The ledger of pipeline `pipeline_id`.
    pub fn new(store: StateStore, pipeline_id: i64) -> Self {
        WindowLedger { store, pipeline_id }
    }

    /// The windows recorded, by name, in order.
    pub fn windows(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.store.connection();
        let mut query = connection
            .prepare_cached("SELECT window FROM windows WHERE pipeline_id = ?1 ORDER BY window")
            .map_err(StoreError::sqlite("listing committed windows"))?;
        let rows = query
            .query_map(params![self.pipeline_id], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("listing committed windows"));
        rows
    }
}

impl Ledger for WindowLedger {
    fn committed(&self, name: &str) -> Option<Manifest> {
        let text: Option<String> = self
            .store
            .connection()
            .query_row(
                "SELECT manifest FROM windows WHERE pipeline_id = ?1 AND window = ?2",
                params![self.pipeline_id, name],
                |row| row.get(0),
            )
            .optional()
            .unwrap_or_else(|e| {
                // Counted as not committed: the window is exported again, never lost.
                tracing::warn!("cannot read the ledger of window {name}: {e}; exporting it again");
                None
            });
        text.and_then(|t| serde_json::from_str(&t).ok())
    }

    fn record(&self, name: &str, manifest: &Manifest) -> tidewater::Result<()> {
        self.store
            .connection()
            .execute(
                "INSERT INTO windows (pipeline_id, window, manifest) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pipeline_id, window) DO UPDATE SET manifest = excluded.manifest",
                params![self.pipeline_id, name, manifest.text()],
            )
            .map(drop)
            .map_err(|e| tidewater::Error::resource("the state store's window ledger", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewater::export::ManifestRequest;

    fn manifest(events: u64) -> Manifest {
        Manifest {
            version: 2,
            request: ManifestRequest {
                from_date: "2024-01-02".into(),
                to_date: "2024-01-02".into(),
                events: Vec::new(),
                where_expr: None,
                filter_locally: false,
                schema: "monoschema".into(),
                format: "parquet".into(),
                tz: "UTC".into(),
                partition: "daily".into(),
                time_in_ms: false,
                nested_as_text: false,
                within: None,
            },
            attempts: 1,
            bytes_received: 10,
            bytes: 20,
            sha256: "ab".into(),
            gzip: true,
            lines: events,
            events_kept: events,
            events_filtered: 0,
            rejects: 0,
            files_written: 1,
            folders: vec!["mp_master_event/2024/01/02".into()],
            committed_at: "2024-01-03T00:31:00Z".into(),
        }
    }

    #[test]
    fn p19_committed_windows_survive_a_restart_per_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = StateStore::open(&path).unwrap();
        let first = WindowLedger::new(store.clone(), 1);
        let other = WindowLedger::new(store.clone(), 2);
        first.record("2024-01-02", &manifest(5)).unwrap();
        first.record("2024-01-02", &manifest(7)).unwrap(); // a sync replaced it
        assert!(
            other.committed("2024-01-02").is_none(),
            "another pipeline's"
        );
        drop((first, other, store));

        let store = StateStore::open(&path).unwrap();
        let ledger = WindowLedger::new(store, 1);
        let m = ledger
            .committed("2024-01-02")
            .expect("kept across the restart");
        assert_eq!(m.events_kept, 7);
        assert_eq!(m.folders, ["mp_master_event/2024/01/02"]);
        assert_eq!(ledger.windows().unwrap(), ["2024-01-02"]);
        assert!(ledger.committed("2024-01-03").is_none());
    }
}
