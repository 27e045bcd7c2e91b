//! Verifying a downloaded body (X6): decompressed, hashed and spooled while it arrives,
//! then accepted only when complete.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::client::Verified;

/// The line Mixpanel writes when an export fails part-way (IN5).
const TERMINATED: &[u8] = b"export terminated early";

/// Decompresses (when the body is gzip by header or magic bytes), hashes and spools a
/// body, then checks that it is complete (X6): the gzip stream reached its trailer,
/// the last line is not `export terminated early`, and the body does not end inside a
/// JSON line.
pub(crate) fn verify_body(
    reader: impl Read,
    gzip_header: bool,
    spool: &Path,
) -> Result<Verified, String> {
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
}
