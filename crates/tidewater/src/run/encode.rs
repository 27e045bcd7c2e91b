//! Where full row groups go: encoders on the worker pool, whose encoded column chunks
//! wait in spill files until their window's data file takes them (as they come, on an
//! object store; at the window's commit, in a local folder), or the caller's batch
//! sink.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::plan::Destination;
use super::TableBatch;
use crate::error::{Error, Result};
use crate::merge::RowGroup;
use crate::schema::registry::Fixed;
use crate::store::WindowStore;
use crate::window::WindowKey;
use crate::write::{Encoder, FileInProgress, Spill};

/// A row group's encoding, done.
pub(crate) struct EncodedGroup {
    key: (WindowKey, u32),
    index: u32,
    spill: Result<Spill>,
    took: Duration,
}

/// Where full row groups go: encoders on the pool (files) or the caller's sink.
pub(crate) struct Sink<'a, 'd> {
    destination: Destination<'d>,
    pool: &'a rayon::ThreadPool,
    encoder: &'a Encoder,
    store: Option<&'a dyn WindowStore>,
    fixed: Fixed,
    raw: bool,
    encoded_tx: Sender<EncodedGroup>,
    pub encoded_rx: Receiver<EncodedGroup>,
    pub encoding: usize,
    max_encoding: usize,
    /// The data file of each (window, table) with rows.
    pub files: BTreeMap<(WindowKey, u32), FileInProgress<'a>>,
    pub encode_seconds: f64,
    pub failure: Option<Error>,
}

impl<'a, 'd> Sink<'a, 'd> {
    /// At most `max_encoding` row groups are encoded at once; the next waits.
    pub(crate) fn new(
        destination: Destination<'d>,
        pool: &'a rayon::ThreadPool,
        encoder: &'a Encoder,
        store: Option<&'a dyn WindowStore>,
        fixed: Fixed,
        raw: bool,
        max_encoding: usize,
    ) -> Self {
        let (encoded_tx, encoded_rx) = crossbeam_channel::unbounded();
        Sink {
            destination,
            pool,
            encoder,
            store,
            fixed,
            raw,
            encoded_tx,
            encoded_rx,
            encoding: 0,
            max_encoding,
            files: BTreeMap::new(),
            encode_seconds: 0.0,
            failure: None,
        }
    }

    pub(crate) fn flush(&mut self, group: RowGroup) {
        if self.failure.is_some() {
            return;
        }
        match &mut self.destination {
            Destination::Batches(sink) => {
                let batch = match crate::write::parquet::record_batch(&group, self.fixed) {
                    Ok(b) => b,
                    Err(e) => {
                        self.failure = Some(Error::Encode {
                            what: format!("batch of window {}", group.window),
                            message: e.to_string(),
                        });
                        return;
                    }
                };
                let table = TableBatch {
                    table: group.table_name,
                    event: group.event,
                    window: group.window,
                    table_schema: crate::write::parquet::table_schema(&group.columns),
                    batch,
                };
                if let Err(e) = sink(table) {
                    self.failure = Some(e);
                }
            }
            Destination::Files(_) => {
                while self.encoding >= self.max_encoding {
                    let done = self.encoded_rx.recv().expect("the sender lives in self");
                    self.record(done);
                }
                let key = (group.window, group.table);
                let raw = self.raw;
                self.files
                    .entry(key)
                    .or_insert_with(|| {
                        FileInProgress::new((!raw).then(|| group.table_name.clone()))
                    })
                    .reserve(group.index);
                let path = self.store.expect("file output has a store").spill_path(
                    group.table,
                    group.window,
                    group.index,
                );
                let (encoder, fixed, tx) =
                    (self.encoder.clone(), self.fixed, self.encoded_tx.clone());
                self.encoding += 1;
                self.pool.spawn(move || {
                    let t = Instant::now();
                    let spill = encoder.encode(&group, fixed, &path);
                    let _ = tx.send(EncodedGroup {
                        key,
                        index: group.index,
                        spill,
                        took: t.elapsed(),
                    });
                });
            }
        }
    }

    pub(crate) fn record(&mut self, done: EncodedGroup) {
        self.encoding -= 1;
        self.encode_seconds += done.took.as_secs_f64();
        match done.spill {
            Ok(s) => {
                // Reserved at dispatch, unless broken off by a failure since.
                let Some(file) = self.files.get_mut(&done.key) else {
                    return;
                };
                file.encoded(done.index, s);
                let store = self.store.expect("file output has a store");
                let Some(part_bytes) = store.part_bytes() else {
                    return;
                };
                if self.failure.is_some() {
                    return;
                }
                let window = done.key.0;
                let open = |table: Option<&str>| store.data(table, window);
                if let Err(e) = file.send_parts(self.encoder, part_bytes, &open) {
                    // The file is broken off (its upload aborted now); the run fails.
                    self.files.remove(&done.key);
                    self.failure = Some(e);
                }
            }
            Err(e) => {
                self.failure.get_or_insert(e);
            }
        }
    }

    pub(crate) fn wait_all(&mut self) {
        while self.encoding > 0 {
            let done = self.encoded_rx.recv().expect("the sender lives in self");
            self.record(done);
        }
    }
}
