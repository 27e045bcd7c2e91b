//! The mock export server (export-api XM1–XM4): serves local event files as one
//! project's `/api/2.0/export` endpoint, with the real API's validation, rate limits
//! and streaming, plus injected faults for tests.
//!
//! At start the data is split by day (in the configured time zone) into one plain and
//! one gzip file per day in a temporary folder. A request without filters streams the
//! ready gzip files as they are (no compression per request); a filtered, limited or
//! faulted request reads the day's plain lines, filters them with the engine's own
//! filter code and compresses as it sends. Memory stays bounded whatever the size of
//! a day.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use rayon::prelude::*;
use serde::Serialize;

use tidewater::export::parse_duration;
use tidewater::EventFilter;
use tidewater::Partition;
use tidewater::Windowing;
use tidewater::{frame_input, is_blank, FrameConfig};
use tidewater::{Error, Field, Result};
use tidewater_event::LineParser;
use tidewater_where::Scratch;

/// Who may call the server.
#[derive(Clone, PartialEq, Eq)]
pub enum MockAuth {
    /// Any credentials (or none) are accepted.
    Open,
    /// A project API secret as the Basic user name.
    Secret(String),
    /// A service account; requests must carry the project id.
    ServiceAccount {
        /// User name.
        username: String,
        /// Secret.
        secret: String,
    },
}

impl std::fmt::Debug for MockAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MockAuth::Open => "Open",
            MockAuth::Secret(_) => "Secret(<redacted>)",
            MockAuth::ServiceAccount { .. } => "ServiceAccount(<redacted>)",
        })
    }
}

/// What a fault does to a request (XM4).
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// 429, with a `Retry-After` header when given.
    RateLimited(Option<Duration>),
    /// Any status, e.g. 500, 503, 402, 403.
    Status(u16),
    /// `export terminated early` after N lines.
    Terminated(u64),
    /// The body ends in the middle of line N+1 (the stream itself is well formed).
    CutMidLine(u64),
    /// The connection drops after N lines.
    Drop(u64),
    /// The response starts only after this long.
    SlowFirstByte(Duration),
    /// The body pauses this long after N lines.
    Stall(Duration, u64),
}

/// When a fault fires.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultTrigger {
    /// On the next N requests it sees.
    Count(u64),
    /// On each request with this probability.
    Probability(f64),
}

/// One `--fault` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it does.
    pub kind: FaultKind,
    /// When.
    pub trigger: FaultTrigger,
    /// The spec as written, for the request log.
    pub spec: String,
}

/// The syntax of `--fault`, also shown by `tidewater mock-server --help`.
pub const FAULT_HELP: &str = "\
KIND[,count=N | ,p=P]   (default count=1; faults are tried in order, one per request)
  429            429 without Retry-After      429=2s      429 with Retry-After: 2
  500, 503, 402, 403, status=NNN              that status with a JSON error body
  terminated=N   `export terminated early` after N lines
  cut=N          the body ends in the middle of line N+1
  drop=N         the connection drops after N lines
  slow=DUR       the response starts after DUR (e.g. 2s, 500ms)
  stall=DUR@N    the body pauses for DUR after N lines";

impl Fault {
    /// Parses a spec such as `429=1s,count=2`, `drop=100,p=0.1` or `stall=5s@10`.
    pub fn parse(spec: &str) -> std::result::Result<Fault, String> {
        let bad = |why: &str| format!("--fault {spec:?}: {why}\n{FAULT_HELP}");
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default().trim();
        let (kind, arg) = match head.split_once('=') {
            Some((k, a)) => (k, Some(a)),
            None => (head, None),
        };
        let lines = |a: Option<&str>| -> std::result::Result<u64, String> {
            a.ok_or_else(|| bad("needs =N lines"))?
                .parse()
                .map_err(|_| bad("N must be a whole number of lines"))
        };
        let duration = |a: &str| parse_duration(a).map_err(|e| bad(&e));
        let kind = match kind {
            "429" => FaultKind::RateLimited(arg.map(duration).transpose()?),
            "500" | "503" | "402" | "403" | "400" | "401" | "404" if arg.is_none() => {
                FaultKind::Status(kind.parse().expect("listed statuses are numbers"))
            }
            "status" => FaultKind::Status(
                arg.and_then(|a| a.parse().ok())
                    .filter(|s| (400..600).contains(s))
                    .ok_or_else(|| bad("status=NNN needs a 4xx or 5xx status"))?,
            ),
            "terminated" => FaultKind::Terminated(lines(arg)?),
            "cut" => FaultKind::CutMidLine(lines(arg)?),
            "drop" => FaultKind::Drop(lines(arg)?),
            "slow" => FaultKind::SlowFirstByte(duration(arg.ok_or_else(|| bad("needs =DUR"))?)?),
            "stall" => {
                let (d, n) = arg
                    .and_then(|a| a.split_once('@'))
                    .ok_or_else(|| bad("needs =DUR@N"))?;
                FaultKind::Stall(duration(d)?, lines(Some(n))?)
            }
            _ => return Err(bad("unknown fault kind")),
        };
        let mut trigger = FaultTrigger::Count(1);
        for p in parts {
            trigger = match p.trim().split_once('=') {
                Some(("count", n)) => {
                    FaultTrigger::Count(n.parse().map_err(|_| bad("count must be a number"))?)
                }
                Some(("p", x)) => FaultTrigger::Probability(
                    x.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or_else(|| bad("p must be between 0 and 1"))?,
                ),
                _ => return Err(bad("expected count=N or p=P after the kind")),
            };
        }
        Ok(Fault {
            kind,
            trigger,
            spec: spec.to_string(),
        })
    }
}

/// Configuration of a mock server.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Event files or folders (output-format IN6).
    pub data: Vec<PathBuf>,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The project's id; requests that name another project get 400.
    pub project_id: Option<u64>,
    /// Who may call.
    pub auth: MockAuth,
    /// "Today" for the `to_date` check (default: today in `tz`).
    pub today: Option<Date>,
    /// Time zone of the project's days.
    pub tz: String,
    /// Request limits (X8 by default): at most N accepted requests in any period.
    pub limits: Vec<(u32, Duration)>,
    /// Requests served at once before 429.
    pub max_concurrent: usize,
    /// Injected faults.
    pub faults: Vec<Fault>,
    /// Seed of the generator behind probabilistic faults.
    pub fault_seed: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            data: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            project_id: None,
            auth: MockAuth::Open,
            today: None,
            tz: "UTC".into(),
            limits: vec![(3, Duration::from_secs(1)), (60, Duration::from_secs(3600))],
            max_concurrent: 100,
            faults: Vec::new(),
            fault_seed: 1,
        }
    }
}

/// One request as the server saw it (`GET /_mock/requests`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RequestRecord {
    /// Milliseconds since the server started.
    pub at_ms: u64,
    /// Path and query.
    pub request: String,
    /// Status answered.
    pub status: u16,
    /// The fault applied, if any.
    pub fault: Option<String>,
    /// Whether the request accepted gzip (X4).
    pub accept_gzip: bool,
}

/// A day of data: its lines as plain JSONL and as one gzip member.
#[derive(Debug)]
struct Day {
    plain: PathBuf,
    gzip: PathBuf,
    plain_bytes: u64,
}

struct MockState {
    config: MockConfig,
    days: BTreeMap<Date, Day>,
    started: Instant,
    log: Mutex<Vec<RequestRecord>>,
    accepted: Mutex<Vec<Instant>>,
    in_flight: Arc<AtomicUsize>,
    fault_counts: Mutex<Vec<u64>>,
    rng: AtomicU64,
    _dir: tempfile::TempDir,
}

/// A running mock server. Dropping it stops the server.
pub struct MockServer {
    url: String,
    state: Arc<MockState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Lines of the data that could not be served (no valid event or time).
    pub unusable_lines: u64,
}

impl MockServer {
    /// Loads the data and starts serving on a runtime of its own.
    pub fn start(config: MockConfig) -> Result<MockServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidewater-mock")
            .enable_all()
            .build()
            .map_err(|e| Error::resource("the mock server's runtime", e))?;
        let (state, unusable_lines) = load(config)?;
        let state = Arc::new(state);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(state.config.listen))
            .map_err(|e| {
                Error::config(
                    Field::Listen,
                    format!("cannot listen on {}: {e}", state.config.listen),
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::config(Field::Listen, e.to_string()))?;
        let app = axum::Router::new()
            .route("/api/2.0/export", axum::routing::get(export))
            .route("/api/2.0/export/", axum::routing::get(export))
            .route("/_mock/requests", axum::routing::get(requests))
            .with_state(state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MockServer {
            url: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
            runtime: Some(runtime),
            unusable_lines,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The requests served so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.log.lock().expect("log lock").clone()
    }

    /// Days that hold data.
    pub fn days(&self) -> Vec<Date> {
        self.state.days.keys().copied().collect()
    }

    /// Blocks until Ctrl-C.
    pub fn wait(&mut self) {
        if let Some(rt) = &self.runtime {
            let _ = rt.block_on(tokio::signal::ctrl_c());
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Splits the data into per-day plain and gzip files.
fn load(config: MockConfig) -> Result<(MockState, u64)> {
    let dir = tempfile::Builder::new()
        .prefix("tidewater-mock-")
        .tempdir()
        .map_err(|e| Error::resource("a temporary folder", e))?;
    let inputs = tidewater::expand_inputs(&config.data)?;
    let windowing = Windowing::new(&config.tz, Partition::Daily)?;
    let mut writers: BTreeMap<Date, (PathBuf, std::io::BufWriter<std::fs::File>, u64)> =
        BTreeMap::new();
    let mut unusable = 0u64;
    let frame = FrameConfig {
        block_bytes: 4 << 20,
        max_line_bytes: 256 << 20,
    };
    for (i, input) in inputs.iter().enumerate() {
        let opened = tidewater::open_input(input, Arc::new(AtomicU64::new(0)))?;
        let mut failure: Option<Error> = None;
        let mut batch = Vec::new();
        let mut flush = |batch: &mut Vec<tidewater::Block>, failure: &mut Option<Error>| {
            let days: Vec<Vec<(std::ops::Range<usize>, Option<Date>)>> = batch
                .par_iter()
                .map_init(
                    || (LineParser::default(), windowing.clone()),
                    |(parser, windowing), block| day_of_lines(&block.data, parser, windowing),
                )
                .collect();
            for (block, lines) in batch.iter().zip(days) {
                for (range, day) in lines {
                    let Some(day) = day else {
                        unusable += 1;
                        continue;
                    };
                    let entry = match writers.entry(day) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let path = dir.path().join(format!("{day}.jsonl"));
                            match std::fs::File::create(&path) {
                                Ok(f) => v.insert((path, std::io::BufWriter::new(f), 0)),
                                Err(e) => {
                                    failure.get_or_insert(Error::output(&path, e));
                                    return;
                                }
                            }
                        }
                    };
                    let line = &block.data[range];
                    if let Err(e) = entry
                        .1
                        .write_all(line)
                        .and_then(|_| entry.1.write_all(b"\n"))
                    {
                        failure.get_or_insert(Error::output(&entry.0, e));
                        return;
                    }
                    entry.2 += line.len() as u64 + 1;
                }
            }
            batch.clear();
        };
        let end = frame_input(opened.reader, i, frame, |block| {
            batch.push(block);
            if batch.len() >= 8 {
                flush(&mut batch, &mut failure);
            }
            failure.is_none()
        });
        flush(&mut batch, &mut failure);
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(reason) = end.and_then(|e| e.incomplete) {
            return Err(Error::Incomplete {
                input: input.name(),
                reason,
            });
        }
    }
    let mut days = BTreeMap::new();
    let mut plain = Vec::new();
    for (day, (path, mut w, bytes)) in writers {
        w.flush().map_err(|e| Error::output(&path, e))?;
        plain.push((day, path, bytes));
    }
    // Each day's gzip body is made once, here, in parallel.
    let zipped: Vec<Result<PathBuf>> = plain
        .par_iter()
        .map(|(_, path, _)| {
            let gz = path.with_extension("jsonl.gz");
            let mut input = std::fs::File::open(path).map_err(|e| Error::output(path, e))?;
            let out = std::fs::File::create(&gz).map_err(|e| Error::output(&gz, e))?;
            let mut enc = flate2::write::GzEncoder::new(
                std::io::BufWriter::with_capacity(1 << 20, out),
                flate2::Compression::fast(),
            );
            std::io::copy(&mut input, &mut enc).map_err(|e| Error::output(&gz, e))?;
            enc.finish()
                .and_then(|mut w| w.flush())
                .map_err(|e| Error::output(&gz, e))?;
            Ok(gz)
        })
        .collect();
    for ((day, path, bytes), gz) in plain.into_iter().zip(zipped) {
        days.insert(
            day,
            Day {
                plain: path,
                gzip: gz?,
                plain_bytes: bytes,
            },
        );
    }
    let faults = config.faults.len();
    Ok((
        MockState {
            rng: AtomicU64::new(config.fault_seed | 1),
            config,
            days,
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            fault_counts: Mutex::new(vec![0; faults]),
            _dir: dir,
        },
        unusable,
    ))
}

/// The day of each non-blank line of a block (`None`: not a valid event).
fn day_of_lines(
    data: &[u8],
    parser: &mut LineParser,
    windowing: &mut Windowing,
) -> Vec<(std::ops::Range<usize>, Option<Date>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
        let line_end = if end > start && data[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let line = &data[start..line_end];
        if !is_blank(line) {
            let day = parser
                .parse(line, |e| e.time_ms)
                .ok()
                .and_then(|ms| windowing.window_of(ms))
                .and_then(|w| jiff::civil::Date::new(w.year, w.month, w.day).ok());
            out.push((start..line_end, day));
        }
        start = end + 1;
    }
    out
}

async fn requests(State(state): State<Arc<MockState>>) -> Response {
    let log = state.log.lock().expect("log lock").clone();
    let body = serde_json::to_string(&log).expect("records serialize");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_error(status: StatusCode, request: &str, message: &str) -> Response {
    let body = serde_json::json!({"request": request, "error": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Parsed and validated query parameters (X2, XM2).
struct ExportQuery {
    from: Date,
    to: Date,
    filter: EventFilter,
    limit: Option<u64>,
    time_in_ms: bool,
}

fn validate(
    state: &MockState,
    q: &HashMap<String, String>,
) -> std::result::Result<ExportQuery, String> {
    let date = |name: &str| -> std::result::Result<Date, String> {
        let v = q
            .get(name)
            .ok_or_else(|| format!("'{name}' is a required parameter"))?;
        if v.len() != 10 {
            return Err(format!(
                "'{name}' is not a valid date: {v:?} (expected YYYY-MM-DD)"
            ));
        }
        Date::strptime("%Y-%m-%d", v)
            .map_err(|_| format!("'{name}' is not a valid date: {v:?} (expected YYYY-MM-DD)"))
    };
    let from = date("from_date")?;
    let to = date("to_date")?;
    if from > to {
        return Err("'from_date' cannot be after 'to_date'".into());
    }
    let today = match state.config.today {
        Some(d) => d,
        None => jiff::Zoned::now()
            .with_time_zone(
                jiff::tz::TimeZone::get(&state.config.tz).unwrap_or(jiff::tz::TimeZone::UTC),
            )
            .date(),
    };
    if to > today {
        return Err("to_date cannot be later than today".into());
    }
    let limit = match q.get("limit") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    format!("'limit' must be an integer between 1 and 100000, got {v:?}")
                })?,
        ),
    };
    let events: Vec<String> = match q.get("event") {
        None => Vec::new(),
        Some(v) => serde_json::from_str(v)
            .map_err(|_| format!("'event' must be a JSON array of strings, got {v:?}"))?,
    };
    let time_in_ms = match q.get("time_in_ms").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("'time_in_ms' must be true or false, got {v:?}")),
    };
    if let (Some(p), Some(mine)) = (q.get("project_id"), state.config.project_id) {
        if p.parse::<u64>().ok() != Some(mine) {
            return Err(format!(
                "project {p} is not accessible with these credentials"
            ));
        }
    } else if matches!(state.config.auth, MockAuth::ServiceAccount { .. })
        && q.get("project_id").is_none()
    {
        return Err("'project_id' is required when authenticating with a service account".into());
    }
    let mut filter = EventFilter::new(&events);
    if let Some(expr) = q.get("where").filter(|w| !w.is_empty()) {
        let ctx = tidewater_where::Context::new(&state.config.tz)?;
        let program =
            tidewater_where::compile(expr, ctx).map_err(|e| format!("invalid 'where': {e}"))?;
        filter = filter.with_where(program);
    }
    Ok(ExportQuery {
        from,
        to,
        filter,
        limit,
        time_in_ms,
    })
}

fn authorized(state: &MockState, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let split = given.as_deref().and_then(|g| g.split_once(':'));
    match &state.config.auth {
        MockAuth::Open => true,
        MockAuth::Secret(s) => split.is_some_and(|(u, _)| u == s),
        MockAuth::ServiceAccount { username, secret } => {
            split.is_some_and(|(u, p)| u == username && p == secret)
        }
    }
}

impl MockState {
    fn record(&self, request: &str, accept_gzip: bool, status: StatusCode, fault: Option<&Fault>) {
        self.log.lock().expect("log lock").push(RequestRecord {
            at_ms: self.started.elapsed().as_millis() as u64,
            request: request.to_string(),
            status: status.as_u16(),
            fault: fault.map(|f| f.spec.clone()),
            accept_gzip,
        });
    }

    /// Counts the request against the limits; false when it exceeds one (X8).
    fn admit(&self) -> bool {
        let mut accepted = self.accepted.lock().expect("limits lock");
        let now = Instant::now();
        let horizon = self
            .config
            .limits
            .iter()
            .map(|l| l.1)
            .max()
            .unwrap_or_default();
        accepted.retain(|t| now.duration_since(*t) < horizon);
        for &(n, period) in &self.config.limits {
            let recent = accepted
                .iter()
                .filter(|t| now.duration_since(**t) < period)
                .count();
            if recent >= n as usize {
                return false;
            }
        }
        accepted.push(now);
        true
    }

    fn pick_fault(&self) -> Option<Fault> {
        let mut counts = self.fault_counts.lock().expect("fault lock");
        for (i, f) in self.config.faults.iter().enumerate() {
            let fire = match f.trigger {
                FaultTrigger::Count(n) => counts[i] < n,
                FaultTrigger::Probability(p) => {
                    let mut x = self.rng.load(Ordering::Relaxed);
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    self.rng.store(x, Ordering::Relaxed);
                    ((x >> 11) as f64 / (1u64 << 53) as f64) < p
                }
            };
            if fire {
                counts[i] += 1;
                return Some(f.clone());
            }
        }
        None
    }
}

/// Decrements the in-flight count when a response body is done or dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn export(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let request = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    if !authorized(&state, &headers) {
        state.record(&request, accepts_gzip, StatusCode::UNAUTHORIZED, None);
        return json_error(StatusCode::UNAUTHORIZED, &request, "Invalid credentials");
    }
    let query = match validate(&state, &q) {
        Ok(v) => v,
        Err(message) => {
            state.record(&request, accepts_gzip, StatusCode::BAD_REQUEST, None);
            return json_error(StatusCode::BAD_REQUEST, &request, &message);
        }
    };
    let in_flight = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let guard = InFlight(state.in_flight.clone());
    if in_flight > state.config.max_concurrent || !state.admit() {
        state.record(&request, accepts_gzip, StatusCode::TOO_MANY_REQUESTS, None);
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            &request,
            "too many export requests in progress for this project",
        );
    }
    let fault = state.pick_fault();
    match fault.as_ref().map(|f| &f.kind) {
        Some(FaultKind::RateLimited(after)) => {
            state.record(
                &request,
                accepts_gzip,
                StatusCode::TOO_MANY_REQUESTS,
                fault.as_ref(),
            );
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                &request,
                "too many export requests in progress for this project",
            );
            if let Some(d) = after {
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    d.as_secs_f64()
                        .ceil()
                        .to_string()
                        .parse()
                        .expect("number header"),
                );
            }
            return r;
        }
        Some(FaultKind::Status(s)) => {
            let status = StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            state.record(&request, accepts_gzip, status, fault.as_ref());
            return json_error(
                status,
                &request,
                &format!("injected fault: {}", fault.as_ref().expect("matched").spec),
            );
        }
        _ => {}
    }
    state.record(&request, accepts_gzip, StatusCode::OK, fault.as_ref());
    if let Some(FaultKind::SlowFirstByte(d)) = fault.as_ref().map(|f| &f.kind) {
        tokio::time::sleep(*d).await;
    }
    let days: Vec<(PathBuf, PathBuf, u64)> = state
        .days
        .range(query.from..=query.to)
        .map(|(_, d)| (d.plain.clone(), d.gzip.clone(), d.plain_bytes))
        .collect();
    let plain_total: u64 = days.iter().map(|d| d.2).sum();
    let content_fault = fault
        .as_ref()
        .is_some_and(|f| !matches!(f.kind, FaultKind::SlowFirstByte(_)));
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
    let ready_gzip = query.filter.is_pass_all()
        && query.limit.is_none()
        && !query.time_in_ms
        && !content_fault
        && accepts_gzip
        && plain_total > 1400;
    let gzip = if ready_gzip {
        tokio::task::spawn_blocking(move || send_files(days.iter().map(|d| d.1.clone()), &tx));
        true
    } else {
        // Decide on gzip (X5: only above 1400 bytes) from the first bytes produced.
        let (decided_tx, decided_rx) = tokio::sync::oneshot::channel::<bool>();
        let kind = fault.map(|f| f.kind);
        tokio::task::spawn_blocking(move || {
            let mut body = BodyWriter::new(tx, accepts_gzip, decided_tx);
            let result = stream_lines(&days, &query, kind.as_ref(), &mut body);
            body.end(result);
        });
        decided_rx.await.unwrap_or(false)
    };
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|item| (item, (rx, guard)))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "application/x-ndjson".parse().expect("valid header"),
    );
    if gzip {
        h.insert(
            header::CONTENT_ENCODING,
            "gzip".parse().expect("valid header"),
        );
    }
    response
}

/// Sends ready files as they are, in 256 KiB chunks.
fn send_files(
    paths: impl Iterator<Item = PathBuf>,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) {
    for path in paths {
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    }
}

/// Why a body stopped early.
enum Stop {
    /// The client went away.
    Gone,
    /// Drop the connection (fault).
    Drop,
    /// Reading the data failed.
    Io(std::io::Error),
}

/// Produces a response body: plain until it is known to be over 1400 bytes, then gzip
/// when the client accepts it.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    accepts_gzip: bool,
    decided: Option<tokio::sync::oneshot::Sender<bool>>,
    pending: Vec<u8>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl BodyWriter {
    fn new(
        tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
        accepts_gzip: bool,
        decided: tokio::sync::oneshot::Sender<bool>,
    ) -> Self {
        BodyWriter {
            tx,
            accepts_gzip,
            decided: Some(decided),
            pending: Vec::with_capacity(64 << 10),
            gzip: None,
        }
    }

    fn decide(&mut self, gzip: bool) {
        if let Some(d) = self.decided.take() {
            if gzip {
                self.gzip = Some(flate2::write::GzEncoder::new(
                    Vec::with_capacity(64 << 10),
                    flate2::Compression::fast(),
                ));
            }
            let _ = d.send(gzip);
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), Stop> {
        self.pending.extend_from_slice(bytes);
        if self.decided.is_some() && self.pending.len() > 1400 {
            self.decide(self.accepts_gzip);
        }
        if self.decided.is_none() && self.pending.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::result::Result<(), Stop> {
        if self.decided.is_some() {
            self.decide(self.accepts_gzip && self.pending.len() > 1400);
        }
        let out = match &mut self.gzip {
            Some(enc) => {
                enc.write_all(&self.pending).map_err(Stop::Io)?;
                enc.flush().map_err(Stop::Io)?;
                std::mem::take(enc.get_mut())
            }
            None => std::mem::take(&mut self.pending),
        };
        self.pending.clear();
        if out.is_empty() {
            return Ok(());
        }
        self.tx
            .blocking_send(Ok(Bytes::from(out)))
            .map_err(|_| Stop::Gone)
    }

    fn end(mut self, result: std::result::Result<(), Stop>) {
        if self.decided.is_some() {
            self.decide(self.accepts_gzip && self.pending.len() > 1400);
        }
        match result {
            Ok(()) => {
                if self.flush().is_ok() {
                    if let Some(enc) = self.gzip.take() {
                        if let Ok(rest) = enc.finish() {
                            if !rest.is_empty() {
                                let _ = self.tx.blocking_send(Ok(Bytes::from(rest)));
                            }
                        }
                    }
                }
            }
            Err(Stop::Gone) => {}
            Err(Stop::Drop) => {
                let _ = self.flush();
                let _ = self.tx.blocking_send(Err(std::io::Error::other(
                    "connection dropped (injected fault)",
                )));
            }
            Err(Stop::Io(e)) => {
                let _ = self.tx.blocking_send(Err(e));
            }
        }
    }
}

/// Streams the matching lines of `days` (XM1), applying a content fault.
fn stream_lines(
    days: &[(PathBuf, PathBuf, u64)],
    query: &ExportQuery,
    fault: Option<&FaultKind>,
    body: &mut BodyWriter,
) -> std::result::Result<(), Stop> {
    let mut parser = LineParser::default();
    let mut scratch = Scratch::default();
    let mut sent = 0u64;
    let mut line = Vec::new();
    for (plain, _, _) in days {
        let mut reader =
            BufReader::with_capacity(1 << 20, std::fs::File::open(plain).map_err(Stop::Io)?);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(Stop::Io)? == 0 {
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Some(limit) = query.limit {
                if sent >= limit {
                    return Ok(());
                }
            }
            let keep = query.filter.is_pass_all()
                || parser
                    .parse(text, |e| {
                        query.filter.keep(e, &mut scratch).unwrap_or(false)
                    })
                    .unwrap_or(false);
            if !keep {
                continue;
            }
            match fault {
                Some(FaultKind::Terminated(n)) if sent == *n => {
                    return body.write(b"export terminated early\n");
                }
                Some(FaultKind::CutMidLine(n)) if sent == *n => {
                    return body.write(&text[..text.len() / 2]);
                }
                Some(FaultKind::Drop(n)) if sent == *n => return Err(Stop::Drop),
                Some(FaultKind::Stall(d, n)) if sent == *n => {
                    body.flush()?;
                    std::thread::sleep(*d);
                }
                _ => {}
            }
            match with_time_unit(text, query.time_in_ms) {
                Some(rewritten) => body.write(&rewritten)?,
                None => body.write(text)?,
            }
            body.write(b"\n")?;
            sent += 1;
        }
    }
    // A fault set beyond the last line still takes effect at the end.
    match fault {
        Some(FaultKind::Terminated(_)) => body.write(b"export terminated early\n"),
        Some(FaultKind::Drop(_)) => Err(Stop::Drop),
        _ => Ok(()),
    }
}

/// XM1: `time` as whole seconds, or as milliseconds with `time_in_ms`. `None` when the
/// line already has it that way (it is then sent byte for byte).
fn with_time_unit(line: &[u8], in_ms: bool) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let time = v.get_mut("properties")?.get_mut("time")?;
    let t = time.as_f64()?;
    let ms = if t >= 1e11 {
        t.floor()
    } else {
        (t * 1000.0).floor()
    };
    let wanted = if in_ms { ms } else { (ms / 1000.0).floor() };
    if time.is_u64() && time.as_u64() == Some(wanted as u64) {
        return None;
    }
    *time = serde_json::Value::from(wanted as u64);
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xm4_fault_specs() {
        assert_eq!(
            Fault::parse("429=2s,count=3").unwrap().kind,
            FaultKind::RateLimited(Some(Duration::from_secs(2)))
        );
        assert_eq!(Fault::parse("429").unwrap().trigger, FaultTrigger::Count(1));
        assert_eq!(
            Fault::parse("503,p=0.5").unwrap().trigger,
            FaultTrigger::Probability(0.5)
        );
        assert_eq!(
            Fault::parse("status=402").unwrap().kind,
            FaultKind::Status(402)
        );
        assert_eq!(Fault::parse("drop=10").unwrap().kind, FaultKind::Drop(10));
        assert_eq!(
            Fault::parse("stall=500ms@7").unwrap().kind,
            FaultKind::Stall(Duration::from_millis(500), 7)
        );
        for bad in [
            "",
            "teapot",
            "drop",
            "drop=x",
            "429,p=2",
            "stall=1s",
            "status=200",
            "cut=1,often",
        ] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xm1_time_units() {
        let line = br#"{"event":"A","properties":{"time":1700000000,"x":1}}"#;
        assert_eq!(with_time_unit(line, false), None);
        assert_eq!(
            with_time_unit(line, true).unwrap(),
            br#"{"event":"A","properties":{"time":1700000000000,"x":1}}"#
        );
        let frac = br#"{"event":"A","properties":{"time":1700000000.9}}"#;
        assert_eq!(
            with_time_unit(frac, false).unwrap(),
            br#"{"event":"A","properties":{"time":1700000000}}"#
        );
    }
}
