//! What operators read: `/healthz`, `/metrics` (Prometheus text, P29) and
//! `/openapi.json`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};

use super::{json_ok, openapi_document, Route};
use crate::model::{PipelineState, RunState};
use crate::service::Service;

async fn healthz(State(s): State<Service>) -> Response {
    match s.store().schema_version() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("state store unavailable: {e}\n"),
        )
            .into_response(),
    }
}

/// The counters and gauges of P29, in Prometheus' text format.
pub fn metrics_text(s: &Service) -> Result<String, crate::StoreError> {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        name.to_string()
    };
    let mut lines = Vec::new();
    let runs = s.store().runs_by_state()?;
    let name = family(
        "tidewater_runs",
        "gauge",
        "Runs in the state store, by state.",
    );
    for state in RunState::ALL {
        let n = runs
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        lines.push(format!("{name}{{state=\"{}\"}} {n}", state.as_str()));
    }
    let pipelines = s.store().pipelines(None)?;
    let name2 = family("tidewater_pipelines", "gauge", "Pipelines, by state.");
    for state in [
        PipelineState::Enabled,
        PipelineState::Paused,
        PipelineState::Faulted,
        PipelineState::Canceled,
    ] {
        let n = pipelines.iter().filter(|p| p.state == state).count();
        lines.push(format!("{name2}{{state=\"{}\"}} {n}", state.as_str()));
    }
    out.push_str(&lines.join("\n"));
    out.push('\n');
    let m = s.metrics();
    let counters: [(&str, &str, f64); 6] = [
        (
            "tidewater_windows_committed_total",
            "Windows committed by runs of this server.",
            m.windows_committed.load(Ordering::Relaxed) as f64,
        ),
        (
            "tidewater_events_exported_total",
            "Events in windows committed by this server.",
            m.events_exported.load(Ordering::Relaxed) as f64,
        ),
        (
            "tidewater_bytes_exported_total",
            "Bytes received from the export API.",
            m.bytes_exported.load(Ordering::Relaxed) as f64,
        ),
        (
            "tidewater_rate_limit_wait_seconds_total",
            "Time runs waited for their project's rate budget.",
            m.rate_limit_wait_ms.load(Ordering::Relaxed) as f64 / 1e3,
        ),
        (
            "tidewater_request_retries_total",
            "Export requests retried inside runs.",
            m.request_retries.load(Ordering::Relaxed) as f64,
        ),
        (
            "tidewater_scheduler_retries_total",
            "Failed runs the scheduler ran again.",
            m.scheduler_retries.load(Ordering::Relaxed) as f64,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tidewater_runs_in_progress Runs executing now.\n# TYPE tidewater_runs_in_progress gauge\ntidewater_runs_in_progress {}",
        s.runs_in_progress()
    );
    Ok(out)
}

async fn metrics(State(s): State<Service>) -> Response {
    match metrics_text(&s) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn openapi() -> Response {
    json_ok(StatusCode::OK, &openapi_document())
}

fn healthz_route() -> MethodRouter<Service> {
    get(healthz)
}
fn metrics_route() -> MethodRouter<Service> {
    get(metrics)
}
fn openapi_route() -> MethodRouter<Service> {
    get(openapi)
}

const TAG: &str = "Operations";

pub(super) const HEALTHZ: Route = Route {
    methods: &["GET"],
    path: "/healthz",
    summary: "200 \"ok\" while the server and its state store answer",
    tag: TAG,
    params: &[],
    returns: &[],
    handler: healthz_route,
};
pub(super) const METRICS: Route = Route {
    methods: &["GET"],
    path: "/metrics",
    summary: "Prometheus text: runs by state, pipelines by state, windows committed, events and bytes exported, rate-limit waits, retries",
    tag: TAG,
    params: &[],
    returns: &[],
    handler: metrics_route,
};
pub(super) const OPENAPI: Route = Route {
    methods: &["GET"],
    path: "/openapi.json",
    summary: "This API, as OpenAPI 3.0",
    tag: TAG,
    params: &[],
    returns: &[],
    handler: openapi_route,
};
