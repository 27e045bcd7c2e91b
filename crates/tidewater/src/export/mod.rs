//! Export from the Mixpanel export API (`specs/export-api.md`) through the same engine
//! as `convert`.
//!
//! ```text
//! tokio: windows ──paced, ≤ concurrency──▶ HTTP GET ──verify, spool──▶ results (any order)
//!                                                                          │
//! engine reader: takes spooled windows in window order ◀────────────────────┘
//!   → frame → parse/filter/shape → merge → write → commit the window → manifest
//! ```
//!
//! Each window is one request and one unit of commit (XC1). A window's output and its
//! manifest (`<root>/.tidewater/export/<from>[_<to>].json`, and a copy beside each
//! `complete` marker) are written only after its body was verified complete and fully
//! converted; a re-run skips windows whose manifest holds the same request (XC4).

mod client;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::options::{Format, Partition, RunOptions, SchemaMode};
use crate::run::{Destination, Feed, InputReport, Opened, OwnedWindows, Plan};
use crate::summary::{Progress, RunSummary};
use crate::Converter;

use client::{Client, Outcome, Pacer, Verified, WindowRequest};

/// Base URLs of Mixpanel's export API per data residency region (X1).
pub fn region_base_url(region: &str) -> Option<&'static str> {
    match region {
        "us" => Some("https://data.mixpanel.com"),
        "eu" => Some("https://data-eu.mixpanel.com"),
        "in" => Some("https://data-in.mixpanel.com"),
        _ => None,
    }
}

/// Export API credentials (X3). They are never printed: `Debug` shows only the kind.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A service account; requests then need a project id.
    ServiceAccount {
        /// The service account's user name.
        username: String,
        /// Its secret.
        secret: String,
    },
    /// A project's API secret (deprecated by Mixpanel, still accepted).
    ApiSecret(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ServiceAccount { .. } => f.write_str("ServiceAccount(<redacted>)"),
            Credentials::ApiSecret(_) => f.write_str("ApiSecret(<redacted>)"),
        }
    }
}

/// Environment variables (and credentials-file keys) that hold credentials.
pub const ENV_USERNAME: &str = "MIXPANEL_SERVICE_ACCOUNT_USERNAME";
/// See [`ENV_USERNAME`].
pub const ENV_SECRET: &str = "MIXPANEL_SERVICE_ACCOUNT_SECRET";
/// See [`ENV_USERNAME`].
pub const ENV_API_SECRET: &str = "MIXPANEL_API_SECRET";

impl Credentials {
    /// Reads credentials from a lookup of the variables above: a service account when
    /// both of its variables are set, else an API secret.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        match (non_empty(ENV_USERNAME), non_empty(ENV_SECRET)) {
            (Some(username), Some(secret)) => {
                Some(Credentials::ServiceAccount { username, secret })
            }
            _ => non_empty(ENV_API_SECRET).map(Credentials::ApiSecret),
        }
    }

    /// Credentials from the environment.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Credentials from a file of `NAME=value` lines using the environment variable
    /// names (blank lines and `#` comments allowed; values may be quoted).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                "--credentials-file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                // Never echo the line: it may hold a secret.
                return Err(Error::config(
                    "--credentials-file",
                    format!("{} line {}: expected NAME=value", path.display(), n + 1),
                ));
            };
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            values.insert(k.trim().to_string(), v.to_string());
        }
        Self::from_lookup(|k| values.get(k).cloned()).ok_or_else(|| {
            Error::config(
                "--credentials-file",
                format!(
                    "{} holds neither {ENV_USERNAME} with {ENV_SECRET} nor {ENV_API_SECRET}",
                    path.display()
                ),
            )
        })
    }

    fn basic_auth(&self) -> (&str, &str) {
        match self {
            Credentials::ServiceAccount { username, secret } => (username, secret),
            Credentials::ApiSecret(secret) => (secret, ""),
        }
    }

    fn is_service_account(&self) -> bool {
        matches!(self, Credentials::ServiceAccount { .. })
    }
}

/// Pacing, retry and timeout settings (XC2, XC3, XC5).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Requests in flight at once (1..=100).
    pub concurrency: usize,
    /// Attempts per window, the first included.
    pub max_attempts: u32,
    /// Time allowed until the response headers arrive.
    pub timeout_first_byte: Duration,
    /// Time allowed without a byte of the body.
    pub stall_timeout: Duration,
    /// Request limits: at most `n` requests in any period `d`.
    pub pace: Vec<(u32, Duration)>,
    /// First backoff after a 429 without `Retry-After`, and its cap.
    pub backoff_rate_limited_first: Duration,
    /// See `backoff_rate_limited_first`.
    pub backoff_rate_limited_max: Duration,
    /// First backoff after other retryable failures, and its cap.
    pub backoff_first: Duration,
    /// See `backoff_first`.
    pub backoff_max: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            concurrency: 4,
            max_attempts: 6,
            timeout_first_byte: Duration::from_secs(600),
            stall_timeout: Duration::from_secs(120),
            pace: vec![(3, Duration::from_secs(1)), (60, Duration::from_secs(3600))],
            backoff_rate_limited_first: Duration::from_secs(30),
            backoff_rate_limited_max: Duration::from_secs(300),
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Live counters of an export, for a progress display.
#[derive(Debug, Default)]
pub struct ExportProgress {
    /// Windows to export in this run (skipped ones excluded).
    pub windows_total: AtomicU64,
    /// Windows committed so far.
    pub windows_done: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Retries so far.
    pub retries: AtomicU64,
    /// Bytes received on the wire.
    pub bytes_received: AtomicU64,
    /// Milliseconds spent waiting for the pacing limits.
    pub rate_limit_wait_ms: AtomicU64,
}

/// One window's result in the export summary.
#[derive(Debug, Clone, Serialize)]
pub struct WindowResult {
    /// First day, `YYYY-MM-DD`.
    pub from_date: String,
    /// Last day.
    pub to_date: String,
    /// `committed`, `skipped` (already committed by the same request), `failed`, or
    /// `not_run` (the run stopped before it).
    pub status: String,
    /// Requests made for it in this run.
    pub attempts: u32,
    /// Bytes received (as sent, compressed or not).
    pub bytes_received: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    /// Lines in the body.
    pub lines: u64,
    /// Events kept.
    pub events: u64,
    /// Lines rejected.
    pub rejects: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an export did: the engine's run summary plus the windows.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// Counts of the conversion (M3). `input_bytes_compressed` is the bytes received.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Requests sent.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// Seconds spent waiting for the pacing limits.
    pub rate_limit_wait_seconds: f64,
    /// Windows skipped because they were already committed.
    pub windows_skipped: u64,
    /// Per window, in window order.
    pub windows: Vec<WindowResult>,
}

impl ExportSummary {
    /// An error when a window was not committed.
    pub fn check(&self) -> Result<()> {
        self.run.check()
    }
}

/// The request a window was committed for; a re-run skips the window only when it asks
/// for the same (XC4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestRequest {
    from_date: String,
    to_date: String,
    events: Vec<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    filter_locally: bool,
    schema: String,
    format: String,
    tz: String,
    partition: String,
    time_in_ms: bool,
}

/// What is recorded of a committed window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    request: ManifestRequest,
    attempts: u32,
    bytes_received: u64,
    bytes: u64,
    sha256: String,
    gzip: bool,
    lines: u64,
    events_kept: u64,
    events_filtered: u64,
    rejects: u64,
    files_written: u64,
    committed_at: String,
}

/// A planned window.
#[derive(Debug, Clone)]
struct Window {
    from: Date,
    to: Date,
    /// `[start, end)` in ms in the project's time zone.
    range: (i64, i64),
}

impl Window {
    fn label(&self) -> String {
        if self.from == self.to {
            self.from.to_string()
        } else {
            format!("{}..{}", self.from, self.to)
        }
    }

    fn manifest_name(&self) -> String {
        if self.from == self.to {
            format!("{}.json", self.from)
        } else {
            format!("{}_{}.json", self.from, self.to)
        }
    }
}

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
    quiet: bool,
    tuning: Tuning,
    progress: Arc<Progress>,
    export_progress: Arc<ExportProgress>,
}

fn parse_date(option: &str, s: &str) -> Result<Date> {
    Date::strptime("%Y-%m-%d", s)
        .map_err(|e| Error::config(option, format!("{s:?} is not a date YYYY-MM-DD ({e})")))
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
        let from_date = parse_date("--from", from)?;
        let to_date = parse_date("--to", to)?;
        if to_date < from_date {
            return Err(Error::config(
                "--to",
                format!("{to} is before --from {from}"),
            ));
        }
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
            quiet: true,
            tuning: Tuning::default(),
            progress: Arc::new(Progress::default()),
            export_progress: Arc::new(ExportProgress::default()),
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

    /// Log retries and resumed windows on stderr (default: quiet).
    pub fn verbose(mut self, yes: bool) -> Self {
        self.quiet = !yes;
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

    fn validate(&self) -> Result<()> {
        let t = &self.tuning;
        if self.window_days == 0 {
            return Err(Error::config("--window-days", "must be at least 1"));
        }
        if !(1..=100).contains(&t.concurrency) {
            return Err(Error::config("--concurrency", "must be between 1 and 100"));
        }
        if t.max_attempts == 0 {
            return Err(Error::config("--max-attempts", "must be at least 1"));
        }
        if t.pace.iter().any(|(n, d)| *n == 0 || d.is_zero()) {
            return Err(Error::config(
                "--pace",
                "each limit needs at least 1 request in a non-zero period",
            ));
        }
        if self.credentials.is_service_account() && self.options.project_id.is_none() {
            return Err(Error::config(
                "--project-id",
                "required with service-account credentials",
            ));
        }
        let url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| Error::config("--base-url", format!("{:?}: {e}", self.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::config("--base-url", "must be an http or https URL"));
        }
        Ok(())
    }

    fn plan(&self) -> Result<Vec<Window>> {
        let tz = jiff::tz::TimeZone::get(&self.options.tz).map_err(|e| {
            Error::config(
                "--tz",
                format!("unknown time zone {:?} ({e})", self.options.tz),
            )
        })?;
        let start_of = |d: Date| -> Result<i64> {
            tz.to_ambiguous_zoned(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .map(|z| z.timestamp().as_millisecond())
                .map_err(|e| Error::config("--tz", e.to_string()))
        };
        let mut windows = Vec::new();
        let mut day = self.from;
        while day <= self.to {
            let last = day
                .checked_add(jiff::Span::new().days(i64::from(self.window_days) - 1))
                .unwrap_or(self.to)
                .min(self.to);
            let next = last
                .tomorrow()
                .map_err(|e| Error::config("--to", e.to_string()))?;
            windows.push(Window {
                from: day,
                to: last,
                range: (start_of(day)?, start_of(next)?),
            });
            day = next;
        }
        Ok(windows)
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
        }
    }

    /// Runs the export. Windows that could not be fetched complete are reported in the
    /// summary (`check()` turns them into an error); a refused request (400–404) fails
    /// the run at once with the server's message.
    pub fn run(&self) -> Result<ExportSummary> {
        self.validate()?;
        let o = &self.options;
        // A `where` that does not compile fails before any request (exit 2).
        let ctx = tidewater_where::Context::new(&o.tz).map_err(|m| Error::config("--tz", m))?;
        if let Some(expr) = o.where_expr.as_deref().filter(|e| !e.is_empty()) {
            tidewater_where::compile(expr, ctx)
                .map_err(|e| Error::config("--where", e.to_string()))?;
        }
        let windows = self.plan()?;
        let root = o.root();
        let state_dir = root.join(".tidewater").join("export");
        std::fs::create_dir_all(&state_dir).map_err(|e| Error::output(&state_dir, e))?;

        // Resume (XC4): skip windows committed for the same request.
        let mut results: Vec<WindowResult> = windows
            .iter()
            .map(|w| WindowResult {
                from_date: w.from.to_string(),
                to_date: w.to.to_string(),
                status: "not_run".into(),
                attempts: 0,
                bytes_received: 0,
                bytes: 0,
                lines: 0,
                events: 0,
                rejects: 0,
                error: None,
            })
            .collect();
        let mut todo = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let path = state_dir.join(w.manifest_name());
            let previous = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
            match previous {
                Some(m) if !self.refetch && m.request == self.request_of(w) => {
                    let r = &mut results[i];
                    r.status = "skipped".into();
                    r.events = m.events_kept;
                    r.lines = m.lines;
                    r.rejects = m.rejects;
                }
                Some(_) if !self.refetch => {
                    if !self.quiet {
                        eprintln!(
                            "tidewater: window {} was committed by a different request; exporting it again",
                            w.label()
                        );
                    }
                    todo.push(i);
                }
                _ => todo.push(i),
            }
        }
        let skipped = (windows.len() - todo.len()) as u64;
        if !self.quiet && skipped > 0 {
            eprintln!(
                "tidewater: {skipped} of {} windows already committed by the same request; resuming",
                windows.len()
            );
        }
        self.export_progress
            .windows_total
            .store(todo.len() as u64, Ordering::Relaxed);

        // The engine filters only with --filter-locally; otherwise the server does.
        let mut engine_options = o.clone();
        let (server_events, server_where) = if self.filter_locally {
            (None, None)
        } else {
            engine_options.events.clear();
            let events = (!o.events.is_empty())
                .then(|| serde_json::to_string(&o.events).expect("strings serialize"));
            let where_expr = engine_options.where_expr.take().filter(|e| !e.is_empty());
            (events, where_expr)
        };
        let requests: Vec<WindowRequest> = todo
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

        // Spooled bodies live in a staging folder of the output root, which the store
        // removes when a later run finds its process gone.
        let spool = root.join(format!(
            ".tidewater-staging-{}-spool-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&spool).map_err(|e| Error::output(&spool, e))?;
        let _spool_guard = RemoveOnDrop(spool.clone());

        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(self.tuning.concurrency)
            .user_agent(concat!("tidewater/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::config("--base-url", format!("cannot build the HTTP client: {e}"))
            })?;
        let client = Arc::new(Client {
            http,
            url: format!("{}/api/2.0/export", self.base_url.trim_end_matches('/')),
            credentials: self.credentials.clone(),
            tuning: self.tuning.clone(),
            pacer: Pacer::new(self.tuning.pace.clone()),
            in_flight: tokio::sync::Semaphore::new(self.tuning.concurrency),
            progress: self.export_progress.clone(),
            quiet: self.quiet,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidewater-http")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::config(
                    "--concurrency",
                    format!("cannot start the HTTP runtime: {e}"),
                )
            })?;

        // Downloads run ahead of the engine by at most `lookahead` windows, which bounds
        // the spooled bytes on disk.
        let lookahead = self.tuning.concurrency * 2;
        let (consumed_tx, consumed_rx) = tokio::sync::watch::channel(0usize);
        let (outcome_tx, outcome_rx) = crossbeam_channel::unbounded::<(usize, Outcome)>();
        for (k, req) in requests.iter().cloned().enumerate() {
            let client = client.clone();
            let mut consumed = consumed_rx.clone();
            let tx = outcome_tx.clone();
            let path = spool.join(format!("window-{k:05}.jsonl"));
            runtime.spawn(async move {
                if consumed.wait_for(|c| k < *c + lookahead).await.is_err() {
                    return;
                }
                let outcome = client.fetch_window(&req, &path).await;
                let _ = tx.send((k, outcome));
            });
        }
        drop(outcome_tx);

        let downloads: Arc<Mutex<BTreeMap<usize, (Verified, u32)>>> = Default::default();
        let feed = ExportFeed {
            outcomes: outcome_rx,
            waiting: BTreeMap::new(),
            consumed: consumed_tx,
            downloads: downloads.clone(),
            labels: requests.iter().map(|r| r.label.clone()).collect(),
            spools: BTreeMap::new(),
        };
        let names: Vec<String> = requests
            .iter()
            .map(|r| format!("export:{}", r.label))
            .collect();
        let ranges: Vec<(i64, i64)> = todo.iter().map(|&i| windows[i].range).collect();
        let converter = Converter::new(o.out.clone())
            .with_options(engine_options)
            .with_progress(self.progress.clone());
        let mut on_input_end = |report: InputReport| -> Result<()> {
            let i = todo[report.input];
            let w = &windows[i];
            let r = &mut results[i];
            r.lines = report.lines;
            r.bytes = report.bytes;
            r.events = report.events_kept;
            r.rejects = report.events_rejected;
            let download = downloads
                .lock()
                .expect("downloads lock")
                .remove(&report.input);
            if let Some((v, attempts)) = &download {
                r.attempts = *attempts;
                r.bytes_received = v.bytes_received;
            }
            if let Some(why) = &report.incomplete {
                r.status = "failed".into();
                r.error = Some(why.clone());
                return Ok(());
            }
            let (verified, attempts) = download.unwrap_or_default();
            let manifest = Manifest {
                version: 1,
                request: self.request_of(w),
                attempts,
                bytes_received: verified.bytes_received,
                bytes: verified.bytes,
                sha256: verified.sha256,
                gzip: verified.gzip,
                lines: report.lines,
                events_kept: report.events_kept,
                events_filtered: report.events_filtered,
                rejects: report.events_rejected,
                files_written: report.files_written,
                committed_at: jiff::Timestamp::now().to_string(),
            };
            let mut text = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
            text.push('\n');
            for folder in &report.committed_folders {
                let path = folder.join("manifest.json");
                std::fs::write(&path, &text).map_err(|e| Error::output(&path, e))?;
            }
            // The resume record goes last: a window counts as done only once it exists.
            write_atomically(&state_dir.join(w.manifest_name()), text.as_bytes())?;
            r.status = "committed".into();
            self.export_progress
                .windows_done
                .fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        let plan = Plan {
            names,
            total_bytes: 0,
            feed: Box::new(feed),
            owned: Some(OwnedWindows {
                ranges: Arc::new(ranges),
                on_input_end: &mut on_input_end,
            }),
        };
        let result = converter.execute_plan(plan, Destination::Files);
        runtime.shutdown_background();
        let mut run = result?;
        let p = &self.export_progress;
        run.input_bytes_compressed = p.bytes_received.load(Ordering::Relaxed);
        Ok(ExportSummary {
            run,
            requests: p.requests.load(Ordering::Relaxed),
            retries: p.retries.load(Ordering::Relaxed),
            rate_limit_wait_seconds: p.rate_limit_wait_ms.load(Ordering::Relaxed) as f64 / 1e3,
            windows_skipped: skipped,
            windows: results,
        })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::output(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::output(path, e))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Hands verified windows to the engine in window order.
struct ExportFeed {
    outcomes: crossbeam_channel::Receiver<(usize, Outcome)>,
    waiting: BTreeMap<usize, Outcome>,
    consumed: tokio::sync::watch::Sender<usize>,
    downloads: Arc<Mutex<BTreeMap<usize, (Verified, u32)>>>,
    labels: Vec<String>,
    spools: BTreeMap<usize, PathBuf>,
}

impl Feed for ExportFeed {
    fn open(&mut self, i: usize, raw_bytes: &Arc<AtomicU64>) -> Result<Opened> {
        let outcome = loop {
            if let Some(o) = self.waiting.remove(&i) {
                break o;
            }
            match self.outcomes.recv() {
                Ok((k, Outcome::Fatal { message, .. })) => {
                    // A refused request stops the run at once, whichever window it was.
                    return Err(Error::Export {
                        window: self.labels[k].clone(),
                        message,
                    });
                }
                Ok((k, o)) => {
                    self.waiting.insert(k, o);
                }
                Err(_) => {
                    return Err(Error::Export {
                        window: self.labels[i].clone(),
                        message: "the download stopped unexpectedly".into(),
                    })
                }
            }
        };
        self.consumed.send_replace(i + 1);
        match outcome {
            Outcome::Ready { verified, attempts } => {
                let path = verified.path.clone();
                self.downloads
                    .lock()
                    .expect("downloads lock")
                    .insert(i, (verified, attempts));
                let opened = crate::input::source::open(
                    &crate::input::source::Input::Path(path.clone()),
                    raw_bytes.clone(),
                )?;
                self.spools.insert(i, path);
                Ok(Opened::Stream(opened.reader))
            }
            Outcome::GaveUp { attempts, message } => {
                self.downloads
                    .lock()
                    .expect("downloads lock")
                    .insert(i, (Verified::default(), attempts));
                Ok(Opened::Unavailable(message))
            }
            Outcome::Fatal { message, .. } => Err(Error::Export {
                window: self.labels[i].clone(),
                message,
            }),
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(p) = self.spools.remove(&i) {
            let _ = std::fs::remove_file(p);
        }
    }
}
