//! What both APIs do to pipelines, in one place (P22, P28): create (checked by the
//! rules, the credentials checked upstream, P26), edit, pause, resume, delete, run on
//! demand, schedule. Each API only parses its request and renders the answer.

use tidewater::export::Credentials;

use crate::destination;
use crate::model::{NewRun, Pipeline, PipelineState, RunKind, RunState};
use crate::rules::{self, CreateRequest, Invalid};
use crate::schedule::{Frequency, Schedule};
use crate::service::{Service, StopReason};
use crate::store::{CreateRefused, RunFilter, StoreError};

/// Why an API call is refused, with the status both APIs answer (P25, P29).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: a bad or missing parameter.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the credentials may not reach this project.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such pipeline or run.
    #[error("{0}")]
    NotFound(String),
    /// 409: the name is taken.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 422: the pipeline's state forbids it.
    #[error("{0}")]
    Unprocessable(String),
    /// 502: upstream could not be asked.
    #[error("{0}")]
    Upstream(String),
    /// 500: the state store failed.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::TooLarge(_) => 413,
            ApiError::Unprocessable(_) => 422,
            ApiError::Upstream(_) => 502,
            ApiError::Internal(_) => 500,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("state store: {e}");
        ApiError::Internal(format!("the server's state store failed: {e}"))
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl Service {
    /// Creates the pipelines of `req` for the holder of `credentials` (P22, P28):
    /// the request is checked (P31), the credentials are tried against the export
    /// API (P26) and sealed (P40), and the project's limits are checked in the same
    /// transaction as the insert.
    pub async fn create(
        &self,
        req: &CreateRequest,
        credentials: &Credentials,
    ) -> Result<Vec<Pipeline>, ApiError> {
        let now = self.clock().now();
        let mut specs = rules::check_create(req, now, &self.config().limits)?;
        let project = specs[0].project_id;
        self.check_upstream(project, &specs[0].tz, credentials)
            .await?;
        if let Some(path) = specs[0].path.as_deref() {
            check_destination(path)?;
        }
        if let Some(bucket) = specs[0].bucket.clone() {
            let target = destination::target(&bucket, bucket.client_secret.as_deref())
                .map_err(|e| ApiError::BadRequest(format!("type: {e}")))?;
            destination::check(&target, project, &bucket.url())
                .await
                .map_err(ApiError::BadRequest)?;
            if let Some(secret) = &bucket.client_secret {
                let sealed = self.seal_destination_secret(project, secret)?;
                for spec in &mut specs {
                    if let Some(b) = &mut spec.bucket {
                        b.client_secret = Some(sealed.clone());
                    }
                }
            }
        }
        let sealed = self.seal_credentials(project, credentials)?;
        let limits = self.config().limits;
        let ids = match self
            .store()
            .create_pipelines(&specs, &sealed, now, |facts| {
                rules::check_project(&specs, facts, &limits)
            })? {
            Ok(ids) => ids,
            Err(CreateRefused::Rule(why)) => return Err(ApiError::BadRequest(why)),
            Err(CreateRefused::NameTaken(name)) => {
                return Err(ApiError::Conflict(format!(
                    "name: project {project} has a pipeline named {name} already; cancel it or \
                     choose another name"
                )))
            }
        };
        let mut created = Vec::new();
        for id in ids {
            if let Some(p) = self.store().pipeline(id)? {
                tracing::info!(pipeline = %p.spec.name, project, "pipeline {} created", p.spec.name);
                created.push(p);
            }
        }
        self.wake();
        Ok(created)
    }

    /// Whether `presented` are the credentials of project `project`'s pipelines
    /// (P26): 401 when they are not. A project without pipelines has nothing to
    /// show, so any credentials pass (and see nothing).
    pub fn authorize(&self, project: u64, presented: &Credentials) -> Result<(), ApiError> {
        let sealed = self.store().project_credentials(project)?;
        if sealed.is_empty() {
            return Ok(());
        }
        for s in &sealed {
            if self.same_credentials(project, s, presented)? {
                return Ok(());
            }
        }
        Err(ApiError::Unauthorized(format!(
            "these credentials are not the ones project {project}'s pipelines were created with"
        )))
    }

    /// The pipeline of `project` named `name` (404 if none).
    pub fn pipeline_named(&self, project: u64, name: &str) -> Result<Pipeline, ApiError> {
        self.store().pipeline_named(project, name)?.ok_or_else(|| {
            ApiError::NotFound(format!("project {project} has no pipeline named {name:?}"))
        })
    }

    /// The pipeline `id` (404 if none).
    pub fn pipeline(&self, id: i64) -> Result<Pipeline, ApiError> {
        self.store()
            .pipeline(id)?
            .ok_or_else(|| ApiError::NotFound(format!("there is no pipeline {id}")))
    }

    /// Edits `events` and `where` (P16) and, when given, the credentials (checked
    /// upstream first).
    pub async fn edit(
        &self,
        pipeline: &Pipeline,
        events: Option<Vec<String>>,
        where_expr: Option<String>,
        credentials: Option<&Credentials>,
    ) -> Result<Pipeline, ApiError> {
        let spec = rules::check_edit(&pipeline.spec, events, where_expr)?;
        let sealed = match credentials {
            Some(c) => {
                self.check_upstream(spec.project_id, &spec.tz, c).await?;
                Some(self.seal_credentials(spec.project_id, c)?)
            }
            None => None,
        };
        self.store()
            .update_spec(pipeline.id, &spec, sealed.as_deref())?;
        tracing::info!(pipeline = %spec.name, "pipeline {} edited", spec.name);
        self.wake();
        self.pipeline(pipeline.id)
    }

    /// P17: stops scheduling and cancels the running run (not committed; its window
    /// runs again on resume).
    pub fn pause(&self, pipeline: &Pipeline) -> Result<(), ApiError> {
        if pipeline.state == PipelineState::Canceled {
            return Err(ApiError::Unprocessable(format!(
                "pipeline {} is canceled ({}); it cannot be paused",
                pipeline.spec.name,
                pipeline.reason.as_deref().unwrap_or("canceled")
            )));
        }
        self.store()
            .set_pipeline_state(pipeline.id, PipelineState::Paused, None)?;
        self.cancel_runs_of(pipeline.id, StopReason::Pause);
        tracing::info!(pipeline = %pipeline.spec.name, "pipeline {} paused", pipeline.spec.name);
        self.wake();
        Ok(())
    }

    /// P17, P18: schedules again, from the windows that became due meanwhile; clears
    /// a fault.
    pub fn resume(&self, pipeline: &Pipeline) -> Result<(), ApiError> {
        if pipeline.state == PipelineState::Canceled {
            return Err(ApiError::Unprocessable(format!(
                "pipeline {} is canceled ({}); it cannot be resumed",
                pipeline.spec.name,
                pipeline.reason.as_deref().unwrap_or("canceled")
            )));
        }
        self.store()
            .set_pipeline_state(pipeline.id, PipelineState::Enabled, None)?;
        tracing::info!(pipeline = %pipeline.spec.name, "pipeline {} resumed", pipeline.spec.name);
        self.wake();
        Ok(())
    }

    /// P17: stops everything and removes the pipeline and its history (the data
    /// stays where it was written).
    pub fn delete(&self, pipeline: &Pipeline) -> Result<(), ApiError> {
        self.cancel_runs_of(pipeline.id, StopReason::End);
        self.store().delete_pipeline(pipeline.id)?;
        tracing::info!(pipeline = %pipeline.spec.name, "pipeline {} deleted", pipeline.spec.name);
        self.wake();
        Ok(())
    }

    /// P13: a run of the closed windows from the end of the last successful run (or
    /// `from_date`) up to now. 422 when the pipeline is not enabled, has a run in
    /// progress, or has no closed window left to run. Returns the runs (one for a
    /// daily pipeline; one per hour for an hourly one).
    pub fn trigger(&self, pipeline: &Pipeline) -> Result<Vec<i64>, ApiError> {
        let name = &pipeline.spec.name;
        if pipeline.state != PipelineState::Enabled {
            return Err(ApiError::Unprocessable(format!(
                "pipeline {name} is {}; resume it first",
                pipeline.state.as_str()
            )));
        }
        let in_progress = self.store().runs(&RunFilter {
            pipeline_id: Some(pipeline.id),
            states: vec![RunState::Running],
            limit: 1,
            ..Default::default()
        })?;
        if let Some(run) = in_progress.first() {
            return Err(ApiError::Unprocessable(format!(
                "pipeline {name} has run {} in progress; wait for it to end",
                run.id
            )));
        }
        let now = self.clock().now();
        let spec = &pipeline.spec;
        let schedule = Schedule::new(
            spec.frequency,
            spec.from_date,
            spec.to_date,
            &spec.tz,
            self.config().delay,
        )
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let start = self
            .store()
            .last_success_end(pipeline.id)?
            .unwrap_or(schedule.start());
        let closed: Vec<_> = schedule
            .windows_from(start)
            .take_while(|w| w.end <= now)
            .collect();
        let (Some(first), Some(last)) = (closed.first(), closed.last()) else {
            return Err(ApiError::Unprocessable(format!(
                "pipeline {name} has no closed window after its last successful run; nothing to run"
            )));
        };
        let day = |k: tidewater::WindowKey| {
            jiff::civil::Date::new(k.year, k.month, k.day).unwrap_or(spec.from_date)
        };
        let manual = |first: &crate::ScheduledWindow, last: &crate::ScheduledWindow| NewRun {
            pipeline_id: pipeline.id,
            kind: RunKind::Manual,
            from_date: day(first.key),
            to_date: day(last.key),
            interval_start: first.start,
            interval_end: last.end,
            attempt: 1,
            run_at: now,
        };
        // Days are fetched together; an hour is its own unit of commit, so an hourly
        // pipeline gets a run per hour.
        let runs: Vec<NewRun> = match spec.frequency {
            Frequency::Daily => vec![manual(first, last)],
            Frequency::Hourly => closed.iter().map(|w| manual(w, w)).collect(),
        };
        let ids = self.store().plan_runs(pipeline.id, &runs, None)?;
        tracing::info!(pipeline = %name, runs = ids.len(), "run {} of {name} requested", ids[0]);
        self.wake();
        Ok(ids)
    }

    /// P28: the schedule period: `Some(frequency)` runs windows when due, `None` only
    /// on demand. The frequency of a pipeline that has run cannot change (its windows
    /// would not line up): create another pipeline for that.
    pub fn set_schedule(
        &self,
        pipeline: &Pipeline,
        period: Option<Frequency>,
    ) -> Result<Pipeline, ApiError> {
        let mut spec = pipeline.spec.clone();
        if let Some(f) = period.filter(|f| *f != spec.frequency) {
            if spec.to_date.is_some() {
                return Err(ApiError::BadRequest(
                    "period: a date-ranged pipeline is daily; only null (manual only) or 24h"
                        .into(),
                ));
            }
            if pipeline.cursor.is_some() {
                return Err(ApiError::Unprocessable(format!(
                    "pipeline {} has planned {} windows already; create another pipeline for {} windows",
                    spec.name,
                    spec.frequency.as_str(),
                    f.as_str()
                )));
            }
            spec.frequency = f;
            spec.name = if spec.name == rules::name_of(&pipeline.spec) {
                rules::name_of(&spec)
            } else {
                spec.name
            };
        }
        spec.automatic = period.is_some();
        self.store().update_spec(pipeline.id, &spec, None)?;
        self.wake();
        self.pipeline(pipeline.id)
    }

    /// P26: tries `credentials` on the export API for yesterday in the project's
    /// time zone (one line at most). A refusal is a 401 now rather than a failed run
    /// a day later.
    async fn check_upstream(
        &self,
        project: u64,
        tz: &str,
        credentials: &Credentials,
    ) -> Result<(), ApiError> {
        let today = rules::today_in(tz, self.clock().now())?;
        let day = today.yesterday().unwrap_or(today);
        let url = format!(
            "{}/api/2.0/export",
            self.config().mixpanel_url.trim_end_matches('/')
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ApiError::Internal(format!("cannot make an HTTP client: {e}")))?;
        // A request to the project's export API like any other: it draws on the
        // project's rate budget, and a 429 or 5xx is tried again a few times.
        let budget = crate::ProjectBudget::new(
            self.store().clone(),
            project.to_string(),
            self.config().tuning.pace.clone(),
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            tidewater::export::RateBudget::acquire(&budget).await;
            let mut request = client.get(&url).query(&[
                ("from_date", day.to_string()),
                ("to_date", day.to_string()),
                ("limit", "1".to_string()),
            ]);
            if credentials.is_service_account() {
                request = request.query(&[("project_id", project.to_string())]);
            }
            let (user, password) = credentials.basic_auth();
            let request = request.basic_auth(user, Some(password));
            let response = request.send().await.map_err(|e| {
                ApiError::Upstream(format!(
                    "cannot check the credentials with the export API at {url}: {}",
                    credentials.redact(&e.to_string())
                ))
            })?;
            let status = response.status().as_u16();
            let retry_after = tidewater::export::retry_after(response.headers())
                .map_or(std::time::Duration::from_millis(200 * attempt), |wait| {
                    wait.min(std::time::Duration::from_secs(10))
                });
            let body =
                || async { credentials.redact(response.text().await.unwrap_or_default().trim()) };
            match status {
                200..=299 => return Ok(()),
                401 | 403 => {
                    return Err(ApiError::Unauthorized(format!(
                        "Mixpanel refused these credentials for project {project} ({status}: {}); \
                         check the service account (user:secret) and project_id, or the API secret",
                        body().await
                    )))
                }
                429 | 500..=599 if attempt < 3 => tokio::time::sleep(retry_after).await,
                _ => {
                    return Err(ApiError::Upstream(format!(
                        "cannot check the credentials: the export API answered {status}: {}",
                        body().await
                    )))
                }
            }
        }
    }
}

/// A local destination must be a folder the server can create and write (P32: a bad
/// destination is a 400 at create, not a failed run later).
fn check_destination(path: &std::path::Path) -> Result<(), ApiError> {
    let probe = || -> std::io::Result<()> {
        std::fs::create_dir_all(path)?;
        let f = tempfile::NamedTempFile::new_in(path)?;
        drop(f);
        Ok(())
    };
    probe().map_err(|e| {
        ApiError::BadRequest(format!(
            "path: cannot write to {}: {e}; give a folder the server may write",
            path.display()
        ))
    })
}
