//! The downloads of an export run and the feed that hands their verified bodies to the
//! engine, in window order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::client::{Client, Outcome, Verified, WindowRequest};
use crate::error::{Error, Result};
use crate::run::{Cancel, Feed, Opened};

/// The reason a sync gives the engine for a window whose body is unchanged: it is not
/// read, and nothing of the window is replaced.
pub(crate) const UNCHANGED: &str = "unchanged since it was committed";

/// How often a feed waiting for a download looks at the cancel token.
const CANCEL_CHECK: Duration = Duration::from_millis(100);

/// The downloads of a run: tasks on a runtime of their own, at most `2 × concurrency`
/// windows ahead of the engine (which bounds the spooled bytes on disk), spooled into
/// a staging folder of the output root that is removed when the run ends (or, after a
/// crash, by the next run in the root).
pub(crate) struct Downloads {
    runtime: Option<tokio::runtime::Runtime>,
    /// Verified bodies (and the attempts they took) by input, for the manifests.
    finished: Arc<Mutex<BTreeMap<usize, (Verified, u32)>>>,
    /// Inputs whose body a sync found unchanged.
    unchanged: Arc<Mutex<BTreeSet<usize>>>,
    spool: PathBuf,
}

impl Downloads {
    /// Starts downloading `requests` (input `k` is `requests[k]`) and returns the feed
    /// the engine reads them from. A body whose SHA-256 is `committed_sha[k]` is not
    /// handed to the engine (a sync found it unchanged).
    pub(crate) fn start(
        client: Client,
        requests: &[WindowRequest],
        committed_sha: Vec<Option<String>>,
        spool: PathBuf,
        concurrency: usize,
        cancel: &Cancel,
    ) -> Result<(Downloads, ExportFeed)> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidewater-http")
            .enable_all()
            .build()
            .map_err(|e| Error::resource("the HTTP runtime", e))?;
        std::fs::create_dir_all(&spool).map_err(|e| Error::output(&spool, e))?;
        let client = Arc::new(client);
        let lookahead = concurrency * 2;
        let (consumed_tx, consumed_rx) = tokio::sync::watch::channel(0usize);
        let (outcome_tx, outcome_rx) = crossbeam_channel::unbounded::<(usize, Outcome)>();
        for (k, req) in requests.iter().cloned().enumerate() {
            let client = client.clone();
            let mut consumed = consumed_rx.clone();
            let tx = outcome_tx.clone();
            let path = spool.join(format!("window-{k:05}.body"));
            runtime.spawn(async move {
                if consumed.wait_for(|c| k < *c + lookahead).await.is_err() {
                    return;
                }
                let outcome = client.fetch_window(&req, &path).await;
                let _ = tx.send((k, outcome));
            });
        }
        let finished: Arc<Mutex<BTreeMap<usize, (Verified, u32)>>> = Default::default();
        let unchanged: Arc<Mutex<BTreeSet<usize>>> = Default::default();
        let feed = ExportFeed {
            committed_sha,
            unchanged: unchanged.clone(),
            outcomes: outcome_rx,
            waiting: BTreeMap::new(),
            consumed: consumed_tx,
            downloads: finished.clone(),
            labels: requests.iter().map(|r| r.label.clone()).collect(),
            spools: BTreeMap::new(),
            cancel: cancel.clone(),
        };
        Ok((
            Downloads {
                runtime: Some(runtime),
                finished,
                unchanged,
                spool,
            },
            feed,
        ))
    }

    /// The verified body of input `k` and the attempts it took, once the engine opened
    /// it (a window given up on has a default body).
    pub(crate) fn body(&self, k: usize) -> Option<(Verified, u32)> {
        self.finished
            .lock()
            .expect("downloads lock")
            .get(&k)
            .cloned()
    }

    /// Whether a sync found input `k`'s body unchanged.
    pub(crate) fn unchanged(&self, k: usize) -> bool {
        self.unchanged.lock().expect("downloads lock").contains(&k)
    }
}

impl Drop for Downloads {
    /// Stops the downloads still running and removes the spool folder.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

/// Hands verified windows to the engine in window order.
pub(crate) struct ExportFeed {
    committed_sha: Vec<Option<String>>,
    unchanged: Arc<Mutex<BTreeSet<usize>>>,
    outcomes: Receiver<(usize, Outcome)>,
    waiting: BTreeMap<usize, Outcome>,
    consumed: tokio::sync::watch::Sender<usize>,
    downloads: Arc<Mutex<BTreeMap<usize, (Verified, u32)>>>,
    labels: Vec<String>,
    spools: BTreeMap<usize, PathBuf>,
    cancel: Cancel,
}

impl Feed for ExportFeed {
    fn open(&mut self, i: usize, raw_bytes: &Arc<AtomicU64>) -> Result<Opened> {
        let outcome = loop {
            if let Some(o) = self.waiting.remove(&i) {
                break o;
            }
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match self.outcomes.recv_timeout(CANCEL_CHECK) {
                Ok((k, Outcome::Fatal { message, status })) => {
                    // A refused request stops the run at once, whichever window it was.
                    return Err(Error::Export {
                        window: self.labels[k].clone(),
                        message,
                        status: Some(status),
                    });
                }
                // So does a spool that cannot be written.
                Ok((_, Outcome::Local { path, source })) => {
                    return Err(Error::output(path, source));
                }
                Ok((k, o)) => {
                    self.waiting.insert(k, o);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Export {
                        window: self.labels[i].clone(),
                        message: "the download stopped unexpectedly".into(),
                        status: None,
                    })
                }
            }
        };
        self.consumed.send_replace(i + 1);
        match outcome {
            Outcome::Ready { verified, attempts } => {
                let path = verified.path.clone();
                if self.committed_sha[i].as_deref() == Some(verified.sha256.as_str()) {
                    self.unchanged.lock().expect("downloads lock").insert(i);
                    self.downloads
                        .lock()
                        .expect("downloads lock")
                        .insert(i, (verified, attempts));
                    let _ = std::fs::remove_file(path);
                    return Ok(Opened::Unavailable(UNCHANGED.into()));
                }
                self.downloads
                    .lock()
                    .expect("downloads lock")
                    .insert(i, (verified, attempts));
                let opened = crate::input::source::open(
                    &crate::input::source::Input::Path(path.clone()),
                    raw_bytes.clone(),
                )?;
                self.spools.insert(i, path);
                Ok(Opened::Stream(opened.reader))
            }
            Outcome::GaveUp { attempts, message } => {
                self.downloads
                    .lock()
                    .expect("downloads lock")
                    .insert(i, (Verified::default(), attempts));
                Ok(Opened::Unavailable(message))
            }
            Outcome::Fatal { message, status } => Err(Error::Export {
                window: self.labels[i].clone(),
                message,
                status: Some(status),
            }),
            Outcome::Local { path, source } => Err(Error::output(path, source)),
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(p) = self.spools.remove(&i) {
            let _ = std::fs::remove_file(p);
        }
    }
}
