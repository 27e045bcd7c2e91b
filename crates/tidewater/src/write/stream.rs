//! A (table, window)'s data file while its row groups are encoded. Its bytes are laid
//! out a row group at a time ([`Assembly`]); on a store that takes files in parts
//! (an object store), each whole part is sent as soon as the row groups before it are
//! encoded, so most of a large window is uploaded while the run is still reading. What
//! waits is never in memory: it stays in the spill files until a whole part of it is
//! there, and the rest is written at the window's commit.

use std::collections::VecDeque;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::assemble::{Assembly, Segment};
use super::{Encoder, Spill};
use crate::error::{Error, Result};
use crate::schema::registry::ColumnInfo;
use crate::store::DataFile;

/// A window's data file being built.
pub(crate) struct FileInProgress<'s> {
    /// The table's name in the store's folders; `None` for raw output.
    table: Option<String>,
    /// Row groups by number: `None` while one is being encoded.
    spills: Vec<Option<Spill>>,
    assembly: Assembly,
    /// Placed bytes not yet written to the file.
    unsent: VecDeque<Segment>,
    unsent_len: u64,
    /// Opened when its first part is sent.
    file: Option<Box<dyn DataFile + 's>>,
}

/// Bytes copied from a spill at a time.
const COPY_BYTES: u64 = 1 << 20;

/// Opens a window's data file in its store.
pub(crate) type Open<'a, 's> = &'a dyn Fn(Option<&str>) -> Result<Box<dyn DataFile + 's>>;

impl<'s> FileInProgress<'s> {
    pub(crate) fn new(table: Option<String>) -> Self {
        FileInProgress {
            table,
            spills: Vec::new(),
            assembly: Assembly::default(),
            unsent: VecDeque::new(),
            unsent_len: 0,
            file: None,
        }
    }

    /// Row group `index` is being encoded.
    pub(crate) fn reserve(&mut self, index: u32) {
        if self.spills.len() <= index as usize {
            self.spills.resize(index as usize + 1, None);
        }
    }

    /// Row group `index` is encoded.
    pub(crate) fn encoded(&mut self, index: u32, spill: Spill) {
        self.spills[index as usize] = Some(spill);
    }

    /// Places the row groups encoded in order so far.
    fn place_ready(&mut self, encoder: &Encoder) -> Result<()> {
        while let Some(Some(spill)) = self.spills.get(self.assembly.placed() as usize) {
            let segments = encoder.place(&mut self.assembly, spill)?;
            for s in segments {
                self.unsent_len += s.len();
                self.unsent.push_back(s);
            }
        }
        Ok(())
    }

    /// Sends every whole part of what the row groups encoded in order so far add up
    /// to, opening the file at the first.
    pub(crate) fn send_parts(
        &mut self,
        encoder: &Encoder,
        part_bytes: u64,
        open: Open<'_, 's>,
    ) -> Result<()> {
        self.place_ready(encoder)?;
        let whole = self.unsent_len / part_bytes * part_bytes;
        if whole > 0 {
            self.write_unsent(whole, open)?;
        }
        Ok(())
    }

    /// Writes the rest of the file and completes it. A file of one row group that was
    /// not started is its spill, which is moved (or uploaded) as it is: the layout of
    /// one row group is exactly its spill file. Moving it saves creating, copying and
    /// reading back a file per (table, window), which in multischema runs was a sixth
    /// of the workers' time (most tables of a day fit in one row group).
    pub(crate) fn finish(
        mut self,
        encoder: &Encoder,
        columns: &[ColumnInfo],
        open: Open<'_, 's>,
    ) -> Result<()> {
        if self.file.is_none() && self.assembly.placed() == 0 {
            if let [Some(only)] = &self.spills[..] {
                return open(self.table.as_deref())?.adopt(&only.path);
            }
        }
        self.place_ready(encoder)?;
        assert_eq!(
            self.assembly.placed() as usize,
            self.spills.len(),
            "a window's file is finished once all its row groups are encoded"
        );
        let tail = encoder.tail(std::mem::take(&mut self.assembly), columns)?;
        self.unsent_len += tail.len() as u64;
        self.unsent.push_back(Segment::Bytes(tail.into()));
        self.write_unsent(self.unsent_len, open)?;
        self.file.take().expect("opened by the write").close()
    }

    /// Writes the first `n` unsent bytes to the file.
    fn write_unsent(&mut self, mut n: u64, open: Open<'_, 's>) -> Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(open(self.table.as_deref())?),
        };
        let name = file.name();
        let mut buffer = Vec::new();
        while n > 0 {
            let segment = self.unsent.pop_front().expect("n bytes are unsent");
            let take = segment.len().min(n);
            match &segment {
                Segment::Bytes(b) => file
                    .write_all(&b[..take as usize])
                    .map_err(|e| Error::output(&name, e))?,
                Segment::File { path, start, .. } => {
                    let spill = std::fs::File::open(path).map_err(|e| Error::output(path, e))?;
                    buffer.resize(COPY_BYTES.min(take) as usize, 0);
                    let (mut at, end) = (*start, start + take);
                    while at < end {
                        let piece = &mut buffer[..(end - at).min(COPY_BYTES) as usize];
                        spill
                            .read_exact_at(piece, at)
                            .map_err(|e| Error::output(path, e))?;
                        file.write_all(piece).map_err(|e| Error::output(&name, e))?;
                        at += piece.len() as u64;
                    }
                }
            }
            if take < segment.len() {
                self.unsent.push_front(match segment {
                    Segment::Bytes(b) => Segment::Bytes(b.slice(take as usize..)),
                    Segment::File { path, start, len } => Segment::File {
                        path,
                        start: start + take,
                        len: len - take,
                    },
                });
            }
            self.unsent_len -= take;
            n -= take;
        }
        Ok(())
    }
}
