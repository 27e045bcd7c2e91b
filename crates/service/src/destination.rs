//! Object-storage destinations (P32): the Mixpanel parameters of the S3, GCS and Azure
//! types checked into a [`Bucket`], the store a run writes to, and the test write and
//! delete at create that turns a wrong bucket into a 400 instead of a failed run.
//!
//! Credentials: S3 and GCS use the server's own (the `AWS_*` and `GOOGLE_*` variables,
//! an instance role, web identity), as Mixpanel uses its own identity and a role the
//! bucket trusts; `s3_role` (assuming a role) is refused with a 400 until it is served.
//! Azure takes the pipeline's service principal (`client_id`, `client_secret`,
//! `tenant_id`, the secret sealed at rest per P40) or, without one, the server's
//! `AZURE_*` variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tidewater::ObjectTarget;

use crate::model::DestinationType;
use crate::rules::Invalid;

/// Server-side encryption of S3 objects (`s3_encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum S3Encryption {
    /// The bucket's default.
    None,
    /// SSE-S3 (AES-256).
    Aes,
    /// SSE-KMS with `s3_kms_key_id`.
    Kms,
}

/// Where an object-storage pipeline writes: `<prefix>/<project_id>/` in a bucket or
/// container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// `s3`, `gs` or `az`.
    pub scheme: String,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The key prefix ("" for none).
    pub prefix: String,
    /// `s3_region` / `gcs_region`.
    pub region: Option<String>,
    /// `s3_encryption`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<S3Encryption>,
    /// `s3_kms_key_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `storage_account` (Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<String>,
    /// `client_id`, `tenant_id` (Azure service principal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// `client_secret`: plain text between the request and the seal, sealed (P40) in
    /// the store; never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl Bucket {
    /// The destination as a URL, for messages and views (no credentials).
    pub fn url(&self) -> String {
        let mut url = format!("{}://{}", self.scheme, self.bucket);
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        url
    }
}

/// The S3 types' parameters, as Mixpanel names them.
const S3_PARAMS: &[&str] = &[
    "s3_bucket",
    "s3_region",
    "s3_prefix",
    "s3_encryption",
    "s3_kms_key_id",
    "s3_role",
    "use_glue",
];

/// The GCS types' parameters.
const GCS_PARAMS: &[&str] = &["gcs_bucket", "gcs_prefix", "gcs_region"];

/// The Azure types' parameters.
const AZURE_PARAMS: &[&str] = &[
    "storage_account",
    "container_name",
    "prefix",
    "client_id",
    "client_secret",
    "tenant_id",
];

/// Parameters of Mixpanel features this server does not serve (Glue, the warehouse
/// types): known, so that such a create is refused for what it asks, not for an
/// unknown parameter.
const UNSERVED_PARAMS: &[&str] = &[
    "glue_database",
    "glue_role",
    "glue_table_prefix",
    "bq_region",
    "bq_prefix",
    "gcp_project",
    "bq_dataset_name",
];

/// Every destination parameter a create may carry besides `path`.
pub fn params() -> impl Iterator<Item = &'static str> {
    [S3_PARAMS, GCS_PARAMS, AZURE_PARAMS, UNSERVED_PARAMS]
        .into_iter()
        .flatten()
        .copied()
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// The parameters of `kind` checked into a bucket (`None` for the local types).
pub fn bucket_of(
    kind: DestinationType,
    params: &BTreeMap<String, String>,
) -> Result<Option<Bucket>, Invalid> {
    use DestinationType::*;
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let required = |field: &'static str, what: &str| {
        get(field).ok_or_else(|| {
            invalid(
                field,
                format!("is required for type {}: {what}", kind.as_str()),
            )
        })
    };
    let own = |names: &[&str]| -> Result<(), Invalid> {
        for k in params.keys() {
            if !names.contains(&k.as_str()) {
                return Err(Invalid {
                    field: "type",
                    message: format!("{} takes no parameter {k}", kind.as_str()),
                });
            }
        }
        Ok(())
    };
    let prefix = |name: &str| get(name).unwrap_or("").trim_matches('/').to_string();
    Ok(Some(match kind {
        Local | LocalRaw | Bigquery | Snowflake => {
            own(&[])?;
            return Ok(None);
        }
        S3Raw | Aws => {
            own(S3_PARAMS)?;
            if get("s3_role").is_some() {
                return Err(invalid(
                    "s3_role",
                    "is not supported by this server: it writes with its own AWS credentials \
                     (environment, instance role or web identity); grant those access to the bucket and leave s3_role out",
                ));
            }
            if get("use_glue").is_some_and(|v| v != "false") {
                return Err(invalid(
                    "use_glue",
                    "is not supported by this server; leave it out",
                ));
            }
            let bucket = required("s3_bucket", "the bucket to write to")?;
            check_bucket_name("s3_bucket", bucket)?;
            let region = required("s3_region", "the bucket's region, e.g. us-east-1")?;
            let encryption = match get("s3_encryption") {
                None | Some("none") => S3Encryption::None,
                Some("aes") => S3Encryption::Aes,
                Some("kms") => S3Encryption::Kms,
                Some(other) => {
                    return Err(invalid(
                        "s3_encryption",
                        format!("{other:?} is not one of none, aes, kms"),
                    ))
                }
            };
            let kms_key_id = get("s3_kms_key_id").map(str::to_string);
            match (encryption, &kms_key_id) {
                (S3Encryption::Kms, None) => {
                    return Err(invalid(
                        "s3_kms_key_id",
                        "is required with s3_encryption=kms",
                    ))
                }
                (S3Encryption::None | S3Encryption::Aes, Some(_)) => {
                    return Err(invalid("s3_kms_key_id", "is only for s3_encryption=kms"))
                }
                _ => {}
            }
            Bucket {
                scheme: "s3".into(),
                bucket: bucket.into(),
                prefix: prefix("s3_prefix"),
                region: Some(region.into()),
                encryption: Some(encryption),
                kms_key_id,
                storage_account: None,
                client_id: None,
                tenant_id: None,
                client_secret: None,
            }
        }
        GcsRaw | GcsSchema => {
            own(GCS_PARAMS)?;
            let bucket = required("gcs_bucket", "the bucket to write to")?;
            check_bucket_name("gcs_bucket", bucket)?;
            Bucket {
                scheme: "gs".into(),
                bucket: bucket.into(),
                prefix: prefix("gcs_prefix"),
                region: get("gcs_region").map(str::to_string),
                encryption: None,
                kms_key_id: None,
                storage_account: None,
                client_id: None,
                tenant_id: None,
                client_secret: None,
            }
        }
        AzureRaw | AzureBlob => {
            own(AZURE_PARAMS)?;
            let account = required("storage_account", "the storage account's name")?;
            if !(3..=24).contains(&account.len())
                || !account
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(invalid(
                    "storage_account",
                    format!("{account:?} is not a storage account name (3-24 lowercase letters and digits)"),
                ));
            }
            let container = required("container_name", "the container to write to")?;
            check_bucket_name("container_name", container)?;
            let principal = [get("client_id"), get("client_secret"), get("tenant_id")];
            if principal.iter().any(Option::is_some) && !principal.iter().all(Option::is_some) {
                return Err(invalid(
                    "client_id",
                    "client_id, client_secret and tenant_id go together (a service principal); give all three, or none to use the server's Azure credentials",
                ));
            }
            Bucket {
                scheme: "az".into(),
                bucket: container.into(),
                prefix: prefix("prefix"),
                region: None,
                encryption: None,
                kms_key_id: None,
                storage_account: Some(account.into()),
                client_id: get("client_id").map(str::to_string),
                tenant_id: get("tenant_id").map(str::to_string),
                client_secret: get("client_secret").map(str::to_string),
            }
        }
    }))
}

/// S3, GCS and Azure share the shape of a bucket or container name: 3-63 characters,
/// lowercase letters, digits, dots and hyphens, starting and ending with a letter or
/// digit.
fn check_bucket_name(field: &'static str, name: &str) -> Result<(), Invalid> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{name:?} is not a bucket name (3-63 lowercase letters, digits, dots and hyphens)"
            ),
        ))
    }
}

/// The store `bucket` names, configured from the server's environment and the
/// pipeline's own parameters; `client_secret` is the unsealed secret.
pub fn target(bucket: &Bucket, client_secret: Option<&str>) -> Result<ObjectTarget, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store: Arc<dyn ObjectStore> = match bucket.scheme.as_str() {
        "s3" => {
            let mut b =
                object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket.bucket);
            if let Some(r) = &bucket.region {
                b = b.with_region(r);
            }
            b = match (bucket.encryption, &bucket.kms_key_id) {
                (Some(S3Encryption::Kms), Some(key)) => b.with_sse_kms_encryption(key),
                (Some(S3Encryption::Aes), _) => b.with_config(
                    "aws_server_side_encryption".parse().expect("a known key"),
                    "AES256",
                ),
                _ => b,
            };
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket.bucket)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "az" => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&bucket.bucket);
            if let Some(account) = &bucket.storage_account {
                b = b.with_account(account);
            }
            if let (Some(id), Some(secret), Some(tenant)) =
                (&bucket.client_id, client_secret, &bucket.tenant_id)
            {
                b = b.with_client_secret_authorization(id, secret, tenant);
            }
            Arc::new(b.build().map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unknown object store scheme {other}")),
    };
    let base = bucket
        .prefix
        .split('/')
        .filter(|p| !p.is_empty())
        .fold(Key::default(), |k, p| k.join(p));
    Ok(ObjectTarget::new(store, bucket.url(), base))
}

/// Writes and deletes a small object under the pipeline's root, so that a missing
/// bucket or refused credentials are a 400 at create.
pub async fn check(target: &ObjectTarget, project: u64, url: &str) -> Result<(), String> {
    let key = target
        .base()
        .clone()
        .join(project.to_string())
        .join(".tidewater")
        .join("create-check");
    let store = target.store();
    let put = store.put(&key, PutPayload::from_static(b"tidewater")).await;
    let result = match put {
        Ok(_) => store.delete(&key).await,
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        format!(
            "cannot write to {url}/{project}/: {}",
            tidewater::redact_store_error(&e.to_string())
        )
    })
}
