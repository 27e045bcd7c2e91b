//! The running server: its state, its routes, request validation (X2, XM2), rate
//! limits and the export handler.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use serde::Serialize;

use tidewater::{Error, Field, Result};

use crate::body::{send_files, stream_lines, BodyWriter};
use crate::config::{MockAuth, MockConfig};
use crate::days::{load, AddedEvents, Days};
use crate::engage::{engage, Profiles, Sessions};
use crate::fault::{Fault, FaultKind, FaultTrigger};
use crate::request::{json_error, validate};

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

/// What every request handler shares.
pub(crate) struct MockState {
    pub(crate) config: MockConfig,
    /// The data by day; late events can be added while it runs.
    pub(crate) data: RwLock<Days>,
    /// "Today" for the `to_date` check; tests move it while the server runs.
    pub(crate) today: Mutex<Option<Date>>,
    pub(crate) started: Instant,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    pub(crate) accepted: Mutex<Vec<Instant>>,
    pub(crate) in_flight: Arc<AtomicUsize>,
    pub(crate) fault_counts: Mutex<Vec<u64>>,
    pub(crate) rng: AtomicU64,
    /// The profiles the Engage API serves, if the server has any.
    profiles: RwLock<Option<Arc<Profiles>>>,
    pub(crate) sessions: Sessions,
    /// Engage requests have limits of their own (the Query API's).
    pub(crate) engage_accepted: Mutex<Vec<Instant>>,
    pub(crate) engage_in_flight: Arc<AtomicUsize>,
}

/// A running mock server. Dropping it stops the server.
pub struct MockServer {
    url: String,
    state: Arc<MockState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Lines of the data that could not be served (no valid event or time).
    pub unusable_lines: u64,
    /// Lines of the profiles that could not be served (not a profile).
    pub unusable_profiles: u64,
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
        let data = load(&config.data, &config.tz)?;
        let unusable_lines = data.unusable;
        let profiles = if config.profiles.is_empty() {
            None
        } else {
            Some(Arc::new(Profiles::load(&config.profiles)?))
        };
        let unusable_profiles = profiles.as_ref().map_or(0, |p| p.unusable);
        let faults = config.faults.len();
        let state = MockState {
            rng: AtomicU64::new(config.fault_seed | 1),
            today: Mutex::new(config.today),
            config,
            data: RwLock::new(data),
            started: Instant::now(),
            log: Mutex::new(Vec::new()),
            accepted: Mutex::new(Vec::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            fault_counts: Mutex::new(vec![0; faults]),
            profiles: RwLock::new(profiles),
            sessions: Sessions::default(),
            engage_accepted: Mutex::new(Vec::new()),
            engage_in_flight: Arc::new(AtomicUsize::new(0)),
        };
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
            .route("/api/2.0/engage", axum::routing::get(engage).post(engage))
            .route("/api/query/engage", axum::routing::get(engage).post(engage))
            .route("/_mock/requests", axum::routing::get(requests))
            .route("/_mock/today", axum::routing::post(set_today))
            .route("/_mock/events", axum::routing::post(add_events))
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
            unusable_profiles,
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

    /// Number of profiles the Engage API serves.
    pub fn profiles(&self) -> usize {
        self.state.profiles().map_or(0, |p| p.len())
    }

    /// Serves these profile files from now on instead (queries already paging keep
    /// the profiles they started with): a test's "the profiles changed overnight".
    pub fn set_profiles(&self, paths: &[PathBuf]) -> Result<()> {
        let profiles = Profiles::load(paths)?;
        *self
            .state
            .profiles
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(profiles));
        Ok(())
    }

    /// Days that hold data.
    pub fn days(&self) -> Vec<Date> {
        self.state.data().days.keys().copied().collect()
    }

    /// Moves "today" (the last day `to_date` may name), as `POST /_mock/today` does.
    pub fn set_today(&self, today: Date) {
        *self.state.today.lock().expect("today lock") = Some(today);
    }

    /// Adds late events (JSONL) to the end of their days, as `POST /_mock/events` does:
    /// later requests for those days serve them.
    pub fn add_events(&self, jsonl: &[u8]) -> Result<AddedEvents> {
        self.state
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .add(jsonl)
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

/// `POST /_mock/today` with a `YYYY-MM-DD` body: moves "today".
pub(crate) async fn set_today(State(state): State<Arc<MockState>>, body: String) -> Response {
    match Date::strptime("%Y-%m-%d", body.trim()) {
        Ok(day) => {
            *state.today.lock().expect("today lock") = Some(day);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => json_error(
            StatusCode::BAD_REQUEST,
            "/_mock/today",
            &format!("{:?} is not a date YYYY-MM-DD", body.trim()),
        ),
    }
}

/// `POST /_mock/events` with JSONL lines: adds them to the end of their days.
pub(crate) async fn add_events(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let added = tokio::task::spawn_blocking(move || {
        state
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .add(&body)
    })
    .await;
    match added {
        Ok(Ok(a)) => {
            let days: Vec<String> = a.days.iter().map(|d| d.to_string()).collect();
            let body = serde_json::json!({"added": a.added, "unusable": a.unusable, "days": days});
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Ok(Err(e)) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/_mock/events",
            &e.to_string(),
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/_mock/events",
            &e.to_string(),
        ),
    }
}

pub(crate) async fn requests(State(state): State<Arc<MockState>>) -> Response {
    let log = state.log.lock().expect("log lock").clone();
    let body = serde_json::to_string(&log).expect("records serialize");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn authorized(state: &MockState, headers: &HeaderMap) -> bool {
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
    /// The profiles served now.
    pub(crate) fn profiles(&self) -> Option<Arc<Profiles>> {
        self.profiles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn data(&self) -> std::sync::RwLockReadGuard<'_, Days> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(
        &self,
        request: &str,
        accept_gzip: bool,
        status: StatusCode,
        fault: Option<&Fault>,
    ) {
        self.log.lock().expect("log lock").push(RequestRecord {
            at_ms: self.started.elapsed().as_millis() as u64,
            request: request.to_string(),
            status: status.as_u16(),
            fault: fault.map(|f| f.spec.clone()),
            accept_gzip,
        });
    }

    /// Counts an export request against the limits; false when it exceeds one (X8).
    fn admit(&self) -> bool {
        admit(&self.accepted, &self.config.limits)
    }

    /// Counts an Engage request against the Query API's limits.
    pub(crate) fn admit_engage(&self) -> bool {
        admit(&self.engage_accepted, &self.config.engage_limits)
    }

    /// The next fault that fires for a request: an export request (`page` is `None`)
    /// or the given page of an Engage query. A fault aimed at a page fires only there.
    pub(crate) fn pick_fault(&self, page: Option<u64>) -> Option<Fault> {
        let mut counts = self.fault_counts.lock().expect("fault lock");
        for (i, f) in self.config.faults.iter().enumerate() {
            if f.page.is_some() && f.page != page {
                continue;
            }
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

/// Counts a request against `limits` (at most N accepted in any period); false when
/// it exceeds one.
fn admit(accepted: &Mutex<Vec<Instant>>, limits: &[(u32, std::time::Duration)]) -> bool {
    let mut accepted = accepted.lock().expect("limits lock");
    let now = Instant::now();
    let horizon = limits.iter().map(|l| l.1).max().unwrap_or_default();
    accepted.retain(|t| now.duration_since(*t) < horizon);
    for &(n, period) in limits {
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

/// Decrements the in-flight count when a response body is done or dropped.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Holds one of `count`'s requests (already counted) until dropped.
    pub(crate) fn new(count: Arc<AtomicUsize>) -> InFlight {
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) async fn export(
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
    let today = *state.today.lock().expect("today lock");
    let query = match validate(&state.config, today, &q) {
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
    let fault = state.pick_fault(None);
    let asked = (request.as_str(), accepts_gzip);
    if let Some(response) = fault_response(&state, asked, fault.as_ref(), &headers) {
        return response;
    }
    state.record(&request, accepts_gzip, StatusCode::OK, fault.as_ref());
    if let Some(FaultKind::SlowFirstByte(d)) = fault.as_ref().map(|f| &f.kind) {
        tokio::time::sleep(*d).await;
    }
    let days: Vec<(PathBuf, PathBuf, u64)> = state
        .data()
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

/// The answer of a fault that replaces the response (a status, 429 or echoed
/// headers), recorded; `None` for faults that act on the body.
pub(crate) fn fault_response(
    state: &MockState,
    (request, accepts_gzip): (&str, bool),
    fault: Option<&Fault>,
    headers: &HeaderMap,
) -> Option<Response> {
    let fault = fault?;
    match &fault.kind {
        FaultKind::RateLimited(after) => {
            state.record(
                request,
                accepts_gzip,
                StatusCode::TOO_MANY_REQUESTS,
                Some(fault),
            );
            let mut r = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                request,
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
            Some(r)
        }
        FaultKind::EchoHeaders(s) => {
            let status = StatusCode::from_u16(*s).unwrap_or(StatusCode::BAD_GATEWAY);
            state.record(request, accepts_gzip, status, Some(fault));
            let echoed: Vec<String> = headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            let body = format!("proxy error; your request was:\n{}", echoed.join("\n"));
            Some((status, body).into_response())
        }
        FaultKind::Status(s) => {
            let status = StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            state.record(request, accepts_gzip, status, Some(fault));
            Some(json_error(
                status,
                request,
                &format!("injected fault: {}", fault.spec),
            ))
        }
        _ => None,
    }
}
