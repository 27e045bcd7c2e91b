//! Batches the caller pulls ([`Batches`], an iterator; [`BatchStream`], a `Stream` for
//! tokio callers) instead of a callback the run pushes to. The run goes on a thread of
//! its own and hands its batches through a queue of `ahead` places: it runs ahead by at
//! most that many batches (beside what its memory budget holds in flight) and waits
//! while the caller is busy. Dropping either cancels the run and waits for it to stop.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use super::converter::{Converter, TableBatch};
use super::Cancel;
use crate::error::{Error, Result};
use crate::summary::RunSummary;

/// What the run's thread sends: its batches in order, then how the run ended.
enum Item {
    Batch(TableBatch),
    End(Result<RunSummary>),
}

/// Starts `converter` on a thread whose batches go to `send`, and its end last. A send
/// that fails (the caller is gone) stops the run.
fn spawn(
    converter: Converter,
    send: impl Fn(Item) -> bool + Send + 'static,
) -> Result<(JoinHandle<()>, Cancel)> {
    let cancel = converter.cancel_token();
    std::thread::Builder::new()
        .name("tidewater-batches".into())
        .spawn(move || {
            let result = converter.run_batches(|batch| {
                if send(Item::Batch(batch)) {
                    Ok(())
                } else {
                    Err(Error::Cancelled)
                }
            });
            send(Item::End(result));
        })
        .map(|handle| (handle, cancel))
        .map_err(|e| Error::resource("the conversion thread", e))
}

/// How far the caller got through a run's items: whether the last one was given, and
/// the summary of a run that succeeded.
#[derive(Default)]
struct RunEnd {
    ended: bool,
    summary: Option<RunSummary>,
}

impl RunEnd {
    /// The next item of a run's batches from what its thread sent (`None`: the thread
    /// is gone without a word): a batch, or the end, which keeps the summary of a run
    /// that succeeded and gives the error of one that failed.
    fn next(&mut self, item: Option<Item>) -> Option<Result<TableBatch>> {
        match item {
            Some(Item::Batch(batch)) => Some(Ok(batch)),
            Some(Item::End(result)) => {
                self.ended = true;
                match result {
                    Ok(done) => {
                        self.summary = Some(done);
                        None
                    }
                    Err(e) => Some(Err(e)),
                }
            }
            None => {
                self.ended = true;
                Some(Err(Error::resource(
                    "the conversion thread",
                    "it ended without a result",
                )))
            }
        }
    }
}

/// The batches of a run, as an iterator (see [`Converter::batches`]). The run's error,
/// if it fails, is the last item; after the last item, [`Batches::summary`] holds the
/// run's summary.
pub struct Batches {
    /// `None` once dropped: a send blocked on a full queue then fails at once.
    rx: Option<std::sync::mpsc::Receiver<Item>>,
    run: Option<JoinHandle<()>>,
    cancel: Cancel,
    end: RunEnd,
}

impl Batches {
    pub(super) fn start(converter: Converter, ahead: usize) -> Result<Batches> {
        let (tx, rx) = std::sync::mpsc::sync_channel(ahead.max(1));
        let (run, cancel) = spawn(converter, move |item| tx.send(item).is_ok())?;
        Ok(Batches {
            rx: Some(rx),
            run: Some(run),
            cancel,
            end: RunEnd::default(),
        })
    }

    /// The run's summary, once the iterator has returned its last item and the run
    /// succeeded.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.end.summary.as_ref()
    }
}

impl Iterator for Batches {
    type Item = Result<TableBatch>;

    fn next(&mut self) -> Option<Result<TableBatch>> {
        let rx = self.rx.as_ref().filter(|_| !self.end.ended)?;
        let item = rx.recv().ok();
        self.end.next(item)
    }
}

impl Drop for Batches {
    /// Cancels the run if it is still going, and waits until it has stopped (its
    /// staging folder removed).
    fn drop(&mut self) {
        self.cancel.cancel();
        drop(self.rx.take());
        if let Some(run) = self.run.take() {
            let _ = run.join();
        }
    }
}

/// The batches of a run, as a `Stream` for async callers (see
/// [`Converter::batch_stream`]): the run stays on a thread of its own, so polling never
/// blocks the executor.
pub struct BatchStream {
    rx: tokio::sync::mpsc::Receiver<Item>,
    cancel: Cancel,
    end: RunEnd,
}

impl BatchStream {
    pub(super) fn start(converter: Converter, ahead: usize) -> Result<BatchStream> {
        let (tx, rx) = tokio::sync::mpsc::channel(ahead.max(1));
        // The thread is not joined: it ends on its own once the run has (see `Drop`).
        let (_, cancel) = spawn(converter, move |item| tx.blocking_send(item).is_ok())?;
        Ok(BatchStream {
            rx,
            cancel,
            end: RunEnd::default(),
        })
    }

    /// The run's summary, once the stream has ended and the run succeeded.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.end.summary.as_ref()
    }
}

impl futures_util::Stream for BatchStream {
    type Item = Result<TableBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.end.ended {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        this.rx.poll_recv(cx).map(|item| this.end.next(item))
    }
}

impl Drop for BatchStream {
    /// Cancels the run if it is still going. The run's thread notices at its next
    /// batch (the queue closes with the stream) or its next block, and stops on its
    /// own: dropping does not block the executor to wait for it.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
