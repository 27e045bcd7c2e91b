//! One run, executed: the pipeline's windows exported through the engine's exporter
//! (the same code as `tidewater export`: verified bodies, manifests, atomic commits),
//! with the pipeline's ledger and its project's rate budget from the state store; and
//! what the run's end means for the run, its retry and its pipeline (P18).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use std::sync::Mutex;

use tidewater::export::{
    engage_pace, Credentials, ExportProgress, Exporter, Ledger, Manifest, PeopleExporter,
    WindowResult, WindowStatus,
};
use tidewater::{Cancel, Error as EngineError, Format, Partition, RunOptions, SchemaMode};

use crate::model::{
    DataFormat, DataSource, Pipeline, PipelineState, Run, RunKind, RunState, SchemaType, StepCounts,
};
use crate::schedule::Frequency;
use crate::scheduler::log_state;
use crate::service::{Service, StopReason};
use crate::store::{ProjectBudget, RunEnd, WindowLedger};

/// How an attempt ended, before the scheduler's policy is applied.
#[derive(Debug, Clone)]
pub(crate) enum Attempt {
    /// Every window is committed (or was found unchanged by a sync).
    Succeeded {
        steps: StepCounts,
        changed: Option<bool>,
    },
    /// Something failed that another attempt may fix.
    Failed { error: String, steps: StepCounts },
    /// Upstream refused the credentials (401, 403): the pipeline is faulted.
    Refused { error: String },
    /// The cancel token was set (pause, delete, timeout, shutdown).
    Canceled,
}

/// Where a pipeline's runs write, and how: the output folder or URL, the credentials
/// and the engine's options.
fn output_of(
    service: &Service,
    pipeline: &Pipeline,
) -> Result<(std::path::PathBuf, Credentials, RunOptions), String> {
    let spec = &pipeline.spec;
    let sealed = service
        .store()
        .sealed_credentials(pipeline.id)
        .map_err(|e| e.to_string())?
        .ok_or("the pipeline was deleted")?;
    let credentials = service
        .open_credentials(spec.project_id, &sealed)
        .map_err(|e| e.to_string())?;
    let (out, object_store) = match (&spec.path, &spec.bucket) {
        (Some(path), _) => (path.clone(), None),
        (None, Some(bucket)) => {
            let secret = bucket
                .client_secret
                .as_deref()
                .map(|sealed| service.open_destination_secret(spec.project_id, sealed))
                .transpose()
                .map_err(|e| e.to_string())?;
            let target = crate::destination::target(bucket, secret.as_deref())?;
            (bucket.url().into(), Some(target))
        }
        (None, None) => return Err("the pipeline has no destination".into()),
    };
    let options = RunOptions {
        object_store,
        data_source: match spec.data_source {
            DataSource::Events => tidewater::DataSource::Events,
            DataSource::People => tidewater::DataSource::People,
        },
        schema: match (spec.schema_type, spec.data_source) {
            (_, DataSource::People) => SchemaMode::Monoschema,
            (None, _) => SchemaMode::Raw,
            (Some(SchemaType::Monoschema), _) => SchemaMode::Monoschema,
            (Some(SchemaType::Multischema), _) => SchemaMode::Multischema,
        },
        format: match spec.data_format {
            DataFormat::Json => Format::Json,
            DataFormat::Parquet => Format::Parquet,
        },
        events: spec.events.clone(),
        where_expr: spec.where_expr.clone(),
        tz: spec.tz.clone(),
        partition: match spec.frequency {
            Frequency::Daily => Partition::Daily,
            Frequency::Hourly => Partition::Hourly,
        },
        project_id: Some(spec.project_id),
        ..RunOptions::default()
    };
    Ok((out, credentials, options))
}

/// The exporter for `run` of an events pipeline.
fn exporter_for(service: &Service, pipeline: &Pipeline, run: &Run) -> Result<Exporter, String> {
    let spec = &pipeline.spec;
    let (out, credentials, options) = output_of(service, pipeline)?;
    let exporter = Exporter::new(
        out,
        credentials,
        &run.from_date.to_string(),
        &run.to_date.to_string(),
    )
    .map_err(|e| e.to_string())?
    .with_options(options)
    .project_id(spec.project_id)
    .base_url(service.config().mixpanel_url.clone())
    .tuning(service.config().tuning.clone())
    .sync(run.kind == RunKind::Sync);
    Ok(match spec.frequency {
        // The export API's unit is a day: an hour is the day's request with only the
        // hour kept and committed, under its own name in the ledger.
        Frequency::Hourly => {
            let zone = jiff::tz::TimeZone::get(&spec.tz).map_err(|e| e.to_string())?;
            let hour = run.interval_start.to_zoned(zone).hour();
            exporter.within(
                run.interval_start.as_millisecond(),
                run.interval_end.as_millisecond(),
                format!("T{hour:02}"),
            )
        }
        Frequency::Daily => exporter,
    })
}

/// Runs `runs` of `pipeline` (one, or consecutive daily windows of a backfill) as one
/// export, so that the engine fetches the next windows while it converts one, as
/// `tidewater export` does; blocking (call it on a blocking thread). Each run still
/// ends on its own: when its window is committed the run succeeds and the next one is
/// running (at most one run of the batch is running at a time). Returns the runs that
/// ended otherwise, by index, with how: those still running when the export stopped,
/// and, when it completed, those whose window was not committed. Runs never started
/// stay pending.
pub(crate) fn execute(
    service: &Service,
    pipeline: &Pipeline,
    runs: &[Run],
    cancel: Cancel,
) -> Vec<(usize, Attempt)> {
    if pipeline.spec.data_source == DataSource::People {
        return vec![(0, execute_people(service, pipeline, cancel))];
    }
    let last = &runs[runs.len() - 1];
    let batch_span = Run {
        to_date: last.to_date,
        interval_end: last.interval_end,
        ..runs[0].clone()
    };
    let exporter = match exporter_for(service, pipeline, &batch_span) {
        Ok(e) => e.with_cancel(cancel),
        Err(error) => {
            let steps = StepCounts::default();
            return vec![(0, Attempt::Failed { error, steps })];
        }
    };
    let ledger = RunLedger {
        inner: WindowLedger::new(service.store().clone(), pipeline.id),
        service,
        pipeline,
        runs,
        progress: Mutex::new(vec![(false, false); runs.len()]),
    };
    ledger.progress.lock().unwrap_or_else(|e| e.into_inner())[0].0 = true;
    let budget = Arc::new(ProjectBudget::new(
        service.store().clone(),
        pipeline.spec.project_id.to_string(),
        service.config().tuning.pace.clone(),
    ));
    let result = exporter.run_with(&ledger, budget);
    count_transfer(service, &exporter.export_progress());
    let progress = ledger
        .progress
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let open = |i: &usize| !progress[*i].1;
    match result {
        Ok(summary) => {
            let windows: Vec<&WindowResult> = summary.windows.iter().collect();
            count_committed(service, &windows);
            (0..runs.len())
                .filter(open)
                .map(|i| {
                    let (from, to) = (runs[i].from_date.to_string(), runs[i].to_date.to_string());
                    let own: Vec<WindowResult> = windows
                        .iter()
                        .filter(|w| w.from_date >= from && w.to_date <= to)
                        .map(|w| (*w).clone())
                        .collect();
                    (i, attempt_of_windows(&runs[i], &own))
                })
                .collect()
        }
        Err(e) => {
            let attempt = attempt_of_error(e);
            (0..runs.len())
                .filter(|i| open(i) && progress[*i].0)
                .map(|i| (i, attempt.clone()))
                .collect()
        }
    }
}

/// A run of a people pipeline: a full snapshot of the profiles, which replaces the
/// previous one (its window only names the day the snapshot is for). The Engage API
/// has its own limits, so the project's people runs share a budget of their own.
fn execute_people(service: &Service, pipeline: &Pipeline, cancel: Cancel) -> Attempt {
    let (out, credentials, options) = match output_of(service, pipeline) {
        Ok(output) => output,
        Err(error) => {
            let steps = StepCounts::default();
            return Attempt::Failed { error, steps };
        }
    };
    let tuning = tidewater::export::Tuning {
        pace: engage_pace(),
        ..service.config().tuning.clone()
    };
    let exporter = PeopleExporter::new(out, credentials)
        .with_options(options)
        .base_url(service.config().mixpanel_url.clone())
        .tuning(tuning.clone())
        .with_cancel(cancel);
    let budget = Arc::new(ProjectBudget::new(
        service.store().clone(),
        format!("{}:engage", pipeline.spec.project_id),
        tuning.pace,
    ));
    let result = exporter.run_with(budget);
    count_transfer(service, &exporter.export_progress());
    match result {
        Ok(summary) => {
            count_committed(service, &summary.windows.iter().collect::<Vec<_>>());
            Attempt::Succeeded {
                steps: steps_of(&summary.windows),
                changed: None,
            }
        }
        Err(e) => attempt_of_error(e),
    }
}

/// The engine's transfer counters, into the service's metrics.
fn count_transfer(service: &Service, progress: &ExportProgress) {
    let m = service.metrics();
    m.bytes_exported.fetch_add(
        progress.bytes_received.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    m.rate_limit_wait_ms.fetch_add(
        progress.rate_limit_wait_ms.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
    m.request_retries
        .fetch_add(progress.retries.load(Ordering::Relaxed), Ordering::Relaxed);
}

fn count_committed(service: &Service, windows: &[&WindowResult]) {
    let committed = windows
        .iter()
        .filter(|w| w.status == WindowStatus::Committed);
    let (n, events) = committed.fold((0, 0), |(n, e), w| (n + 1, e + w.events));
    let m = service.metrics();
    m.windows_committed.fetch_add(n, Ordering::Relaxed);
    m.events_exported.fetch_add(events, Ordering::Relaxed);
}

/// How a run ended whose export completed, from the results of its windows (one, or
/// several days of a manual run).
fn attempt_of_windows(run: &Run, windows: &[WindowResult]) -> Attempt {
    let steps = steps_of(windows);
    if windows.is_empty() {
        return Attempt::Failed {
            error: format!("the export had no window {}", run.from_date),
            steps,
        };
    }
    let failed = windows
        .iter()
        .find(|w| matches!(w.status, WindowStatus::Failed | WindowStatus::NotRun));
    match failed {
        Some(w) => Attempt::Failed {
            error: format!(
                "window {} was not committed: {}",
                w.label(),
                w.error
                    .as_deref()
                    .unwrap_or("its body could not be had complete")
            ),
            steps,
        },
        None => Attempt::Succeeded {
            changed: (run.kind == RunKind::Sync)
                .then(|| windows.iter().any(|w| w.status == WindowStatus::Committed)),
            steps,
        },
    }
}

/// How the running runs ended when the export stopped with `e`.
fn attempt_of_error(e: EngineError) -> Attempt {
    match e {
        EngineError::Cancelled => Attempt::Canceled,
        EngineError::Export {
            status: Some(401 | 403),
            message,
            ..
        } => refused(&message),
        EngineError::ExportStopped { source, summary } => match *source {
            EngineError::Cancelled => Attempt::Canceled,
            EngineError::Export {
                status: Some(401 | 403),
                message,
                ..
            } => refused(&message),
            source => Attempt::Failed {
                error: source.to_string(),
                steps: steps_of(
                    &summary
                        .windows
                        .iter()
                        .filter(|w| w.status == WindowStatus::Failed)
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
            },
        },
        e => Attempt::Failed {
            error: e.to_string(),
            steps: StepCounts::default(),
        },
    }
}

/// Upstream refused the pipeline's credentials.
fn refused(message: &str) -> Attempt {
    Attempt::Refused {
        error: format!(
            "Mixpanel refused the pipeline's credentials ({message}); edit or re-create the \
             pipeline with valid credentials, then resume it"
        ),
    }
}

/// The pipeline's ledger, which also ends each run of a batch as its window is
/// committed and starts the next (the engine records a window last, once it is
/// committed).
struct RunLedger<'a> {
    inner: WindowLedger,
    service: &'a Service,
    pipeline: &'a Pipeline,
    runs: &'a [Run],
    /// Per run: started, ended.
    progress: Mutex<Vec<(bool, bool)>>,
}

impl Ledger for RunLedger<'_> {
    fn committed(&self, name: &str) -> Option<Manifest> {
        self.inner.committed(name)
    }

    fn record(&self, name: &str, manifest: &Manifest) -> tidewater::Result<()> {
        self.inner.record(name, manifest)?;
        if self.runs.len() == 1 {
            return Ok(()); // it ends when the export returns
        }
        let Some(i) = self
            .runs
            .iter()
            .position(|r| r.from_date.to_string() == name)
        else {
            return Ok(());
        };
        let store = self.service.store();
        let now = self.service.clock().now();
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let run = &self.runs[i];
        if !progress[i].0 {
            let _ = store.start_run(run.id, now);
        }
        let attempt = Attempt::Succeeded {
            steps: steps_of_manifest(manifest),
            changed: None,
        };
        let end = end_of(self.service, run, attempt, false, StopReason::End);
        if let Err(e) = store.finish_run(run.id, &end) {
            tracing::error!(run = run.id, "cannot record the end of run {}: {e}", run.id);
        }
        log_state(self.pipeline, run, end.state.as_str(), None);
        progress[i] = (true, true);
        if let Some(next) = self.runs.get(i + 1).filter(|_| !progress[i + 1].0) {
            if store.start_run(next.id, now).unwrap_or(false) {
                log_state(self.pipeline, next, "running", None);
            }
            progress[i + 1].0 = true;
        }
        Ok(())
    }
}

/// P20's counts of a committed window, from its manifest.
fn steps_of_manifest(m: &Manifest) -> StepCounts {
    let mut s = StepCounts::default();
    s.add_window(m.lines, m.rejects, m.events_kept, WindowStatus::Committed);
    s
}

/// P20's counts from the export's windows (those skipped as already committed are
/// not this run's work and are left out).
fn steps_of(windows: &[WindowResult]) -> StepCounts {
    let mut s = StepCounts::default();
    for w in windows {
        s.add_window(w.lines, w.rejects, w.events, w.status);
    }
    s
}

/// What the end of attempt `run` means (P18): its record, the run that follows (a
/// retry with backoff, or the same windows again after a pause) and the pipeline's
/// state (faulted on refused credentials).
pub(crate) fn end_of(
    service: &Service,
    run: &Run,
    attempt: Attempt,
    timed_out: bool,
    reason: StopReason,
) -> RunEnd {
    let config = service.config();
    let now = service.clock().now();
    let mut end = RunEnd {
        state: RunState::Failed,
        at: now,
        error: None,
        steps: None,
        changed: None,
        then: None,
        pipeline: None,
    };
    let retry = |end: &mut RunEnd| {
        if run.attempt <= config.scheduler_retries {
            let backoff = config.retry_backoff * 2i32.pow(run.attempt.saturating_sub(1).min(16));
            end.state = RunState::Retried;
            end.then = Some(run.again(run.attempt + 1, now + backoff));
            service
                .metrics()
                .scheduler_retries
                .fetch_add(1, Ordering::Relaxed);
        }
    };
    match attempt {
        Attempt::Succeeded { steps, changed } => {
            end.state = RunState::Succeeded;
            end.steps = Some(steps);
            end.changed = changed;
        }
        Attempt::Canceled if timed_out => {
            end.state = RunState::TimedOut;
            end.error = Some(format!(
                "the run took longer than its limit of {}s; nothing of it was committed",
                config.run_timeout.as_secs()
            ));
            retry(&mut end);
        }
        Attempt::Canceled => {
            end.state = RunState::Canceled;
            let (why, again) = match reason {
                StopReason::Pause => (
                    "the pipeline was paused; its windows run again on resume",
                    true,
                ),
                StopReason::Shutdown => (
                    "the server stopped; its windows run again when it starts",
                    true,
                ),
                StopReason::End => ("the pipeline was canceled", false),
            };
            end.error = Some(why.into());
            if again {
                end.then = Some(run.again(run.attempt, now));
            }
        }
        Attempt::Refused { error } => {
            end.error = Some(error.clone());
            end.pipeline = Some((PipelineState::Faulted, error));
            // Runs again when a resume clears the fault.
            end.then = Some(run.again(run.attempt, now));
        }
        Attempt::Failed { error, steps } => {
            end.error = Some(error);
            end.steps = Some(steps);
            retry(&mut end);
        }
    }
    end
}
