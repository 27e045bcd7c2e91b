//! Export of user profiles from the Engage API (export-api §5) into `mp_people_data`.
//!
//! ```text
//! page 0 ──▶ session_id ──▶ page 1, 2, … until a page holds fewer than page_size
//!   each page: paced, retried (XC3), parsed whole, its results appended to the spool
//! spool ──▶ engine (data source people) ──▶ snapshot: data, mapping, `_complete`
//! ```
//!
//! Pages are read one after another: every later page needs the first page's session,
//! and the Query API allows 60 queries an hour, which pacing spends one page at a time.
//! A page is written to the spool only once its whole body parsed, so a retried page
//! never adds a profile twice; a run that cannot read every page stops before the
//! engine runs, and the previous snapshot stays as it was.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{check_api, describe, retry, AttemptError, Client, Outcome};
use super::credentials::Credentials;
use super::pace::{Pacer, RateBudget};
use super::summary::{ExportProgress, ExportSummary, WindowResult, WindowStatus};
use super::Tuning;
use crate::block::EventFilter;
use crate::error::{Error, Result};
use crate::field::Field;
use crate::input::Input;
use crate::options::{DataSource, RunOptions};
use crate::run::{execute_plan, Cancel, Destination, LocalFeed, OutputRoot, Plan};
use crate::summary::Progress;

/// The Engage API's host per region (export-api §5).
pub fn engage_base_url(region: &str) -> Option<&'static str> {
    match region {
        "us" => Some("https://mixpanel.com"),
        "eu" => Some("https://eu.mixpanel.com"),
        "in" => Some("https://in.mixpanel.com"),
        _ => None,
    }
}

/// The Query API's limit, which Engage requests count against (60 an hour).
pub fn engage_pace() -> Vec<(u32, std::time::Duration)> {
    vec![(60, std::time::Duration::from_secs(3600))]
}

/// Profiles per page unless told otherwise (the API's own page size).
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// The snapshot's label in summaries and messages.
const SNAPSHOT: &str = "snapshot";

/// Builds and runs an export of user profiles: a full snapshot of `mp_people_data`
/// that replaces the previous one.
///
/// ```no_run
/// use tidewater::export::{Credentials, PeopleExporter};
///
/// let credentials = Credentials::from_env().expect("credentials in the environment");
/// let summary = PeopleExporter::new("out", credentials)
///     .project_id(12345)
///     .run()?;
/// println!("{} profiles", summary.run.events_kept);
/// # Ok::<(), tidewater::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PeopleExporter {
    options: RunOptions,
    credentials: Credentials,
    base_url: String,
    page_size: usize,
    output_properties: Vec<String>,
    tuning: Tuning,
    progress: Arc<Progress>,
    export_progress: Arc<ExportProgress>,
    cancel: Cancel,
}

impl PeopleExporter {
    /// An export of every profile into `out`, from Mixpanel's US host by default,
    /// paced at the Query API's 60 requests an hour.
    pub fn new(out: impl Into<PathBuf>, credentials: Credentials) -> Self {
        PeopleExporter {
            options: RunOptions {
                out: out.into(),
                data_source: DataSource::People,
                ..Default::default()
            },
            credentials,
            base_url: engage_base_url("us").expect("known region").to_string(),
            page_size: DEFAULT_PAGE_SIZE,
            output_properties: Vec::new(),
            tuning: Tuning {
                pace: engage_pace(),
                ..Tuning::default()
            },
            progress: Arc::new(Progress::default()),
            export_progress: Arc::new(ExportProgress::default()),
            cancel: Cancel::default(),
        }
    }

    /// Output options (format, `where`, compression, prefix, project id, …), as for
    /// `convert`; `out` is kept and the data source is always people. `where` is sent
    /// to the API, which filters the profiles.
    pub fn with_options(mut self, options: RunOptions) -> Self {
        let out = std::mem::take(&mut self.options.out);
        self.options = RunOptions {
            out,
            data_source: DataSource::People,
            ..options
        };
        self
    }

    /// The API's base URL (a region's host, or a mock server).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The project (required with service-account credentials).
    pub fn project_id(mut self, id: u64) -> Self {
        self.options.project_id = Some(id);
        self
    }

    /// Profiles asked for per page.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = n;
        self
    }

    /// Only these profile properties (`output_properties`); empty means all.
    pub fn output_properties(mut self, names: Vec<String>) -> Self {
        self.output_properties = names;
        self
    }

    /// Pacing, retries and timeouts (by default paced at 60 requests an hour).
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The engine's progress counters.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Requests, bytes received, retries and waiting.
    pub fn export_progress(&self) -> Arc<ExportProgress> {
        self.export_progress.clone()
    }

    /// Uses `cancel` as the run's cancel token.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// Runs the export, paced in memory for this run.
    pub fn run(&self) -> Result<ExportSummary> {
        self.run_with(Arc::new(Pacer::new(self.tuning.pace.clone())))
    }

    /// Runs the export with the caller's rate budget (a service shares one per
    /// project). Every page is read before anything is written: a page that cannot be
    /// had stops the run with nothing committed.
    pub fn run_with(&self, budget: Arc<dyn RateBudget>) -> Result<ExportSummary> {
        let valid = self.validate()?;
        let root = OutputRoot::prepare(&self.options)?;
        let spool_dir = SpoolDir::make(root.output.staging("engage"))?;
        let spool = spool_dir.0.join("profiles.jsonl");
        let client = Client::build(
            format!("{}/api/query/engage", self.base_url.trim_end_matches('/')),
            self.credentials.clone(),
            &self.tuning,
            budget,
            self.export_progress.clone(),
        )?;
        self.export_progress
            .windows_total
            .store(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::resource("the HTTP runtime", e))?;
        let read = runtime.block_on(self.read_pages(&client, &spool))?;
        // The server filtered; the engine keeps every profile it was sent.
        let mut engine_options = self.options.clone();
        engine_options.where_expr = None;
        let mut engine_valid = valid;
        engine_valid.filter = EventFilter::default();
        let plan = Plan {
            names: vec!["engage".into()],
            total_bytes: read.bytes,
            feed: Box::new(LocalFeed(vec![Input::Path(spool)])),
            owned: None,
        };
        let run = execute_plan(
            &engine_options,
            engine_valid,
            plan,
            Destination::Files(root),
            &self.progress,
            &self.cancel,
        )?;
        let p = &self.export_progress;
        let snapshot = WindowResult {
            from_date: SNAPSHOT.into(),
            to_date: SNAPSHOT.into(),
            status: WindowStatus::Committed,
            attempts: read.attempts,
            bytes_received: p.bytes_received.load(Ordering::Relaxed),
            bytes: read.bytes,
            lines: run.lines_read,
            events: run.events_kept,
            rejects: run.events_rejected,
            error: None,
        };
        p.windows_done.fetch_add(1, Ordering::Relaxed);
        Ok(ExportSummary::new(run, p, 0, vec![snapshot]))
    }

    fn validate(&self) -> Result<crate::ValidOptions> {
        if self.page_size == 0 {
            return Err(Error::config(Field::PageSize, "must be at least 1"));
        }
        let o = &self.options;
        check_api(
            &self.credentials,
            o.project_id,
            &self.base_url,
            &self.tuning,
        )?;
        o.validate()
    }

    /// Reads every page into `spool`.
    async fn read_pages(&self, client: &Client, spool: &Path) -> Result<PagesRead> {
        let file = File::create(spool).map_err(|e| Error::output(spool, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut read = PagesRead::default();
        let mut session: Option<String> = None;
        for page in 0u64.. {
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let request = PageRequest {
                page,
                session_id: session.clone(),
            };
            let what = format!("people page {page}");
            let outcome = client
                .with_retries(&what, what.as_bytes(), || self.fetch_page(client, &request))
                .await;
            let (parsed, attempts) = match outcome {
                Outcome::Ready { verified, attempts } => (verified, attempts),
                Outcome::Fatal { message, status } => {
                    return Err(Error::Export {
                        window: what,
                        message,
                        status: Some(status),
                    })
                }
                Outcome::Local { path, source } => return Err(Error::output(path, source)),
                Outcome::GaveUp { message, .. } => {
                    return Err(Error::Export {
                        window: what,
                        message: format!("{message}; nothing was committed"),
                        status: None,
                    })
                }
            };
            read.attempts += attempts;
            for range in &parsed.results {
                let text = &parsed.body[range.clone()];
                // A line per profile: a body printed over several lines has newlines
                // only between tokens (JSON strings cannot hold them raw).
                let written = if memchr::memchr2(b'\n', b'\r', text).is_some() {
                    out.write_all(&one_line(text))
                } else {
                    out.write_all(text)
                };
                written
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| Error::output(spool, e))?;
                read.bytes += text.len() as u64 + 1;
            }
            read.profiles += parsed.results.len() as u64;
            let page_size = parsed.page_size.unwrap_or(self.page_size as u64);
            tracing::info!(
                page,
                profiles = read.profiles,
                "people page {page}: {} profiles ({} so far{})",
                parsed.results.len(),
                read.profiles,
                parsed.total.map_or(String::new(), |t| format!(" of {t}"))
            );
            if (parsed.results.len() as u64) < page_size || parsed.results.is_empty() {
                break;
            }
            match parsed.session_id {
                Some(id) if !id.is_empty() => session = Some(id),
                _ if session.is_some() => {}
                _ => {
                    return Err(Error::Export {
                        window: what,
                        message: "a full page came without a session_id, so the next page \
                                  cannot be asked for"
                            .into(),
                        status: None,
                    })
                }
            }
        }
        out.flush().map_err(|e| Error::output(spool, e))?;
        Ok(read)
    }

    /// One attempt at one page: its whole body, parsed.
    async fn fetch_page(
        &self,
        client: &Client,
        request: &PageRequest,
    ) -> std::result::Result<ParsedPage, AttemptError> {
        let t = &client.tuning;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("page", &request.page.to_string());
        form.append_pair("page_size", &self.page_size.to_string());
        if let Some(s) = &request.session_id {
            form.append_pair("session_id", s);
        }
        if let Some(w) = self.options.where_expr.as_deref().filter(|w| !w.is_empty()) {
            form.append_pair("where", w);
        }
        if !self.output_properties.is_empty() {
            let names = serde_json::to_string(&self.output_properties).expect("strings");
            form.append_pair("output_properties", &names);
        }
        let mut query = Vec::new();
        if let Some(p) = self.options.project_id {
            query.push(("project_id", p.to_string()));
        }
        let post = client
            .http
            .post(&client.url)
            .query(&query)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.finish());
        let response = client.send(post).await.map_err(|e| client.redacted(e))?;
        let mut stream = response.bytes_stream();
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(t.stall_timeout, stream.next()).await {
                Err(_) => {
                    return Err(retry(format!(
                        "the body stalled: no bytes for {:?} after {} bytes (--stall-timeout)",
                        t.stall_timeout,
                        body.len()
                    )))
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    client
                        .progress
                        .bytes_received
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    body.extend_from_slice(&chunk);
                }
                Ok(Some(Err(e))) => {
                    return Err(retry(format!(
                        "the connection dropped after {} bytes: {}",
                        body.len(),
                        describe(&e)
                    )))
                }
            }
        }
        // A body that does not parse is retried like a cut connection.
        ParsedPage::parse(body, request.page).map_err(retry)
    }
}

/// One page asked for.
struct PageRequest {
    page: u64,
    session_id: Option<String>,
}

/// What reading the pages came to.
#[derive(Default)]
struct PagesRead {
    profiles: u64,
    /// Bytes of profile lines spooled.
    bytes: u64,
    /// Requests made, retries included.
    attempts: u32,
}

/// A page that parsed: its body and where each result's text is in it.
struct ParsedPage {
    body: Vec<u8>,
    results: Vec<std::ops::Range<usize>>,
    page_size: Option<u64>,
    session_id: Option<String>,
    total: Option<u64>,
}

impl ParsedPage {
    fn parse(body: Vec<u8>, asked: u64) -> std::result::Result<ParsedPage, String> {
        let page = parse_page(&body, asked)?;
        let start = body.as_ptr() as usize;
        let results = page
            .results
            .iter()
            .flatten()
            .map(|r| {
                let at = r.get().as_ptr() as usize - start;
                at..at + r.get().len()
            })
            .collect();
        let (page_size, session_id, total) = (page.page_size, page.session_id, page.total);
        Ok(ParsedPage {
            body,
            results,
            page_size,
            session_id,
            total,
        })
    }
}

/// An Engage response (export-api §5). `results` keep their text as sent.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    page_size: Option<u64>,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(borrow)]
    results: Option<Vec<&'a RawValue>>,
}

/// Checks a page's body: an object with `results` (a list of objects), `status` ok
/// when given, and the page that was asked for.
fn parse_page(body: &[u8], asked: u64) -> std::result::Result<Page<'_>, String> {
    let page: Page<'_> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not an Engage response ({e}); it began {:?}",
            String::from_utf8_lossy(&body[..body.len().min(120)])
        )
    })?;
    if let Some(error) = &page.error {
        return Err(format!("the server answered an error: {error}"));
    }
    if let Some(status) = page.status.as_deref().filter(|s| *s != "ok") {
        return Err(format!("the server answered status {status:?}"));
    }
    if page.page.is_some_and(|p| p != asked) {
        return Err(format!(
            "the server sent page {} for page {asked}",
            page.page.unwrap_or_default()
        ));
    }
    let results = page
        .results
        .as_ref()
        .ok_or_else(|| "the body has no \"results\" list".to_string())?;
    if let Some(bad) = results.iter().find(|r| !r.get().starts_with('{')) {
        return Err(format!(
            "a result is not a profile object: {:.120}",
            bad.get()
        ));
    }
    Ok(page)
}

/// `text` with its line breaks (whitespace between JSON tokens) turned into spaces.
fn one_line(text: &[u8]) -> Vec<u8> {
    text.iter()
        .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
        .collect()
}

/// The local folder of a run's spooled pages, removed when the run ends.
struct SpoolDir(PathBuf);

impl SpoolDir {
    fn make(path: PathBuf) -> Result<SpoolDir> {
        std::fs::create_dir_all(&path).map_err(|e| Error::output_root(&path, e))?;
        Ok(SpoolDir(path))
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked_before_their_profiles_are_kept() {
        let ok = br#"{"page":1,"page_size":2,"session_id":"s","status":"ok","results":[{"$distinct_id":1,"$properties":{}}]}"#;
        let page = parse_page(ok, 1).unwrap();
        assert_eq!(page.results.unwrap().len(), 1);
        for (body, asked, why) in [
            (
                &b"{\"page\":0,\"results\":[{}"[..],
                0,
                "not an Engage response",
            ),
            (br#"{"page":2,"results":[]}"#, 1, "sent page 2 for page 1"),
            (br#"{"status":"error","results":[]}"#, 0, "status \"error\""),
            (br#"{"error":"session expired"}"#, 0, "session expired"),
            (br#"{"page":0}"#, 0, "no \"results\""),
            (br#"{"results":[1]}"#, 0, "not a profile object"),
        ] {
            let err = parse_page(body, asked).err().unwrap();
            assert!(err.contains(why), "{err}");
        }
        assert_eq!(one_line(b"{\n \"a\":\r\n1}"), b"{  \"a\":  1}");
    }
}
