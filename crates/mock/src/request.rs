//! An export request as the server checks it: parameters (X2, XM2) and error bodies.

use std::collections::HashMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::civil::Date;
use tidewater::EventFilter;

use crate::config::{MockAuth, MockConfig};

/// A JSON error body as the API sends it (`{"request": ..., "error": ...}`).
pub(crate) fn json_error(status: StatusCode, request: &str, message: &str) -> Response {
    let body = serde_json::json!({"request": request, "error": message}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Parsed and validated query parameters (X2, XM2).
pub(crate) struct ExportQuery {
    pub(crate) from: Date,
    pub(crate) to: Date,
    pub(crate) filter: EventFilter,
    pub(crate) limit: Option<u64>,
    pub(crate) time_in_ms: bool,
}

/// The request's `project_id` against the server's project (a service account must
/// name one).
pub(crate) fn check_project(
    config: &MockConfig,
    q: &HashMap<String, String>,
) -> std::result::Result<(), String> {
    if let (Some(p), Some(mine)) = (q.get("project_id"), config.project_id) {
        if p.parse::<u64>().ok() != Some(mine) {
            return Err(format!(
                "project {p} is not accessible with these credentials"
            ));
        }
    } else if matches!(config.auth, MockAuth::ServiceAccount { .. })
        && q.get("project_id").is_none()
    {
        return Err("'project_id' is required when authenticating with a service account".into());
    }
    Ok(())
}

pub(crate) fn validate(
    config: &MockConfig,
    today: Option<Date>,
    q: &HashMap<String, String>,
) -> std::result::Result<ExportQuery, String> {
    let date = |name: &str| -> std::result::Result<Date, String> {
        let v = q
            .get(name)
            .ok_or_else(|| format!("'{name}' is a required parameter"))?;
        if v.len() != 10 {
            return Err(format!(
                "'{name}' is not a valid date: {v:?} (expected YYYY-MM-DD)"
            ));
        }
        Date::strptime("%Y-%m-%d", v)
            .map_err(|_| format!("'{name}' is not a valid date: {v:?} (expected YYYY-MM-DD)"))
    };
    let from = date("from_date")?;
    let to = date("to_date")?;
    if from > to {
        return Err("'from_date' cannot be after 'to_date'".into());
    }
    let today = match today {
        Some(d) => d,
        None => jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::get(&config.tz).unwrap_or(jiff::tz::TimeZone::UTC))
            .date(),
    };
    if to > today {
        return Err("to_date cannot be later than today".into());
    }
    let limit = match q.get("limit") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| {
                    format!("'limit' must be an integer between 1 and 100000, got {v:?}")
                })?,
        ),
    };
    let events: Vec<String> = match q.get("event") {
        None => Vec::new(),
        Some(v) => serde_json::from_str(v)
            .map_err(|_| format!("'event' must be a JSON array of strings, got {v:?}"))?,
    };
    let time_in_ms = match q.get("time_in_ms").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(format!("'time_in_ms' must be true or false, got {v:?}")),
    };
    check_project(config, q)?;
    let mut filter = EventFilter::new(&events);
    if let Some(expr) = q.get("where").filter(|w| !w.is_empty()) {
        let ctx = tidewater_where::Context::new(&config.tz)?;
        let program =
            tidewater_where::compile(expr, ctx).map_err(|e| format!("invalid 'where': {e}"))?;
        filter = filter.with_where(program);
    }
    Ok(ExportQuery {
        from,
        to,
        filter,
        limit,
        time_in_ms,
    })
}
