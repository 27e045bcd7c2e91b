//! The export builder and its run, as a short sequence of named steps: validate, plan
//! the windows, skip those the ledger holds for the same request, start the downloads,
//! and drive the engine over the verified bodies in window order.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use jiff::civil::Date;

use super::client::{check_api, Client, WindowRequest};
use super::credentials::{region_base_url, Credentials};
use super::feed::Downloads;
use super::ledger::{Ledger, ManifestRequest, OutputLedger};
use super::owner::ExportOwner;
use super::pace::{Pacer, RateBudget};
use super::summary::{ExportProgress, ExportSummary, WindowResult, WindowStatus};
use super::windows::{plan_windows, Window};
use super::Tuning;
use crate::block::EventFilter;
use crate::error::{Error, Result};
use crate::field::Field;
use crate::options::{DataSource, Format, Partition, RunOptions, SchemaMode};
use crate::run::{execute_plan, Cancel, Destination, OutputRoot, OwnedWindows, Plan};
use crate::store::Output;
use crate::summary::{Progress, RunSummary};
use crate::validate::ValidOptions;

/// Builds and runs an export.
///
/// ```no_run
/// use tidewater::export::{Credentials, Exporter};
///
/// let credentials = Credentials::from_env().expect("credentials in the environment");
/// let summary = Exporter::new("out", credentials, "2024-01-01", "2024-01-31")?
///     .base_url("https://data-eu.mixpanel.com")
///     .project_id(12345)
///     .run()?;
/// println!("{} events in {} windows", summary.run.events_kept, summary.run.windows_committed);
/// # Ok::<(), tidewater::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Exporter {
    options: RunOptions,
    credentials: Credentials,
    from: Date,
    to: Date,
    base_url: String,
    window_days: u32,
    filter_locally: bool,
    refetch: bool,
    sync: bool,
    within: Option<((i64, i64), String)>,
    tuning: Tuning,
    progress: Arc<Progress>,
    export_progress: Arc<ExportProgress>,
    cancel: Cancel,
}

fn parse_date(option: Field, s: &str) -> Result<Date> {
    Date::strptime("%Y-%m-%d", s)
        .map_err(|e| Error::config(option, format!("{s:?} is not a date YYYY-MM-DD ({e})")))
}

/// Checks an export's days `from..=to` (`YYYY-MM-DD`): both dates, in order. For callers
/// that check everything local before they look for credentials.
pub fn check_range(from: &str, to: &str) -> Result<(Date, Date)> {
    let from_date = parse_date(Field::From, from)?;
    let to_date = parse_date(Field::To, to)?;
    if to_date < from_date {
        return Err(Error::config(
            Field::To,
            format!("{to} is before the first day {from}"),
        ));
    }
    Ok((from_date, to_date))
}

impl Exporter {
    /// An export of the days `from..=to` (`YYYY-MM-DD`, in the project's time zone)
    /// into `out`, from Mixpanel's US endpoint by default.
    pub fn new(
        out: impl Into<PathBuf>,
        credentials: Credentials,
        from: &str,
        to: &str,
    ) -> Result<Self> {
        let (from_date, to_date) = check_range(from, to)?;
        Ok(Exporter {
            options: RunOptions {
                out: out.into(),
                ..Default::default()
            },
            credentials,
            from: from_date,
            to: to_date,
            base_url: region_base_url("us").expect("known region").to_string(),
            window_days: 1,
            filter_locally: false,
            refetch: false,
            sync: false,
            within: None,
            tuning: Tuning::default(),
            progress: Arc::new(Progress::default()),
            export_progress: Arc::new(ExportProgress::default()),
            cancel: Cancel::default(),
        })
    }

    /// Output options (schema, format, events, where, tz, partition, ...), as for
    /// `convert`; `out` is kept.
    pub fn with_options(mut self, options: RunOptions) -> Self {
        let out = std::mem::take(&mut self.options.out);
        self.options = RunOptions { out, ..options };
        self
    }

    /// The options as configured.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }

    /// The API's base URL (X1), e.g. a mock server's.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The project id (required with a service account; also the output folder).
    pub fn project_id(mut self, id: u64) -> Self {
        self.options.project_id = Some(id);
        self
    }

    /// Days per request (default 1).
    pub fn window_days(mut self, days: u32) -> Self {
        self.window_days = days;
        self
    }

    /// Fetch unfiltered windows and apply `events` and `where` locally.
    pub fn filter_locally(mut self, yes: bool) -> Self {
        self.filter_locally = yes;
        self
    }

    /// Export every window even when a manifest says it was committed.
    pub fn refetch(mut self, yes: bool) -> Self {
        self.refetch = yes;
        self
    }

    /// Sync (pipelines-api P14): export again every window the ledger holds, and
    /// replace a window only when its body differs (SHA-256) from the body it was
    /// committed from; an unchanged window is left as it is and reported
    /// [`WindowStatus::Unchanged`]. A window committed by a different request (an edited
    /// filter) is replaced.
    pub fn sync(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }

    /// Keeps and commits only `[start_ms, end_ms)` of the requested days (the export
    /// API's unit is a day): events of the days outside it are filtered. The window is
    /// named with `suffix` in the ledger and messages, e.g. `T05` for an hour, so that
    /// each hour of a day is its own unit of commit (an hourly pipeline).
    pub fn within(mut self, start_ms: i64, end_ms: i64, suffix: impl Into<String>) -> Self {
        self.within = Some(((start_ms, end_ms), suffix.into()));
        self
    }

    /// Pacing, retries and timeouts.
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Live counters of the conversion.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Live counters of the downloads.
    pub fn export_progress(&self) -> Arc<ExportProgress> {
        self.export_progress.clone()
    }

    /// Cancels the export from another thread: downloads stop, nothing further is
    /// committed, and the run returns [`Error::Cancelled`].
    pub fn cancel_token(&self) -> Cancel {
        self.cancel.clone()
    }

    /// Uses `cancel` as the run's cancel token.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Checks the export's own settings, then the output options
    /// ([`RunOptions::validate`], which also compiles `where`: a bad one fails before
    /// any request).
    fn validate(&self) -> Result<ValidOptions> {
        if self.window_days == 0 {
            return Err(Error::config(Field::WindowDays, "must be at least 1"));
        }
        let o = &self.options;
        if o.data_source == DataSource::People {
            return Err(Error::config(
                Field::DataSource,
                "the export API serves events; export people with PeopleExporter",
            ));
        }
        check_api(
            &self.credentials,
            o.project_id,
            &self.base_url,
            &self.tuning,
        )?;
        o.validate()
    }

    fn request_of(&self, w: &Window) -> ManifestRequest {
        let o = &self.options;
        ManifestRequest {
            from_date: w.from.to_string(),
            to_date: w.to.to_string(),
            events: o.events.clone(),
            where_expr: o.where_expr.clone().filter(|e| !e.is_empty()),
            filter_locally: self.filter_locally,
            schema: match o.schema {
                SchemaMode::Raw => "raw",
                SchemaMode::Monoschema => "monoschema",
                SchemaMode::Multischema => "multischema",
            }
            .into(),
            format: match o.format {
                Format::Parquet => "parquet",
                Format::Json => "json",
            }
            .into(),
            tz: o.tz.clone(),
            partition: match o.partition {
                Partition::Daily => "daily",
                Partition::Hourly => "hourly",
            }
            .into(),
            time_in_ms: o.time_in_ms,
            nested_as_text: o.nested_as_text,
            within: w.within.as_ref().map(|(_, s)| s.clone()),
        }
    }

    /// Runs the export. Windows that could not be fetched complete are reported in the
    /// summary (`check()` turns them into an error); a refused request (400–404) fails
    /// the run at once with the server's message. Committed windows are recorded in the
    /// ledger under the output root, and requests are paced in memory for this run.
    pub fn run(&self) -> Result<ExportSummary> {
        let valid = self.validate()?;
        let windows = plan_windows(&self.options.tz, self.from, self.to, self.window_days)?;
        let root = OutputRoot::prepare(&self.options)?;
        let ledger = OutputLedger(root.output.clone());
        let budget = Arc::new(Pacer::new(self.tuning.pace.clone()));
        self.run_windows(valid, windows, root, &ledger, budget)
    }

    /// Runs the export as [`Exporter::run`] does, with the resume ledger and the rate
    /// budget of the caller: a service keeps both in its state store, so that they
    /// outlive the run and are shared by every run against the same project.
    pub fn run_with(
        &self,
        ledger: &dyn Ledger,
        budget: Arc<dyn RateBudget>,
    ) -> Result<ExportSummary> {
        let valid = self.validate()?;
        let windows = plan_windows(&self.options.tz, self.from, self.to, self.window_days)?;
        let root = OutputRoot::prepare(&self.options)?;
        self.run_windows(valid, windows, root, ledger, budget)
    }

    /// Exports the one window `from..=to` (days in the project's time zone), skipping
    /// it when `ledger` holds it for the same request, with requests paced by `budget`
    /// (shared with other runs against the same project). The entry point for a worker
    /// that runs one window at a time; cancel it through [`Exporter::with_cancel`].
    pub fn export_window(
        &self,
        from: &str,
        to: &str,
        ledger: &dyn Ledger,
        budget: Arc<dyn RateBudget>,
    ) -> Result<WindowResult> {
        let (from, to) = check_range(from, to)?;
        let window_days = u32::try_from((to - from).get_days() + 1)
            .map_err(|_| Error::config(Field::To, format!("{from}..{to} is too long")))?;
        let one = Exporter {
            from,
            to,
            window_days,
            ..self.clone()
        };
        let mut summary = one.run_with(ledger, budget)?;
        Ok(summary.windows.remove(0))
    }

    fn run_windows(
        &self,
        valid: ValidOptions,
        mut windows: Vec<Window>,
        output: OutputRoot,
        ledger: &dyn Ledger,
        budget: Arc<dyn RateBudget>,
    ) -> Result<ExportSummary> {
        if let Some(((start, end), suffix)) = &self.within {
            for w in &mut windows {
                let kept = (
                    w.range.0.max(*start),
                    w.range.1.min(*end).max(w.range.0.max(*start)),
                );
                w.within = Some((kept, suffix.clone()));
            }
        }
        let (mut results, todo, committed_sha) = self.resume(&windows, ledger, &output.output);
        let skipped = (windows.len() - todo.len()) as u64;
        self.export_progress
            .windows_total
            .store(todo.len() as u64, Ordering::Relaxed);
        let (engine_options, engine_valid, requests) = self.split_filtering(valid, &windows, &todo);
        let (downloads, feed) = Downloads::start(
            self.client(budget)?,
            &requests,
            committed_sha,
            output.output.staging("spool"),
            self.tuning.concurrency,
            &self.cancel,
        )?;
        let mut owner = ExportOwner {
            windows: &windows,
            todo: &todo,
            results: &mut results,
            requests: todo.iter().map(|&i| self.request_of(&windows[i])).collect(),
            downloads: &downloads,
            ledger,
            progress: &self.export_progress,
            manifests: Default::default(),
        };
        let plan = Plan {
            names: requests
                .iter()
                .map(|r| format!("export:{}", r.label))
                .collect(),
            total_bytes: 0,
            feed: Box::new(feed),
            owned: Some(OwnedWindows {
                ranges: todo.iter().map(|&i| windows[i].kept()).collect(),
                requested: todo.iter().map(|&i| windows[i].range).collect(),
                owner: &mut owner,
            }),
        };
        let result = execute_plan(
            &engine_options,
            engine_valid,
            plan,
            Destination::Files(output),
            &self.progress,
            &self.cancel,
        );
        drop(downloads);
        match result {
            Ok(mut run) => {
                // An unchanged window is not an incomplete input: nothing was lost.
                run.incomplete_inputs
                    .retain(|i| i.reason != super::feed::UNCHANGED);
                Ok(self.summary(run, skipped, results))
            }
            Err(e) if e.is_usage() || matches!(e, Error::Cancelled) => Err(e),
            // Stopped part-way: what was done until then goes with the cause.
            Err(source) => {
                if let Error::Export {
                    window, message, ..
                } = &source
                {
                    let refused = windows.iter().position(|w| w.label() == *window);
                    if let Some(r) = refused.map(|i| &mut results[i]) {
                        r.status = WindowStatus::Failed;
                        r.error = Some(message.clone());
                    }
                }
                let run = RunSummary {
                    lines_read: self.progress.lines.load(Ordering::Relaxed),
                    events_kept: self.progress.events.load(Ordering::Relaxed),
                    windows_committed: results
                        .iter()
                        .filter(|r| r.status == WindowStatus::Committed)
                        .count() as u64,
                    ..RunSummary::default()
                };
                Err(Error::ExportStopped {
                    source: Box::new(source),
                    summary: Box::new(self.summary(run, skipped, results)),
                })
            }
        }
    }

    fn summary(&self, run: RunSummary, skipped: u64, windows: Vec<WindowResult>) -> ExportSummary {
        ExportSummary::new(run, &self.export_progress, skipped, windows)
    }

    /// Resume (XC4): every window's result so far, the windows still to export (those
    /// the ledger does not hold for the same request) and, for a sync, the SHA-256 of
    /// the body each of those was committed from (by position in the list to do).
    fn resume(
        &self,
        windows: &[Window],
        ledger: &dyn Ledger,
        output: &Output,
    ) -> (Vec<WindowResult>, Vec<usize>, Vec<Option<String>>) {
        let mut results: Vec<WindowResult> = windows.iter().map(WindowResult::not_run).collect();
        let mut todo = Vec::new();
        let mut committed_sha = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let committed = ledger.committed(&w.ledger_name());
            if self.sync {
                let same = committed
                    .filter(|m| m.request == self.request_of(w) && m.missing_in(output).is_none());
                if let Some(m) = &same {
                    results[i].counts_from(m);
                }
                committed_sha.push(same.map(|m| m.sha256));
                todo.push(i);
                continue;
            }
            committed_sha.push(None);
            match committed {
                Some(m) if !self.refetch && m.request == self.request_of(w) => {
                    // Skip only what is still there as committed (XC4).
                    match m.missing_in(output) {
                        None => results[i].skipped(&m),
                        Some(why) => {
                            tracing::warn!(
                                window = %w.label(),
                                "window {} was committed, but {why}; exporting it again",
                                w.label()
                            );
                            todo.push(i);
                        }
                    }
                }
                Some(_) if !self.refetch => {
                    tracing::info!(
                        window = %w.label(),
                        "window {} was committed by a different request; exporting it again",
                        w.label()
                    );
                    todo.push(i);
                }
                _ => todo.push(i),
            }
        }
        let committed_sha: Vec<Option<String>> =
            todo.iter().map(|&i| committed_sha[i].take()).collect();
        let skipped = windows.len() - todo.len();
        if skipped > 0 {
            tracing::info!(
                skipped,
                "{skipped} of {} windows already committed by the same request; resuming",
                windows.len()
            );
        }
        (results, todo, committed_sha)
    }

    /// Who filters: the engine only with `filter_locally`; otherwise the server, and the
    /// engine gets the options without `events` and `where`. Returns the engine's
    /// options and the requests of the windows to do.
    fn split_filtering(
        &self,
        valid: ValidOptions,
        windows: &[Window],
        todo: &[usize],
    ) -> (RunOptions, ValidOptions, Vec<WindowRequest>) {
        let o = &self.options;
        let mut engine_options = o.clone();
        let mut engine_valid = valid;
        let (server_events, server_where) = if self.filter_locally {
            (None, None)
        } else {
            engine_options.events.clear();
            engine_valid.filter = EventFilter::default();
            let events = (!o.events.is_empty())
                .then(|| serde_json::to_string(&o.events).expect("strings serialize"));
            let where_expr = engine_options.where_expr.take().filter(|e| !e.is_empty());
            (events, where_expr)
        };
        let requests = todo
            .iter()
            .map(|&i| {
                let w = &windows[i];
                WindowRequest {
                    label: w.label(),
                    from_date: w.from.to_string(),
                    to_date: w.to.to_string(),
                    events: server_events.clone(),
                    where_expr: server_where.clone(),
                    time_in_ms: o.time_in_ms,
                    project_id: o.project_id,
                }
            })
            .collect();
        (engine_options, engine_valid, requests)
    }

    /// The HTTP client every request of the run shares.
    fn client(&self, budget: Arc<dyn RateBudget>) -> Result<Client> {
        Client::build(
            format!("{}/api/2.0/export", self.base_url.trim_end_matches('/')),
            self.credentials.clone(),
            &self.tuning,
            budget,
            self.export_progress.clone(),
        )
    }
}
