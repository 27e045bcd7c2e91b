//! The rate budget of one project, in the state store: every pipeline of the project
//! draws on it (P12), and a restart of the server does not reset it, because when each
//! request was sent is in the file. The arithmetic is the engine's
//! (`tidewater::export::wait_for_slot`), on wall-clock milliseconds.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::params;
use tidewater::export::{budget_horizon, take_slot, wait_for_slot, RateBudget};

use super::{StateStore, StoreError};

/// The shared, persisted budget of requests to one project's export API.
#[derive(Clone)]
pub struct ProjectBudget {
    store: StateStore,
    project: String,
    limits: Vec<(u32, Duration)>,
}

impl ProjectBudget {
    /// The budget of `project` (its id, or any key naming it) under `limits`, e.g.
    /// Mixpanel's `3/1s` and `60/1h`.
    pub fn new(
        store: StateStore,
        project: impl Into<String>,
        limits: Vec<(u32, Duration)>,
    ) -> Self {
        ProjectBudget {
            store,
            project: project.into(),
            limits,
        }
    }

    /// Takes a slot now if one is free (recording the request) or says how long to
    /// wait for one.
    fn try_take(&self) -> Result<Duration, StoreError> {
        let now = now_ms();
        let horizon = budget_horizon(&self.limits).as_millis() as u64;
        let mut connection = self.store.connection();
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("taking a request slot"))?;
        tx.execute(
            "DELETE FROM budget_requests WHERE project = ?1 AND sent_ms < ?2",
            params![self.project, now.saturating_sub(horizon) as i64],
        )
        .map_err(StoreError::sqlite("forgetting old requests"))?;
        let sent: Vec<u64> = {
            let mut query = tx
                .prepare_cached(
                    "SELECT sent_ms FROM budget_requests WHERE project = ?1 ORDER BY sent_ms",
                )
                .map_err(StoreError::sqlite("reading recent requests"))?;
            let rows = query
                .query_map(params![self.project], |row| row.get::<_, i64>(0))
                .and_then(|rows| rows.map(|r| r.map(|t| t.max(0) as u64)).collect());
            rows.map_err(StoreError::sqlite("reading recent requests"))?
        };
        let wait = wait_for_slot(&self.limits, &sent, now);
        if wait.is_zero() {
            tx.execute(
                "INSERT INTO budget_requests (project, sent_ms) VALUES (?1, ?2)",
                params![self.project, now as i64],
            )
            .map_err(StoreError::sqlite("recording a request"))?;
        }
        tx.commit()
            .map_err(StoreError::sqlite("taking a request slot"))?;
        Ok(wait)
    }
}

impl RateBudget for ProjectBudget {
    fn acquire(&self) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
        Box::pin(take_slot(|| {
            self.try_take().unwrap_or_else(|e| {
                // Never send without a slot: wait, and try the store again.
                tracing::warn!(
                    "rate budget of project {}: {e}; retrying in 1 s",
                    self.project
                );
                Duration::from_secs(1)
            })
        }))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When project `p`'s requests were sent, as recorded.
    fn recorded(store: &StateStore, project: &str) -> Vec<u64> {
        let connection = store.connection();
        let mut query = connection
            .prepare("SELECT sent_ms FROM budget_requests WHERE project = ?1 ORDER BY sent_ms")
            .unwrap();
        query
            .query_map(params![project], |row| row.get::<_, i64>(0))
            .unwrap()
            .map(|t| t.unwrap() as u64)
            .collect()
    }

    #[tokio::test]
    async fn p12_pipelines_of_one_project_share_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        // 2 per 300 ms; the hour-long limit keeps every record for the check.
        let limits = vec![
            (2, Duration::from_millis(300)),
            (100, Duration::from_secs(3600)),
        ];
        let take = |budget: ProjectBudget| async move {
            for _ in 0..3 {
                budget.acquire().await;
            }
        };
        tokio::join!(
            take(ProjectBudget::new(store.clone(), "7", limits.clone())),
            take(ProjectBudget::new(store.clone(), "7", limits.clone())),
        );
        let sent = recorded(&store, "7");
        assert_eq!(sent.len(), 6);
        for (i, t) in sent.iter().enumerate() {
            let in_period = sent[..=i].iter().filter(|u| t - *u < 300).count();
            assert!(in_period <= 2, "{in_period} within 300 ms: {sent:?}");
        }
    }

    #[tokio::test]
    async fn p12_a_restart_does_not_reset_the_budget_and_projects_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let one_a_minute = vec![(1, Duration::from_secs(60))];
        let store = StateStore::open(&path).unwrap();
        ProjectBudget::new(store.clone(), "7", one_a_minute.clone())
            .acquire()
            .await;
        drop(store);
        let store = StateStore::open(&path).unwrap();
        let seven = ProjectBudget::new(store.clone(), "7", one_a_minute.clone());
        assert!(
            seven.try_take().unwrap() > Duration::from_secs(50),
            "remembered"
        );
        let eight = ProjectBudget::new(store, "8", one_a_minute);
        assert_eq!(
            eight.try_take().unwrap(),
            Duration::ZERO,
            "a budget of its own"
        );
    }
}
