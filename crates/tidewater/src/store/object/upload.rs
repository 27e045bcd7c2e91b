//! A data file streamed into an object as it is written: a synchronous `Write` that
//! sends each full part of a multipart upload while the run goes on, and a single put
//! for a file smaller than one part. The parts of all of a root's uploads share
//! [`PARTS_IN_FLIGHT`] slots, so memory stays at most `PART_BYTES` per slot plus one
//! part being filled per file being written, whatever the files' sizes and however many
//! windows are open. Part buffers are used again once sent ([`PartBuffers`]): the
//! binary's allocator keeps freed memory, and fresh 8 MiB buffers allocated on one
//! thread and freed on another added 100 MiB to a 1M-event convert's peak. An upload
//! that is not closed (an error, a cancelled run) is aborted, so no multipart upload
//! is left open behind a failed window.

use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{MultipartId, MultipartUpload, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use super::{store_io_error, ObjectRoot};
use crate::error::{Error, Result};
use crate::store::DataFile;

/// Bytes of one part: above S3's and GCS's 5 MiB minimum, small enough that the parts
/// in flight keep memory low.
pub(crate) const PART_BYTES: usize = 8 << 20;

/// Parts being sent at once, across all the uploads of a root: enough to keep a
/// loopback or nearby store busy, few enough to bound memory (32 MiB).
pub(crate) const PARTS_IN_FLIGHT: usize = 4;

/// Part buffers that were sent, ready for the next parts of any upload of a root.
#[derive(Debug, Default)]
pub(crate) struct PartBuffers(Mutex<Vec<BytesMut>>);

impl PartBuffers {
    /// An empty buffer that holds a part.
    fn take(&self) -> BytesMut {
        let spare = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or_else(|| BytesMut::with_capacity(PART_BYTES))
    }

    /// Keeps a sent part's buffer, if nothing else holds it any more.
    fn give_back(&self, sent: Bytes) {
        if let Ok(mut buffer) = sent.try_into_mut() {
            let mut spare = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if buffer.capacity() >= PART_BYTES && spare.len() < PARTS_IN_FLIGHT + 2 {
                buffer.clear();
                spare.push(buffer);
            }
        }
    }
}

/// One object being written.
pub(crate) struct Upload<'r> {
    root: &'r ObjectRoot,
    rel: String,
    key: Key,
    buffer: BytesMut,
    /// Started at the first full part; a smaller file is one put at close.
    multipart: Option<Parts>,
}

/// A multipart upload and its parts on their way.
struct Parts {
    how: Multipart,
    /// Parts sent so far.
    sent: usize,
    /// Each part's task, giving its number and the id the store gave it.
    sending: JoinSet<object_store::Result<(usize, Option<PartId>)>>,
    /// The ids of the parts done, by number (uploads by id).
    ids: Vec<Option<PartId>>,
}

/// How a multipart upload goes.
enum Multipart {
    /// Through the store's multipart API: the upload has an id, written down in
    /// `journal` (below the root) while it is open.
    ById {
        store: Arc<dyn MultipartStore>,
        id: MultipartId,
        journal: String,
    },
    /// Through `put_multipart` (a store given without its multipart API).
    Anonymous(Box<dyn MultipartUpload>),
}

/// Where open uploads are written down, below the root.
const JOURNAL: &str = ".tidewater/uploads";

/// An open upload, as written down.
#[derive(Debug, Serialize, Deserialize)]
struct OpenUpload {
    object: String,
    upload_id: String,
}

/// The outcome of one part's task.
fn part_result<T>(
    joined: std::result::Result<object_store::Result<T>, tokio::task::JoinError>,
) -> object_store::Result<T> {
    joined.unwrap_or_else(|e| {
        Err(object_store::Error::Generic {
            store: "upload",
            source: Box::new(e),
        })
    })
}

impl Parts {
    /// Starts a multipart upload of `rel` (`key`); one by id is written down first.
    fn start(root: &ObjectRoot, rel: &str, key: &Key) -> object_store::Result<Parts> {
        let how = match &root.multipart {
            Some(store) => {
                let id = root.block_on(store.create_multipart(key))?;
                let mut name = std::hash::DefaultHasher::new();
                (rel, &id).hash(&mut name);
                let journal = format!("{JOURNAL}/{:016x}.json", name.finish());
                let entry = OpenUpload {
                    object: rel.to_string(),
                    upload_id: id.clone(),
                };
                let text = serde_json::to_vec(&entry).expect("an entry serializes");
                let written = root.block_on(root.store().put(&root.key(&journal), text.into()));
                if let Err(e) = written {
                    let _ = root.block_on(store.abort_multipart(key, &id));
                    return Err(e);
                }
                Multipart::ById {
                    store: store.clone(),
                    id,
                    journal,
                }
            }
            None => Multipart::Anonymous(root.block_on(root.store().put_multipart(key))?),
        };
        Ok(Parts {
            how,
            sent: 0,
            sending: JoinSet::new(),
            ids: Vec::new(),
        })
    }

    fn record(&mut self, done: (usize, Option<PartId>)) {
        if let (n, Some(id)) = done {
            if self.ids.len() <= n {
                self.ids.resize(n + 1, None);
            }
            self.ids[n] = Some(id);
        }
    }

    /// The next part's request.
    fn put(&mut self, key: &Key, part: PutPayload) -> BoxFuture<'static, PartDone> {
        let n = self.sent;
        self.sent += 1;
        match &mut self.how {
            Multipart::ById { store, id, .. } => {
                let (store, key, id) = (store.clone(), key.clone(), id.clone());
                Box::pin(async move {
                    let part = store.put_part(&key, &id, n, part).await?;
                    Ok((n, Some(part)))
                })
            }
            Multipart::Anonymous(upload) => {
                let sent = upload.put_part(part);
                Box::pin(async move { sent.await.map(|()| (n, None)) })
            }
        }
    }

    /// Waits for every part, then completes the upload (and strikes it out).
    async fn complete(&mut self, root: &ObjectRoot, key: &Key) -> object_store::Result<()> {
        while let Some(done) = self.sending.join_next().await {
            let done = part_result(done)?;
            self.record(done);
        }
        match &mut self.how {
            Multipart::ById { store, id, journal } => {
                let ids = std::mem::take(&mut self.ids);
                let ids = ids.into_iter().map(|p| p.expect("every part sent is done"));
                store.complete_multipart(key, id, ids.collect()).await?;
                // Left behind, the entry only makes the next run abort an upload that
                // is no longer open.
                let _ = root.store().delete(&root.key(journal)).await;
            }
            Multipart::Anonymous(upload) => {
                upload.complete().await?;
            }
        }
        Ok(())
    }

    /// Aborts the upload: its parts are dropped by the store (and it is struck out).
    async fn abort(&mut self, root: &ObjectRoot, key: &Key) -> object_store::Result<()> {
        self.sending.abort_all();
        match &mut self.how {
            Multipart::ById { store, id, journal } => {
                store.abort_multipart(key, id).await?;
                let _ = root.store().delete(&root.key(journal)).await;
            }
            Multipart::Anonymous(upload) => upload.abort().await?,
        }
        Ok(())
    }
}

/// A part's number and the id the store gave it.
type PartDone = object_store::Result<(usize, Option<PartId>)>;

/// Aborts the multipart uploads that runs killed before they could complete or abort
/// them left open, as written down below the root. Called with the root's lock held,
/// so no run that is still going has any.
pub(crate) fn abort_left_uploads(root: &ObjectRoot) -> Result<()> {
    let Some(store) = &root.multipart else {
        return Ok(());
    };
    for rel in root.list(JOURNAL)? {
        let Some(text) = root.read(&rel)? else {
            continue;
        };
        if let Ok(entry) = serde_json::from_slice::<OpenUpload>(&text) {
            let key = root.key(&entry.object);
            match root.block_on(store.abort_multipart(&key, &entry.upload_id)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(root.error(&entry.object, e)),
            }
            tracing::info!(
                "aborted the upload of {} that a stopped run left open",
                root.url_of(&entry.object).display()
            );
        }
        root.delete(&rel)?;
    }
    Ok(())
}

impl<'r> Upload<'r> {
    /// An upload to `rel` below the root.
    pub(crate) fn new(root: &'r ObjectRoot, rel: &str) -> Self {
        Upload {
            root,
            rel: rel.to_string(),
            key: root.key(rel),
            buffer: BytesMut::new(),
            multipart: None,
        }
    }

    /// Sends one part, after waiting for a free slot; a part that failed meanwhile is
    /// reported now rather than at the end.
    fn send_part(&mut self, part: Bytes) -> object_store::Result<()> {
        let root = self.root;
        let parts = match &mut self.multipart {
            Some(p) => p,
            None => self
                .multipart
                .insert(Parts::start(root, &self.rel, &self.key)?),
        };
        while let Some(done) = parts.sending.try_join_next() {
            let done = part_result(done)?;
            parts.record(done);
        }
        let slot = root
            .block_on(root.part_slots.clone().acquire_owned())
            .expect("the part slots are never closed");
        let sent = parts.put(&self.key, PutPayload::from(part.clone()));
        let buffers = Arc::clone(&root.part_buffers);
        parts.sending.spawn_on(
            async move {
                let result = sent.await;
                drop(slot);
                buffers.give_back(part);
                result
            },
            root.runtime.handle(),
        );
        Ok(())
    }

    /// Sends what is left and completes the object. Until this returns, the object
    /// does not exist under its key (or keeps its old content).
    pub(crate) fn complete(mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        let rel = self.rel.clone();
        let result = if self.multipart.is_none() {
            let put = self
                .root
                .store()
                .put(&self.key, PutPayload::from(rest.clone()));
            let result = self.root.block_on(put).map(|_| ());
            self.root.part_buffers.give_back(rest);
            result
        } else {
            self.finish_parts(rest)
        };
        result.map_err(|e| self.root.error(&rel, e))
    }

    fn finish_parts(&mut self, rest: Bytes) -> object_store::Result<()> {
        if !rest.is_empty() {
            self.send_part(rest)?;
        }
        let mut parts = self.multipart.take().expect("a multipart upload");
        let result = self.root.block_on(parts.complete(self.root, &self.key));
        if result.is_err() {
            // Nothing may be left open behind a failed file.
            self.multipart = Some(parts);
        }
        result
    }
}

impl Write for Upload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer = self.root.part_buffers.take();
            }
            let take = (PART_BYTES - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == PART_BYTES {
                let part = std::mem::take(&mut self.buffer).freeze();
                self.send_part(part).map_err(|e| store_io_error(&e))?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DataFile for Upload<'_> {
    /// Uploads a finished local file, streaming it in parts, then removes it.
    fn adopt(mut self: Box<Self>, local: &Path) -> Result<()> {
        let mut f = std::fs::File::open(local).map_err(|e| Error::output(local, e))?;
        let mut chunk = vec![0; 1 << 20];
        loop {
            let n = f.read(&mut chunk).map_err(|e| Error::output(local, e))?;
            if n == 0 {
                break;
            }
            self.write_all(&chunk[..n])
                .map_err(|e| Error::output(self.root.url_of(&self.rel), e))?;
        }
        self.complete()?;
        let _ = std::fs::remove_file(local);
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.complete()
    }

    fn name(&self) -> PathBuf {
        self.root.url_of(&self.rel)
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        if let Some(mut parts) = self.multipart.take() {
            // Not completed: the file failed part-way. Nothing may be left open.
            if let Err(e) = self.root.block_on(parts.abort(self.root, &self.key)) {
                tracing::warn!(
                    "could not abort the upload of {}: {}; the store may keep its parts until a lifecycle rule removes them",
                    self.root.url_of(&self.rel).display(),
                    super::redact(&e.to_string())
                );
            }
        }
    }
}
