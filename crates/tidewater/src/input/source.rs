//! Sources: the inputs of a run (files, directories, stdin) and how to open each one as
//! a stream of decompressed bytes (output-format IN1, IN6).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::field::Field;

/// One input of a run, after directories were expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, plain or gzip.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
    /// Bytes in memory (plain or gzip), under a name for messages and rejects.
    Memory {
        /// The input's name in messages and the rejects file.
        name: String,
        /// Its bytes.
        data: bytes::Bytes,
    },
    /// A reader (plain or gzip), read once, under a name for messages and rejects.
    Reader(SharedReader),
}

/// A reader that an [`Input`] reads once: cloning shares it, and a second run finds it
/// taken.
#[derive(Clone)]
pub struct SharedReader {
    name: String,
    reader: Arc<std::sync::Mutex<Option<Box<dyn Read + Send>>>>,
}

impl SharedReader {
    /// `reader` under `name`.
    pub fn new(name: impl Into<String>, reader: impl Read + Send + 'static) -> Self {
        SharedReader {
            name: name.into(),
            reader: Arc::new(std::sync::Mutex::new(Some(Box::new(reader)))),
        }
    }

    fn take(&self) -> Option<Box<dyn Read + Send>> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl std::fmt::Debug for SharedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedReader({:?})", self.name)
    }
}

impl PartialEq for SharedReader {
    /// The same reader.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.reader, &other.reader)
    }
}

impl Eq for SharedReader {}

impl Input {
    /// The input as the user gave it, for messages and the rejects file (M2).
    pub fn name(&self) -> String {
        match self {
            Input::Path(p) => p.display().to_string(),
            Input::Stdin => "-".to_string(),
            Input::Memory { name, .. } => name.clone(),
            Input::Reader(r) => r.name.clone(),
        }
    }

    /// Size in bytes, when known (for progress).
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Path(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Input::Memory { data, .. } => Some(data.len() as u64),
            Input::Stdin | Input::Reader(_) => None,
        }
    }
}

/// File names a directory contributes (IN6), not recursively.
const DIRECTORY_SUFFIXES: &[&str] = &[
    ".json",
    ".jsonl",
    ".ndjson",
    ".json.gz",
    ".jsonl.gz",
    ".ndjson.gz",
];

/// Expands the inputs as given (paths, directories, `-`) into the ordered input list of
/// IN6. Fails on an input that does not exist or a directory that cannot be listed.
pub fn expand_inputs(given: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for path in given {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|e| Error::InputUnreadable {
            input: path.display().to_string(),
            source: e,
        })?;
        if meta.is_dir() {
            let unreadable = |e| Error::InputUnreadable {
                input: path.display().to_string(),
                source: e,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).map_err(unreadable)? {
                let entry = entry.map_err(unreadable)?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if DIRECTORY_SUFFIXES.iter().any(|s| name.ends_with(s)) && entry.path().is_file() {
                    files.push(entry.path());
                }
            }
            if files.is_empty() {
                return Err(Error::config(
                    Field::Input,
                    format!(
                        "directory {} holds no *.json, *.jsonl or *.ndjson file (nor their \
                         .gz forms); subfolders are not read",
                        path.display()
                    ),
                ));
            }
            // Byte order of the path, as IN6 requires (not locale order).
            files.sort_by(|a, b| {
                a.as_os_str()
                    .as_encoded_bytes()
                    .cmp(b.as_os_str().as_encoded_bytes())
            });
            inputs.extend(files.into_iter().map(Input::Path));
        } else {
            inputs.push(Input::Path(path.clone()));
        }
    }
    Ok(inputs)
}

/// Counts the bytes read through it (compressed input bytes, M3).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An opened input: decompressed bytes, and whether it was gzip.
pub struct OpenedInput {
    /// Decompressed bytes.
    pub reader: Box<dyn Read + Send>,
    /// Whether the input started with the gzip magic bytes.
    pub gzip: bool,
}

/// Opens an input and, when it starts with the gzip magic bytes (not by its name),
/// wraps it in a multi-member gzip decoder. `raw_bytes` counts the bytes read from the
/// underlying file or stdin.
pub fn open(input: &Input, raw_bytes: Arc<AtomicU64>) -> Result<OpenedInput> {
    let inner: Box<dyn Read + Send> = match input {
        Input::Path(p) => Box::new(open_file(p)?),
        Input::Stdin => Box::new(io::stdin()),
        Input::Memory { data, .. } => Box::new(io::Cursor::new(data.clone())),
        Input::Reader(r) => r.take().ok_or_else(|| Error::InputUnreadable {
            input: input.name(),
            source: io::Error::other("this reader was read by an earlier run; give a new one"),
        })?,
    };
    let counted = CountingReader {
        inner,
        count: raw_bytes,
    };
    let mut buffered = BufReader::with_capacity(1 << 20, counted);
    let head = buffered.fill_buf().map_err(|e| Error::InputUnreadable {
        input: input.name(),
        source: e,
    })?;
    let gzip = crate::input::decode::is_gzip(head);
    let reader: Box<dyn Read + Send> = if gzip {
        Box::new(crate::input::decode::gzip_reader(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(OpenedInput { reader, gzip })
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::InputUnreadable {
        input: path.display().to_string(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in6_directory_expansion_sorted_by_bytes_not_recursive() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.json", "a.jsonl.gz", "C.ndjson", "skip.txt", "x.csv.gz"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.json")).unwrap();
        let inputs = expand_inputs(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = inputs
            .iter()
            .map(|i| match i {
                Input::Path(p) => p.file_name().unwrap().to_string_lossy().into_owned(),
                other => other.name(),
            })
            .collect();
        assert_eq!(names, ["C.ndjson", "a.jsonl.gz", "b.json"]);
    }

    #[test]
    fn missing_input_is_usage_error() {
        let err = expand_inputs(&[PathBuf::from("/nonexistent/file.json")]).unwrap_err();
        assert!(err.is_usage());
        assert!(err.to_string().contains("/nonexistent/file.json"));
    }
}
