//! The HTTP side of an export: pacing (export-api XC2), one window's request with
//! retries and backoff (XC3), timeouts (XC5), and verification of the body (X5, X6)
//! while it is spooled to disk.
//!
//! A body is decompressed and hashed on a blocking thread as it arrives and written to
//! a spool file; only a body that was verified complete is handed to the engine. That
//! keeps a failed attempt from touching the output or the table registry, and lets
//! windows download concurrently while the engine reads them in window order.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{Credentials, ExportProgress, Tuning};

/// Extra time added to every pacing window, so that requests spaced exactly at a limit
/// on our clock are not seen as too close together by the server.
const PACING_MARGIN: Duration = Duration::from_millis(25);

/// Keeps requests within limits of the form "at most N requests in any period D"
/// (XC2), for every limit at once.
#[derive(Debug)]
pub(crate) struct Pacer {
    limits: Vec<(u32, Duration)>,
    sent: Mutex<VecDeque<Instant>>,
}

impl Pacer {
    pub(crate) fn new(limits: Vec<(u32, Duration)>) -> Self {
        Pacer {
            limits,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more request fits every limit and records it. Returns the time
    /// spent waiting.
    pub(crate) async fn acquire(&self) -> Duration {
        let mut waited = Duration::ZERO;
        loop {
            let wait = {
                let mut sent = self.sent.lock().expect("pacer lock");
                let now = Instant::now();
                let horizon = self.limits.iter().map(|l| l.1).max().unwrap_or_default();
                while sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= horizon + PACING_MARGIN)
                {
                    sent.pop_front();
                }
                let mut wait = Duration::ZERO;
                for &(n, period) in &self.limits {
                    let period = period + PACING_MARGIN;
                    let recent = sent
                        .iter()
                        .rev()
                        .take_while(|t| now.duration_since(**t) < period)
                        .count();
                    if n > 0 && recent >= n as usize {
                        // The n-th most recent request must leave the period first.
                        let oldest_blocking = sent[sent.len() - n as usize];
                        wait = wait.max((oldest_blocking + period).saturating_duration_since(now));
                    }
                }
                if wait.is_zero() {
                    sent.push_back(now);
                    return waited;
                }
                wait
            };
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }
}

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
    /// The spool file holding the decompressed body.
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

/// How one window's download ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ready {
        verified: Verified,
        attempts: u32,
    },
    /// The server refused the request (400, 401, 402, 403, 404): the run stops.
    Fatal {
        message: String,
    },
    /// Every attempt failed with a retryable error.
    GaveUp {
        attempts: u32,
        message: String,
    },
}

/// Why one attempt failed.
#[derive(Debug)]
enum AttemptError {
    Fatal(String),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        rate_limited: bool,
    },
}

fn retry(reason: impl Into<String>) -> AttemptError {
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
    pub pacer: Pacer,
    pub in_flight: tokio::sync::Semaphore,
    pub progress: Arc<ExportProgress>,
    pub quiet: bool,
}

impl Client {
    /// Downloads one window into `spool`, retrying per XC3.
    pub(crate) async fn fetch_window(&self, req: &WindowRequest, spool: &Path) -> Outcome {
        let t = &self.tuning;
        let mut last = String::new();
        let mut rng = Jitter::new(spool);
        for attempt in 1..=t.max_attempts {
            let waited = self.pacer.acquire().await;
            self.progress
                .rate_limit_wait_ms
                .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
            let result = {
                let _permit = self.in_flight.acquire().await.expect("never closed");
                self.progress.requests.fetch_add(1, Ordering::Relaxed);
                self.fetch_once(req, spool).await
            };
            let (reason, retry_after, rate_limited) = match result {
                Ok(verified) => {
                    return Outcome::Ready {
                        verified,
                        attempts: attempt,
                    }
                }
                Err(AttemptError::Fatal(message)) => {
                    let _ = std::fs::remove_file(spool);
                    return Outcome::Fatal { message };
                }
                Err(AttemptError::Retry {
                    reason,
                    retry_after,
                    rate_limited,
                }) => (reason, retry_after, rate_limited),
            };
            let _ = std::fs::remove_file(spool);
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
                // Jitter between half and the whole delay, so that windows that failed
                // together do not retry together.
                exp.mul_f64(0.5 + 0.5 * rng.next_unit())
            });
            self.progress.retries.fetch_add(1, Ordering::Relaxed);
            if !self.quiet {
                eprintln!(
                    "tidewater: window {} attempt {attempt}/{} failed: {last}; retrying in {:.1}s",
                    req.label,
                    t.max_attempts,
                    delay.as_secs_f64()
                );
            }
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
        let t = &self.tuning;
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
        let (user, password) = self.credentials.basic_auth();
        let request = self
            .http
            .get(&self.url)
            .query(&query)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .basic_auth(user, Some(password));
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
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
            let body = read_error_body(response, t.stall_timeout).await;
            let message = format!("server answered {status}: {body}");
            return Err(match status.as_u16() {
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
                _ => AttemptError::Fatal(message),
            });
        }
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
        let mut verified = verified.map_err(retry)?;
        verified.bytes_received = received;
        Ok(verified)
    }
}

/// The error text of a reqwest error with its causes (never holds credentials: they
/// travel in a header, not in the URL).
fn describe(e: &reqwest::Error) -> String {
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

/// The line Mixpanel writes when an export fails part-way (IN5).
const TERMINATED: &[u8] = b"export terminated early";

/// Decompresses (when the body is gzip by header or magic bytes), hashes and spools a
/// body, then checks that it is complete (X6): the gzip stream reached its trailer,
/// the last line is not `export terminated early`, and the body does not end inside a
/// JSON line.
fn verify_body(reader: impl Read, gzip_header: bool, spool: &Path) -> Result<Verified, String> {
    let mut input = BufReader::with_capacity(1 << 20, reader);
    let head = input
        .fill_buf()
        .map_err(|e| format!("reading the body failed: {e}"))?;
    let gzip = gzip_header || crate::input::decode::is_gzip(head);
    let mut body: Box<dyn Read> = if gzip && !head.is_empty() {
        Box::new(crate::input::decode::gzip_reader(input))
    } else {
        Box::new(input)
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(spool)
        .map_err(|e| format!("cannot write spool file {}: {e}", spool.display()))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(format!(
                    "the gzip stream was cut off after {bytes} decompressed bytes"
                ))
            }
            Err(e) => return Err(format!("reading the body failed after {bytes} bytes: {e}")),
        };
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write spool file {}: {e}", spool.display()))?;
        bytes += n as u64;
    }
    let mut file = out
        .into_inner()
        .map_err(|e| format!("cannot write spool file {}: {e}", spool.display()))?;
    check_ending(&mut file, bytes).map_err(|e| match e {
        Ending::Io(e) => format!("cannot read back spool file {}: {e}", spool.display()),
        Ending::Incomplete(why) => why,
    })?;
    Ok(Verified {
        path: spool.to_path_buf(),
        bytes_received: 0,
        bytes,
        sha256: hex::encode(hash.finalize()),
        gzip,
    })
}

enum Ending {
    Io(io::Error),
    Incomplete(String),
}

/// Reads the end of a spooled body back and checks its last lines (X6).
fn check_ending(file: &mut std::fs::File, len: u64) -> Result<(), Ending> {
    const TAIL: u64 = 1 << 20;
    let mut tail_start = len.saturating_sub(TAIL);
    let mut tail = Vec::new();
    loop {
        file.seek(SeekFrom::Start(tail_start)).map_err(Ending::Io)?;
        tail.clear();
        file.take(len - tail_start)
            .read_to_end(&mut tail)
            .map_err(Ending::Io)?;
        // Widen until the tail holds the whole last line (or the whole body).
        let last_newline = memchr::memrchr(b'\n', &tail);
        let unterminated = match last_newline {
            Some(p) => &tail[p + 1..],
            None => &tail[..],
        };
        if last_newline.is_none() && tail_start > 0 && !crate::input::frame::is_blank(unterminated)
        {
            tail_start = tail_start.saturating_sub(TAIL * 8);
            continue;
        }
        break;
    }
    let strip = |l: &[u8]| -> Vec<u8> { l.strip_suffix(b"\r").unwrap_or(l).to_vec() };
    let last_newline = memchr::memrchr(b'\n', &tail);
    let unterminated = match last_newline {
        Some(p) => &tail[p + 1..],
        None => &tail[..],
    };
    if !crate::input::frame::is_blank(unterminated) {
        let line = strip(unterminated);
        if line == TERMINATED {
            return Err(Ending::Incomplete(
                "the body ends with `export terminated early`".into(),
            ));
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_err() {
            return Err(Ending::Incomplete(format!(
                "the body ends inside a JSON line ({} bytes after the last newline)",
                unterminated.len()
            )));
        }
        return Ok(());
    }
    // The last non-blank complete line.
    let complete = &tail[..last_newline.map_or(0, |p| p + 1)];
    let last_line = complete
        .split(|&b| b == b'\n')
        .rev()
        .find(|l| !crate::input::frame::is_blank(l));
    if last_line.is_some_and(|l| strip(l) == TERMINATED) {
        return Err(Ending::Incomplete(
            "the body ends with `export terminated early`".into(),
        ));
    }
    Ok(())
}

/// A small deterministic generator for backoff jitter, seeded per window.
struct Jitter(u64);

impl Jitter {
    fn new(seed: &Path) -> Self {
        let mut h: u64 = 0x9E37_79B9_7F4A_7C15;
        for b in seed.as_os_str().as_encoded_bytes() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn verify(data: &[u8]) -> Result<Verified, String> {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        verify_body(data, false, &spool)
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const LINE: &[u8] = b"{\"event\":\"A\",\"properties\":{\"time\":1700000000}}\n";

    #[test]
    fn x6_complete_bodies_pass() {
        assert_eq!(verify(b"").unwrap().bytes, 0);
        assert!(verify(LINE).is_ok());
        assert!(
            verify(&LINE[..LINE.len() - 1]).is_ok(),
            "last line without newline"
        );
        assert!(verify(&[LINE, b"\n\n"].concat()).is_ok());
        let v = verify(&gz(&LINE.repeat(3))).unwrap();
        assert!(v.gzip);
        assert_eq!(v.bytes, 3 * LINE.len() as u64);
        assert_eq!(v.sha256, hex::encode(Sha256::digest(LINE.repeat(3))));
    }

    #[test]
    fn x6_incomplete_bodies_fail() {
        let terminated = [LINE, b"export terminated early\n"].concat();
        assert!(verify(&terminated)
            .unwrap_err()
            .contains("terminated early"));
        assert!(verify(&[&terminated[..], b"\r\n\n"].concat())
            .unwrap_err()
            .contains("terminated early"));
        assert!(verify(b"export terminated early").is_err());
        let cut = [LINE, &LINE[..20]].concat();
        assert!(verify(&cut).unwrap_err().contains("inside a JSON line"));
        let zipped = gz(&LINE.repeat(1000));
        let err = verify(&zipped[..zipped.len() / 2]).unwrap_err();
        assert!(err.contains("cut off"), "{err}");
    }

    #[test]
    fn x6_long_unterminated_last_line_is_read_whole() {
        let mut body = LINE.repeat(2);
        let big = format!(
            "{{\"event\":\"A\",\"properties\":{{\"time\":1,\"s\":\"{}\"}}}}",
            "x".repeat(3 << 20)
        );
        body.extend_from_slice(big.as_bytes());
        assert!(verify(&body).is_ok());
        body.pop();
        assert!(verify(&body).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn xc2_pacer_keeps_every_limit() {
        let pacer = Pacer::new(vec![
            (3, Duration::from_secs(1)),
            (5, Duration::from_secs(10)),
        ]);
        let start = tokio::time::Instant::now();
        let mut times = Vec::new();
        for _ in 0..11 {
            pacer.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_1s = times[..=i]
                .iter()
                .filter(|u| *t - **u < Duration::from_secs(1))
                .count();
            let in_10s = times[..=i]
                .iter()
                .filter(|u| *t - **u < Duration::from_secs(10))
                .count();
            assert!(in_1s <= 3 && in_10s <= 5, "{times:?}");
        }
        assert!(times[10] >= Duration::from_secs(20), "{times:?}");
    }
}
