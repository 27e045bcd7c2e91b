//! REST API keys (P28): made by a command of the server, shown once, kept only as their
//! SHA-256 (a key is 32 random bytes, so a fast hash is as strong as a slow one), and
//! optionally limited to some projects.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{StateStore, StoreError};
use crate::secrets::SecretError;

/// The prefix of every key, so that a leaked one is recognisable (and scannable).
const KEY_PREFIX: &str = "tw_";

/// What a key may do: its id and the projects it may reach (`None`: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyGrant {
    /// The key's id (for listing and revoking; not the key).
    pub id: i64,
    /// Its label, as given at creation.
    pub label: String,
    /// The projects it may reach; `None` for all.
    pub projects: Option<Vec<u64>>,
}

impl ApiKeyGrant {
    /// Whether the key may reach `project`.
    pub fn allows(&self, project: u64) -> bool {
        self.projects.as_ref().is_none_or(|p| p.contains(&project))
    }
}

/// The API keys of a state store.
#[derive(Clone)]
pub struct ApiKeys {
    store: StateStore,
}

impl ApiKeys {
    /// The keys of `store`.
    pub fn new(store: StateStore) -> Self {
        ApiKeys { store }
    }

    /// Makes a key; returns its grant and the key itself, which is shown this once and
    /// never stored.
    pub fn create(
        &self,
        label: &str,
        projects: Option<Vec<u64>>,
    ) -> Result<(ApiKeyGrant, String), StoreError> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random)
            .map_err(|e| StoreError::Secrets(SecretError::Random(e.to_string())))?;
        let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        let projects_json = projects
            .as_ref()
            .map(|p| serde_json::to_string(p).expect("numbers serialize"));
        let connection = self.store.connection();
        connection
            .execute(
                "INSERT INTO api_keys (label, key_sha256, projects, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    label,
                    digest(&key),
                    projects_json,
                    jiff::Timestamp::now().to_string()
                ],
            )
            .map_err(StoreError::sqlite("recording an API key"))?;
        let grant = ApiKeyGrant {
            id: connection.last_insert_rowid(),
            label: label.to_string(),
            projects,
        };
        Ok((grant, key))
    }

    /// The grant of a presented key, or `None` for an unknown (or revoked) one. The
    /// key is looked up by its digest, so nothing is compared byte by byte with it.
    pub fn verify(&self, presented: &str) -> Result<Option<ApiKeyGrant>, StoreError> {
        if !presented.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        self.store
            .connection()
            .query_row(
                "SELECT id, label, projects FROM api_keys WHERE key_sha256 = ?1",
                params![digest(presented)],
                grant_of_row,
            )
            .optional()
            .map_err(StoreError::sqlite("checking an API key"))
    }

    /// Every key's grant (never the keys), oldest first.
    pub fn list(&self) -> Result<Vec<ApiKeyGrant>, StoreError> {
        let connection = self.store.reader();
        let mut query = connection
            .prepare_cached("SELECT id, label, projects FROM api_keys ORDER BY id")
            .map_err(StoreError::sqlite("listing API keys"))?;
        let grants = query
            .query_map([], grant_of_row)
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("listing API keys"));
        grants
    }

    /// Revokes key `id`; false when there is no such key.
    pub fn revoke(&self, id: i64) -> Result<bool, StoreError> {
        self.store
            .connection()
            .execute("DELETE FROM api_keys WHERE id = ?1", params![id])
            .map(|n| n > 0)
            .map_err(StoreError::sqlite("revoking an API key"))
    }
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn grant_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyGrant> {
    let projects: Option<String> = row.get(2)?;
    Ok(ApiKeyGrant {
        id: row.get(0)?,
        label: row.get(1)?,
        projects: projects.and_then(|p| serde_json::from_str(&p).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p28_keys_are_shown_once_stored_hashed_and_limited_to_projects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let keys = ApiKeys::new(StateStore::open(&path).unwrap());
        let (all, all_key) = keys.create("ops", None).unwrap();
        let (some, some_key) = keys.create("team 7", Some(vec![7])).unwrap();
        assert!(all_key.starts_with("tw_") && all_key.len() > 40);
        assert_eq!(keys.verify(&all_key).unwrap().as_ref(), Some(&all));
        let grant = keys.verify(&some_key).unwrap().unwrap();
        assert!(grant.allows(7) && !grant.allows(8));
        assert!(all.allows(8));
        assert_eq!(keys.verify("tw_not-a-key").unwrap(), None);
        assert_eq!(keys.verify("").unwrap(), None);
        assert_eq!(keys.list().unwrap(), [all.clone(), some.clone()]);
        assert!(keys.revoke(some.id).unwrap());
        assert!(!keys.revoke(some.id).unwrap());
        assert_eq!(keys.verify(&some_key).unwrap(), None, "revoked");
        drop(keys);
        // The file never holds a key, only its digest.
        let bytes = std::fs::read(&path).unwrap();
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        for file in [&bytes, &wal] {
            assert!(!String::from_utf8_lossy(file).contains(&all_key[3..]));
        }
    }
}
