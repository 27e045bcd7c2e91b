//! The data split by day at start: one plain and one gzip file per day.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use jiff::civil::Date;
use rayon::prelude::*;

use tidewater::Partition;
use tidewater::Windowing;
use tidewater::{frame_input, is_blank, FrameConfig};
use tidewater::{Error, Result};
use tidewater_event::LineParser;

/// The data of a mock server, split by day of `tz`, in a temporary folder that lives as
/// long as this.
pub(crate) struct Days {
    pub(crate) days: BTreeMap<Date, Day>,
    /// Lines without a valid event or time, which are not served.
    pub(crate) unusable: u64,
    windowing: Windowing,
    /// Versions of days written so far by [`Days::add`] (file names stay unique, so a
    /// response being sent keeps reading the files it started with).
    versions: u64,
    _dir: tempfile::TempDir,
}

/// What [`Days::add`] did with late events.
#[derive(Debug, Clone, Default)]
pub struct AddedEvents {
    /// Events added to their days.
    pub added: u64,
    /// Lines without a valid event or time, not added.
    pub unusable: u64,
    /// The days that changed.
    pub days: Vec<Date>,
}

impl Days {
    /// Adds late events (JSONL) to the end of their days: each changed day gets new
    /// plain and gzip files holding its old lines and then the new ones, as Mixpanel
    /// serves events that arrived late.
    pub(crate) fn add(&mut self, data: &[u8]) -> Result<AddedEvents> {
        let mut parser = LineParser::default();
        let mut by_day: BTreeMap<Date, Vec<u8>> = BTreeMap::new();
        let mut added = AddedEvents::default();
        for (range, day) in day_of_lines(data, &mut parser, &mut self.windowing) {
            let Some(day) = day else {
                added.unusable += 1;
                continue;
            };
            let lines = by_day.entry(day).or_default();
            lines.extend_from_slice(&data[range]);
            lines.push(b'\n');
            added.added += 1;
        }
        for (day, lines) in by_day {
            self.versions += 1;
            let plain = self
                ._dir
                .path()
                .join(format!("{day}.v{}.jsonl", self.versions));
            let mut text = match self.days.get(&day) {
                Some(old) => std::fs::read(&old.plain).map_err(|e| Error::output(&old.plain, e))?,
                None => Vec::new(),
            };
            text.extend_from_slice(&lines);
            std::fs::write(&plain, &text).map_err(|e| Error::output(&plain, e))?;
            let gzip = gzip_file(&plain)?;
            let plain_bytes = text.len() as u64;
            self.days.insert(
                day,
                Day {
                    plain,
                    gzip,
                    plain_bytes,
                },
            );
            added.days.push(day);
        }
        Ok(added)
    }
}

/// Writes `path` gzipped beside it (`.jsonl.gz`), as one member.
fn gzip_file(path: &std::path::Path) -> Result<PathBuf> {
    let gz = path.with_extension("jsonl.gz");
    let mut input = std::fs::File::open(path).map_err(|e| Error::output(path, e))?;
    let out = std::fs::File::create(&gz).map_err(|e| Error::output(&gz, e))?;
    let mut enc = flate2::write::GzEncoder::new(
        std::io::BufWriter::with_capacity(1 << 20, out),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut input, &mut enc).map_err(|e| Error::output(&gz, e))?;
    enc.finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| Error::output(&gz, e))?;
    Ok(gz)
}

/// Splits the data into per-day plain and gzip files.
pub(crate) fn load(data: &[PathBuf], tz: &str) -> Result<Days> {
    let dir = tempfile::Builder::new()
        .prefix("tidewater-mock-")
        .tempdir()
        .map_err(|e| Error::resource("a temporary folder", e))?;
    let inputs = tidewater::expand_inputs(data)?;
    let windowing = Windowing::new(tz, Partition::Daily)?;
    let mut writers: BTreeMap<Date, (PathBuf, std::io::BufWriter<std::fs::File>, u64)> =
        BTreeMap::new();
    let mut unusable = 0u64;
    let frame = FrameConfig {
        block_bytes: 4 << 20,
        max_line_bytes: 256 << 20,
    };
    for (i, input) in inputs.iter().enumerate() {
        let opened = tidewater::open_input(input, Arc::new(AtomicU64::new(0)))?;
        let mut failure: Option<Error> = None;
        let mut batch = Vec::new();
        let mut flush = |batch: &mut Vec<tidewater::Block>, failure: &mut Option<Error>| {
            let days: Vec<Vec<(std::ops::Range<usize>, Option<Date>)>> = batch
                .par_iter()
                .map_init(
                    || (LineParser::default(), windowing.clone()),
                    |(parser, windowing), block| day_of_lines(&block.data, parser, windowing),
                )
                .collect();
            for (block, lines) in batch.iter().zip(days) {
                for (range, day) in lines {
                    let Some(day) = day else {
                        unusable += 1;
                        continue;
                    };
                    let entry = match writers.entry(day) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            let path = dir.path().join(format!("{day}.jsonl"));
                            match std::fs::File::create(&path) {
                                Ok(f) => v.insert((path, std::io::BufWriter::new(f), 0)),
                                Err(e) => {
                                    failure.get_or_insert(Error::output(&path, e));
                                    return;
                                }
                            }
                        }
                    };
                    let line = &block.data[range];
                    if let Err(e) = entry
                        .1
                        .write_all(line)
                        .and_then(|_| entry.1.write_all(b"\n"))
                    {
                        failure.get_or_insert(Error::output(&entry.0, e));
                        return;
                    }
                    entry.2 += line.len() as u64 + 1;
                }
            }
            batch.clear();
        };
        let end = frame_input(opened.reader, i, frame, |block| {
            batch.push(block);
            if batch.len() >= 8 {
                flush(&mut batch, &mut failure);
            }
            failure.is_none()
        });
        flush(&mut batch, &mut failure);
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(reason) = end.and_then(|e| e.incomplete) {
            return Err(Error::Incomplete {
                input: input.name(),
                reason,
            });
        }
    }
    let mut days = BTreeMap::new();
    let mut plain = Vec::new();
    for (day, (path, mut w, bytes)) in writers {
        w.flush().map_err(|e| Error::output(&path, e))?;
        plain.push((day, path, bytes));
    }
    // Each day's gzip body is made once, here, in parallel.
    let zipped: Vec<Result<PathBuf>> = plain
        .par_iter()
        .map(|(_, path, _)| gzip_file(path))
        .collect();
    for ((day, path, bytes), gz) in plain.into_iter().zip(zipped) {
        days.insert(
            day,
            Day {
                plain: path,
                gzip: gz?,
                plain_bytes: bytes,
            },
        );
    }
    Ok(Days {
        days,
        unusable,
        windowing,
        versions: 0,
        _dir: dir,
    })
}

/// The day of each non-blank line of a block (`None`: not a valid event).
pub(crate) fn day_of_lines(
    data: &[u8],
    parser: &mut LineParser,
    windowing: &mut Windowing,
) -> Vec<(std::ops::Range<usize>, Option<Date>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
        let line_end = if end > start && data[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        let line = &data[start..line_end];
        if !is_blank(line) {
            let day = parser
                .parse(line, |e| e.time_ms)
                .ok()
                .and_then(|ms| windowing.window_of(ms))
                .and_then(|w| jiff::civil::Date::new(w.year, w.month, w.day).ok());
            out.push((start..line_end, day));
        }
        start = end + 1;
    }
    out
}

/// A day of data: its lines as plain JSONL and as one gzip member.
#[derive(Debug)]
pub(crate) struct Day {
    pub(crate) plain: PathBuf,
    pub(crate) gzip: PathBuf,
    pub(crate) plain_bytes: u64,
}
