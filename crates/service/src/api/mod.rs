//! The HTTP side of the service: Mixpanel's Data Pipelines API (`nessie`, P22–P27),
//! the REST API (`/v1`, P28–P29), and what operators read (`/healthz`, `/metrics`,
//! `/openapi.json`). Every route is in [`ROUTES`], from which both the router and
//! the OpenAPI document are made.

mod auth;
mod nessie;
mod openapi;
mod ops;
mod params;
mod rest;
mod view;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::ops::ApiError;
use crate::service::Service;

pub use openapi::openapi_document;

/// The largest request body accepted (a create form is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One route: its method(s), path, what it does, and its handler.
pub(crate) struct Route {
    pub methods: &'static [&'static str],
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Parameters (query or form; for `/v1`, JSON body fields) and what they mean.
    pub params: &'static [(&'static str, &'static str)],
    /// What a method answers with, by method: a schema of `/openapi.json`
    /// (`openapi::SCHEMAS`), made from the code that renders it.
    pub returns: &'static [(&'static str, &'static str)],
    pub handler: fn() -> MethodRouter<Service>,
}

/// Every route of the service.
pub(crate) static ROUTES: &[Route] = &[
    nessie::CREATE,
    nessie::EDIT,
    nessie::CANCEL,
    nessie::PAUSE,
    nessie::RESUME,
    nessie::STATUS,
    nessie::JOBS,
    nessie::TIMELINE,
    rest::PIPELINES,
    rest::PIPELINE,
    rest::PIPELINE_STATUS_PUT,
    rest::PIPELINE_SCHEDULE,
    rest::PIPELINE_RUNS,
    rest::RUNS,
    rest::RUN,
    ops::HEALTHZ,
    ops::METRICS,
    ops::OPENAPI,
];

/// The service's HTTP API.
pub fn router(service: Service) -> axum::Router {
    let mut router = axum::Router::new();
    for route in ROUTES {
        router = router.route(route.path, (route.handler)());
    }
    router
        .fallback(|| async {
            error_response(
                StatusCode::NOT_FOUND,
                "no such endpoint; GET /openapi.json lists them all",
                false,
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(service)
}

/// An error as JSON: `{"error": ...}`, and for Mixpanel's API also
/// `"status": "error"` (P25, P29).
pub(crate) fn error_response(status: StatusCode, message: &str, nessie: bool) -> Response {
    let body = if nessie {
        serde_json::json!({"error": message, "status": "error"})
    } else {
        serde_json::json!({ "error": message })
    };
    let mut response = (status, json_body(&body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static(if nessie {
                "Basic realm=\"tidewater\""
            } else {
                "Bearer"
            }),
        );
    }
    response
}

pub(crate) fn api_error(e: &ApiError, nessie: bool) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_response(status, &e.to_string(), nessie)
}

pub(crate) fn json_body(
    value: &serde_json::Value,
) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

pub(crate) fn json_ok(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, json_body(value)).into_response()
}

/// The request body, or why it cannot be read (too large: 413, as JSON).
pub(crate) fn body_of(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            ))
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })
}
