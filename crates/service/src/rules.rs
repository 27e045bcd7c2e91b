//! What create and edit accept (P15, P30, P31, P32): one place that both APIs call, so
//! that a rule and its message are the same whichever API was used. Mixpanel's limits
//! are on by default and can be turned off ([`Limits::none`]).

use std::path::PathBuf;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use tidewater::{Error as EngineError, RunOptions};

use crate::model::{DataFormat, DataSource, DestinationType, PipelineSpec, SchemaType};
use crate::schedule::Frequency;
use crate::store::ProjectFacts;

/// A create or edit request as both APIs receive it, before any check.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The project.
    pub project_id: Option<u64>,
    /// A name of the caller's choosing (REST only; otherwise P30's).
    pub name: Option<String>,
    /// `type`.
    pub kind: Option<String>,
    /// `trial`.
    pub trial: Option<bool>,
    /// `data_source`.
    pub data_source: Option<String>,
    /// `schema_type`.
    pub schema_type: Option<String>,
    /// `sync`.
    pub sync: Option<bool>,
    /// `from_date`.
    pub from_date: Option<String>,
    /// `to_date`.
    pub to_date: Option<String>,
    /// `frequency`.
    pub frequency: Option<String>,
    /// `events`.
    pub events: Vec<String>,
    /// `where`.
    pub where_expr: Option<String>,
    /// `data_format`.
    pub data_format: Option<String>,
    /// `path` (type `local`, `local-raw`).
    pub path: Option<String>,
    /// `tz`: the project's time zone (Tidewater's; Mixpanel knows it from the project).
    pub tz: Option<String>,
}

/// A request that breaks a rule: the parameter and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The parameter at fault.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

/// Mixpanel's limits (P31), each of which a server may turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How far back `from_date` may be, in months (Mixpanel: 6).
    pub backfill_months: Option<u32>,
    /// Recurring event pipelines per project (Mixpanel: 2, of different frequencies).
    pub recurring: Option<usize>,
    /// Date-ranged event pipelines per project (Mixpanel: 1).
    pub date_ranged: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            backfill_months: Some(6),
            recurring: Some(2),
            date_ranged: Some(1),
        }
    }
}

impl Limits {
    /// No limit at all.
    pub fn none() -> Self {
        Limits {
            backfill_months: None,
            recurring: None,
            date_ranged: None,
        }
    }
}

fn parse_date(field: &'static str, text: &str) -> Result<Date, Invalid> {
    Date::strptime("%Y-%m-%d", text).map_err(|_| {
        invalid(
            field,
            format!("{text:?} is not a date; use YYYY-MM-DD, e.g. 2024-01-31"),
        )
    })
}

fn one_of<T: Copy>(field: &'static str, given: &str, choices: &[(&str, T)]) -> Result<T, Invalid> {
    choices
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            invalid(
                field,
                format!("{given:?} is not allowed; use one of {}", names.join(", ")),
            )
        })
}

/// The project's "today" at `now`, in its time zone.
pub fn today_in(tz: &str, now: Timestamp) -> Result<Date, Invalid> {
    let zone = jiff::tz::TimeZone::get(tz).map_err(|_| {
        invalid(
            "tz",
            format!("{tz:?} is not a time zone; use an IANA name such as UTC or Europe/Berlin"),
        )
    })?;
    Ok(now.to_zoned(zone).date())
}

/// Checks a create request and returns the pipelines it makes (one, or two for a
/// schematized trial, P15), named by P30 unless the request names it.
pub fn check_create(
    req: &CreateRequest,
    now: Timestamp,
    limits: &Limits,
) -> Result<Vec<PipelineSpec>, Invalid> {
    let project_id = req
        .project_id
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid("project_id", "is required: the Mixpanel project's id"))?;
    let names: Vec<&str> = DestinationType::ALL.iter().map(|t| t.as_str()).collect();
    let kind_name = req.kind.as_deref().ok_or_else(|| {
        invalid(
            "type",
            format!("is required; use one of {}", names.join(", ")),
        )
    })?;
    let kind = DestinationType::parse(kind_name).ok_or_else(|| {
        invalid(
            "type",
            format!(
                "{kind_name:?} is not a pipeline type; use one of {}",
                names.join(", ")
            ),
        )
    })?;
    if !kind.is_served() {
        return Err(invalid(
            "type",
            format!("{kind_name} is not supported by this server yet; use local or local-raw"),
        ));
    }
    let trial = req.trial.unwrap_or(false);
    let data_source = match req.data_source.as_deref() {
        None => DataSource::Events,
        Some(s) => one_of(
            "data_source",
            s,
            &[
                ("events", DataSource::Events),
                ("people", DataSource::People),
            ],
        )?,
    };
    if kind.is_raw() && data_source == DataSource::People {
        return Err(invalid("data_source", "raw types export events only"));
    }
    let schema_type = match (req.schema_type.as_deref(), kind.is_raw()) {
        (Some(_), true) => {
            return Err(invalid(
                "schema_type",
                "raw types have no schema_type; leave it out",
            ))
        }
        (Some(_), false) if data_source == DataSource::People => {
            return Err(invalid(
                "schema_type",
                "is not supported for data_source=people (profiles are always monoschema)",
            ))
        }
        (Some(s), false) => Some(one_of(
            "schema_type",
            s,
            &[
                ("monoschema", SchemaType::Monoschema),
                ("multischema", SchemaType::Multischema),
            ],
        )?),
        (None, true) => None,
        (None, false) => Some(SchemaType::Monoschema),
    };
    let data_format = match req.data_format.as_deref() {
        None => DataFormat::Json,
        Some(s) => one_of(
            "data_format",
            s,
            &[("json", DataFormat::Json), ("parquet", DataFormat::Parquet)],
        )?,
    };
    if kind.is_raw() && data_format == DataFormat::Parquet {
        return Err(invalid(
            "data_format",
            "raw types write json only; use a schematized type (local) for parquet",
        ));
    }
    let sync = req.sync.unwrap_or(false);
    if sync && kind.is_raw() {
        return Err(invalid("sync", "raw types cannot sync; leave sync out"));
    }
    if sync && data_source == DataSource::People {
        return Err(invalid("sync", "sync is for events only"));
    }
    let tz = req.tz.clone().unwrap_or_else(|| "UTC".into());
    let today = today_in(&tz, now)?;
    if req.where_expr.as_deref().is_some_and(|w| !w.is_empty()) && data_source != DataSource::Events
    {
        return Err(invalid("where", "is valid only for data_source=events"));
    }
    if let Some(e) = req.events.iter().find(|e| e.is_empty()) {
        return Err(invalid(
            "events",
            format!("{e:?}: an event name cannot be empty"),
        ));
    }
    let path = destination_path(kind, req.path.as_deref())?;
    let (from_date, to_date, frequency) = if trial {
        check_trial(req, schema_type, sync)?;
        (today.yesterday().unwrap_or(today), None, Frequency::Daily)
    } else {
        check_dates(req, today, limits)?
    };
    let where_expr = req.where_expr.clone().filter(|w| !w.is_empty());
    check_where(where_expr.as_deref(), &tz)?;
    let base = PipelineSpec {
        project_id,
        name: String::new(),
        kind,
        path,
        data_source,
        schema_type,
        data_format,
        events: req.events.clone(),
        where_expr,
        frequency,
        from_date,
        to_date,
        sync,
        trial,
        tz,
        automatic: true,
    };
    if data_source == DataSource::People {
        // Profiles come with the people source (Engage); until then, refused here
        // rather than accepted and failed later (P32). For the same reason a
        // schematized trial makes only its events pipeline for now (P15 asks for
        // both).
        return Err(invalid(
            "data_source",
            "people is not supported by this server yet; use events",
        ));
    }
    let name = match &req.name {
        Some(name) => check_name(name)?,
        None => name_of(&base),
    };
    Ok(vec![PipelineSpec { name, ..base }])
}

fn destination_path(kind: DestinationType, path: Option<&str>) -> Result<Option<PathBuf>, Invalid> {
    match kind {
        DestinationType::Local | DestinationType::LocalRaw => {
            let path = path.filter(|p| !p.is_empty()).ok_or_else(|| {
                invalid(
                    "path",
                    "is required for a local pipeline: the folder on the server to write to",
                )
            })?;
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(invalid(
                    "path",
                    format!("{} is not an absolute path", path.display()),
                ));
            }
            Ok(Some(path))
        }
        _ => Ok(None),
    }
}

fn check_trial(
    req: &CreateRequest,
    schema_type: Option<SchemaType>,
    sync: bool,
) -> Result<(), Invalid> {
    let given: [(&'static str, bool); 5] = [
        ("from_date", req.from_date.is_some()),
        ("to_date", req.to_date.is_some()),
        ("events", !req.events.is_empty()),
        (
            "where",
            req.where_expr.as_deref().is_some_and(|w| !w.is_empty()),
        ),
        (
            "frequency",
            req.frequency.as_deref().is_some_and(|f| f != "daily"),
        ),
    ];
    if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
        return Err(invalid(
            field,
            "a trial exports every event daily from yesterday on; leave it out",
        ));
    }
    if sync {
        return Err(invalid("sync", "a trial cannot sync; leave sync out"));
    }
    if schema_type == Some(SchemaType::Multischema) {
        return Err(invalid(
            "schema_type",
            "multischema is not available during a trial; use monoschema",
        ));
    }
    Ok(())
}

fn check_dates(
    req: &CreateRequest,
    today: Date,
    limits: &Limits,
) -> Result<(Date, Option<Date>, Frequency), Invalid> {
    let from_text = req
        .from_date
        .as_deref()
        .ok_or_else(|| invalid("from_date", "is required (YYYY-MM-DD) unless trial=true"))?;
    let from = parse_date("from_date", from_text)?;
    if let Some(months) = limits.backfill_months {
        let earliest = today
            .checked_sub(i64::from(months).months())
            .unwrap_or(Date::MIN);
        if from < earliest {
            return Err(invalid(
                "from_date",
                format!(
                    "{from} is more than {months} months in the past; the earliest is {earliest}"
                ),
            ));
        }
    }
    let to = req
        .to_date
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| parse_date("to_date", t))
        .transpose()?;
    if let Some(to) = to.filter(|to| *to < from) {
        return Err(invalid(
            "to_date",
            format!("{to} is before from_date {from}"),
        ));
    }
    let frequency = match (req.frequency.as_deref(), to) {
        (None, _) => Frequency::Daily,
        (Some(_), Some(_)) => {
            return Err(invalid(
                "frequency",
                "applies only to pipelines without to_date; leave it out",
            ))
        }
        (Some(f), None) => one_of(
            "frequency",
            f,
            &[("daily", Frequency::Daily), ("hourly", Frequency::Hourly)],
        )?,
    };
    Ok((from, to, frequency))
}

/// Compiles `where` as a run would, so that a bad one is a 400 that says where.
pub fn check_where(where_expr: Option<&str>, tz: &str) -> Result<(), Invalid> {
    let Some(expr) = where_expr else {
        return Ok(());
    };
    let options = RunOptions {
        where_expr: Some(expr.to_string()),
        tz: tz.to_string(),
        ..Default::default()
    };
    match options.validate() {
        Ok(_) => Ok(()),
        Err(EngineError::Config { message, .. }) => Err(invalid("where", message)),
        Err(e) => Err(invalid("where", e.to_string())),
    }
}

/// A name given by the caller: what a folder, a URL and a log line can all hold.
pub fn check_name(name: &str) -> Result<String, Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(invalid(
            "name",
            format!("{name:?}: use 1 to 128 letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// P30: `[trial-]<data_source>-<frequency>-<type>[-<schema_type>]`, or for a
/// date-ranged pipeline `[trial-]<data_source>-<from>-<to>-backfill-<frequency>-<type>
/// [-<schema_type>]`.
pub fn name_of(spec: &PipelineSpec) -> String {
    let mut name = String::new();
    if spec.trial {
        name.push_str("trial-");
    }
    name.push_str(spec.data_source.as_str());
    if let Some(to) = spec.to_date {
        name.push_str(&format!("-{}-{}-backfill", spec.from_date, to));
    }
    name.push_str(&format!(
        "-{}-{}",
        spec.frequency.as_str(),
        spec.kind.as_str()
    ));
    if let Some(schema) = spec.schema_type {
        name.push('-');
        name.push_str(schema.as_str());
    }
    name
}

/// The checks that need the project's other pipelines (P31 counts, P15 one trial
/// ever), run inside the store's create transaction.
pub fn check_project(
    specs: &[PipelineSpec],
    facts: &ProjectFacts<'_>,
    limits: &Limits,
) -> Result<(), String> {
    for spec in specs {
        if spec.trial && facts.had_trial {
            return Err("trial: this project already had a trial (one per project, ever)".into());
        }
        if spec.data_source != DataSource::Events {
            continue;
        }
        let events = facts
            .pipelines
            .iter()
            .filter(|p| p.spec.data_source == DataSource::Events);
        match spec.to_date {
            None => {
                let recurring: Vec<_> = events.filter(|p| p.spec.to_date.is_none()).collect();
                if let Some(max) = limits.recurring {
                    if recurring.len() >= max {
                        return Err(format!(
                            "to_date: the project has {} recurring event pipelines, the most \
                             allowed; cancel one or give a to_date",
                            recurring.len()
                        ));
                    }
                    if let Some(same) = recurring
                        .iter()
                        .find(|p| p.spec.frequency == spec.frequency)
                    {
                        return Err(format!(
                            "frequency: recurring pipelines of a project must have different \
                             frequencies, and {} is {} already",
                            same.spec.name,
                            spec.frequency.as_str()
                        ));
                    }
                }
            }
            Some(_) => {
                let ranged = events.filter(|p| p.spec.to_date.is_some()).count();
                if limits.date_ranged.is_some_and(|max| ranged >= max) {
                    return Err(format!(
                        "to_date: the project has {ranged} date-ranged event pipeline(s), the \
                         most allowed; cancel it first"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// An edit (P16): `events`, `where` (and the credentials, handled by the caller).
/// Returns the edited spec.
pub fn check_edit(
    spec: &PipelineSpec,
    events: Option<Vec<String>>,
    where_expr: Option<String>,
) -> Result<PipelineSpec, Invalid> {
    let mut edited = spec.clone();
    if spec.trial && (events.as_ref().is_some_and(|e| !e.is_empty()) || where_expr.is_some()) {
        return Err(invalid(
            "events",
            "a trial exports every event; it cannot be filtered",
        ));
    }
    if let Some(events) = events {
        if let Some(e) = events.iter().find(|e| e.is_empty()) {
            return Err(invalid(
                "events",
                format!("{e:?}: an event name cannot be empty"),
            ));
        }
        edited.events = events;
    }
    if let Some(w) = where_expr {
        if spec.data_source != DataSource::Events && !w.is_empty() {
            return Err(invalid("where", "is valid only for data_source=events"));
        }
        let w = Some(w).filter(|w| !w.is_empty());
        check_where(w.as_deref(), &spec.tz)?;
        edited.where_expr = w;
    }
    Ok(edited)
}
