//! The running service: its state store, clock, secret key and settings, shared by the
//! scheduler, the runs and both APIs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use tidewater::export::{region_base_url, Credentials, Tuning};
use tidewater::Cancel;

use crate::clock::Clock;
use crate::rules::Limits;
use crate::schedule::DEFAULT_DELAY;
use crate::secrets::{same_secret, SecretBox};
use crate::store::{StateStore, StoreError};

/// The service's settings; every one has Mixpanel's behaviour as its default.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The export API's base URL for every project (P1; tests point it at a mock).
    pub mixpanel_url: String,
    /// How long after a window closes it is exported (P11: 30 minutes).
    pub delay: SignedDuration,
    /// Mixpanel's create limits (P31).
    pub limits: Limits,
    /// Scheduler retries of a failed run (P18: 3).
    pub scheduler_retries: u32,
    /// The first scheduler retry's wait; each later one waits twice as long.
    pub retry_backoff: SignedDuration,
    /// How long a run may take before it is `timed_out` (P18: 6 h).
    pub run_timeout: Duration,
    /// How many days back sync checks committed days (P14: 10).
    pub sync_days: u32,
    /// How long after its export a day is first checked again, and between checks
    /// (P14: 24 h).
    pub sync_after: SignedDuration,
    /// How many runs of one project may run at once (P12: 1).
    pub runs_per_project: usize,
    /// How many runs of all projects may run at once on this server (each run uses
    /// the engine's threads and its memory budget).
    pub max_runs: usize,
    /// How long a trial lasts (P15: 30 days).
    pub trial_days: i64,
    /// Retries, timeouts and the project's rate limits inside one run (export-api).
    pub tuning: Tuning,
    /// How long a stopping server waits for running runs (P42).
    pub grace: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            mixpanel_url: region_base_url("us").unwrap_or_default().to_string(),
            delay: DEFAULT_DELAY,
            limits: Limits::default(),
            scheduler_retries: 3,
            retry_backoff: SignedDuration::from_mins(5),
            run_timeout: Duration::from_secs(6 * 3600),
            sync_days: 10,
            sync_after: SignedDuration::from_hours(24),
            runs_per_project: 1,
            max_runs: 2,
            trial_days: 30,
            tuning: Tuning::default(),
            grace: Duration::from_secs(30),
        }
    }
}

/// Live counters for `/metrics` (P29), since the server started.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Windows committed by runs.
    pub windows_committed: AtomicU64,
    /// Events written in committed windows.
    pub events_exported: AtomicU64,
    /// Bytes received from the export API.
    pub bytes_exported: AtomicU64,
    /// Milliseconds runs waited for the rate budget.
    pub rate_limit_wait_ms: AtomicU64,
    /// Requests retried inside runs.
    pub request_retries: AtomicU64,
    /// Runs the scheduler retried.
    pub scheduler_retries: AtomicU64,
    /// Passes the scheduler made (each plans what is due and starts what may start).
    pub scheduler_passes: AtomicU64,
}

/// Why a running run was canceled: what follows depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The server is stopping: its windows run again at the next start.
    Shutdown,
    /// The pipeline was paused: its windows run again on resume.
    Pause,
    /// The pipeline ended (deleted, or its trial expired): nothing follows.
    End,
}

/// A run in progress: its cancel token, its project, and why it was canceled.
pub(crate) struct Running {
    pub cancel: Cancel,
    pub project_id: u64,
    pub pipeline_id: i64,
    pub reason: Arc<Mutex<StopReason>>,
}

/// The service: cheap to clone, shared by its parts.
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: StateStore,
    pub clock: Arc<dyn Clock>,
    pub secrets: SecretBox,
    pub config: ServiceConfig,
    /// Wakes the scheduler: a pipeline or run changed.
    pub wake: tokio::sync::Notify,
    pub running: Mutex<HashMap<i64, Running>>,
    /// Set when the server stops: no new runs.
    pub stopping: AtomicBool,
    pub metrics: Metrics,
}

impl Service {
    /// A service over `store`, reading time from `clock`, sealing secrets with
    /// `secrets` (checked against the store first, P40).
    pub fn new(
        store: StateStore,
        clock: Arc<dyn Clock>,
        secrets: SecretBox,
        config: ServiceConfig,
    ) -> Result<Service, StoreError> {
        store.unlock_secrets(Some(&secrets))?;
        Ok(Service {
            inner: Arc::new(Inner {
                store,
                clock,
                secrets,
                config,
                wake: tokio::sync::Notify::new(),
                running: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
                metrics: Metrics::default(),
            }),
        })
    }

    /// The state store.
    pub fn store(&self) -> &StateStore {
        &self.inner.store
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.inner.clock
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Tells the scheduler to look again.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// How many runs are in progress.
    pub fn runs_in_progress(&self) -> usize {
        self.running().len()
    }

    pub(crate) fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops starting runs (P42). The scheduler then gives running runs the grace
    /// period to finish and cancels the rest (their windows are not committed, and
    /// they run again when a server starts on the state file).
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Cancels every running run.
    pub(crate) fn cancel_all(&self) {
        for r in self.running().values() {
            r.cancel.cancel();
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Cancels the running run of pipeline `pipeline_id`, if any (P17), for `reason`.
    pub(crate) fn cancel_runs_of(&self, pipeline_id: i64, reason: StopReason) {
        for r in self.running().values() {
            if r.pipeline_id == pipeline_id {
                *r.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason;
                r.cancel.cancel();
            }
        }
    }

    /// Seals `secret` for `context` (P40).
    fn seal(&self, secret: &[u8], context: &str) -> Result<String, StoreError> {
        self.inner
            .secrets
            .seal(secret, context)
            .map_err(StoreError::Secrets)
    }

    /// Opens text sealed for `context`.
    fn open_text(&self, sealed: &str, context: &str) -> Result<String, StoreError> {
        let bytes = self
            .inner
            .secrets
            .open(sealed, context)
            .map_err(StoreError::Secrets)?;
        String::from_utf8(bytes)
            .map_err(|_| StoreError::Secrets(crate::secrets::SecretError::WrongKey))
    }

    /// Seals a destination's secret (an Azure client secret) of project `project`
    /// (P40).
    pub(crate) fn seal_destination_secret(
        &self,
        project: u64,
        secret: &str,
    ) -> Result<String, StoreError> {
        self.seal(secret.as_bytes(), &destination_context(project))
    }

    /// The destination secret sealed by [`Service::seal_destination_secret`].
    pub(crate) fn open_destination_secret(
        &self,
        project: u64,
        sealed: &str,
    ) -> Result<String, StoreError> {
        self.open_text(sealed, &destination_context(project))
    }

    /// Seals Mixpanel credentials for project `project` (P40).
    pub(crate) fn seal_credentials(
        &self,
        project: u64,
        credentials: &Credentials,
    ) -> Result<String, StoreError> {
        self.seal(
            &credential_bytes(credentials),
            &credentials_context(project),
        )
    }

    /// Opens the sealed credentials of a pipeline of project `project`.
    pub(crate) fn open_credentials(
        &self,
        project: u64,
        sealed: &str,
    ) -> Result<Credentials, StoreError> {
        let text = self.open_text(sealed, &credentials_context(project))?;
        Ok(match text.split_once('\n') {
            Some(("api_secret", secret)) => Credentials::ApiSecret(secret.to_string()),
            Some((username, secret)) => Credentials::ServiceAccount {
                username: username.trim_start_matches("user:").to_string(),
                secret: secret.to_string(),
            },
            None => Credentials::ApiSecret(text),
        })
    }

    /// Whether `presented` are the credentials sealed in `sealed` (compared in
    /// constant time, P40).
    pub(crate) fn same_credentials(
        &self,
        project: u64,
        sealed: &str,
        presented: &Credentials,
    ) -> Result<bool, StoreError> {
        let stored = self.open_credentials(project, sealed)?;
        Ok(same_secret(
            &credential_bytes(&stored),
            &credential_bytes(presented),
        ))
    }
}

/// Credentials as the bytes that are sealed: `user:<name>\n<secret>` or
/// `api_secret\n<secret>`.
fn credential_bytes(credentials: &Credentials) -> Vec<u8> {
    match credentials {
        Credentials::ServiceAccount { username, secret } => {
            format!("user:{username}\n{secret}").into_bytes()
        }
        Credentials::ApiSecret(secret) => format!("api_secret\n{secret}").into_bytes(),
    }
}

/// The context a project's credentials are sealed under: a sealed secret moved to
/// another project's row does not open.
fn destination_context(project: u64) -> String {
    format!("destination-secret:{project}")
}

fn credentials_context(project: u64) -> String {
    format!("mixpanel-credentials:{project}")
}
