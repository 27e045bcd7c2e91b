//! Who is calling: HTTP Basic with Mixpanel credentials for the Mixpanel-compatible
//! API (P26), a bearer API key for the REST API (P28).

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tidewater::export::Credentials;

use crate::ops::ApiError;
use crate::service::Service;
use crate::store::ApiKeyGrant;
use crate::ApiKeys;

/// The Mixpanel credentials of a request: a service account `user:secret`, or an API
/// secret as the user name with an empty password (P26).
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Result<Credentials, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "authenticate with HTTP Basic: a service account (user:secret, with project_id) \
             or the project's API secret as the user name"
                .into(),
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(missing)?;
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the Basic credentials are not valid base64 of user:password".into(),
            )
        })?;
    let (user, secret) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
    if user.is_empty() {
        return Err(missing());
    }
    Ok(if secret.is_empty() {
        Credentials::ApiSecret(user.to_string())
    } else {
        Credentials::ServiceAccount {
            username: user.to_string(),
            secret: secret.to_string(),
        }
    })
}

/// The grant of the request's bearer key (401 when missing or unknown).
pub(crate) fn bearer_grant(
    service: &Service,
    headers: &HeaderMap,
) -> Result<ApiKeyGrant, ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "send an API key as 'Authorization: Bearer <key>' (make one with \
                 `tidewater serve keys create`)"
                    .into(),
            )
        })?;
    ApiKeys::new(service.store().clone())
        .verify(key.trim())?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API key".into()))
}

/// 403 unless `grant` may reach `project`.
pub(crate) fn allow(grant: &ApiKeyGrant, project: u64) -> Result<(), ApiError> {
    if grant.allows(project) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "API key {:?} may not reach project {project}",
            grant.label
        )))
    }
}
