//! Verifying a downloaded body (X6) while it arrives: the bytes as received go to a
//! spool file (gzip stays gzip, a fraction of the disk the decompressed body takes),
//! while the decompressed stream is hashed and its last lines are kept to check how it
//! ends.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::bufread::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::client::Verified;
use crate::input::frame::is_blank;

/// The line Mixpanel writes when an export fails part-way (IN5).
const TERMINATED: &[u8] = b"export terminated early";

/// Why a body was not accepted.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is incomplete or unreadable: the server's or the network's doing, so
    /// the window is requested again.
    Incomplete(String),
    /// The spool file could not be written (a full disk, a permission): nothing the
    /// server can fix, so the run stops instead of spending requests.
    Local { path: PathBuf, source: io::Error },
}

/// Spools a body as received and checks on the decompressed stream (when the body is
/// gzip by header and magic bytes) that it is complete (X6): the gzip stream reached
/// its trailer, the last line is not `export terminated early`, and the body does not
/// end inside a JSON line. The hash is of the decompressed body.
pub(crate) fn verify_body(
    reader: impl Read,
    gzip_header: bool,
    spool: &Path,
) -> Result<Verified, BodyError> {
    let local = |source| BodyError::Local {
        path: spool.to_path_buf(),
        source,
    };
    let write_error = Arc::new(Mutex::new(None));
    let tee = Tee {
        inner: reader,
        spool: std::fs::File::create(spool).map_err(local)?,
        write_error: write_error.clone(),
    };
    let mut input = BufReader::with_capacity(1 << 20, tee);
    let mut ending = Ending::default();
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    let read = input.fill_buf().map(crate::input::decode::is_gzip);
    let result = read.and_then(|magic| {
        let mut body: Box<dyn Read> = if magic {
            Box::new(MultiGzDecoder::new(input))
        } else {
            Box::new(input)
        };
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => return Ok(magic),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hash.update(&buf[..n]);
            ending.push(&buf[..n]);
            bytes += n as u64;
        }
    });
    if let Some(e) = write_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(local(e));
    }
    let magic = result.map_err(|e| {
        BodyError::Incomplete(if e.kind() == io::ErrorKind::UnexpectedEof {
            format!("the gzip stream was cut off after {bytes} decompressed bytes")
        } else {
            format!("reading the body failed after {bytes} bytes: {e}")
        })
    })?;
    ending.check().map_err(BodyError::Incomplete)?;
    Ok(Verified {
        path: spool.to_path_buf(),
        bytes_received: 0,
        bytes,
        sha256: hex::encode(hash.finalize()),
        gzip: gzip_header || magic,
    })
}

/// Copies what is read from `inner` to the spool file. A write error is kept aside and
/// stops the reading: it is the machine's fault, not the body's.
struct Tee<R> {
    inner: R,
    spool: std::fs::File,
    write_error: Arc<Mutex<Option<io::Error>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.spool.write_all(&buf[..n]) {
            *self.write_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            return Err(io::Error::other("the spool file could not be written"));
        }
        Ok(n)
    }
}

/// The end of a decompressed body, followed as it streams: the text after the last
/// newline, and whether the last non-blank complete line is the terminated marker.
#[derive(Default)]
struct Ending {
    unterminated: Vec<u8>,
    last_line_terminated: bool,
}

impl Ending {
    fn push(&mut self, data: &[u8]) {
        let Some(last_newline) = memchr::memrchr(b'\n', data) else {
            self.unterminated.extend_from_slice(data);
            return;
        };
        let first_newline = memchr::memchr(b'\n', data).unwrap_or(last_newline);
        // Complete lines: the text carried over plus the first line of `data`, then the
        // lines wholly inside `data`; the last non-blank one decides.
        let inside = data
            .get(first_newline + 1..last_newline)
            .and_then(|lines| lines.split(|&b| b == b'\n').rev().find(|l| !is_blank(l)));
        match inside {
            Some(line) => self.last_line_terminated = is_terminated(line),
            None => {
                self.unterminated.extend_from_slice(&data[..first_newline]);
                if !is_blank(&self.unterminated) {
                    self.last_line_terminated = is_terminated(&self.unterminated);
                }
            }
        }
        self.unterminated.clear();
        self.unterminated
            .extend_from_slice(&data[last_newline + 1..]);
    }

    fn check(&self) -> Result<(), String> {
        let line = &self.unterminated;
        if is_blank(line) {
            return match self.last_line_terminated {
                true => Err("the body ends with `export terminated early`".into()),
                false => Ok(()),
            };
        }
        if is_terminated(line) {
            return Err("the body ends with `export terminated early`".into());
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "the body ends inside a JSON line ({} bytes after the last newline)",
                line.len()
            )),
        }
    }
}

fn is_terminated(line: &[u8]) -> bool {
    line.strip_suffix(b"\r").unwrap_or(line) == TERMINATED
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn verify(data: &[u8]) -> Result<Verified, String> {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let whole = verify_body(data, false, &spool).map_err(|e| match e {
            BodyError::Incomplete(why) => why,
            BodyError::Local { source, .. } => panic!("spool: {source}"),
        });
        // The same, arriving in pieces of 7 bytes: the ending is followed across them.
        let pieces = verify_body(Trickle(data), false, &spool);
        assert_eq!(whole.is_ok(), pieces.is_ok(), "{whole:?} vs {pieces:?}");
        if let Ok(v) = &whole {
            assert_eq!(std::fs::read(&spool).unwrap(), data, "spooled as received");
            assert_eq!(v.sha256, pieces.unwrap().sha256);
        }
        whole
    }

    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
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

    #[test]
    fn a_spool_that_cannot_be_written_is_a_local_error() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("missing-folder/spool");
        match verify_body(LINE, false, &spool) {
            Err(BodyError::Local { path, .. }) => assert_eq!(path, spool),
            other => panic!("{other:?}"),
        }
    }
}
