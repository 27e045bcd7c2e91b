//! The REST API (P28, P29): JSON pipelines and runs, with a bearer API key.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put, MethodRouter};
use serde::Deserialize;
use serde_json::{json, Value};
use tidewater::export::Credentials;

use super::auth::{allow, bearer_grant};
use super::params::Params;
use super::{api_error, body_of, json_ok, view, Route};
use crate::model::{Pipeline, RunState};
use crate::ops::ApiError;
use crate::rules::CreateRequest;
use crate::schedule::Frequency;
use crate::service::Service;
use crate::store::{ApiKeyGrant, RunFilter};

type Body = Result<Bytes, BytesRejection>;

/// Mixpanel credentials in a JSON body: a service account or an API secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsBody {
    username: Option<String>,
    secret: Option<String>,
    api_secret: Option<String>,
}

impl CredentialsBody {
    fn credentials(self) -> Result<Credentials, ApiError> {
        match (self.username, self.secret, self.api_secret) {
            (Some(username), Some(secret), None) if !username.is_empty() && !secret.is_empty() => {
                Ok(Credentials::ServiceAccount { username, secret })
            }
            (None, None, Some(secret)) if !secret.is_empty() => Ok(Credentials::ApiSecret(secret)),
            _ => Err(ApiError::BadRequest(
                "credentials: give {\"username\", \"secret\"} of a service account, or \
                 {\"api_secret\"}"
                    .into(),
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    project_id: u64,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    trial: Option<bool>,
    data_source: Option<String>,
    schema_type: Option<String>,
    sync: Option<bool>,
    from_date: Option<String>,
    to_date: Option<String>,
    frequency: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    data_format: Option<String>,
    path: Option<String>,
    tz: Option<String>,
    /// The object-storage types' parameters, as Mixpanel names them (`s3_bucket`, ...).
    #[serde(default)]
    destination: std::collections::BTreeMap<String, String>,
    credentials: CredentialsBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    events: Option<Vec<String>>,
    #[serde(rename = "where")]
    where_expr: Option<String>,
    credentials: Option<CredentialsBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    period: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: Body) -> Result<T, ApiError> {
    let body = body_of(body)?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the JSON body is not valid: {e}")))
}

fn respond(status: StatusCode, result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => json_ok(status, &v),
        Err(e) => api_error(&e, false),
    }
}

/// The pipeline `id`, if the caller's key may reach its project.
fn reachable(s: &Service, grant: &ApiKeyGrant, id: &str) -> Result<Pipeline, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("there is no pipeline {id:?}")))?;
    let pipeline = s.pipeline(id)?;
    allow(grant, pipeline.spec.project_id)?;
    Ok(pipeline)
}

/// The pipeline `id` of a call whose key may reach it.
fn caller_pipeline(s: &Service, headers: &HeaderMap, id: &str) -> Result<Pipeline, ApiError> {
    reachable(s, &bearer_grant(s, headers)?, id)
}

async fn create(State(s): State<Service>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let grant = bearer_grant(&s, &headers)?;
        let b: CreateBody = parse(body)?;
        allow(&grant, b.project_id)?;
        let credentials = b.credentials.credentials()?;
        let req = CreateRequest {
            project_id: Some(b.project_id),
            name: b.name,
            kind: Some(b.kind),
            trial: b.trial,
            data_source: b.data_source,
            schema_type: b.schema_type,
            sync: b.sync,
            from_date: b.from_date,
            to_date: b.to_date,
            frequency: b.frequency,
            events: b.events,
            where_expr: b.where_expr,
            data_format: b.data_format,
            path: b.path,
            tz: b.tz,
            destination: b.destination,
        };
        let created = s.create(&req, &credentials).await?;
        Ok(view::pipeline(&created[0]))
    }
    .await;
    respond(StatusCode::CREATED, result)
}

async fn list(State(s): State<Service>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let grant = bearer_grant(&s, &headers)?;
            let p = Params::parse(q.as_deref(), &[])?;
            p.check_known(&["project_id"])?;
            let project = match p.one("project_id")? {
                Some(_) => Some(p.project_id()?),
                None => None,
            };
            if let Some(project) = project {
                allow(&grant, project)?;
            }
            let pipelines: Vec<Value> = s
                .store()
                .pipelines(project)?
                .iter()
                .filter(|p| grant.allows(p.spec.project_id))
                .map(view::pipeline)
                .collect();
            Ok(json!({ "pipelines": pipelines }))
        })(),
    )
}

async fn show(State(s): State<Service>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let grant = bearer_grant(&s, &headers)?;
            Ok(view::pipeline(&reachable(&s, &grant, &id)?))
        })(),
    )
}

async fn patch(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let result = async {
        let pipeline = caller_pipeline(&s, &headers, &id)?;
        let b: EditBody = parse(body)?;
        let credentials = b
            .credentials
            .map(CredentialsBody::credentials)
            .transpose()?;
        let edited = s
            .edit(&pipeline, b.events, b.where_expr, credentials.as_ref())
            .await?;
        Ok(view::pipeline(&edited))
    }
    .await;
    respond(StatusCode::OK, result)
}

async fn delete(State(s): State<Service>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let pipeline = caller_pipeline(&s, &headers, &id)?;
            s.delete(&pipeline)?;
            Ok(json!({ "deleted": pipeline.id }))
        })(),
    )
}

async fn set_status(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let pipeline = caller_pipeline(&s, &headers, &id)?;
            let b: StatusBody = parse(body)?;
            if b.enabled {
                s.resume(&pipeline)?;
            } else {
                s.pause(&pipeline)?;
            }
            Ok(view::pipeline(&s.pipeline(pipeline.id)?))
        })(),
    )
}

async fn set_schedule(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let pipeline = caller_pipeline(&s, &headers, &id)?;
            let b: ScheduleBody = parse(body)?;
            let period = match b.period.as_deref() {
                None => None,
                Some("1h") => Some(Frequency::Hourly),
                Some("24h") => Some(Frequency::Daily),
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                    "period: {other:?} is not allowed; use \"1h\" (hourly), \"24h\" (daily) or \
                     null (manual runs only)"
                )))
                }
            };
            Ok(view::pipeline(&s.set_schedule(&pipeline, period)?))
        })(),
    )
}

async fn trigger(State(s): State<Service>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    respond(
        StatusCode::CREATED,
        (|| {
            let pipeline = caller_pipeline(&s, &headers, &id)?;
            let ids = s.trigger(&pipeline)?;
            Ok(json!({ "id": ids[0], "runs": ids }))
        })(),
    )
}

async fn pipeline_status(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let pipeline = caller_pipeline(&s, &headers, &id)?;
            let latest = s.store().runs(&RunFilter {
                pipeline_id: Some(pipeline.id),
                limit: 1,
                ..Default::default()
            })?;
            Ok(json!({
                "id": pipeline.id,
                "name": pipeline.spec.name,
                "state": pipeline.state.as_str(),
                "enabled": pipeline.state == crate::model::PipelineState::Enabled,
                "faulted_reason": pipeline.reason,
                "latest_run": latest.first().map(view::run),
            }))
        })(),
    )
}

/// The run filters of a query: `state` (repeated or comma-separated), `from` and `to`
/// (window days), `before` (a run id, for the next page) and `limit` (≤ 1000).
fn run_filter(
    q: Option<&str>,
    known_pipeline_param: bool,
) -> Result<(RunFilter, Option<i64>), ApiError> {
    let p = Params::parse(q, &[])?;
    let mut known = vec!["state", "from", "to", "before", "limit"];
    if known_pipeline_param {
        known.push("pipeline");
    }
    p.check_known(&known)?;
    let mut filter = RunFilter {
        limit: 100,
        ..Default::default()
    };
    for value in p.all("state") {
        for v in value.split(',') {
            filter.states.push(RunState::parse(v).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "state: {v:?} is not a run state; use pending, running, succeeded, failed, \
                     timed_out, canceled or retried"
                ))
            })?);
        }
    }
    let date = |key: &'static str| -> Result<Option<jiff::civil::Date>, ApiError> {
        p.one(key)?
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::BadRequest(format!("{key}: {v:?} is not a date YYYY-MM-DD"))
                })
            })
            .transpose()
    };
    filter.from_date = date("from")?;
    filter.to_date = date("to")?;
    let int = |key: &'static str| -> Result<Option<i64>, ApiError> {
        p.one(key)?
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::BadRequest(format!("{key}: {v:?} is not a positive integer"))
                })
            })
            .transpose()
    };
    filter.before_id = int("before")?;
    if let Some(limit) = int("limit")? {
        filter.limit = (limit as usize).min(1000);
    }
    Ok((filter, int("pipeline")?))
}

fn runs_page(s: &Service, filter: &RunFilter) -> Result<Value, ApiError> {
    let runs = s.store().runs(filter)?;
    let next = (runs.len() == filter.limit)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(json!({
        "runs": runs.iter().map(view::run).collect::<Vec<_>>(),
        "next_before": next,
    }))
}

async fn runs(State(s): State<Service>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let grant = bearer_grant(&s, &headers)?;
            let (mut filter, pipeline) = run_filter(q.as_deref(), true)?;
            match pipeline {
                Some(id) => {
                    reachable(&s, &grant, &id.to_string())?;
                    filter.pipeline_id = Some(id);
                }
                None if grant.projects.is_some() => {
                    let ids = s
                        .store()
                        .pipelines(None)?
                        .into_iter()
                        .filter(|p| grant.allows(p.spec.project_id))
                        .map(|p| p.id)
                        .collect();
                    filter.pipelines_in = Some(ids);
                }
                None => {}
            }
            runs_page(&s, &filter)
        })(),
    )
}

async fn pipeline_runs(
    State(s): State<Service>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let pipeline = caller_pipeline(&s, &headers, &id)?;
            let (mut filter, _) = run_filter(q.as_deref(), false)?;
            filter.pipeline_id = Some(pipeline.id);
            runs_page(&s, &filter)
        })(),
    )
}

async fn run(State(s): State<Service>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    respond(
        StatusCode::OK,
        (|| {
            let grant = bearer_grant(&s, &headers)?;
            let not_found = || ApiError::NotFound(format!("there is no run {id:?}"));
            let run_id: i64 = id.parse().map_err(|_| not_found())?;
            let run = s.store().run(run_id)?.ok_or_else(not_found)?;
            reachable(&s, &grant, &run.pipeline_id.to_string())?;
            Ok(view::run(&run))
        })(),
    )
}

fn pipelines_route() -> MethodRouter<Service> {
    get(list).post(create)
}
fn pipeline_route() -> MethodRouter<Service> {
    get(show).patch(patch).delete(delete)
}
fn status_put_route() -> MethodRouter<Service> {
    put(set_status).get(pipeline_status)
}
fn schedule_route() -> MethodRouter<Service> {
    put(set_schedule)
}
fn pipeline_runs_route() -> MethodRouter<Service> {
    get(pipeline_runs).post(trigger)
}
fn runs_route() -> MethodRouter<Service> {
    get(runs)
}
fn run_route() -> MethodRouter<Service> {
    get(run)
}

const TAG: &str = "REST API";

pub(super) const PIPELINES: Route = Route {
    methods: &["GET", "POST"],
    path: "/v1/pipelines",
    summary: "GET: the pipelines (?project_id=); POST: create one (JSON: the create parameters, \"name\", \"credentials\": {\"username\",\"secret\"} or {\"api_secret\"})",
    tag: TAG,
    params: &[("project_id", "GET: only this project's")],
    returns: &[("GET", "PipelineList"), ("POST", "Pipeline")],
    handler: pipelines_route,
};
pub(super) const PIPELINE: Route = Route {
    methods: &["GET", "PATCH", "DELETE"],
    path: "/v1/pipelines/{id}",
    summary: "A pipeline; PATCH {\"events\", \"where\", \"credentials\"} edits it; DELETE removes it and its history",
    tag: TAG,
    params: &[],
    returns: &[("GET", "Pipeline"), ("PATCH", "Pipeline")],
    handler: pipeline_route,
};
pub(super) const PIPELINE_STATUS_PUT: Route = Route {
    methods: &["PUT", "GET"],
    path: "/v1/pipelines/{id}/status",
    summary: "PUT {\"enabled\": bool}: resume or pause; GET: state, faulted_reason and latest run",
    tag: TAG,
    params: &[("enabled", "PUT: true resumes, false pauses")],
    returns: &[("PUT", "Pipeline"), ("GET", "PipelineStatus")],
    handler: status_put_route,
};
pub(super) const PIPELINE_SCHEDULE: Route = Route {
    methods: &["PUT"],
    path: "/v1/pipelines/{id}/schedule",
    summary: "PUT {\"period\": \"1h\" | \"24h\" | null}: hourly, daily, or manual runs only",
    tag: TAG,
    params: &[("period", "\"1h\", \"24h\" or null")],
    returns: &[("PUT", "Pipeline")],
    handler: schedule_route,
};
pub(super) const PIPELINE_RUNS: Route = Route {
    methods: &["GET", "POST"],
    path: "/v1/pipelines/{id}/runs",
    summary: "GET: the pipeline's runs, newest first; POST: run the windows since the last successful run now ({\"id\": run}; 422 when paused or running)",
    tag: TAG,
    params: &[
        ("state", "GET: only runs in these states (repeat or comma-separate)"),
        ("from", "GET: windows from this day"),
        ("to", "GET: windows up to this day"),
        ("before", "GET: runs older than this run id (the previous page's next_before)"),
        ("limit", "GET: at most this many (default 100, at most 1000)"),
    ],
    returns: &[("GET", "RunPage"), ("POST", "RunCreated")],
    handler: pipeline_runs_route,
};
pub(super) const RUNS: Route = Route {
    methods: &["GET"],
    path: "/v1/pipelines/runs",
    summary: "Runs of every pipeline the key reaches, newest first (?pipeline=, state, from, to, before, limit)",
    tag: TAG,
    params: &[
        ("pipeline", "only this pipeline's"),
        ("state", "only runs in these states"),
        ("from", "windows from this day"),
        ("to", "windows up to this day"),
        ("before", "runs older than this run id"),
        ("limit", "at most this many (default 100, at most 1000)"),
    ],
    returns: &[("GET", "RunPage")],
    handler: runs_route,
};
pub(super) const RUN: Route = Route {
    methods: &["GET"],
    path: "/v1/pipelines/runs/{id}",
    summary:
        "A run: kind, window, state, startTime, endTime, steps with passed and failed counts, error",
    tag: TAG,
    params: &[],
    returns: &[("GET", "Run")],
    handler: run_route,
};
