//! Object storage as an output root: S3, Google Cloud Storage, Azure Blob and the local
//! file system behind `object_store` (one code path for all of them).
//!
//! The engine is synchronous (rayon workers, a driver thread); the stores are async.
//! An [`ObjectRoot`] owns a small tokio runtime and blocks on it for each request, so
//! callers never need one. Staging (spills, downloads, the rejects being written) stays
//! on local disk in a scratch folder; the data files go straight from the encoder into
//! uploads ([`upload`]), windows are committed by the order of their objects
//! ([`windows`]), and the output root is held with a lease ([`lease`]).

mod lease;
mod upload;
mod url;
mod windows;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub(crate) use lease::LeaseLock;
pub(crate) use upload::{abort_left_uploads, Upload};
pub use url::{is_url, ObjectTarget};
pub(crate) use windows::ObjectWindows;

use crate::error::{Error, Result};

/// An output root on an object store: the store, the key prefix of the root, and the
/// runtime its requests run on.
pub(crate) struct ObjectRoot {
    store: Arc<dyn ObjectStore>,
    /// The store's uploads by id, if it has them: open ones are written down so that
    /// a killed run's are aborted by the next ([`upload`]).
    multipart: Option<Arc<dyn MultipartStore>>,
    /// The root's key prefix (the URL's path, then `--prefix` and the project id).
    base: Key,
    /// The root as a URL, for messages: `s3://bucket/prefix` (never credentials).
    url: String,
    runtime: tokio::runtime::Runtime,
    /// A local folder for what is staged before it is uploaded.
    scratch: tempfile::TempDir,
    /// The slots that the parts of all uploads to this root share ([`upload`]).
    part_slots: Arc<tokio::sync::Semaphore>,
    /// Their buffers, used again.
    part_buffers: Arc<upload::PartBuffers>,
}

impl std::fmt::Debug for ObjectRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the store: some stores' Debug shows their credentials.
        f.debug_struct("ObjectRoot")
            .field("url", &self.url)
            .finish()
    }
}

impl ObjectRoot {
    /// The root `target`/`below` (below: the run's prefix and project id folders).
    pub(crate) fn open(target: &ObjectTarget, below: &[String]) -> Result<ObjectRoot> {
        let mut base = target.base.clone();
        let mut url = target.url.trim_end_matches('/').to_string();
        for part in below {
            base = base.join(part.as_str());
            url.push('/');
            url.push_str(part);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidewater-store")
            .enable_all()
            .build()
            .map_err(|e| Error::resource("the object store runtime", e))?;
        let scratch = tempfile::Builder::new()
            .prefix("tidewater-staging-")
            .tempdir()
            .map_err(|e| Error::resource("a local staging folder", e))?;
        Ok(ObjectRoot {
            store: target.store.clone(),
            multipart: target.multipart.clone(),
            base,
            url,
            runtime,
            scratch,
            part_slots: Arc::new(tokio::sync::Semaphore::new(upload::PARTS_IN_FLIGHT)),
            part_buffers: Arc::default(),
        })
    }

    /// The key of `rel` (a `/`-separated path below the root).
    pub(crate) fn key(&self, rel: &str) -> Key {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.base.clone(), |k, p| k.join(p))
    }

    /// `rel` as a URL, for messages.
    pub(crate) fn url_of(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("{}/{rel}", self.url))
    }

    /// The root as a URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The local folder for staging.
    pub(crate) fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Runs a store request to its end. Never called from inside the runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The object `rel`, or `None` when there is none.
    pub(crate) fn read(&self, rel: &str) -> Result<Option<Bytes>> {
        let key = self.key(rel);
        self.block_on(async {
            match self.store.get(&key).await {
                Ok(got) => got.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.error(rel, e))
    }

    /// Writes the object `rel` whole (a put is atomic: readers see the old object or
    /// the new one).
    pub(crate) fn write(&self, rel: &str, bytes: impl Into<Bytes>) -> Result<()> {
        self.put(rel, bytes.into(), PutMode::Overwrite).map(|_| ())
    }

    /// A put with a precondition; the store's answer as it is.
    pub(crate) fn put(
        &self,
        rel: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<object_store::PutResult> {
        let key = self.key(rel);
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        self.block_on(self.store.put_opts(&key, PutPayload::from(bytes), opts))
            .map_err(|e| self.error(rel, e))
    }

    /// Deletes `rel`; an object already gone is not an error.
    pub(crate) fn delete(&self, rel: &str) -> Result<()> {
        let key = self.key(rel);
        match self.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(rel, e)),
        }
    }

    /// Every object below `rel` (recursively), as paths relative to the root.
    pub(crate) fn list(&self, rel: &str) -> Result<Vec<String>> {
        let prefix = self.key(rel);
        let base_parts = self.base.parts().count();
        self.block_on(async {
            self.store
                .list(Some(&prefix))
                .map_ok(|meta| {
                    meta.location
                        .parts()
                        .skip(base_parts)
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .try_collect::<Vec<String>>()
                .await
        })
        .map_err(|e| self.error(rel, e))
    }

    /// A store error on `rel` as an output error that names the object and says what to
    /// check for the errors retrying cannot fix.
    pub(crate) fn error(&self, rel: &str, e: object_store::Error) -> Error {
        Error::output(self.url_of(rel), store_io_error(&e))
    }
}

/// An `object_store` error as an I/O error whose message says what to check, with any
/// URL query (a SAS token, a signature) cut out.
pub(crate) fn store_io_error(e: &object_store::Error) -> std::io::Error {
    use std::io::ErrorKind;
    let (kind, hint) = match e {
        object_store::Error::NotFound { .. } => (
            ErrorKind::NotFound,
            "; check that the bucket or container exists and the URL names it",
        ),
        object_store::Error::PermissionDenied { .. } => (
            ErrorKind::PermissionDenied,
            "; check that the credentials may write there",
        ),
        object_store::Error::Unauthenticated { .. } => (
            ErrorKind::PermissionDenied,
            "; check the store's credentials in the environment (AWS_*, GOOGLE_*, AZURE_*)",
        ),
        // A conditional put that found the object there (or changed): the lease and
        // create-if-absent commits tell these apart by kind.
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            (ErrorKind::AlreadyExists, "")
        }
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => (
            ErrorKind::Unsupported,
            "; the output's lock and commits need conditional puts, which this store does not offer",
        ),
        _ => (ErrorKind::Other, ""),
    };
    std::io::Error::new(kind, format!("{}{hint}", redact(&e.to_string())))
}

/// `text` with the query of every URL in it removed: a query may carry a SAS token or
/// a signature.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("http") {
        let (before, url) = rest.split_at(at);
        out.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"' || c == '\'')
            .unwrap_or(url.len());
        let (whole, after) = url.split_at(end);
        match whole.split_once('?') {
            Some((plain, _)) if whole.starts_with("http://") || whole.starts_with("https://") => {
                out.push_str(plain);
                out.push_str("?…");
            }
            _ => out.push_str(whole),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// How long a store request keeps being retried (timeouts, 5xx, throttling) before the
/// run fails: `object_store`'s own retry loop, with its exponential backoff.
pub(crate) const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(180);

/// Retries of one store request before the run fails.
pub const DEFAULT_RETRIES: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_queries_are_cut_from_messages() {
        let msg = "error sending request for url (https://acct.blob.core.windows.net/c/k?sig=SECRET&se=1): timed out";
        let clean = redact(msg);
        assert!(!clean.contains("SECRET"), "{clean}");
        assert!(
            clean.contains("https://acct.blob.core.windows.net/c/k?…)"),
            "{clean}"
        );
        assert_eq!(redact("no url here"), "no url here");
        assert_eq!(redact("see http://h/p"), "see http://h/p");
    }

    #[test]
    fn keys_are_below_the_root() {
        let target = ObjectTarget::new(
            Arc::new(object_store::memory::InMemory::new()),
            "memory:///base",
            Key::from("base"),
        );
        let root = ObjectRoot::open(&target, &["pre".into(), "42".into()]).unwrap();
        assert_eq!(
            root.key("t/2024/01/02/_complete").as_ref(),
            "base/pre/42/t/2024/01/02/_complete"
        );
        assert_eq!(root.url(), "memory:///base/pre/42");
        root.write("a/b", Bytes::from_static(b"x")).unwrap();
        assert_eq!(root.list("a").unwrap(), vec!["a/b".to_string()]);
        assert_eq!(root.read("a/b").unwrap().unwrap(), Bytes::from_static(b"x"));
        assert!(root.read("a/c").unwrap().is_none());
        root.delete("a/b").unwrap();
        root.delete("a/b").unwrap();
        assert!(root.list("a").unwrap().is_empty());
    }
}
