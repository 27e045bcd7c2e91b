//! `--out` URLs (`s3://`, `gs://`, `az://`, `abfs[s]://`, `file://`) and the stores they
//! name, configured from each cloud's usual environment variables.

use std::sync::Arc;

use object_store::multipart::MultipartStore;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreScheme, RetryConfig};

use super::{DEFAULT_RETRIES, DEFAULT_RETRY_TIMEOUT};
use crate::error::{Error, Result};
use crate::field::Field;

/// The URL schemes `--out` takes for object storage.
const SCHEMES: [&str; 7] = ["s3", "s3a", "gs", "az", "abfs", "abfss", "file"];

/// Whether `out` is an object-storage URL rather than a local path.
pub fn is_url(out: &str) -> bool {
    out.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// An object store and the key prefix of an output under it: what `--out URL` names,
/// or what a library caller hands over ready made.
#[derive(Clone)]
pub struct ObjectTarget {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The same store's uploads by id, when it has them (S3, GCS, Azure).
    pub(crate) multipart: Option<Arc<dyn MultipartStore>>,
    /// The output's URL, for messages (`s3://bucket/prefix`).
    pub(crate) url: String,
    pub(crate) base: Key,
}

impl std::fmt::Debug for ObjectTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the store: some stores' Debug shows their credentials.
        f.debug_struct("ObjectTarget")
            .field("url", &self.url)
            .finish()
    }
}

impl ObjectTarget {
    /// A ready store: output goes below `base` in it; `url` names it in messages.
    pub fn new(store: Arc<dyn ObjectStore>, url: impl Into<String>, base: Key) -> Self {
        ObjectTarget {
            store,
            multipart: None,
            url: url.into(),
            base,
        }
    }

    /// Uploads data files through `multipart`, the same store's multipart API (the
    /// cloud stores implement it): each upload's id is then written down under the
    /// root's `.tidewater/uploads/` while it is open, so that the next run aborts the
    /// uploads of a run that was killed. Without it, such uploads stay until the
    /// bucket's lifecycle rule removes them.
    pub fn with_multipart_store(mut self, multipart: Arc<dyn MultipartStore>) -> Self {
        self.multipart = Some(multipart);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix of the output in the store.
    pub fn base(&self) -> &Key {
        &self.base
    }

    /// The store a URL names, configured from the environment: `AWS_*` for `s3://`,
    /// `GOOGLE_*` for `gs://`, `AZURE_*` for `az://` and `abfs[s]://` (including
    /// custom endpoints and `AWS_ALLOW_HTTP`/`AZURE_STORAGE_USE_EMULATOR` for
    /// emulators). Credentials never come from the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_retrying(url, DEFAULT_RETRIES)
    }

    /// [`ObjectTarget::from_url`], with a request retried at most `retries` times
    /// (timeouts, 5xx, throttling; with exponential backoff) before the run fails.
    pub fn from_url_retrying(url: &str, retries: usize) -> Result<Self> {
        // reqwest's rustls takes its crypto from the process default (as the export
        // client does).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |message: String| Error::config(Field::Out, message);
        let parsed = ::url::Url::parse(url).map_err(|e| bad(format!("{url} is not a URL: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(format!(
                "{} carries credentials; give them in the environment (AWS_*, GOOGLE_*, AZURE_*) instead",
                parsed.scheme()
            )));
        }
        let (scheme, base) = ObjectStoreScheme::parse(&parsed)
            .map_err(|e| bad(format!("{url} names no object store Tidewater knows: {e}")))?;
        let retry = RetryConfig {
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            max_retries: retries,
            ..Default::default()
        };
        let built: object_store::Result<Built> = match scheme {
            ObjectStoreScheme::AmazonS3 => object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .with_retry(retry)
                .build()
                .map(cloud),
            ObjectStoreScheme::GoogleCloudStorage => {
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()
                    .map(cloud)
            }
            ObjectStoreScheme::MicrosoftAzure => {
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()
                    .map(cloud)
            }
            ObjectStoreScheme::Local => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad(format!("{url} is not a local path")))?;
                std::fs::create_dir_all(&dir).map_err(|e| Error::output_root(&dir, e))?;
                object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map(|s| (Arc::new(s) as _, None))
            }
            _ => {
                return Err(bad(format!(
                    "{url}: use s3://, gs://, az://, abfs[s]:// or file://"
                )))
            }
        };
        let (store, multipart) = built.map_err(|e| {
            bad(format!(
                "cannot use {url}: {}",
                super::redact(&e.to_string())
            ))
        })?;
        let base = match scheme {
            ObjectStoreScheme::Local => Key::default(),
            _ => base,
        };
        let target = ObjectTarget::new(store, url.trim_end_matches('/'), base);
        Ok(match multipart {
            Some(m) => target.with_multipart_store(m),
            None => target,
        })
    }
}

/// A store made from a URL, and its multipart API if it has one.
type Built = (Arc<dyn ObjectStore>, Option<Arc<dyn MultipartStore>>);

fn cloud<S: ObjectStore + MultipartStore>(store: S) -> Built {
    let store = Arc::new(store);
    (store.clone(), Some(store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in [
            "s3://b/p",
            "gs://b",
            "az://c/p",
            "abfss://c@a.dfs.core.windows.net/p",
            "file:///tmp/x",
            "S3://b",
        ] {
            assert!(is_url(url), "{url}");
        }
        for path in [
            "out",
            "/tmp/out",
            "./s3:/x",
            "C:\\out",
            "http://example.com/x",
        ] {
            assert!(!is_url(path), "{path}");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let e = ObjectTarget::from_url("s3://KEY:SECRET@bucket/p")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET") && !e.contains("KEY"), "{e}");
        assert!(e.contains("environment"), "{e}");
    }

    #[test]
    fn a_file_url_is_a_store_rooted_at_its_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}/out", tmp.path().display());
        let t = ObjectTarget::from_url(&url).unwrap();
        assert!(tmp.path().join("out").is_dir());
        assert_eq!(t.base.as_ref(), "");
        assert_eq!(format!("{t:?}"), format!("ObjectTarget {{ url: {url:?} }}"));
    }
}
