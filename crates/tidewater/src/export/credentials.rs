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

    /// The user name and password of the HTTP Basic `Authorization` header (X3).
    pub fn basic_auth(&self) -> (&str, &str) {
        match self {
            Credentials::ServiceAccount { username, secret } => (username, secret),
            Credentials::ApiSecret(secret) => (secret, ""),
        }
    }

    /// `text` with every form these credentials could take in it replaced by
    /// `[redacted]`: as written, JSON-escaped, percent-encoded, hex, base64 (standard or
    /// URL-safe, padded or not) alone or as the `user:secret` of a Basic `Authorization`
    /// header, and any Basic header value at all. For error bodies that a server or
    /// proxy filled with the request's headers.
    pub fn redact(&self, text: &str) -> String {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        use base64::Engine as _;
        let (user, secret) = self.basic_auth();
        let mut values = vec![format!("{user}:{secret}"), secret.to_string()];
        if self.is_service_account() {
            values.push(user.to_string());
        }
        let mut forms = Vec::new();
        for value in values.iter().filter(|v| v.len() >= 4) {
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                forms.push(engine.encode(value));
            }
            forms.push(hex::encode(value));
            forms.push(hex::encode_upper(value));
            forms.push(percent_encoded(value));
            let json = serde_json::to_string(value).expect("strings serialize");
            let json = &json[1..json.len() - 1];
            forms.push(json.replace('/', "\\/")); // JSON may escape `/` too
            forms.push(json.to_string());
            forms.push(value.clone());
        }
        // Longest first, so that no form is left half replaced by a shorter one.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let mut text = redact_basic_headers(text);
        for form in forms.iter().filter(|f| f.len() >= 4) {
            if text.contains(form.as_str()) {
                text = text.replace(form.as_str(), "[redacted]");
            }
        }
        text
    }

    /// Whether these are a service account's (requests then name the project).
    pub fn is_service_account(&self) -> bool {
        matches!(self, Credentials::ServiceAccount { .. })
    }
}

/// Percent-encoding of everything but unreserved characters (RFC 3986).
fn percent_encoded(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces the value after every `Basic ` (any case) that looks like base64.
fn redact_basic_headers(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices("basic ") {
        if at < rest {
            continue;
        }
        let start = at + "basic ".len();
        let len = text[start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(b))
            .count();
        if len >= 4 {
            out.push_str(&text[rest..start]);
            out.push_str("[redacted]");
            rest = start + len;
        }
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn x3_credentials_are_redacted_in_every_encoding() {
        let secret = "s3cret/Tidewater+key=";
        let account = Credentials::ServiceAccount {
            username: "svc.user".into(),
            secret: secret.into(),
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let echoed = [
            format!(
                "authorization: Basic {}",
                b64.encode(format!("svc.user:{secret}"))
            ),
            format!(
                "AUTHORIZATION=basic%20{}",
                b64.encode(format!("svc.user:{secret}"))
            ),
            format!("header was {}", b64.encode(format!("svc.user:{secret}"))),
            format!(
                "url-safe {}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
            ),
            format!("raw {secret} and json \"{}\"", secret.replace('/', "\\/")),
            format!("query secret={}", percent_encoded(secret)),
            format!("hex {}", hex::encode(secret)),
        ];
        for text in &echoed {
            let shown = account.redact(text);
            assert!(
                !shown.contains("s3cret") && !shown.contains("czNjcmV0"),
                "{shown}"
            );
            assert!(!shown.contains(&hex::encode(secret)), "{shown}");
            assert!(
                !shown.contains(&b64.encode(format!("svc.user:{secret}"))),
                "{shown}"
            );
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        let plain = "server answered 400 Bad Request: unknown event";
        assert_eq!(account.redact(plain), plain);
    }
}
