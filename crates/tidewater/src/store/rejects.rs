//! The rejects file (M2).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tidewater_event::Reject;

use crate::error::{Error, Result};

/// Writes rejected lines to `<root>/_rejects/rejects-<NNNNN>.jsonl` (M2), creating the
/// file at the first reject. The file is written under a temporary name and moved into
/// place by [`RejectsWriter::commit`], together with the windows it belongs to, so that
/// a run that is interrupted and started again never lists a reject twice.
pub struct RejectsWriter {
    dir: PathBuf,
    file: Option<OpenRejects>,
    /// Input names, by input number.
    inputs: Vec<String>,
}

struct OpenRejects {
    temp: PathBuf,
    path: PathBuf,
    writer: BufWriter<File>,
}

impl RejectsWriter {
    /// A writer for an output root.
    pub fn new(root: &Path, inputs: Vec<String>) -> Self {
        RejectsWriter {
            dir: root.join("_rejects"),
            file: None,
            inputs,
        }
    }

    /// Appends one reject.
    pub fn write(&mut self, r: &Reject) -> Result<()> {
        if self.file.is_none() {
            fs::create_dir_all(&self.dir).map_err(|e| Error::output(&self.dir, e))?;
            let n = next_numbered(&self.dir, "rejects-")?;
            let name = format!("rejects-{n:05}.jsonl");
            let temp = self.dir.join(format!(".{name}.tmp"));
            let f = File::create(&temp).map_err(|e| Error::output(&temp, e))?;
            self.file = Some(OpenRejects {
                temp,
                path: self.dir.join(name),
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

    /// Moves the rejects written so far into place; returns the file's path if any
    /// reject was written. Later rejects go to a new file.
    pub fn commit(&mut self) -> Result<Option<PathBuf>> {
        let Some(mut f) = self.file.take() else {
            return Ok(None);
        };
        f.writer.flush().map_err(|e| Error::output(&f.temp, e))?;
        fs::rename(&f.temp, &f.path).map_err(|e| Error::output(&f.path, e))?;
        Ok(Some(f.path))
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

fn next_numbered(dir: &Path, prefix: &str) -> Result<u32> {
    let mut next = 0;
    for e in fs::read_dir(dir).map_err(|e| Error::output(dir, e))? {
        let name = e
            .map_err(|e| Error::output(dir, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(n) = name
            .strip_prefix(prefix)
            .and_then(|r| r.get(..5))
            .and_then(|d| d.parse::<u32>().ok())
        {
            next = next.max(n + 1);
        }
    }
    Ok(next)
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
