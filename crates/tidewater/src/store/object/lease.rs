//! The output-root lock on an object store: an object `<root>/.tidewater/lock` created
//! with a conditional put (create-if-absent), holding who holds it and until when. The
//! holder renews the lease while it runs; a run that crashed stops renewing, and once
//! its lease has expired the next run takes the lock over with a conditional update
//! (so two runs that find the same expired lease cannot both take it). A run that finds
//! its own lease taken over stops before its next commit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::ObjectRoot;
use crate::error::{Error, Result};

/// The lock object, below the root.
const LOCK: &str = ".tidewater/lock";

#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    /// `pid N on HOST`.
    holder: String,
    started: String,
    /// Unix milliseconds after which the lease may be taken over.
    expires_ms: i64,
}

/// A held lease; renewed by a thread until dropped, then deleted.
pub(crate) struct LeaseLock {
    shared: Arc<Shared>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    root: Arc<ObjectRoot>,
    lease: Duration,
    stop: Mutex<bool>,
    wake: Condvar,
    lost: AtomicBool,
    version: Mutex<UpdateVersion>,
    started: String,
}

impl LeaseLock {
    /// Takes the root's lock for `lease` at a time, or fails naming its holder.
    pub(crate) fn acquire(root: Arc<ObjectRoot>, lease: Duration) -> Result<LeaseLock> {
        let started = jiff::Timestamp::now().to_string();
        let record = |started: &str| lease_record(started, lease);
        let version = match root.put(LOCK, record(&started), PutMode::Create) {
            Ok(put) => UpdateVersion::from(put),
            Err(Error::Output { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                take_over_expired(&root, record(&started))?
            }
            Err(e) => return Err(lock_error(e)),
        };
        let shared = Arc::new(Shared {
            root,
            lease,
            stop: Mutex::new(false),
            wake: Condvar::new(),
            lost: AtomicBool::new(false),
            version: Mutex::new(version),
            started,
        });
        let renewer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("tidewater-lease".into())
                .spawn(move || shared.renew_until_stopped())
                .map_err(|e| Error::resource("the lease renewal thread", e))?
        };
        Ok(LeaseLock {
            shared,
            renewer: Some(renewer),
        })
    }

    /// Fails when another run took the lease over (this run could not renew it in
    /// time): nothing more may be committed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.shared.lost.load(Ordering::Acquire) {
            return Err(Error::output(
                self.shared.root.url_of(LOCK),
                std::io::Error::other(
                    "this run's lease on the output was taken over by another run; nothing more is committed",
                ),
            ));
        }
        Ok(())
    }
}

impl Shared {
    fn renew_until_stopped(&self) {
        let every = self.lease / 3;
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            stop = self
                .wake
                .wait_timeout(stop, every)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if *stop {
                return;
            }
            let current = self
                .version
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let record = lease_record(&self.started, self.lease);
            match self.root.put(LOCK, record, PutMode::Update(current)) {
                Ok(put) => *self.version.lock().unwrap_or_else(|e| e.into_inner()) = put.into(),
                Err(Error::Output { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    tracing::error!(
                        "{}: the lease was taken over by another run",
                        self.root.url()
                    );
                    self.lost.store(true, Ordering::Release);
                    return;
                }
                // A transient failure: the lease is still ours until it expires, and
                // the next renewal tries again.
                Err(e) => tracing::warn!("could not renew the lease on {}: {e}", self.root.url()),
            }
        }
    }
}

impl Drop for LeaseLock {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        if !self.shared.lost.load(Ordering::Acquire) {
            if let Err(e) = self.shared.root.delete(LOCK) {
                tracing::warn!("could not release the lock: {e}");
            }
        }
    }
}

fn lease_record(started: &str, lease: Duration) -> Bytes {
    let record = LeaseRecord {
        holder: format!("pid {} on {}", std::process::id(), crate::lock::host_name()),
        started: started.to_string(),
        expires_ms: jiff::Timestamp::now().as_millisecond() + lease.as_millis() as i64,
    };
    Bytes::from(serde_json::to_vec(&record).expect("lease record serializes"))
}

/// The lock exists: takes it over if its lease expired (a crashed run), with a put
/// conditional on the version read, so that of two runs only one takes it.
fn take_over_expired(root: &ObjectRoot, record: Bytes) -> Result<UpdateVersion> {
    let key = root.key(LOCK);
    let got = root
        .block_on(async {
            let got = root.store().get(&key).await?;
            let meta = got.meta.clone();
            got.bytes().await.map(|b| (meta, b))
        })
        .map_err(|e| root.error(LOCK, e))?;
    let (meta, bytes) = got;
    let held: Option<LeaseRecord> = serde_json::from_slice(&bytes).ok();
    let now = jiff::Timestamp::now().as_millisecond();
    if let Some(h) = &held {
        if h.expires_ms > now {
            return Err(Error::Locked {
                root: root.url().into(),
                holder: format!(
                    "{}, started {}, lease expires in {} s",
                    h.holder,
                    h.started,
                    (h.expires_ms - now + 999) / 1000
                ),
            });
        }
        tracing::warn!(
            "the last run in {} ({}) ended without releasing it; its lease expired, taking over",
            root.url(),
            h.holder
        );
    }
    let version = UpdateVersion {
        e_tag: meta.e_tag,
        version: meta.version,
    };
    match root.put(LOCK, record, PutMode::Update(version)) {
        Ok(put) => Ok(put.into()),
        Err(Error::Output { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::Locked {
                root: root.url().into(),
                holder: "another run that took over the expired lease at the same moment".into(),
            })
        }
        Err(e) => Err(lock_error(e)),
    }
}

/// A failure to take the lock is the first request of a run to its store: a usage
/// error (exit 2) naming the lock object.
fn lock_error(e: Error) -> Error {
    match e {
        Error::Output { path, source } => Error::output_root(path, source),
        other => other,
    }
}
