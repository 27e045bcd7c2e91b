//! A data file streamed into an object as it is written: a synchronous `Write` that
//! sends full parts of a multipart upload while the encoder goes on, a few in flight at
//! once, and a single put for a file smaller than one part. Memory stays at most
//! `PART_BYTES * (PARTS_IN_FLIGHT + 1)` per file, whatever its size. An upload that is
//! not closed (an error, a cancelled run) is aborted, so no multipart upload is left
//! open behind a failed window.

use std::io::{self, Read, Write};
use std::path::Path;

use bytes::BytesMut;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};

use super::{store_io_error, ObjectRoot};
use crate::error::{Error, Result};

/// Bytes of one part: above S3's and GCS's 5 MiB minimum, small enough that a few in
/// flight per file keep memory low.
pub(crate) const PART_BYTES: usize = 8 << 20;

/// Parts of one file being sent at once.
const PARTS_IN_FLIGHT: usize = 4;

/// One object being written.
pub(crate) struct Upload<'r> {
    root: &'r ObjectRoot,
    rel: String,
    key: Key,
    buffer: BytesMut,
    /// Started at the first full part; a smaller file is one put at close.
    multipart: Option<WriteMultipart>,
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

    /// Moves a finished local file to `rel`: uploads it, streaming it in parts, then
    /// removes it.
    pub(crate) fn move_file(root: &ObjectRoot, local: &Path, rel: &str) -> Result<()> {
        let mut up = Upload::new(root, rel);
        let mut f = std::fs::File::open(local).map_err(|e| Error::output(local, e))?;
        let mut chunk = vec![0; 1 << 20];
        loop {
            let n = f.read(&mut chunk).map_err(|e| Error::output(local, e))?;
            if n == 0 {
                break;
            }
            up.write_all(&chunk[..n])
                .map_err(|e| Error::output(root.url_of(rel), e))?;
        }
        up.close()?;
        let _ = std::fs::remove_file(local);
        Ok(())
    }

    fn send_full_parts(&mut self) -> io::Result<()> {
        while self.buffer.len() >= PART_BYTES {
            let part = self.buffer.split_to(PART_BYTES).freeze();
            let (root, key) = (self.root, &self.key);
            let multipart = match &mut self.multipart {
                Some(m) => m,
                None => {
                    let upload = root
                        .block_on(root.store().put_multipart(key))
                        .map_err(|e| store_io_error(&e))?;
                    self.multipart
                        .insert(WriteMultipart::new_with_chunk_size(upload, PART_BYTES))
                }
            };
            root.block_on(multipart.wait_for_capacity(PARTS_IN_FLIGHT))
                .map_err(|e| store_io_error(&e))?;
            // `put` hands the part to the upload's tasks, which the runtime drives.
            let _guard = root.runtime.enter();
            multipart.put(part);
        }
        Ok(())
    }

    /// Sends what is left and completes the object. Until this returns, the object
    /// does not exist under its key (or keeps its old content).
    pub(crate) fn close(mut self) -> Result<()> {
        let rest = std::mem::take(&mut self.buffer).freeze();
        let (root, rel) = (self.root, self.rel.clone());
        let result = match self.multipart.take() {
            None => root
                .block_on(root.store().put(&self.key, PutPayload::from(rest)))
                .map(|_| ()),
            Some(mut m) => {
                let _guard = root.runtime.enter();
                m.put(rest);
                drop(_guard);
                root.block_on(m.finish()).map(|_| ())
            }
        };
        // `finish` aborts the upload itself when it fails.
        result.map_err(|e| root.error(&rel, e))
    }
}

impl Write for Upload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        self.send_full_parts()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.multipart.take() {
            // Not closed: the file failed part-way. Nothing may be left open.
            if let Err(e) = self.root.block_on(m.abort()) {
                tracing::warn!(
                    "could not abort the upload of {}: {}; the store may keep its parts until a lifecycle rule removes them",
                    self.root.url_of(&self.rel).display(),
                    super::redact(&e.to_string())
                );
            }
        }
    }
}
