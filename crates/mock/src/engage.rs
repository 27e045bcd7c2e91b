//! The Engage API (export-api §5): the profiles of a file served as `/api/2.0/engage`
//! and `/api/query/engage`, paged by `session_id` and `page`, with the Query API's
//! limits (60 queries per hour, 5 at once) and the export API's faults, which a
//! `page=N` qualifier aims at one page.
//!
//! At start the profiles are copied into one plain file, with an index of where each
//! one is. The first page of a query evaluates `where` over all of them and keeps the
//! positions that match as its session, so that later pages are consistent and memory
//! holds four bytes per matching profile, not the profiles.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;

use tidewater::{Error, EventFilter, Result};
use tidewater_event::{LineKind, LineParser};
use tidewater_where::Scratch;

use crate::fault::FaultKind;
use crate::request::{check_project, json_error};
use crate::server::{authorized, fault_response, InFlight, MockState};

/// The largest page the mock serves, and the size of a page when none is asked for.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The profiles a server holds.
pub(crate) struct Profiles {
    file: File,
    /// Offset and length of each profile in `file`, in the order of the input.
    index: Vec<(u64, u32)>,
    _dir: tempfile::TempDir,
    /// Lines that are not profiles (`{"$distinct_id": …, "$properties": {…}}`).
    pub(crate) unusable: u64,
}

impl Profiles {
    /// Reads profile files (plain or gzip JSONL, or folders of them).
    pub(crate) fn load(paths: &[PathBuf]) -> Result<Profiles> {
        let dir = tempfile::Builder::new()
            .prefix("tidewater-mock-people-")
            .tempdir()
            .map_err(|e| Error::resource("a temporary folder", e))?;
        let path = dir.path().join("profiles.jsonl");
        let written = |e| Error::output(&path, e);
        let mut out = BufWriter::new(File::create(&path).map_err(written)?);
        let mut parser = LineParser::default();
        let (mut index, mut offset, mut unusable) = (Vec::new(), 0u64, 0u64);
        for input in tidewater::expand_inputs(paths)? {
            let opened = tidewater::open_input(&input, Arc::new(AtomicU64::new(0)))?;
            let mut reader = BufReader::with_capacity(1 << 20, opened.reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                let read =
                    reader
                        .read_until(b'\n', &mut line)
                        .map_err(|e| Error::InputUnreadable {
                            input: input.name(),
                            source: e,
                        })?;
                if read == 0 {
                    break;
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if tidewater::is_blank(text) {
                    continue;
                }
                if parser.parse_as(LineKind::Profile, text, |_| ()).is_err() {
                    unusable += 1;
                    continue;
                }
                out.write_all(text).map_err(written)?;
                index.push((offset, text.len() as u32));
                offset += text.len() as u64;
            }
        }
        out.flush().map_err(written)?;
        Ok(Profiles {
            file: File::open(&path).map_err(written)?,
            index,
            _dir: dir,
            unusable,
        })
    }

    /// Number of profiles.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    fn read(&self, i: u32) -> std::io::Result<Vec<u8>> {
        let (offset, len) = self.index[i as usize];
        let mut buf = vec![0; len as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The positions of the profiles `filter` keeps (a `where` that fails on a profile
    /// does not keep it, as Mixpanel's engage filter).
    fn matching(&self, filter: &EventFilter) -> std::io::Result<Vec<u32>> {
        let all = 0..self.index.len() as u32;
        if filter.is_pass_all() {
            return Ok(all.collect());
        }
        let (mut parser, mut scratch) = (LineParser::default(), Scratch::default());
        let mut kept = Vec::new();
        for i in all {
            let line = self.read(i)?;
            let keep = parser
                .parse_as(LineKind::Profile, &line, |p| {
                    filter.keep(p, &mut scratch).unwrap_or(false)
                })
                .unwrap_or(false);
            if keep {
                kept.push(i);
            }
        }
        Ok(kept)
    }
}

/// A query's matching profiles, made by its first page and read by the later ones.
#[derive(Clone)]
pub(crate) struct Session {
    /// The profiles as they were at the first page (the server's may be replaced).
    profiles: Arc<Profiles>,
    matches: Arc<Vec<u32>>,
    output_properties: Option<Arc<Vec<String>>>,
}

/// The sessions of a server.
#[derive(Default)]
pub(crate) struct Sessions {
    open: std::sync::Mutex<HashMap<String, Session>>,
    next: AtomicU64,
}

/// An Engage request's parameters.
struct EngageQuery {
    page: u64,
    page_size: usize,
    session_id: Option<String>,
    filter: EventFilter,
    output_properties: Option<Vec<String>>,
}

fn validate(
    state: &MockState,
    q: &HashMap<String, String>,
) -> std::result::Result<EngageQuery, String> {
    check_project(&state.config, q)?;
    for unserved in [
        "behaviors",
        "filter_by_cohort",
        "data_group_id",
        "distinct_ids",
    ] {
        if q.contains_key(unserved) {
            return Err(format!("'{unserved}' is not served by the mock server"));
        }
    }
    let page = match q.get("page") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| format!("'page' must be a whole number from 0, got {v:?}"))?,
    };
    let page_size = match q.get("page_size") {
        None => MAX_PAGE_SIZE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                format!("'page_size' must be an integer between 1 and {MAX_PAGE_SIZE}, got {v:?}")
            })?,
    };
    let session_id = q.get("session_id").filter(|s| !s.is_empty()).cloned();
    if page > 0 && session_id.is_none() {
        return Err("a 'page' after the first needs the 'session_id' of the first page".into());
    }
    let mut filter = EventFilter::new(&[]);
    if let Some(expr) = q.get("where").filter(|w| !w.is_empty()) {
        let ctx = tidewater_where::Context::new("UTC")?;
        let program =
            tidewater_where::compile(expr, ctx).map_err(|e| format!("invalid 'where': {e}"))?;
        filter = filter.with_where(program);
    }
    let output_properties = match q.get("output_properties") {
        None => None,
        Some(v) => Some(serde_json::from_str::<Vec<String>>(v).map_err(|_| {
            format!("'output_properties' must be a JSON array of strings, got {v:?}")
        })?),
    };
    Ok(EngageQuery {
        page,
        page_size,
        session_id,
        filter,
        output_properties,
    })
}

/// `GET` or `POST` `/api/2.0/engage` (and `/api/query/engage`): the parameters come
/// from the query string and from a form body.
pub(crate) async fn engage(
    State(state): State<Arc<MockState>>,
    uri: Uri,
    Query(mut q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    q.extend(form_urlencoded::parse(&body).into_owned());
    let request = if body.is_empty() {
        uri.to_string()
    } else {
        format!("{}?{}", uri.path(), String::from_utf8_lossy(&body))
    };
    let refuse = |status: StatusCode, message: &str| {
        state.record(&request, false, status, None);
        json_error(status, &request, message)
    };
    if !authorized(&state, &headers) {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let Some(profiles) = state.profiles() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "this mock server has no profiles (start it with --profiles FILE)",
        );
    };
    let query = match validate(&state, &q) {
        Ok(query) => query,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    // A later page reads the session its first page made.
    let session = match &query.session_id {
        None => None,
        Some(id) => {
            let open = state.sessions.open.lock().expect("sessions lock");
            match open.get(id) {
                Some(session) => Some((id.clone(), session.clone())),
                None => {
                    drop(open);
                    let message = format!("unknown or expired 'session_id' {id:?}");
                    return refuse(StatusCode::BAD_REQUEST, &message);
                }
            }
        }
    };
    let in_flight = state.engage_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let guard = InFlight::new(state.engage_in_flight.clone());
    if in_flight > state.config.engage_max_concurrent || !state.admit_engage() {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Query rate limit exceeded: at most 60 queries per hour and 5 at once",
        );
    }
    let fault = state.pick_fault(Some(query.page));
    let kind = fault.as_ref().map(|f| f.kind.clone());
    let asked = (request.as_str(), false);
    if let Some(response) = fault_response(&state, asked, fault.as_ref(), &headers) {
        return response;
    }
    state.record(&request, false, StatusCode::OK, fault.as_ref());
    if let Some(FaultKind::SlowFirstByte(d)) = kind {
        tokio::time::sleep(d).await;
    }
    let page = tokio::task::spawn_blocking({
        let state = state.clone();
        move || page_body(&state, &profiles, session, query)
    })
    .await;
    let (body, starts) = match page {
        Ok(Ok(page)) => page,
        Ok(Err(message)) => return json_error(StatusCode::BAD_REQUEST, &request, &message),
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, &request, &e.to_string()),
    };
    let mut response = Response::new(faulted_body(body, &starts, kind.as_ref(), guard));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("valid header"),
    );
    response
}

/// The JSON of one page of `session` (a first page makes its session from
/// `profiles`), and where each result starts in it.
fn page_body(
    state: &MockState,
    profiles: &Arc<Profiles>,
    session: Option<(String, Session)>,
    query: EngageQuery,
) -> std::result::Result<(Vec<u8>, Vec<usize>), String> {
    let io = |e: std::io::Error| format!("reading profiles: {e}");
    let (session_id, session, first) = match session {
        Some((id, session)) => (id, session, false),
        None => {
            let n = state.sessions.next.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}-MOCK{n}", 1_700_000_000 + n);
            let session = Session {
                profiles: profiles.clone(),
                matches: Arc::new(profiles.matching(&query.filter).map_err(io)?),
                output_properties: query.output_properties.map(Arc::new),
            };
            let mut open = state.sessions.open.lock().expect("sessions lock");
            open.insert(id.clone(), session.clone());
            (id, session, true)
        }
    };
    let start = (query.page as usize)
        .saturating_mul(query.page_size)
        .min(session.matches.len());
    let end = (start + query.page_size).min(session.matches.len());
    let mut body = format!(
        "{{\"page\":{},\"page_size\":{},\"session_id\":{},\"status\":\"ok\",",
        query.page,
        query.page_size,
        serde_json::Value::from(session_id.as_str())
    )
    .into_bytes();
    // `total` is on the first page only, as the API sends it.
    if first {
        body.extend_from_slice(format!("\"total\":{},", session.matches.len()).as_bytes());
    }
    body.extend_from_slice(b"\"results\":[");
    let mut starts = Vec::with_capacity(end - start);
    for (k, &i) in session.matches[start..end].iter().enumerate() {
        if k > 0 {
            body.push(b',');
        }
        starts.push(body.len());
        let profile = session.profiles.read(i).map_err(io)?;
        match &session.output_properties {
            None => body.extend_from_slice(&profile),
            Some(keep) => body.extend_from_slice(&only_properties(&profile, keep)),
        }
    }
    body.extend_from_slice(b"]}");
    Ok((body, starts))
}

/// A profile with only the `$properties` named in `output_properties`.
fn only_properties(profile: &[u8], keep: &[String]) -> Vec<u8> {
    let mut value: serde_json::Value =
        serde_json::from_slice(profile).expect("loaded profiles are valid JSON");
    if let Some(props) = value
        .get_mut("$properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        props.retain(|k, _| keep.iter().any(|p| p == k));
    }
    serde_json::to_vec(&value).expect("JSON serializes")
}

/// One piece of a faulted body.
enum Piece {
    Bytes(Bytes),
    Pause(Duration),
    Fail,
}

/// The page as a body, cut, dropped or stalled after `n` results when a fault says so.
fn faulted_body(
    body: Vec<u8>,
    starts: &[usize],
    fault: Option<&FaultKind>,
    guard: InFlight,
) -> Body {
    let at = |n: u64| starts.get(n as usize).copied().unwrap_or(body.len() - 2);
    let mut pieces = VecDeque::new();
    match fault {
        Some(FaultKind::CutMidLine(n) | FaultKind::Terminated(n)) => {
            // The body ends inside result n+1 (or before the closing `]}`).
            let cut = at(*n);
            let end = starts.get(*n as usize + 1).copied().unwrap_or(body.len());
            let cut = cut + (end - cut) / 2;
            pieces.push_back(Piece::Bytes(Bytes::copy_from_slice(&body[..cut])));
        }
        Some(FaultKind::Drop(n)) => {
            pieces.push_back(Piece::Bytes(Bytes::copy_from_slice(&body[..at(*n)])));
            pieces.push_back(Piece::Fail);
        }
        Some(FaultKind::Stall(d, n)) => {
            let cut = at(*n);
            pieces.push_back(Piece::Bytes(Bytes::copy_from_slice(&body[..cut])));
            pieces.push_back(Piece::Pause(*d));
            pieces.push_back(Piece::Bytes(Bytes::copy_from_slice(&body[cut..])));
        }
        _ => pieces.push_back(Piece::Bytes(Bytes::from(body))),
    }
    let stream = futures_util::stream::unfold((pieces, guard), |(mut pieces, guard)| async move {
        loop {
            match pieces.pop_front()? {
                Piece::Bytes(b) => return Some((Ok(b), (pieces, guard))),
                Piece::Pause(d) => tokio::time::sleep(d).await,
                Piece::Fail => {
                    let e = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped");
                    return Some((Err(e), (pieces, guard)));
                }
            }
        }
    });
    Body::from_stream(stream)
}
