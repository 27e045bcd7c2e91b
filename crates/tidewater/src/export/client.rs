//! The HTTP side of an export: pacing (export-api XC2), one window's request with
//! retries and backoff (XC3), timeouts (XC5), and verification of the body (X5, X6)
//! while it is spooled to disk.
//!
//! A body is decompressed and hashed on a blocking thread as it arrives and written to
//! a spool file; only a body that was verified complete is handed to the engine. That
//! keeps a failed attempt from touching the output or the table registry, and lets
//! windows download concurrently while the engine reads them in window order.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::pace::RateBudget;
use super::verify::{verify_body, BodyError};
use super::{Credentials, ExportProgress, Tuning};

/// One window's request.
#[derive(Debug, Clone)]
pub(crate) struct WindowRequest {
    pub label: String,
    pub from_date: String,
    pub to_date: String,
    /// `event` parameter (a JSON array), when filtering on the server.
    pub events: Option<String>,
    /// `where` parameter, when filtering on the server.
    pub where_expr: Option<String>,
    pub time_in_ms: bool,
    pub project_id: Option<u64>,
}

/// A body that was read completely and verified (X6).
#[derive(Debug, Clone, Default)]
pub(crate) struct Verified {
    /// The spool file holding the body as received (gzip or not).
    pub path: PathBuf,
    /// Bytes received on the wire.
    pub bytes_received: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    /// SHA-256 of the decompressed body, hex.
    pub sha256: String,
    /// Whether the body was gzip.
    pub gzip: bool,
}

/// How one window's download (or one Engage page) ended.
#[derive(Debug)]
pub(crate) enum Outcome<T = Verified> {
    Ready {
        verified: T,
        attempts: u32,
    },
    /// The server refused the request (400, 401, 402, 403, 404): the run stops.
    Fatal {
        message: String,
        /// The HTTP status the server refused with.
        status: u16,
    },
    /// The body could not be spooled (a full disk, a permission): the run stops
    /// without spending more requests.
    Local {
        path: PathBuf,
        source: io::Error,
    },
    /// Every attempt failed with a retryable error.
    GaveUp {
        attempts: u32,
        message: String,
    },
}

/// Why one attempt failed.
#[derive(Debug)]
pub(crate) enum AttemptError {
    Fatal {
        message: String,
        status: u16,
    },
    Local {
        path: PathBuf,
        source: io::Error,
    },
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        rate_limited: bool,
    },
}

/// Checks what every request of an API needs: the tuning, a project id with a service
/// account, an http(s) base URL.
pub(crate) fn check_api(
    credentials: &Credentials,
    project_id: Option<u64>,
    base_url: &str,
    tuning: &Tuning,
) -> crate::Result<()> {
    use crate::{Error, Field};
    tuning.validate()?;
    if credentials.is_service_account() && project_id.is_none() {
        return Err(Error::config(
            Field::ProjectId,
            "required with service-account credentials",
        ));
    }
    let url = reqwest::Url::parse(base_url)
        .map_err(|e| Error::config(Field::BaseUrl, format!("{base_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(
            Field::BaseUrl,
            "must be an http or https URL",
        ));
    }
    Ok(())
}

pub(crate) fn retry(reason: impl Into<String>) -> AttemptError {
    AttemptError::Retry {
        reason: reason.into(),
        retry_after: None,
        rate_limited: false,
    }
}

/// What every request of a run shares.
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub credentials: Credentials,
    pub tuning: Tuning,
    pub budget: Arc<dyn RateBudget>,
    /// Requests in flight at once (XC2); closed when the run stops on a local error.
    pub in_flight: tokio::sync::Semaphore,
    pub progress: Arc<ExportProgress>,
}

impl Client {
    /// A client of the API at `url`, pacing its requests by `budget`.
    pub(crate) fn build(
        url: String,
        credentials: Credentials,
        tuning: &Tuning,
        budget: Arc<dyn RateBudget>,
        progress: Arc<ExportProgress>,
    ) -> crate::Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(tuning.concurrency)
            .user_agent(concat!("tidewater/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::resource("the HTTP client", e))?;
        Ok(Client {
            http,
            url,
            credentials,
            tuning: tuning.clone(),
            budget,
            in_flight: tokio::sync::Semaphore::new(tuning.concurrency),
            progress,
        })
    }

    /// Downloads one window into `spool`, retrying per XC3.
    pub(crate) async fn fetch_window(&self, req: &WindowRequest, spool: &Path) -> Outcome {
        let seed = spool.as_os_str().as_encoded_bytes();
        self.with_retries(&format!("window {}", req.label), seed, || async {
            let result = self.fetch_once(req, spool).await;
            if result.is_err() {
                let _ = std::fs::remove_file(spool);
            }
            result
        })
        .await
    }

    /// Makes `attempt` until it succeeds, fails for good, or has been made
    /// `max_attempts` times, with backoff between attempts (XC3). Each attempt takes a
    /// concurrency slot and then a rate slot. `what` names the request in messages;
    /// `seed` makes its backoff jitter differ from its neighbours'.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        seed: &[u8],
        mut attempt_once: F,
    ) -> Outcome<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError>>,
    {
        let t = &self.tuning;
        let mut last = String::new();
        let mut rng = Jitter::new(seed);
        for attempt in 1..=t.max_attempts {
            let result = {
                // A concurrency slot first, then the rate slot: the rate budget stamps
                // the moment the request is sent. The other way round, requests that
                // waited for a slot went out together long after their stamps (XC2).
                let Ok(_permit) = self.in_flight.acquire().await else {
                    return Outcome::GaveUp {
                        attempts: attempt - 1,
                        message: "not requested: the run stopped on a local write failure".into(),
                    };
                };
                let waited = self.budget.acquire().await;
                self.progress
                    .rate_limit_wait_ms
                    .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
                self.progress.requests.fetch_add(1, Ordering::Relaxed);
                let result = attempt_once().await;
                if let Err(AttemptError::Local { .. }) = result {
                    // No further request, before this slot frees: the run stops.
                    self.in_flight.close();
                }
                result
            };
            let error = match result {
                Ok(verified) => {
                    return Outcome::Ready {
                        verified,
                        attempts: attempt,
                    }
                }
                Err(error) => error,
            };
            let (reason, retry_after, rate_limited) = match error {
                AttemptError::Fatal { message, status } => {
                    return Outcome::Fatal { message, status }
                }
                AttemptError::Local { path, source } => return Outcome::Local { path, source },
                AttemptError::Retry {
                    reason,
                    retry_after,
                    rate_limited,
                } => (reason, retry_after, rate_limited),
            };
            last = reason;
            if attempt == t.max_attempts {
                break;
            }
            let delay = retry_after.unwrap_or_else(|| {
                let (first, cap) = if rate_limited {
                    (t.backoff_rate_limited_first, t.backoff_rate_limited_max)
                } else {
                    (t.backoff_first, t.backoff_max)
                };
                let exp = first.saturating_mul(1u32 << (attempt - 1).min(20)).min(cap);
                exp.mul_f64(0.5 + 0.5 * rng.next_unit())
            });
            self.progress.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                request = %what,
                attempt,
                "{what} attempt {attempt}/{} failed: {last}; retrying in {:.1}s",
                t.max_attempts,
                delay.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
        }
        Outcome::GaveUp {
            attempts: t.max_attempts,
            message: format!("gave up after {} attempts; last: {last}", t.max_attempts),
        }
    }

    async fn fetch_once(
        &self,
        req: &WindowRequest,
        spool: &Path,
    ) -> Result<Verified, AttemptError> {
        let result = match self.send_window(req).await {
            Ok(response) => self.receive(response, spool).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| self.redacted(e))
    }

    /// `e` without the credentials: a server or proxy may echo the request's headers
    /// back in an error body.
    pub(crate) fn redacted(&self, e: AttemptError) -> AttemptError {
        match e {
            AttemptError::Fatal { message, status } => AttemptError::Fatal {
                message: self.credentials.redact(&message),
                status,
            },
            AttemptError::Retry {
                reason,
                retry_after,
                rate_limited,
            } => AttemptError::Retry {
                reason: self.credentials.redact(&reason),
                retry_after,
                rate_limited,
            },
            local @ AttemptError::Local { .. } => local,
        }
    }

    /// Sends a window's request (see [`Client::send`]).
    async fn send_window(&self, req: &WindowRequest) -> Result<reqwest::Response, AttemptError> {
        let mut query: Vec<(&str, String)> = vec![
            ("from_date", req.from_date.clone()),
            ("to_date", req.to_date.clone()),
        ];
        if let Some(e) = &req.events {
            query.push(("event", e.clone()));
        }
        if let Some(w) = &req.where_expr {
            query.push(("where", w.clone()));
        }
        if req.time_in_ms {
            query.push(("time_in_ms", "true".into()));
        }
        if let Some(p) = req.project_id {
            query.push(("project_id", p.to_string()));
        }
        let request = self
            .http
            .get(&self.url)
            .query(&query)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip");
        self.send(request).await
    }

    /// Sends `request` with the credentials and waits for the response headers; no
    /// answer in time, a failed connection, a refusal or an error status is the
    /// attempt's error.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AttemptError> {
        let t = &self.tuning;
        let (user, password) = self.credentials.basic_auth();
        let request = request.basic_auth(user, Some(password));
        let response = match tokio::time::timeout(t.timeout_first_byte, request.send()).await {
            Err(_) => {
                return Err(retry(format!(
                    "no response within {:?} (--timeout-first-byte)",
                    t.timeout_first_byte
                )))
            }
            Ok(Err(e)) => return Err(retry(format!("request failed: {}", describe(&e)))),
            Ok(Ok(r)) => r,
        };
        if !response.status().is_success() {
            return Err(refusal(response, t.stall_timeout).await);
        }
        Ok(response)
    }

    /// Streams the body to a verifier on a blocking thread (X6), with the stall
    /// timeout between chunks.
    async fn receive(
        &self,
        response: reqwest::Response,
        spool: &Path,
    ) -> Result<Verified, AttemptError> {
        let t = &self.tuning;
        let gzip_header = response
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
        let spool_path = spool.to_path_buf();
        let verifier = tokio::task::spawn_blocking(move || {
            verify_body(
                ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
                gzip_header,
                &spool_path,
            )
        });
        let mut stream = response.bytes_stream();
        let mut received = 0u64;
        let mut failure: Option<String> = None;
        loop {
            match tokio::time::timeout(t.stall_timeout, stream.next()).await {
                Err(_) => {
                    failure = Some(format!(
                        "the body stalled: no bytes for {:?} after {received} bytes (--stall-timeout)",
                        t.stall_timeout
                    ));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    received += chunk.len() as u64;
                    self.progress
                        .bytes_received
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the verifier stopped on an error; it reports it
                    }
                }
                Ok(Some(Err(e))) => {
                    failure = Some(format!(
                        "the connection dropped after {received} bytes: {}",
                        describe(&e)
                    ));
                    break;
                }
            }
        }
        if let Some(f) = &failure {
            let _ = tx.send(Err(io::Error::other(f.clone()))).await;
        }
        drop(tx);
        let verified = verifier
            .await
            .map_err(|e| retry(format!("verifier failed: {e}")))?;
        if let Some(f) = failure {
            return Err(retry(f));
        }
        let mut verified = verified.map_err(|e| match e {
            BodyError::Incomplete(why) => retry(why),
            BodyError::Local { path, source } => AttemptError::Local { path, source },
        })?;
        verified.bytes_received = received;
        Ok(verified)
    }
}

/// The wait a server asks for in `Retry-After` (seconds; at most a day), if any.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// What an error status means for the window: 429 and 5xx are retried (after
/// `Retry-After` when the server gives one), anything else stops the run.
pub(crate) async fn refusal(response: reqwest::Response, stall_timeout: Duration) -> AttemptError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = read_error_body(response, stall_timeout).await;
    let message = format!("server answered {status}: {body}");
    match status.as_u16() {
        429 => AttemptError::Retry {
            reason: message,
            retry_after,
            rate_limited: true,
        },
        500..=599 => AttemptError::Retry {
            reason: message,
            retry_after,
            rate_limited: false,
        },
        status => AttemptError::Fatal { message, status },
    }
}

/// The error text of a reqwest error with its causes (never holds credentials: they
/// travel in a header, not in the URL).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The first 4 KiB of an error body, as text on one line.
async fn read_error_body(response: reqwest::Response, stall: Duration) -> String {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    while body.len() < 4096 {
        match tokio::time::timeout(stall, stream.next()).await {
            Ok(Some(Ok(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let mut text = String::from_utf8_lossy(&body[..body.len().min(4096)])
        .trim()
        .replace(['\n', '\r'], " ");
    if text.is_empty() {
        text = "(empty body)".into();
    }
    text
}

/// Bytes arriving from the network, as a blocking reader.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// A small deterministic generator for backoff jitter, seeded per window.
struct Jitter(u64);

impl Jitter {
    fn new(seed: &[u8]) -> Self {
        let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in seed {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Jitter(h ^ nanos | 1)
    }

    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
