//! The rejects file (M2).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use tidewater_event::Reject;

use super::Output;
use crate::error::{Error, Result};

/// Writes rejected lines to `<root>/_rejects/rejects-<NNNNN>.jsonl` (M2), creating the
/// file at the first reject. The file is written under a temporary name (on an object
/// store, in the local staging folder) and moved or uploaded into place by
/// [`RejectsWriter::commit`], together with the windows it belongs to, so that a run
/// that is interrupted and started again never lists a reject twice.
pub struct RejectsWriter {
    output: Output,
    file: Option<OpenRejects>,
    /// Input names, by input number.
    inputs: Vec<String>,
}

struct OpenRejects {
    temp: PathBuf,
    rel: String,
    writer: BufWriter<File>,
}

/// The folder of the rejects files below the root.
const REJECTS: &str = "_rejects";

impl RejectsWriter {
    /// A writer for an output root.
    pub(crate) fn new(output: &Output, inputs: Vec<String>) -> Self {
        RejectsWriter {
            output: output.clone(),
            file: None,
            inputs,
        }
    }

    /// Appends one reject.
    pub fn write(&mut self, r: &Reject) -> Result<()> {
        if self.file.is_none() {
            let n = next_numbered(&self.output.names_in(REJECTS)?, "rejects-");
            let rel = format!("{REJECTS}/rejects-{n:05}.jsonl");
            let temp = self.output.temporary(&rel)?;
            let f = File::create(&temp).map_err(|e| Error::output(&temp, e))?;
            self.file = Some(OpenRejects {
                temp,
                rel,
                writer: BufWriter::new(f),
            });
        }
        let f = self.file.as_mut().expect("opened above");
        let line = reject_record(self.inputs.get(r.input).map_or("?", String::as_str), r);
        serde_json::to_writer(&mut f.writer, &line)
            .map_err(|e| Error::output(&f.temp, e.into()))?;
        f.writer
            .write_all(b"\n")
            .map_err(|e| Error::output(&f.temp, e))
    }

    /// Moves the rejects written so far into place; returns the file's path (or URL)
    /// if any reject was written. Later rejects go to a new file.
    pub fn commit(&mut self) -> Result<Option<PathBuf>> {
        let Some(mut f) = self.file.take() else {
            return Ok(None);
        };
        f.writer.flush().map_err(|e| Error::output(&f.temp, e))?;
        self.output.publish(&f.temp, &f.rel).map(Some)
    }
}

impl Drop for RejectsWriter {
    fn drop(&mut self) {
        // Rejects of windows that were not committed are not kept.
        if let Some(f) = self.file.take() {
            drop(f.writer);
            let _ = fs::remove_file(&f.temp);
        }
    }
}

/// One line of the rejects file (M2). `raw` is the line as text; a line that is not
/// valid UTF-8 also gets `raw_base64`, its exact bytes, so that it can be replayed.
fn reject_record(source: &str, r: &Reject) -> serde_json::Value {
    let mut record = serde_json::json!({
        "source": source,
        "line": r.line,
        "reason": r.reason,
        "raw": String::from_utf8_lossy(&r.raw),
    });
    if std::str::from_utf8(&r.raw).is_err() {
        use base64::Engine as _;
        record["raw_base64"] = base64::engine::general_purpose::STANDARD
            .encode(&r.raw)
            .into();
    }
    record
}

/// The number after the highest of the files `<prefix>NNNNN…` among `names`.
fn next_numbered(names: &[String], prefix: &str) -> u32 {
    names
        .iter()
        .filter_map(|name| name.strip_prefix(prefix)?.get(..5)?.parse::<u32>().ok())
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn m2_a_line_that_is_not_utf8_keeps_its_exact_bytes() {
        let raw = b"{\"event\":\"a\xff\"}".to_vec();
        let r = Reject {
            input: 0,
            line: 3,
            reason: "x".into(),
            raw: raw.clone(),
        };
        let record = reject_record("in.jsonl", &r);
        assert_eq!(record["raw"], "{\"event\":\"a\u{fffd}\"}");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(record["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes, raw);
        let valid = Reject {
            raw: b"not json".to_vec(),
            ..r
        };
        assert!(reject_record("in.jsonl", &valid)
            .get("raw_base64")
            .is_none());
    }
}
