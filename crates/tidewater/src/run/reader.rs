//! The reader thread: opens each input in turn (a [`Feed`]), inflates and frames it into
//! blocks of whole lines, and sends them to the driver in input order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::Cancel;
use crate::error::{Error, Result};
use crate::input::frame::{frame_input, Block, FrameConfig, InputEnd};
use crate::input::source::{self, Input};
use crate::summary::Progress;

/// Where the reader thread gets its inputs from.
pub(crate) trait Feed: Send {
    /// Opens input `i`, blocking until it can be read. `raw_bytes` counts the bytes
    /// read as stored.
    fn open(&mut self, i: usize, raw_bytes: &Arc<AtomicU64>) -> Result<Opened>;

    /// Input `i` was read to its end.
    fn close(&mut self, _i: usize) {}
}

/// An input ready to read, or the reason it cannot be had (treated as IN5).
pub(crate) enum Opened {
    Stream(Box<dyn std::io::Read + Send>),
    Unavailable(String),
}

/// The local inputs of `convert`.
pub(crate) struct LocalFeed(pub Vec<Input>);

impl Feed for LocalFeed {
    fn open(&mut self, i: usize, raw_bytes: &Arc<AtomicU64>) -> Result<Opened> {
        source::open(&self.0[i], raw_bytes.clone()).map(|o| Opened::Stream(o.reader))
    }
}

/// What the reader sends: blocks of an input, then its end; or why it stopped.
pub(crate) enum ReaderItem {
    Block(Block),
    End(InputEnd),
    Failed(Error),
}

/// Starts the reader thread over `count` inputs of `feed`. It adds the time it was
/// busy (not waiting for the driver) to `busy`, in nanoseconds.
pub(crate) fn spawn_reader(
    count: usize,
    mut feed: Box<dyn Feed>,
    config: FrameConfig,
    tx: Sender<ReaderItem>,
    progress: Arc<Progress>,
    busy: Arc<AtomicU64>,
    cancel: Cancel,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tidewater-reader".into())
        .spawn(move || read_inputs(count, &mut *feed, config, &tx, &progress, &busy, &cancel))
        .map_err(|e| Error::resource("the reader thread", e))
}

fn read_inputs(
    count: usize,
    feed: &mut dyn Feed,
    config: FrameConfig,
    tx: &Sender<ReaderItem>,
    progress: &Progress,
    busy: &AtomicU64,
    cancel: &Cancel,
) {
    for i in 0..count {
        if cancel.is_cancelled() {
            return;
        }
        let opened = match feed.open(i, &progress.input_bytes) {
            Ok(Opened::Stream(reader)) => reader,
            Ok(Opened::Unavailable(reason)) => {
                let end = InputEnd {
                    input: i,
                    lines: 0,
                    bytes: 0,
                    incomplete: Some(reason),
                };
                if tx.send(ReaderItem::End(end)).is_err() {
                    return;
                }
                continue;
            }
            Err(e) => {
                let _ = tx.send(ReaderItem::Failed(e));
                return;
            }
        };
        let start = Instant::now();
        let mut waiting = Duration::ZERO;
        let end = frame_input(opened, i, config, |block| {
            if cancel.is_cancelled() {
                return false;
            }
            progress.add(&progress.decompressed_bytes, block.data.len() as u64);
            let t = Instant::now();
            let sent = tx.send(ReaderItem::Block(block)).is_ok();
            waiting += t.elapsed();
            sent
        });
        busy.fetch_add(
            (start.elapsed().saturating_sub(waiting)).as_nanos() as u64,
            Ordering::Relaxed,
        );
        feed.close(i);
        match end {
            Some(end) => {
                if tx.send(ReaderItem::End(end)).is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}
