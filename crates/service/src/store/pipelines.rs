//! Pipelines in the state store (P2): create (with the checks that need every pipeline
//! of the project, in the same transaction), read, edit, state changes and delete.

use jiff::Timestamp;
use rusqlite::{params, OptionalExtension, Row};

use super::{from_ms, StateStore, StoreError};
use crate::model::{Pipeline, PipelineSpec, PipelineState};

/// What the project already has, for the create checks of P31 and P15.
pub struct ProjectFacts<'a> {
    /// Its pipelines.
    pub pipelines: &'a [Pipeline],
    /// Whether it ever had a trial (also one since deleted).
    pub had_trial: bool,
}

const COLUMNS: &str = "id, spec, state, reason, created_at, cursor";

fn pipeline_of_row(row: &Row<'_>) -> rusqlite::Result<Pipeline> {
    let spec: String = row.get(1)?;
    let state: String = row.get(2)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("pipeline {what} is unreadable").into(),
        )
    };
    Ok(Pipeline {
        id: row.get(0)?,
        spec: serde_json::from_str::<PipelineSpec>(&spec).map_err(|_| bad("spec"))?,
        state: PipelineState::parse(&state).ok_or_else(|| bad("state"))?,
        reason: row.get(3)?,
        created_at: from_ms(row.get(4)?),
        cursor: row.get::<_, Option<i64>>(5)?.map(from_ms),
    })
}

impl StateStore {
    /// Creates `specs` (one create call may make several, P15) with the sealed
    /// credentials `sealed`, if `check` accepts them against what the project has.
    /// Returns the new ids, or `check`'s refusal. Names are unique per project (P30):
    /// a taken one is refused as [`CreateRefused::NameTaken`].
    pub fn create_pipelines(
        &self,
        specs: &[PipelineSpec],
        sealed: &str,
        now: Timestamp,
        check: impl FnOnce(&ProjectFacts<'_>) -> Result<(), String>,
    ) -> Result<Result<Vec<i64>, CreateRefused>, StoreError> {
        let Some(project) = specs.first().map(|s| s.project_id) else {
            return Ok(Ok(Vec::new()));
        };
        let mut connection = self.connection();
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("creating a pipeline"))?;
        let existing = query_pipelines(&tx, Some(project))?;
        let had_trial = tx
            .query_row(
                "SELECT 1 FROM trials WHERE project_id = ?1",
                params![project as i64],
                |_| Ok(()),
            )
            .optional()
            .map_err(StoreError::sqlite("reading the project's trials"))?
            .is_some();
        let facts = ProjectFacts {
            pipelines: &existing,
            had_trial,
        };
        if let Some(taken) = specs
            .iter()
            .find(|s| existing.iter().any(|p| p.spec.name == s.name))
        {
            return Ok(Err(CreateRefused::NameTaken(taken.name.clone())));
        }
        if let Err(why) = check(&facts) {
            return Ok(Err(CreateRefused::Rule(why)));
        }
        let mut ids = Vec::new();
        for spec in specs {
            tx.execute(
                "INSERT INTO pipelines (project_id, name, spec, credentials, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'enabled', ?5)",
                params![
                    spec.project_id as i64,
                    spec.name,
                    serde_json::to_string(spec).expect("specs serialize"),
                    sealed,
                    now.as_millisecond()
                ],
            )
            .map_err(StoreError::sqlite("creating a pipeline"))?;
            ids.push(tx.last_insert_rowid());
            if spec.trial {
                tx.execute(
                    "INSERT OR IGNORE INTO trials (project_id, created_at) VALUES (?1, ?2)",
                    params![spec.project_id as i64, now.as_millisecond()],
                )
                .map_err(StoreError::sqlite("recording the trial"))?;
            }
        }
        tx.commit()
            .map_err(StoreError::sqlite("creating a pipeline"))?;
        Ok(Ok(ids))
    }

    /// Every pipeline, or those of one project, by id.
    pub fn pipelines(&self, project: Option<u64>) -> Result<Vec<Pipeline>, StoreError> {
        query_pipelines(&self.reader(), project)
    }

    /// The pipeline `id`.
    pub fn pipeline(&self, id: i64) -> Result<Option<Pipeline>, StoreError> {
        self.reader()
            .query_row(
                &format!("SELECT {COLUMNS} FROM pipelines WHERE id = ?1"),
                params![id],
                pipeline_of_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a pipeline"))
    }

    /// The pipeline of `project` named `name`.
    pub fn pipeline_named(&self, project: u64, name: &str) -> Result<Option<Pipeline>, StoreError> {
        self.reader()
            .query_row(
                &format!("SELECT {COLUMNS} FROM pipelines WHERE project_id = ?1 AND name = ?2"),
                params![project as i64, name],
                pipeline_of_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a pipeline"))
    }

    /// The sealed Mixpanel credentials of pipeline `id`.
    pub fn sealed_credentials(&self, id: i64) -> Result<Option<String>, StoreError> {
        self.reader()
            .query_row(
                "SELECT credentials FROM pipelines WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()
            .map_err(StoreError::sqlite("reading credentials"))
    }

    /// The sealed credentials of every pipeline of `project`.
    pub fn project_credentials(&self, project: u64) -> Result<Vec<String>, StoreError> {
        let connection = self.reader();
        let mut query = connection
            .prepare_cached("SELECT DISTINCT credentials FROM pipelines WHERE project_id = ?1")
            .map_err(StoreError::sqlite("reading credentials"))?;
        let rows = query
            .query_map(params![project as i64], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("reading credentials"));
        rows
    }

    /// Replaces pipeline `id`'s spec (edit, P16) and, when given, its credentials.
    pub fn update_spec(
        &self,
        id: i64,
        spec: &PipelineSpec,
        sealed: Option<&str>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE pipelines SET spec = ?2, name = ?3,
                     credentials = COALESCE(?4, credentials) WHERE id = ?1",
                params![
                    id,
                    serde_json::to_string(spec).expect("specs serialize"),
                    spec.name,
                    sealed
                ],
            )
            .map(drop)
            .map_err(StoreError::sqlite("editing a pipeline"))
    }

    /// Sets pipeline `id`'s state and the reason for it.
    pub fn set_pipeline_state(
        &self,
        id: i64,
        state: PipelineState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.connection()
            .execute(
                "UPDATE pipelines SET state = ?2, reason = ?3 WHERE id = ?1",
                params![id, state.as_str(), reason],
            )
            .map(drop)
            .map_err(StoreError::sqlite("changing a pipeline's state"))
    }

    /// Removes pipeline `id`, its runs and its ledger (P17: the exported data stays).
    pub fn delete_pipeline(&self, id: i64) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("deleting a pipeline"))?;
        tx.execute("DELETE FROM windows WHERE pipeline_id = ?1", params![id])
            .map_err(StoreError::sqlite("deleting a pipeline's ledger"))?;
        let deleted = tx
            .execute("DELETE FROM pipelines WHERE id = ?1", params![id])
            .map_err(StoreError::sqlite("deleting a pipeline"))?;
        tx.commit()
            .map_err(StoreError::sqlite("deleting a pipeline"))?;
        Ok(deleted > 0)
    }
}

/// Why a create was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefused {
    /// A rule about what the project already has (P31, P15).
    Rule(String),
    /// The name is taken in the project (P30).
    NameTaken(String),
}

fn query_pipelines(
    connection: &rusqlite::Connection,
    project: Option<u64>,
) -> Result<Vec<Pipeline>, StoreError> {
    let mut query = connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM pipelines WHERE ?1 IS NULL OR project_id = ?1 ORDER BY id"
        ))
        .map_err(StoreError::sqlite("listing pipelines"))?;
    let rows = query
        .query_map(params![project.map(|p| p as i64)], pipeline_of_row)
        .and_then(Iterator::collect)
        .map_err(StoreError::sqlite("listing pipelines"));
    rows
}
