//! Runs in the state store (P4, P5): planned with the pipeline's cursor in one
//! transaction, started, ended with whatever follows from their end (a retry, a new
//! pipeline state) in one transaction, and listed for the APIs.

use jiff::civil::Date;
use jiff::Timestamp;
use rusqlite::{params, params_from_iter, OptionalExtension, Row, Transaction};

use super::{from_ms, StateStore, StoreError};
use crate::model::{days as days_of, NewRun, PipelineState, Run, RunKind, RunState, StepCounts};

const COLUMNS: &str = "id, pipeline_id, kind, from_date, to_date, interval_start, interval_end, \
     state, attempt, run_at, started_at, ended_at, error, steps, changed";

fn run_of_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("run {what} is unreadable").into(),
        )
    };
    let date = |i: usize| -> rusqlite::Result<Date> {
        row.get::<_, String>(i)?.parse().map_err(|_| bad("date"))
    };
    let steps: Option<String> = row.get(13)?;
    Ok(Run {
        id: row.get(0)?,
        pipeline_id: row.get(1)?,
        kind: RunKind::parse(&row.get::<_, String>(2)?).ok_or_else(|| bad("kind"))?,
        from_date: date(3)?,
        to_date: date(4)?,
        interval_start: from_ms(row.get(5)?),
        interval_end: from_ms(row.get(6)?),
        state: RunState::parse(&row.get::<_, String>(7)?).ok_or_else(|| bad("state"))?,
        attempt: row.get(8)?,
        run_at: from_ms(row.get(9)?),
        started_at: row.get::<_, Option<i64>>(10)?.map(from_ms),
        ended_at: row.get::<_, Option<i64>>(11)?.map(from_ms),
        error: row.get(12)?,
        steps: steps.and_then(|s| serde_json::from_str(&s).ok()),
        changed: row.get(14)?,
    })
}

fn insert(tx: &Transaction<'_>, run: &NewRun) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO runs (pipeline_id, kind, from_date, to_date, interval_start, interval_end,
                           state, attempt, run_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
        params![
            run.pipeline_id,
            run.kind.as_str(),
            run.from_date.to_string(),
            run.to_date.to_string(),
            run.interval_start.as_millisecond(),
            run.interval_end.as_millisecond(),
            run.attempt,
            run.run_at.as_millisecond()
        ],
    )
    .map_err(StoreError::sqlite("adding a run"))?;
    Ok(tx.last_insert_rowid())
}

/// How a run ended, and what follows from it; recorded in one transaction.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// Its final state.
    pub state: RunState,
    /// When it ended.
    pub at: Timestamp,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// What it counted.
    pub steps: Option<StepCounts>,
    /// For a sync: whether the day had changed.
    pub changed: Option<bool>,
    /// The run that does its windows again (a retry, or after a pause).
    pub then: Option<NewRun>,
    /// The pipeline's new state (faulted) and the reason.
    pub pipeline: Option<(PipelineState, String)>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// One pipeline's.
    pub pipeline_id: Option<i64>,
    /// Only those of these pipelines (an API key's projects).
    pub pipelines_in: Option<Vec<i64>>,
    /// Only in these states.
    pub states: Vec<RunState>,
    /// Windows from this day on.
    pub from_date: Option<Date>,
    /// Windows up to this day.
    pub to_date: Option<Date>,
    /// Runs with an id below this (paging backwards, newest first).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl StateStore {
    /// Adds `runs` and moves pipeline `pipeline_id`'s cursor to `cursor`, together:
    /// a crash never plans a window twice or loses one (P10, P19).
    pub fn plan_runs(
        &self,
        pipeline_id: i64,
        runs: &[NewRun],
        cursor: Option<Timestamp>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut connection = self.connection();
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("planning runs"))?;
        let ids = runs
            .iter()
            .map(|r| insert(&tx, r))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(cursor) = cursor {
            tx.execute(
                "UPDATE pipelines SET cursor = ?2 WHERE id = ?1",
                params![pipeline_id, cursor.as_millisecond()],
            )
            .map_err(StoreError::sqlite("moving the cursor"))?;
        }
        tx.commit().map_err(StoreError::sqlite("planning runs"))?;
        Ok(ids)
    }

    /// Marks run `id` running if it is still pending (a pause or delete may have come
    /// first); says whether it did.
    pub fn start_run(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.connection()
            .execute(
                "UPDATE runs SET state = 'running', started_at = ?2
                 WHERE id = ?1 AND state = 'pending'",
                params![id, at.as_millisecond()],
            )
            .map(|n| n == 1)
            .map_err(StoreError::sqlite("starting a run"))
    }

    /// Records how run `id` ended and what follows, in one transaction (P41). Returns
    /// the id of the run that follows, if any (none when the pipeline was deleted).
    pub fn finish_run(&self, id: i64, end: &RunEnd) -> Result<Option<i64>, StoreError> {
        let mut connection = self.connection();
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("ending a run"))?;
        let updated = tx
            .execute(
                "UPDATE runs SET state = ?2, ended_at = ?3, error = ?4, steps = ?5, changed = ?6
                 WHERE id = ?1",
                params![
                    id,
                    end.state.as_str(),
                    end.at.as_millisecond(),
                    end.error,
                    end.steps
                        .as_ref()
                        .map(|s| serde_json::to_string(s).expect("counts serialize")),
                    end.changed
                ],
            )
            .map_err(StoreError::sqlite("ending a run"))?;
        if updated == 0 {
            return Ok(None); // deleted with its pipeline meanwhile
        }
        let then = end.then.as_ref().map(|r| insert(&tx, r)).transpose()?;
        if let Some((state, reason)) = &end.pipeline {
            tx.execute(
                "UPDATE pipelines SET state = ?2, reason = ?3
                 WHERE id = (SELECT pipeline_id FROM runs WHERE id = ?1)",
                params![id, state.as_str(), reason],
            )
            .map_err(StoreError::sqlite("changing a pipeline's state"))?;
        }
        tx.commit().map_err(StoreError::sqlite("ending a run"))?;
        Ok(then)
    }

    /// After a crash (P19): every run that was running is recorded as `retried` and
    /// added again as pending, in one transaction. Returns how many.
    pub fn recover_running(&self, at: Timestamp) -> Result<usize, StoreError> {
        let mut connection = self.connection();
        let tx = connection
            .transaction()
            .map_err(StoreError::sqlite("recovering runs"))?;
        let running: Vec<Run> = {
            let mut query = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM runs WHERE state = 'running'"
                ))
                .map_err(StoreError::sqlite("recovering runs"))?;
            let rows = query
                .query_map([], run_of_row)
                .and_then(Iterator::collect)
                .map_err(StoreError::sqlite("recovering runs"))?;
            rows
        };
        for run in &running {
            tx.execute(
                "UPDATE runs SET state = 'retried', ended_at = ?2,
                     error = 'the server stopped while it ran' WHERE id = ?1",
                params![run.id, at.as_millisecond()],
            )
            .map_err(StoreError::sqlite("recovering runs"))?;
            insert(&tx, &run.again(run.attempt + 1, at))?;
        }
        tx.commit().map_err(StoreError::sqlite("recovering runs"))?;
        Ok(running.len())
    }

    /// Ends every pending run of pipeline `pipeline_id` as canceled (the pipeline
    /// stopped for good).
    pub fn cancel_pending(&self, pipeline_id: i64, at: Timestamp) -> Result<usize, StoreError> {
        self.connection()
            .execute(
                "UPDATE runs SET state = 'canceled', ended_at = ?2
                 WHERE pipeline_id = ?1 AND state = 'pending'",
                params![pipeline_id, at.as_millisecond()],
            )
            .map_err(StoreError::sqlite("canceling runs"))
    }

    /// The run `id`.
    pub fn run(&self, id: i64) -> Result<Option<Run>, StoreError> {
        self.reader()
            .query_row(
                &format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"),
                params![id],
                run_of_row,
            )
            .optional()
            .map_err(StoreError::sqlite("reading a run"))
    }

    /// Runs matching `filter`, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1");
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let mut bind = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            values.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", values.len())));
        };
        if let Some(p) = filter.pipeline_id {
            bind(&mut sql, " AND pipeline_id = ?", p.into());
        }
        if let Some(ids) = &filter.pipelines_in {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            sql.push_str(&format!(" AND pipeline_id IN ({})", list.join(",")));
        }
        if !filter.states.is_empty() {
            let list: Vec<String> = filter
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND state IN ({})", list.join(",")));
        }
        if let Some(d) = filter.from_date {
            bind(&mut sql, " AND to_date >= ?", d.to_string().into());
        }
        if let Some(d) = filter.to_date {
            bind(&mut sql, " AND from_date <= ?", d.to_string().into());
        }
        if let Some(id) = filter.before_id {
            bind(&mut sql, " AND id < ?", id.into());
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", filter.limit.max(1)));
        let connection = self.reader();
        let mut query = connection
            .prepare_cached(&sql)
            .map_err(StoreError::sqlite("listing runs"))?;
        let rows = query
            .query_map(params_from_iter(values), run_of_row)
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("listing runs"));
        rows
    }

    /// Pending runs of enabled pipelines that may start at `now`, oldest window first,
    /// with their project.
    pub fn runnable(&self, now: Timestamp) -> Result<Vec<(Run, u64)>, StoreError> {
        let connection = self.reader();
        let columns: Vec<String> = COLUMNS.split(", ").map(|c| format!("r.{c}")).collect();
        let mut query = connection
            .prepare_cached(&format!(
                "SELECT {}, p.project_id FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
                 WHERE r.state = 'pending' AND p.state = 'enabled' AND r.run_at <= ?1
                 ORDER BY r.interval_start, r.id",
                columns.join(", ")
            ))
            .map_err(StoreError::sqlite("finding runs to start"))?;
        let rows = query
            .query_map(params![now.as_millisecond()], |row| {
                Ok((run_of_row(row)?, row.get::<_, i64>(15)? as u64))
            })
            .and_then(Iterator::collect)
            .map_err(StoreError::sqlite("finding runs to start"));
        rows
    }

    /// When the next pending run of an enabled pipeline may start, after `now`.
    pub fn next_run_at(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        self.reader()
            .query_row(
                "SELECT MIN(r.run_at) FROM runs r JOIN pipelines p ON p.id = r.pipeline_id
                 WHERE r.state = 'pending' AND p.state = 'enabled' AND r.run_at > ?1",
                params![now.as_millisecond()],
                |row| row.get::<_, Option<i64>>(0),
            )
            .map(|t| t.map(from_ms))
            .map_err(StoreError::sqlite("finding the next run"))
    }

    /// Per day of pipeline `pipeline_id` from `since` on that a run ever committed:
    /// when a run over it last succeeded (its first export or its last sync check), and
    /// whether a run over it is pending or running. Runs over several days (manual
    /// ones) count for each of their days.
    pub fn day_activity(
        &self,
        pipeline_id: i64,
        since: Date,
    ) -> Result<Vec<(Date, Option<Timestamp>, bool)>, StoreError> {
        let connection = self.reader();
        let mut query = connection
            .prepare_cached(
                "SELECT from_date, to_date, state, ended_at FROM runs
                 WHERE pipeline_id = ?1 AND to_date >= ?2
                   AND state IN ('succeeded', 'pending', 'running')",
            )
            .map_err(StoreError::sqlite("reading the days' runs"))?;
        let rows = query
            .query_map(params![pipeline_id, since.to_string()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(StoreError::sqlite("reading the days' runs"))?;
        let mut days: std::collections::BTreeMap<Date, (Option<Timestamp>, bool)> =
            Default::default();
        for (from, to, state, ended) in rows {
            let (Ok(from), Ok(to)) = (from.parse::<Date>(), to.parse::<Date>()) else {
                continue;
            };
            for day in days_of(from.max(since), to) {
                let entry = days.entry(day).or_default();
                if state == "succeeded" {
                    entry.0 = entry.0.max(ended.map(from_ms));
                } else {
                    entry.1 = true;
                }
            }
        }
        Ok(days
            .into_iter()
            .map(|(d, (t, open))| (d, t, open))
            .collect())
    }

    /// The end of the last window a run of pipeline `pipeline_id` committed (P13).
    pub fn last_success_end(&self, pipeline_id: i64) -> Result<Option<Timestamp>, StoreError> {
        self.reader()
            .query_row(
                "SELECT MAX(interval_end) FROM runs WHERE pipeline_id = ?1 AND state = 'succeeded'",
                params![pipeline_id],
                |row| row.get::<_, Option<i64>>(0),
            )
            .map(|t| t.map(from_ms))
            .map_err(StoreError::sqlite("reading the last success"))
    }

    /// Runs of every pipeline by state, for the metrics.
    pub fn runs_by_state(&self) -> Result<Vec<(RunState, u64)>, StoreError> {
        let connection = self.reader();
        let mut query = connection
            .prepare_cached("SELECT state, COUNT(*) FROM runs GROUP BY state")
            .map_err(StoreError::sqlite("counting runs"))?;
        let rows = query
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(StoreError::sqlite("counting runs"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| Some((RunState::parse(&s)?, n as u64)))
            .collect())
    }

    /// Succeeded runs of pipeline `pipeline_id` as (first day, last day, end time), by
    /// day: the timeline's sync times (P24).
    pub fn successes(&self, pipeline_id: i64) -> Result<Vec<(Date, Date, Timestamp)>, StoreError> {
        let connection = self.reader();
        let mut query = connection
            .prepare_cached(
                "SELECT from_date, to_date, ended_at FROM runs
                 WHERE pipeline_id = ?1 AND state = 'succeeded' ORDER BY from_date, ended_at",
            )
            .map_err(StoreError::sqlite("reading the timeline"))?;
        let rows = query
            .query_map(params![pipeline_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(StoreError::sqlite("reading the timeline"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(f, t, at)| Some((f.parse().ok()?, t.parse().ok()?, from_ms(at))))
            .collect())
    }
}
