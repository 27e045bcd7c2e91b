//! Export API credentials (X3) and base URLs (X1). Credentials are never printed:
//! `Debug` shows only their kind.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::field::Field;

/// Base URLs of Mixpanel's export API per data residency region (X1).
pub fn region_base_url(region: &str) -> Option<&'static str> {
    match region {
        "us" => Some("https://data.mixpanel.com"),
        "eu" => Some("https://data-eu.mixpanel.com"),
        "in" => Some("https://data-in.mixpanel.com"),
        _ => None,
    }
}

/// Export API credentials (X3). They are never printed: `Debug` shows only the kind.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A service account; requests then need a project id.
    ServiceAccount {
        /// The service account's user name.
        username: String,
        /// Its secret.
        secret: String,
    },
    /// A project's API secret (deprecated by Mixpanel, still accepted).
    ApiSecret(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ServiceAccount { .. } => f.write_str("ServiceAccount(<redacted>)"),
            Credentials::ApiSecret(_) => f.write_str("ApiSecret(<redacted>)"),
        }
    }
}

/// Environment variables (and credentials-file keys) that hold credentials.
pub const ENV_USERNAME: &str = "MIXPANEL_SERVICE_ACCOUNT_USERNAME";
/// See [`ENV_USERNAME`].
pub const ENV_SECRET: &str = "MIXPANEL_SERVICE_ACCOUNT_SECRET";
/// See [`ENV_USERNAME`].
pub const ENV_API_SECRET: &str = "MIXPANEL_API_SECRET";

impl Credentials {
    /// Reads credentials from a lookup of the variables above: a service account when
    /// both of its variables are set, else an API secret.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        match (non_empty(ENV_USERNAME), non_empty(ENV_SECRET)) {
            (Some(username), Some(secret)) => {
                Some(Credentials::ServiceAccount { username, secret })
            }
            _ => non_empty(ENV_API_SECRET).map(Credentials::ApiSecret),
        }
    }

    /// Credentials from the environment.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Credentials from a file of `NAME=value` lines using the environment variable
    /// names (blank lines and `#` comments allowed; values may be quoted).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                Field::CredentialsFile,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let mut values = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                // Never echo the line: it may hold a secret.
                return Err(Error::config(
                    Field::CredentialsFile,
                    format!("{} line {}: expected NAME=value", path.display(), n + 1),
                ));
            };
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            values.insert(k.trim().to_string(), v.to_string());
        }
        Self::from_lookup(|k| values.get(k).cloned()).ok_or_else(|| {
            Error::config(
                Field::CredentialsFile,
                format!(
                    "{} holds neither {ENV_USERNAME} with {ENV_SECRET} nor {ENV_API_SECRET}",
                    path.display()
                ),
            )
        })
    }

    pub(crate) fn basic_auth(&self) -> (&str, &str) {
        match self {
            Credentials::ServiceAccount { username, secret } => (username, secret),
            Credentials::ApiSecret(secret) => (secret, ""),
        }
    }

    pub(crate) fn is_service_account(&self) -> bool {
        matches!(self, Credentials::ServiceAccount { .. })
    }
}
