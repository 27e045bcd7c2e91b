//! Mixpanel's Data Pipelines API (P22–P27): the same paths, form parameters, JSON
//! shapes and error bodies as `data.mixpanel.com/api/2.0/nessie/pipeline/*`, so that
//! a script written for Mixpanel works by changing the host.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use serde_json::{json, Value};

use super::auth::basic_credentials;
use super::params::Params;
use super::view::{go_time, local_with_zone, project_zone, rfc3339};
use super::{api_error, body_of, json_ok, Route};
use crate::model::{Pipeline, RunState};
use crate::ops::ApiError;
use crate::rules::CreateRequest;
use crate::schedule::day_start;
use crate::service::Service;
use crate::store::RunFilter;

const CREATE_PARAMS: &[(&str, &str)] = &[
    ("project_id", "the project (required by this server)"),
    ("type", "local (a folder on the server), local-raw, s3-raw, aws, gcs-raw, gcs-schema, azure-raw or azure-blob; bigquery and snowflake are refused until supported"),
    ("trial", "true: a 30-day daily trial from yesterday"),
    ("data_source", "events (default) or people (profiles, a daily full snapshot)"),
    ("schema_type", "monoschema (default) or multischema"),
    ("sync", "true: re-export changed days of the last 10 days"),
    ("from_date", "YYYY-MM-DD, at most 6 months back; required unless trial"),
    ("to_date", "YYYY-MM-DD; none: recurring"),
    ("frequency", "daily (default) or hourly; only without to_date"),
    ("events", "an event name to keep; repeat for several"),
    ("where", "a Mixpanel where expression events must match"),
    ("data_format", "json (default) or parquet"),
    ("path", "local types: the absolute folder on the server; output goes under <path>/<project_id>/"),
    ("tz", "the project's IANA time zone (default UTC)"),
];

const NAME_PARAMS: &[(&str, &str)] = &[
    ("project_id", "the project"),
    ("name", "the pipeline's name, as create answered it"),
];

const EDIT_PARAMS: &[(&str, &str)] = &[
    ("project_id", "the project"),
    ("name", "the pipeline's name"),
    ("events", "the new event whitelist; repeat for several"),
    ("where", "the new where expression (empty: none)"),
];

const STATUS_PARAMS: &[(&str, &str)] = &[
    ("project_id", "the project"),
    ("name", "the pipeline's name"),
    ("status", "only runs in this state; repeat for several (pending, running, retried, failed, canceled, timed_out, succeeded)"),
    ("summary", "true: counts by state only"),
];

fn names(params: &[(&'static str, &'static str)]) -> Vec<&'static str> {
    params.iter().map(|(n, _)| *n).collect()
}

type Body = Result<Bytes, BytesRejection>;

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => json_ok(StatusCode::OK, &v),
        Err(e) => api_error(&e, true),
    }
}

/// The parameters, checked against `known`.
fn params_of(query: Option<String>, body: Body, known: &[&str]) -> Result<Params, ApiError> {
    let body = body_of(body)?;
    let params = Params::parse(query.as_deref(), &body)?;
    params.check_known(known)?;
    Ok(params)
}

/// The named pipeline of the caller's project, once the caller's credentials are
/// those of the project (P26; another project's pipeline is a 404, never its data).
fn named_pipeline(
    service: &Service,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Pipeline, ApiError> {
    let credentials = basic_credentials(headers)?;
    let project = params.project_id()?;
    service.authorize(project, &credentials)?;
    service.pipeline_named(project, params.required("name")?)
}

async fn create(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    respond(
        async {
            let mut known = names(CREATE_PARAMS);
            known.extend(crate::destination::params());
            let p = params_of(q, body, &known)?;
            let credentials = basic_credentials(&headers)?;
            let req = CreateRequest {
                project_id: Some(p.project_id()?),
                name: None,
                kind: p.one("type")?.map(str::to_string),
                trial: p.bool("trial")?,
                data_source: p.one("data_source")?.map(str::to_string),
                schema_type: p.one("schema_type")?.map(str::to_string),
                sync: p.bool("sync")?,
                from_date: p.one("from_date")?.map(str::to_string),
                to_date: p.one("to_date")?.map(str::to_string),
                frequency: p.one("frequency")?.map(str::to_string),
                events: p.all("events"),
                where_expr: p.one("where")?.map(str::to_string),
                data_format: p.one("data_format")?.map(str::to_string),
                path: p.one("path")?.map(str::to_string),
                tz: p.one("tz")?.map(str::to_string),
                destination: destination_params(&p)?,
            };
            let created = s.create(&req, &credentials).await?;
            let names: Vec<&str> = created.iter().map(|p| p.spec.name.as_str()).collect();
            Ok(json!({ "pipeline_names": names }))
        }
        .await,
    )
}

/// The object-storage parameters given (P32).
fn destination_params(p: &Params) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let mut out = std::collections::BTreeMap::new();
    for name in crate::destination::params() {
        if let Some(v) = p.one(name)? {
            out.insert(name.to_string(), v.to_string());
        }
    }
    Ok(out)
}

async fn edit(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    respond(
        async {
            let p = params_of(q, body, &names(EDIT_PARAMS))?;
            let pipeline = named_pipeline(&s, &headers, &p)?;
            let events = p.has("events").then(|| p.all("events"));
            let where_expr = p.one("where")?.map(str::to_string);
            s.edit(&pipeline, events, where_expr, None).await?;
            Ok(json!({"status": "ok"}))
        }
        .await,
    )
}

/// `cancel`, `pause` and `resume`: `action` on the named pipeline, 200 when done.
fn on_named(
    s: &Service,
    headers: &HeaderMap,
    query: Option<String>,
    body: Body,
    action: fn(&Service, &Pipeline) -> Result<(), ApiError>,
) -> Response {
    respond((|| {
        let p = params_of(query, body, &names(NAME_PARAMS))?;
        action(s, &named_pipeline(s, headers, &p)?)?;
        Ok(json!({"status": "ok"}))
    })())
}

async fn cancel(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    on_named(&s, &headers, q, body, Service::delete)
}

async fn pause(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    on_named(&s, &headers, q, body, Service::pause)
}

async fn resume(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    on_named(&s, &headers, q, body, Service::resume)
}

/// P23: the pipeline's runs keyed by state (only the states that have runs, P27), or
/// their counts with `summary=true`.
async fn status(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    respond((|| {
        let p = params_of(q, body, &names(STATUS_PARAMS))?;
        let pipeline = named_pipeline(&s, &headers, &p)?;
        let states = p
            .all("status")
            .iter()
            .map(|v| {
                RunState::parse(v).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "status: {v:?} is not a state; use pending, running, retried, failed, \
                         canceled, timed_out or succeeded"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let summary = p.bool("summary")?.unwrap_or(false);
        let runs = s.store().runs(&RunFilter {
            pipeline_id: Some(pipeline.id),
            states,
            limit: 100_000,
            ..Default::default()
        })?;
        let zone = project_zone(&pipeline.spec.tz);
        let mut by_state: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for r in runs.iter().rev() {
            by_state.entry(r.state.as_str()).or_default().push(json!({
                "project_id": pipeline.spec.project_id,
                "name": pipeline.spec.name,
                "state": r.state.as_str(),
                "last_finish": r.ended_at.map(|t| rfc3339(t, &zone)),
                "run_at": rfc3339(r.run_at, &zone),
                "from_date": rfc3339(r.interval_start, &zone),
                "to_date": day_start(&zone, r.to_date).map(|start| rfc3339(start, &zone)),
            }));
        }
        Ok(if summary {
            by_state
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v.len())))
                .collect::<serde_json::Map<_, _>>()
                .into()
        } else {
            by_state
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::Array(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
    })())
}

/// P23: the project's pipelines, keyed by project id.
async fn jobs(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    respond((|| {
        let p = params_of(q, body, &["project_id"])?;
        let credentials = basic_credentials(&headers)?;
        let project = p.project_id()?;
        s.authorize(project, &credentials)?;
        let mut list = Vec::new();
        for pipeline in s.store().pipelines(Some(project))? {
            let recent = s.store().runs(&RunFilter {
                pipeline_id: Some(pipeline.id),
                limit: 50,
                ..Default::default()
            })?;
            let last = recent.iter().find_map(|r| r.started_at);
            list.push(json!({
                "name": pipeline.spec.name,
                "Dispatcher": if pipeline.spec.to_date.is_some() { "backfill" } else { "recurring" },
                "last_dispatched": last.map(|t| local_with_zone(t, &pipeline.spec.tz)),
                "frequency": pipeline.spec.frequency.as_str(),
                "sync_enabled": pipeline.spec.sync.to_string(),
            }));
        }
        Ok(json!({ project.to_string(): list }))
    })())
}

/// P24: one entry per exported day, with the time of each export and sync check.
async fn timeline(
    State(s): State<Service>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Response {
    respond((|| {
        let p = params_of(q, body, &names(NAME_PARAMS))?;
        let pipeline = named_pipeline(&s, &headers, &p)?;
        let zone = project_zone(&pipeline.spec.tz);
        let mut days: BTreeMap<jiff::civil::Date, Vec<String>> = BTreeMap::new();
        for (from, to, at) in s.store().successes(pipeline.id)? {
            for day in crate::model::days(from, to) {
                days.entry(day).or_default().push(go_time(at, &zone));
            }
        }
        let day_syncs: Vec<Value> = days
            .into_iter()
            .map(|(date, times)| json!({"date": date.to_string(), "sync_times": times, "status": "synced"}))
            .collect();
        Ok(json!({ "day_syncs": day_syncs }))
    })())
}

fn create_route() -> MethodRouter<Service> {
    post(create)
}
fn edit_route() -> MethodRouter<Service> {
    post(edit)
}
fn cancel_route() -> MethodRouter<Service> {
    post(cancel)
}
fn pause_route() -> MethodRouter<Service> {
    post(pause)
}
fn resume_route() -> MethodRouter<Service> {
    post(resume)
}
fn status_route() -> MethodRouter<Service> {
    get(status).post(status)
}
fn jobs_route() -> MethodRouter<Service> {
    get(jobs).post(jobs)
}
fn timeline_route() -> MethodRouter<Service> {
    get(timeline).post(timeline)
}

const TAG: &str = "Mixpanel Data Pipelines API";

pub(super) const CREATE: Route = Route {
    methods: &["POST"],
    path: "/api/2.0/nessie/pipeline/create",
    summary: "Create a pipeline (form body); answers {\"pipeline_names\": [...]}",
    tag: TAG,
    params: CREATE_PARAMS,
    returns: &[("POST", "PipelineNames")],
    handler: create_route,
};
pub(super) const EDIT: Route = Route {
    methods: &["POST"],
    path: "/api/2.0/nessie/pipeline/edit",
    summary: "Change a pipeline's events and where; later windows use them",
    tag: TAG,
    params: EDIT_PARAMS,
    returns: &[],
    handler: edit_route,
};
pub(super) const CANCEL: Route = Route {
    methods: &["POST"],
    path: "/api/2.0/nessie/pipeline/cancel",
    summary: "Delete a pipeline and its history (its exported data stays)",
    tag: TAG,
    params: NAME_PARAMS,
    returns: &[],
    handler: cancel_route,
};
pub(super) const PAUSE: Route = Route {
    methods: &["POST"],
    path: "/api/2.0/nessie/pipeline/pause",
    summary: "Stop scheduling and cancel the running run",
    tag: TAG,
    params: NAME_PARAMS,
    returns: &[],
    handler: pause_route,
};
pub(super) const RESUME: Route = Route {
    methods: &["POST"],
    path: "/api/2.0/nessie/pipeline/resume",
    summary: "Schedule again (also clears a fault)",
    tag: TAG,
    params: NAME_PARAMS,
    returns: &[],
    handler: resume_route,
};
pub(super) const STATUS: Route = Route {
    methods: &["GET", "POST"],
    path: "/api/2.0/nessie/pipeline/status",
    summary: "The pipeline's runs keyed by state, or counts with summary=true",
    tag: TAG,
    params: STATUS_PARAMS,
    returns: &[],
    handler: status_route,
};
pub(super) const JOBS: Route = Route {
    methods: &["GET", "POST"],
    path: "/api/2.0/nessie/pipeline/jobs",
    summary: "The project's pipelines, keyed by project id",
    tag: TAG,
    params: &[("project_id", "the project")],
    returns: &[],
    handler: jobs_route,
};
pub(super) const TIMELINE: Route = Route {
    methods: &["GET", "POST"],
    path: "/api/2.0/nessie/pipeline/timeline",
    summary: "Per exported day, the time of its export and of each sync check",
    tag: TAG,
    params: NAME_PARAMS,
    returns: &[],
    handler: timeline_route,
};
