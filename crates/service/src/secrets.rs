//! Secrets at rest (P40): Mixpanel and destination credentials are sealed with an AEAD
//! (XChaCha20-Poly1305) under a key from the environment before they reach the state
//! store, bound to what they belong to, and compared in constant time. The key never
//! goes into the store: a sealed marker there proves, at start, that the key given is
//! the one the secrets were sealed with.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// The environment variable that holds the key: 32 bytes, base64 (URL-safe or
/// standard, padded or not).
pub const KEY_ENV: &str = "TIDEWATER_SECRET_KEY";

/// The prefix of a sealed secret, with the format's version.
const SEALED_PREFIX: &str = "v1.";

/// Why a secret cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The key is not 32 bytes of base64.
    #[error(
        "{KEY_ENV} must be 32 bytes in base64 (make one with `head -c 32 /dev/urandom | base64`)"
    )]
    BadKey,
    /// The sealed text does not open with this key (another key, or altered).
    #[error("a stored secret does not open with the key in {KEY_ENV}: the key is not the one the secrets were sealed with, or the state file was altered")]
    WrongKey,
    /// The operating system gave no random bytes.
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

/// Seals and opens secrets under one key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key redacted>)")
    }
}

impl SecretBox {
    /// The key in [`KEY_ENV`], or `None` when it is not set.
    pub fn from_env() -> Result<Option<SecretBox>, SecretError> {
        match std::env::var(KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => SecretBox::from_key_text(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// A key given as base64 text.
    pub fn from_key_text(text: &str) -> Result<SecretBox, SecretError> {
        let text = text.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| SecretError::BadKey)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SecretError::BadKey)?;
        Ok(SecretBox { cipher })
    }

    /// A new random key, as base64 text for [`KEY_ENV`].
    pub fn generate_key_text() -> Result<String, SecretError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(URL_SAFE_NO_PAD.encode(key))
    }

    /// Seals `secret` for `context` (what it belongs to, e.g. `pipeline:12:mixpanel`):
    /// it opens only with the same key and context, so a sealed value moved to another
    /// row of the store does not open there.
    pub fn seal(&self, secret: &[u8], context: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::WrongKey)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Opens what [`SecretBox::seal`] sealed for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > 24)
            .ok_or(SecretError::WrongKey)?;
        let (nonce, ciphertext) = bytes.split_at(24);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::WrongKey)
    }
}

/// Whether two secrets are equal, in time that depends on neither: their SHA-256
/// digests are compared without an early exit (P40, P26: credentials presented to the
/// API against the stored ones).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretBox {
        SecretBox::from_key_text(&SecretBox::generate_key_text().unwrap()).unwrap()
    }

    #[test]
    fn p40_sealed_secrets_open_only_with_their_key_and_context() {
        let (k, other) = (key(), key());
        let sealed = k
            .seal(b"svc-user:s3cret-value", "pipeline:1:mixpanel")
            .unwrap();
        assert!(!sealed.contains("s3cret"));
        assert_ne!(
            sealed,
            k.seal(b"svc-user:s3cret-value", "pipeline:1:mixpanel")
                .unwrap(),
            "fresh nonce"
        );
        assert_eq!(
            k.open(&sealed, "pipeline:1:mixpanel").unwrap(),
            b"svc-user:s3cret-value"
        );
        assert!(matches!(
            other.open(&sealed, "pipeline:1:mixpanel"),
            Err(SecretError::WrongKey)
        ));
        assert!(
            k.open(&sealed, "pipeline:2:mixpanel").is_err(),
            "moved to another row"
        );
        let mut altered = sealed.clone();
        altered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(k.open(&altered, "pipeline:1:mixpanel").is_err());
        assert!(k.open("v1.short", "pipeline:1:mixpanel").is_err());
        assert_eq!(format!("{k:?}"), "SecretBox(<key redacted>)");
    }

    #[test]
    fn p40_keys_are_32_bytes_of_base64() {
        let text = SecretBox::generate_key_text().unwrap();
        assert!(SecretBox::from_key_text(&text).is_ok());
        let standard = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(
            SecretBox::from_key_text(&standard).is_ok(),
            "padded standard base64"
        );
        assert!(matches!(
            SecretBox::from_key_text("c2hvcnQ"),
            Err(SecretError::BadKey)
        ));
        assert!(matches!(
            SecretBox::from_key_text("not base64!"),
            Err(SecretError::BadKey)
        ));
    }

    #[test]
    fn p26_secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
