//! The service's model (pipelines-api §1): pipelines, their runs and the states both go
//! through. Both APIs (Mixpanel's and the REST one) read and write these types; the
//! store keeps them, the scheduler moves them on.

use std::path::PathBuf;

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::schedule::Frequency;

/// What a pipeline exports (P2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// Events, from the export API.
    Events,
    /// User profiles, from the Engage API.
    People,
}

impl DataSource {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DataSource::Events => "events",
            DataSource::People => "people",
        }
    }
}

/// The destination types of P32, as Mixpanel and Tidewater name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DestinationType {
    /// A folder on the server, schematized (monoschema or multischema).
    #[serde(rename = "local")]
    Local,
    /// A folder on the server, raw JSON lines as Mixpanel sent them.
    #[serde(rename = "local-raw")]
    LocalRaw,
    /// Amazon S3, raw.
    #[serde(rename = "s3-raw")]
    S3Raw,
    /// Google Cloud Storage, raw.
    #[serde(rename = "gcs-raw")]
    GcsRaw,
    /// Azure Blob Storage, raw.
    #[serde(rename = "azure-raw")]
    AzureRaw,
    /// Amazon S3 (and Glue), schematized.
    #[serde(rename = "aws")]
    Aws,
    /// Google Cloud Storage, schematized.
    #[serde(rename = "gcs-schema")]
    GcsSchema,
    /// Azure Blob Storage, schematized.
    #[serde(rename = "azure-blob")]
    AzureBlob,
    /// Google BigQuery.
    #[serde(rename = "bigquery")]
    Bigquery,
    /// Snowflake.
    #[serde(rename = "snowflake")]
    Snowflake,
}

impl DestinationType {
    /// Every type, in the order the docs list them.
    pub const ALL: [DestinationType; 10] = [
        DestinationType::Local,
        DestinationType::LocalRaw,
        DestinationType::S3Raw,
        DestinationType::GcsRaw,
        DestinationType::AzureRaw,
        DestinationType::Aws,
        DestinationType::GcsSchema,
        DestinationType::AzureBlob,
        DestinationType::Bigquery,
        DestinationType::Snowflake,
    ];

    /// The name in the API (`type`).
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::Local => "local",
            DestinationType::LocalRaw => "local-raw",
            DestinationType::S3Raw => "s3-raw",
            DestinationType::GcsRaw => "gcs-raw",
            DestinationType::AzureRaw => "azure-raw",
            DestinationType::Aws => "aws",
            DestinationType::GcsSchema => "gcs-schema",
            DestinationType::AzureBlob => "azure-blob",
            DestinationType::Bigquery => "bigquery",
            DestinationType::Snowflake => "snowflake",
        }
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<DestinationType> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Raw types write events as sent: JSON only, no schema, no sync (P31).
    pub fn is_raw(self) -> bool {
        matches!(
            self,
            DestinationType::LocalRaw
                | DestinationType::S3Raw
                | DestinationType::GcsRaw
                | DestinationType::AzureRaw
        )
    }

    /// Whether this server can write it (P32: the others are refused at create).
    pub fn is_served(self) -> bool {
        !matches!(self, DestinationType::Bigquery | DestinationType::Snowflake)
    }
}

/// How a schematized pipeline lays out its tables (output-format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaType {
    /// One table for every event.
    Monoschema,
    /// One table per event name.
    Multischema,
}

impl SchemaType {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Monoschema => "monoschema",
            SchemaType::Multischema => "multischema",
        }
    }
}

/// The file format of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// JSON lines (Mixpanel's default).
    Json,
    /// Parquet.
    Parquet,
}

impl DataFormat {
    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::Json => "json",
            DataFormat::Parquet => "parquet",
        }
    }
}

/// What a pipeline is asked to do (P2): everything create and edit decide, checked by
/// [`crate::rules`]. Kept as JSON in the state store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// The Mixpanel project.
    pub project_id: u64,
    /// Unique within the project (P30).
    pub name: String,
    /// The destination type.
    #[serde(rename = "type")]
    pub kind: DestinationType,
    /// The folder of a local destination; the output is under `<path>/<project_id>/`.
    pub path: Option<PathBuf>,
    /// The bucket of an object-storage destination; the output is under
    /// `<prefix>/<project_id>/` in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<crate::destination::Bucket>,
    /// Events or people.
    pub data_source: DataSource,
    /// The table layout of a schematized type (`None` for raw types).
    pub schema_type: Option<SchemaType>,
    /// JSON or Parquet.
    pub data_format: DataFormat,
    /// Event names to keep (none: all).
    pub events: Vec<String>,
    /// A `where` expression events must match.
    #[serde(rename = "where")]
    pub where_expr: Option<String>,
    /// A window per day or per hour.
    pub frequency: Frequency,
    /// The first day.
    pub from_date: Date,
    /// The last day of a date-ranged pipeline.
    pub to_date: Option<Date>,
    /// Re-export changed days (P14).
    pub sync: bool,
    /// A trial (P15).
    pub trial: bool,
    /// The project's time zone (IANA): windows and partitions are in it.
    pub tz: String,
    /// Whether windows are run when due (`false`: only on demand, REST schedule null).
    pub automatic: bool,
}

/// A pipeline's state (P2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    /// Runs when windows are due.
    Enabled,
    /// Stopped by a user; resume schedules again.
    Paused,
    /// Stopped because upstream refused its credentials; resume clears it.
    Faulted,
    /// Stopped for good (a trial that expired).
    Canceled,
}

impl PipelineState {
    /// The name in the APIs and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            PipelineState::Enabled => "enabled",
            PipelineState::Paused => "paused",
            PipelineState::Faulted => "faulted",
            PipelineState::Canceled => "canceled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<PipelineState> {
        [
            PipelineState::Enabled,
            PipelineState::Paused,
            PipelineState::Faulted,
            PipelineState::Canceled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A pipeline as stored.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its number.
    pub id: i64,
    /// What it does.
    pub spec: PipelineSpec,
    /// Its state.
    pub state: PipelineState,
    /// Why it is faulted or canceled.
    pub reason: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The first instant of the next window the scheduler has not planned yet.
    pub cursor: Option<Timestamp>,
}

/// Why a run exists (P4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A window that became due after the pipeline was created.
    Scheduled,
    /// A window that had closed before the pipeline was created.
    Backfill,
    /// Asked for by a user (P13).
    Manual,
    /// A committed day checked again for late data (P14).
    Sync,
}

impl RunKind {
    /// The name in the APIs and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Backfill => "backfill",
            RunKind::Manual => "manual",
            RunKind::Sync => "sync",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<RunKind> {
        [
            RunKind::Scheduled,
            RunKind::Backfill,
            RunKind::Manual,
            RunKind::Sync,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// A run's state (P5, Mixpanel's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for its time, or for the project's other run to end.
    Pending,
    /// Exporting.
    Running,
    /// Its windows are committed (or were found unchanged by a sync).
    Succeeded,
    /// Its attempts are spent, or upstream refused it.
    Failed,
    /// It ran longer than the time limit.
    TimedOut,
    /// Stopped by pause, cancel or shutdown; nothing of it was committed.
    Canceled,
    /// An attempt that failed and runs again as a new run.
    Retried,
}

impl RunState {
    /// Every state.
    pub const ALL: [RunState; 7] = [
        RunState::Pending,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::TimedOut,
        RunState::Canceled,
        RunState::Retried,
    ];

    /// The name in the APIs and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::TimedOut => "timed_out",
            RunState::Canceled => "canceled",
            RunState::Retried => "retried",
        }
    }

    /// The state named `s`.
    pub fn parse(s: &str) -> Option<RunState> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Pending | RunState::Running)
    }
}

/// The days `from..=to`: a run's days, one by one.
pub(crate) fn days(from: Date, to: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.tomorrow().ok()).take_while(move |d| *d <= to)
}

/// The steps a run counts (P20), in the order of the `passed` and `failed` arrays.
pub const STEPS: [&str; 5] = ["fetched", "parsed", "filtered", "written", "committed"];

/// What passed and failed at each step of [`STEPS`] (P20).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// Per step: lines received, valid events, events kept, rows written, rows
    /// committed.
    pub passed: [u64; 5],
    /// Per step: lines lost in transfer (always 0: a window is fetched whole or not
    /// at all), rejected lines, events dropped by the filter, rows not written, rows
    /// in windows that were not committed.
    pub failed: [u64; 5],
}

impl StepCounts {
    /// Adds a window of `lines` lines, `rejects` of them rejected and `kept` events
    /// kept, by what became of it. A window skipped as already committed is not this
    /// run's work and adds nothing.
    pub(crate) fn add_window(
        &mut self,
        lines: u64,
        rejects: u64,
        kept: u64,
        status: tidewater::export::WindowStatus,
    ) {
        use tidewater::export::WindowStatus;
        if !matches!(
            status,
            WindowStatus::Committed | WindowStatus::Failed | WindowStatus::Unchanged
        ) {
            return;
        }
        let parsed = lines.saturating_sub(rejects);
        self.passed[0] += lines;
        self.passed[1] += parsed;
        self.failed[1] += rejects;
        self.passed[2] += kept;
        self.failed[2] += parsed.saturating_sub(kept);
        match status {
            WindowStatus::Committed => {
                self.passed[3] += kept;
                self.passed[4] += kept;
            }
            WindowStatus::Failed => self.failed[4] += kept,
            _ => {}
        }
    }
}

/// One run of one pipeline (P4).
#[derive(Debug, Clone)]
pub struct Run {
    /// Its number.
    pub id: i64,
    /// The pipeline.
    pub pipeline_id: i64,
    /// Why it exists.
    pub kind: RunKind,
    /// The first day of its windows (project time).
    pub from_date: Date,
    /// The last day.
    pub to_date: Date,
    /// The first instant of its windows.
    pub interval_start: Timestamp,
    /// The instant after them.
    pub interval_end: Timestamp,
    /// Its state.
    pub state: RunState,
    /// Which scheduler attempt this is (1 for the first).
    pub attempt: u32,
    /// When it may start.
    pub run_at: Timestamp,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub ended_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its counts, once it ended.
    pub steps: Option<StepCounts>,
    /// For a sync: whether the day had changed and was replaced.
    pub changed: Option<bool>,
}

/// A run to add: its pipeline, kind, windows and when it may start.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The pipeline.
    pub pipeline_id: i64,
    /// Why it exists.
    pub kind: RunKind,
    /// The first day.
    pub from_date: Date,
    /// The last day.
    pub to_date: Date,
    /// The first instant.
    pub interval_start: Timestamp,
    /// The instant after.
    pub interval_end: Timestamp,
    /// Which scheduler attempt.
    pub attempt: u32,
    /// When it may start.
    pub run_at: Timestamp,
}

impl Run {
    /// The same windows again, as attempt `attempt`, from `run_at` on.
    pub fn again(&self, attempt: u32, run_at: Timestamp) -> NewRun {
        NewRun {
            pipeline_id: self.pipeline_id,
            kind: self.kind,
            from_date: self.from_date,
            to_date: self.to_date,
            interval_start: self.interval_start,
            interval_end: self.interval_end,
            attempt,
            run_at,
        }
    }
}
