//! Response bodies: ready gzip files sent as they are, or matching lines filtered,
//! faulted and compressed while they are sent (XM1).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use axum::body::Bytes;

use tidewater_event::LineParser;
use tidewater_where::Scratch;

use crate::fault::FaultKind;
use crate::request::ExportQuery;

/// Sends ready files as they are, in 256 KiB chunks.
pub(crate) fn send_files(
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
pub(crate) enum Stop {
    /// The client went away.
    Gone,
    /// Drop the connection (fault).
    Drop,
    /// Reading the data failed.
    Io(std::io::Error),
}

/// Produces a response body: plain until it is known to be over 1400 bytes, then gzip
/// when the client accepts it.
pub(crate) struct BodyWriter {
    pub(crate) tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    pub(crate) accepts_gzip: bool,
    pub(crate) decided: Option<tokio::sync::oneshot::Sender<bool>>,
    pub(crate) pending: Vec<u8>,
    pub(crate) gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl BodyWriter {
    pub(crate) fn new(
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

    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), Stop> {
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

    pub(crate) fn end(mut self, result: std::result::Result<(), Stop>) {
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
pub(crate) fn stream_lines(
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
pub(crate) fn with_time_unit(line: &[u8], in_ms: bool) -> Option<Vec<u8>> {
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
