//! The scheduler (P10–P19): plans each pipeline's due windows as runs, oldest first,
//! plans sync checks of recent days, ends expired trials, starts runs (one per project
//! at a time by default) and records how they end. It sleeps on the service's clock
//! until the next thing is due, or until an API call or a finished run wakes it: an
//! idle server does not poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use tidewater::Cancel;

use crate::model::{DataSource, NewRun, Pipeline, PipelineState, Run, RunKind};
use crate::rules::today_in;
use crate::schedule::{day_start, Frequency, Schedule};
use crate::service::{Running, Service, StopReason};
use crate::store::StoreError;
use crate::worker::{end_of, execute};

/// At most this many windows of one pipeline are planned per pass, so that a long
/// backfill does not hold the store; the next pass follows at once.
const PLAN_BATCH: usize = 500;

/// At most this many consecutive days of one pipeline are exported together (see
/// [`batch_from`]): enough for the engine to fetch ahead while it converts.
const BATCH_WINDOWS: usize = 31;

fn earliest(next: &mut Option<Timestamp>, at: Timestamp) {
    if next.is_none_or(|n| at < n) {
        *next = Some(at);
    }
}

/// The first instant of `day` and of the day after, in `tz`.
fn day_interval(tz: &str, day: Date) -> Option<(Timestamp, Timestamp)> {
    let zone = jiff::tz::TimeZone::get(tz).ok()?;
    Some((
        day_start(&zone, day)?,
        day_start(&zone, day.tomorrow().ok()?)?,
    ))
}

impl Service {
    /// Runs the scheduler until [`Service::stop`], then waits up to the grace period
    /// for running runs to end. Runs that were running when a server stopped
    /// abruptly are recorded as `retried` and run again first (P19).
    pub async fn run_scheduler(&self) -> Result<(), StoreError> {
        let recovered = self.store().recover_running(self.clock().now())?;
        if recovered > 0 {
            tracing::info!(
                runs = recovered,
                "{recovered} run(s) were running when the server stopped; running them again"
            );
        }
        while !self.is_stopping() {
            let next = match self.tick(self.clock().now()) {
                Ok(next) => next,
                Err(e) => {
                    // The store refused a write: try again shortly rather than stop.
                    tracing::error!("scheduler: {e}; trying again in 5 s");
                    Some(self.clock().now() + SignedDuration::from_secs(5))
                }
            };
            let woken = self.inner.wake.notified();
            tokio::select! {
                () = async {
                    match next {
                        Some(at) => self.clock().sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                () = woken => {}
            }
        }
        // P42: running runs get the grace period to finish, then are canceled
        // uncommitted (and run again at the next start).
        let deadline = tokio::time::Instant::now() + self.config().grace;
        while self.runs_in_progress() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if self.runs_in_progress() > 0 {
            self.cancel_all();
            while self.runs_in_progress() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// One pass: plan what is due, start what may start. Returns when the next thing
    /// is due.
    pub(crate) fn tick(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let mut next = self.store().next_run_at(now)?;
        let mut enabled = HashMap::new();
        for pipeline in self.store().pipelines(None)? {
            if pipeline.state != PipelineState::Enabled {
                continue;
            }
            if pipeline.spec.trial && self.end_trial_if_expired(&pipeline, now, &mut next)? {
                continue;
            }
            if pipeline.spec.automatic {
                self.plan_windows(&pipeline, now, &mut next)?;
            }
            if pipeline.spec.sync {
                self.plan_syncs(&pipeline, now, &mut next)?;
            }
            enabled.insert(pipeline.id, pipeline);
        }
        self.start_runs(now, &enabled)?;
        self.metrics()
            .scheduler_passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(next)
    }

    /// P15: a trial stops by itself when its days are over.
    fn end_trial_if_expired(
        &self,
        pipeline: &Pipeline,
        now: Timestamp,
        next: &mut Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let expires =
            pipeline.created_at + SignedDuration::from_hours(24 * self.config().trial_days);
        if now < expires {
            earliest(next, expires);
            return Ok(false);
        }
        self.store().set_pipeline_state(
            pipeline.id,
            PipelineState::Canceled,
            Some("trial_expired"),
        )?;
        self.store().cancel_pending(pipeline.id, now)?;
        self.cancel_runs_of(pipeline.id, StopReason::End);
        tracing::info!(pipeline = %pipeline.spec.name, "pipeline {} canceled: trial_expired", pipeline.spec.name);
        Ok(true)
    }

    /// P10, P11: every window that became due since the pipeline's cursor, oldest
    /// first, as runs (backfill for windows closed before the pipeline existed).
    fn plan_windows(
        &self,
        pipeline: &Pipeline,
        now: Timestamp,
        next: &mut Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let spec = &pipeline.spec;
        let Ok(schedule) = Schedule::new(
            spec.frequency,
            spec.from_date,
            spec.to_date,
            &spec.tz,
            self.config().delay,
        ) else {
            return Ok(()); // checked at create; a zone gone from the database
        };
        let delay = self.config().delay;
        let cursor = pipeline.cursor.unwrap_or(schedule.start());
        let windows = schedule
            .windows_from(cursor)
            .take_while(|w| w.end + delay <= now);
        let due: Vec<_> = match spec.data_source {
            // A snapshot of profiles is of now: days that passed are not snapshotted
            // one by one, only the latest due one.
            DataSource::People => windows.last().into_iter().collect(),
            DataSource::Events => windows.take(PLAN_BATCH).collect(),
        };
        if let Some(last) = due.last() {
            let runs: Vec<NewRun> = due
                .iter()
                .map(|w| {
                    let day =
                        Date::new(w.key.year, w.key.month, w.key.day).unwrap_or(spec.from_date);
                    NewRun {
                        pipeline_id: pipeline.id,
                        kind: if w.end <= pipeline.created_at {
                            RunKind::Backfill
                        } else {
                            RunKind::Scheduled
                        },
                        from_date: day,
                        to_date: day,
                        interval_start: w.start,
                        interval_end: w.end,
                        attempt: 1,
                        run_at: w.end + delay,
                    }
                })
                .collect();
            self.store().plan_runs(pipeline.id, &runs, Some(last.end))?;
            if due.len() == PLAN_BATCH {
                earliest(next, now);
            }
        }
        if let Some(at) = schedule.next_due_at(now) {
            earliest(next, at);
        }
        Ok(())
    }

    /// P14: each committed day of the last `sync_days` days is checked again once a
    /// day, from `sync_after` after its export on.
    fn plan_syncs(
        &self,
        pipeline: &Pipeline,
        now: Timestamp,
        next: &mut Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let spec = &pipeline.spec;
        let Ok(today) = today_in(&spec.tz, now) else {
            return Ok(());
        };
        let since = today
            .checked_sub(jiff::Span::new().days(i64::from(self.config().sync_days)))
            .unwrap_or(today);
        let mut runs = Vec::new();
        for (day, last_success, open) in self.store().day_activity(pipeline.id, since)? {
            let (Some(last), false) = (last_success, open) else {
                continue;
            };
            let due = last + self.config().sync_after;
            if due > now {
                earliest(next, due);
                continue;
            }
            if let Some((start, end)) = day_interval(&spec.tz, day) {
                runs.push(NewRun {
                    pipeline_id: pipeline.id,
                    kind: RunKind::Sync,
                    from_date: day,
                    to_date: day,
                    interval_start: start,
                    interval_end: end,
                    attempt: 1,
                    run_at: now,
                });
            }
        }
        if !runs.is_empty() {
            self.store().plan_runs(pipeline.id, &runs, None)?;
        }
        Ok(())
    }

    /// Starts the runs that may start: oldest window first, at most `max_runs` in
    /// all, `runs_per_project` per project and one per pipeline (a pipeline's runs
    /// share its output folder).
    fn start_runs(
        &self,
        now: Timestamp,
        enabled: &HashMap<i64, Pipeline>,
    ) -> Result<(), StoreError> {
        if self.is_stopping() {
            return Ok(());
        }
        let (mut per_project, mut busy_pipelines) = {
            let running = self.running();
            let mut per_project: HashMap<u64, usize> = HashMap::new();
            for r in running.values() {
                *per_project.entry(r.project_id).or_default() += 1;
            }
            let pipelines: Vec<i64> = running.values().map(|r| r.pipeline_id).collect();
            (per_project, pipelines)
        };
        let mut running = busy_pipelines.len();
        let runnable = self.store().runnable(now)?;
        for (i, (run, project)) in runnable.iter().enumerate() {
            if running >= self.config().max_runs {
                break;
            }
            let count = per_project.entry(*project).or_default();
            if *count >= self.config().runs_per_project || busy_pipelines.contains(&run.pipeline_id)
            {
                continue;
            }
            // Runnable runs belong to enabled pipelines; one enabled since this pass
            // began waits for the next.
            let Some(pipeline) = enabled.get(&run.pipeline_id).cloned() else {
                continue;
            };
            if !self.store().start_run(run.id, now)? {
                continue;
            }
            *count += 1;
            running += 1;
            busy_pipelines.push(run.pipeline_id);
            let batch = batch_from(&pipeline, &runnable[i..]);
            self.spawn_run(pipeline, batch);
        }
        Ok(())
    }

    /// Runs `runs` (a batch from [`batch_from`], the first one started) on a blocking
    /// thread, and records how those that did not end with their commit ended.
    fn spawn_run(&self, pipeline: Pipeline, runs: Vec<Run>) {
        let cancel = Cancel::default();
        let reason = Arc::new(std::sync::Mutex::new(StopReason::Shutdown));
        let first = runs[0].id;
        self.running().insert(
            first,
            Running {
                cancel: cancel.clone(),
                project_id: pipeline.spec.project_id,
                pipeline_id: pipeline.id,
                reason: reason.clone(),
            },
        );
        log_state(&pipeline, &runs[0], "running", None);
        let service = self.clone();
        tokio::spawn(async move {
            // The limit is per run: a batch of n runs may take n limits.
            let timeout = service.config().run_timeout * runs.len() as u32;
            let (worker_service, worker_pipeline, worker_runs, worker_cancel) = (
                service.clone(),
                pipeline.clone(),
                runs.clone(),
                cancel.clone(),
            );
            let mut work = tokio::task::spawn_blocking(move || {
                execute(
                    &worker_service,
                    &worker_pipeline,
                    &worker_runs,
                    worker_cancel,
                )
            });
            let mut timed_out = false;
            let ended = tokio::select! {
                done = &mut work => done,
                () = tokio::time::sleep(timeout) => {
                    timed_out = true;
                    cancel.cancel();
                    work.await
                }
            };
            let ended = ended.unwrap_or_else(|e| {
                vec![(
                    0,
                    crate::worker::Attempt::Failed {
                        error: format!("the run stopped unexpectedly: {e}"),
                        steps: Default::default(),
                    },
                )]
            });
            let reason = *reason.lock().unwrap_or_else(|e| e.into_inner());
            for (i, attempt) in ended {
                let run = &runs[i];
                let end = end_of(&service, run, attempt, timed_out, reason);
                log_state(&pipeline, run, end.state.as_str(), end.error.as_deref());
                if let Err(e) = service.store().finish_run(run.id, &end) {
                    tracing::error!(run = run.id, "cannot record the end of run {}: {e}", run.id);
                }
            }
            service.running().remove(&first);
            service.wake();
        });
    }
}

/// The batch that starts with `runnable[0]`: with it, the next pending runs of the same
/// daily pipeline over the following days (backfill or scheduled, one day each), up to
/// [`BATCH_WINDOWS`]. Hourly, manual and sync runs go alone.
fn batch_from(pipeline: &Pipeline, runnable: &[(Run, u64)]) -> Vec<Run> {
    let first = &runnable[0].0;
    let mut batch = vec![first.clone()];
    let batchable = |r: &Run| {
        matches!(r.kind, RunKind::Backfill | RunKind::Scheduled) && r.from_date == r.to_date
    };
    // A people run takes one snapshot: nothing to batch.
    if pipeline.spec.frequency != Frequency::Daily
        || pipeline.spec.data_source == DataSource::People
        || !batchable(first)
    {
        return batch;
    }
    for (run, _) in &runnable[1..] {
        if batch.len() >= BATCH_WINDOWS {
            break;
        }
        if run.pipeline_id != first.pipeline_id {
            continue;
        }
        let follows = batch
            .last()
            .and_then(|last| last.to_date.tomorrow().ok())
            .is_some_and(|next| next == run.from_date);
        if !batchable(run) || !follows {
            break;
        }
        batch.push(run.clone());
    }
    batch
}

/// P42: one log line per run state change.
pub(crate) fn log_state(pipeline: &Pipeline, run: &Run, state: &str, error: Option<&str>) {
    let window = if run.from_date == run.to_date {
        run.from_date.to_string()
    } else {
        format!("{}..{}", run.from_date, run.to_date)
    };
    match error {
        Some(error) => tracing::info!(
            pipeline = %pipeline.spec.name, run = run.id, kind = run.kind.as_str(), %window, state,
            "run {} of {} ({window}): {state}: {error}", run.id, pipeline.spec.name
        ),
        None => tracing::info!(
            pipeline = %pipeline.spec.name, run = run.id, kind = run.kind.as_str(), %window, state,
            "run {} of {} ({window}): {state}", run.id, pipeline.spec.name
        ),
    }
}
