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
    /// The object-storage types' parameters (`s3_bucket`, `container_name`, ...).
    pub destination: std::collections::BTreeMap<String, String>,
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
            format!(
                "{kind_name} is not supported by this server yet; use local, local-raw or an object-storage type"
            ),
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
        // Profiles are one table, mp_people_data, whatever the schema type.
        (None, false) if data_source == DataSource::People => None,
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
    let bucket = crate::destination::bucket_of(kind, &req.destination)?;
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
        bucket,
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
    let name = match &req.name {
        Some(name) => check_name(name)?,
        None => name_of(&base),
    };
    // P15: a schematized trial exports people as well, as a pipeline of its own.
    let people = (trial && !kind.is_raw() && data_source == DataSource::Events).then(|| {
        let people = PipelineSpec {
            data_source: DataSource::People,
            schema_type: None,
            ..base.clone()
        };
        let name = match &req.name {
            Some(_) => format!("{name}-people"),
            None => name_of(&people),
        };
        PipelineSpec { name, ..people }
    });
    Ok(std::iter::once(PipelineSpec { name, ..base })
        .chain(people)
        .collect())
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
    if frequency == Frequency::Hourly && req.sync == Some(true) {
        return Err(invalid(
            "sync",
            "sync checks whole days; use a daily pipeline for sync",
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Pipeline, PipelineState};

    fn now() -> Timestamp {
        "2024-07-15T12:00:00Z".parse().unwrap()
    }

    fn request(pairs: &[(&str, &str)]) -> CreateRequest {
        let mut r = CreateRequest {
            project_id: Some(7),
            kind: Some("local".into()),
            path: Some("/srv/out".into()),
            from_date: Some("2024-07-01".into()),
            ..Default::default()
        };
        for (k, v) in pairs {
            let v = Some(v.to_string()).filter(|v| v != "-");
            match *k {
                "project_id" => r.project_id = v.and_then(|v| v.parse().ok()),
                "type" => r.kind = v,
                "trial" => r.trial = v.map(|v| v == "true"),
                "data_source" => r.data_source = v,
                "schema_type" => r.schema_type = v,
                "sync" => r.sync = v.map(|v| v == "true"),
                "from_date" => r.from_date = v,
                "to_date" => r.to_date = v,
                "frequency" => r.frequency = v,
                "events" => r.events = v.into_iter().collect(),
                "where" => r.where_expr = v,
                "data_format" => r.data_format = v,
                "path" => r.path = v,
                "tz" => r.tz = v,
                "name" => r.name = v,
                _ => {
                    r.destination.insert(k.to_string(), v.unwrap_or_default());
                }
            }
        }
        r
    }

    /// P31, P32, P15: every rule with the message a caller gets (field: text).
    #[test]
    fn p31_every_create_rule_has_its_400_message() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("project_id", "-")], "project_id: is required"),
            (&[("type", "-")], "type: is required; use one of local, local-raw, s3-raw"),
            (&[("type", "ftp")], "type: \"ftp\" is not a pipeline type"),
            (&[("type", "s3-raw")], "s3_bucket: is required for type s3-raw"),
            (&[("type", "aws"), ("s3_bucket", "b-1")], "s3_region: is required for type aws"),
            (&[("type", "aws"), ("s3_bucket", "B_1"), ("s3_region", "us-east-1")], "s3_bucket: \"B_1\" is not a bucket name"),
            (&[("type", "aws"), ("s3_bucket", "b-1"), ("s3_region", "us-east-1"), ("s3_role", "arn:aws:iam::1:role/x")], "s3_role: is not supported by this server"),
            (&[("type", "aws"), ("s3_bucket", "b-1"), ("s3_region", "us-east-1"), ("use_glue", "true")], "use_glue: is not supported by this server"),
            (&[("type", "aws"), ("s3_bucket", "b-1"), ("s3_region", "us-east-1"), ("s3_encryption", "des")], "s3_encryption: \"des\" is not one of none, aes, kms"),
            (&[("type", "aws"), ("s3_bucket", "b-1"), ("s3_region", "us-east-1"), ("s3_encryption", "kms")], "s3_kms_key_id: is required with s3_encryption=kms"),
            (&[("type", "aws"), ("s3_bucket", "b-1"), ("s3_region", "us-east-1"), ("s3_kms_key_id", "k")], "s3_kms_key_id: is only for s3_encryption=kms"),
            (&[("type", "aws"), ("s3_bucket", "b-1"), ("s3_region", "us-east-1"), ("gcs_bucket", "g")], "type: aws takes no parameter gcs_bucket"),
            (&[("type", "gcs-raw")], "gcs_bucket: is required for type gcs-raw"),
            (&[("type", "azure-blob")], "storage_account: is required for type azure-blob"),
            (&[("type", "azure-blob"), ("storage_account", "Bad-Name")], "storage_account: \"Bad-Name\" is not a storage account name"),
            (&[("type", "azure-raw"), ("storage_account", "acct1")], "container_name: is required for type azure-raw"),
            (&[("type", "azure-raw"), ("storage_account", "acct1"), ("container_name", "c-1"), ("client_id", "x")], "client_id: client_id, client_secret and tenant_id go together"),
            (&[("s3_bucket", "b-1")], "type: local takes no parameter s3_bucket"),
            (&[("type", "bigquery")], "type: bigquery is not supported by this server yet"),
            (&[("data_source", "groups")], "data_source: \"groups\" is not allowed; use one of events, people"),
            (&[("type", "local-raw"), ("data_source", "people")], "data_source: raw types export events only"),
            (&[("type", "local-raw"), ("schema_type", "monoschema")], "schema_type: raw types have no schema_type"),
            (&[("data_source", "people"), ("schema_type", "monoschema")], "schema_type: is not supported for data_source=people"),
            (&[("schema_type", "star")], "schema_type: \"star\" is not allowed; use one of monoschema, multischema"),
            (&[("data_format", "csv")], "data_format: \"csv\" is not allowed; use one of json, parquet"),
            (&[("type", "local-raw"), ("data_format", "parquet")], "data_format: raw types write json only"),
            (&[("type", "local-raw"), ("sync", "true")], "sync: raw types cannot sync"),
            (&[("data_source", "people"), ("sync", "true")], "sync: sync is for events only"),
            (&[("tz", "Mars/Olympus")], "tz: \"Mars/Olympus\" is not a time zone"),
            (&[("data_source", "people"), ("where", "true")], "where: is valid only for data_source=events"),
            (&[("events", "")], "events: \"\": an event name cannot be empty"),
            (&[("path", "-")], "path: is required for a local pipeline"),
            (&[("path", "relative/out")], "path: relative/out is not an absolute path"),
            (&[("trial", "true"), ("from_date", "2024-07-01")], "from_date: a trial exports every event daily"),
            (&[("trial", "true"), ("from_date", "-"), ("to_date", "2024-07-10")], "to_date: a trial exports"),
            (&[("trial", "true"), ("from_date", "-"), ("events", "a")], "events: a trial exports"),
            (&[("trial", "true"), ("from_date", "-"), ("where", "true")], "where: a trial exports"),
            (&[("trial", "true"), ("from_date", "-"), ("frequency", "hourly")], "frequency: a trial exports"),
            (&[("trial", "true"), ("from_date", "-"), ("sync", "true")], "sync: a trial cannot sync"),
            (&[("trial", "true"), ("from_date", "-"), ("schema_type", "multischema")], "schema_type: multischema is not available during a trial"),
            (&[("from_date", "-")], "from_date: is required (YYYY-MM-DD) unless trial=true"),
            (&[("from_date", "2024/07/01")], "from_date: \"2024/07/01\" is not a date; use YYYY-MM-DD"),
            (&[("from_date", "2024-01-14")], "from_date: 2024-01-14 is more than 6 months in the past; the earliest is 2024-01-15"),
            (&[("to_date", "07-10")], "to_date: \"07-10\" is not a date"),
            (&[("to_date", "2024-06-30")], "to_date: 2024-06-30 is before from_date 2024-07-01"),
            (&[("to_date", "2024-07-10"), ("frequency", "daily")], "frequency: applies only to pipelines without to_date"),
            (&[("frequency", "weekly")], "frequency: \"weekly\" is not allowed; use one of daily, hourly"),
            (&[("frequency", "hourly"), ("sync", "true")], "sync: sync checks whole days"),
            (&[("where", "properties[\"a\"] ==")], "where: "),
            (&[("name", "no spaces please")], "name: \"no spaces please\": use 1 to 128 letters"),
        ];
        for (pairs, expected) in cases {
            let err = check_create(&request(pairs), now(), &Limits::default())
                .err()
                .unwrap_or_else(|| panic!("{pairs:?} was accepted"));
            let text = err.to_string();
            assert!(
                text.starts_with(expected),
                "{pairs:?}: {text:?} should start with {expected:?}"
            );
        }
        let err = check_create(
            &request(&[("where", "properties[\"a\"] ==")]),
            now(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("column")
                || err.message.contains("position")
                || err.message.contains("at "),
            "a where error says where: {err}"
        );
        // Limits off: any from_date.
        check_create(
            &request(&[("from_date", "2020-01-01")]),
            now(),
            &Limits::none(),
        )
        .unwrap();
    }

    #[test]
    fn p30_names_and_p15_trial_dates() {
        let spec = |pairs: &[(&str, &str)]| {
            check_create(&request(pairs), now(), &Limits::default())
                .unwrap()
                .remove(0)
        };
        assert_eq!(spec(&[]).name, "events-daily-local-monoschema");
        assert_eq!(
            spec(&[("frequency", "hourly"), ("schema_type", "multischema")]).name,
            "events-hourly-local-multischema"
        );
        assert_eq!(
            spec(&[("type", "local-raw")]).name,
            "events-daily-local-raw"
        );
        assert_eq!(
            spec(&[("to_date", "2024-07-10")]).name,
            "events-2024-07-01-2024-07-10-backfill-daily-local-monoschema"
        );
        let trial = spec(&[("trial", "true"), ("from_date", "-")]);
        assert_eq!(trial.name, "trial-events-daily-local-monoschema");
        assert_eq!(trial.from_date.to_string(), "2024-07-14");
        assert_eq!(
            spec(&[("data_source", "people")]).name,
            "people-daily-local"
        );
        // P15: a schematized trial is two pipelines, events and people; a raw one is one.
        let both = check_create(
            &request(&[("trial", "true"), ("from_date", "-")]),
            now(),
            &Limits::default(),
        )
        .unwrap();
        let names: Vec<&str> = both.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "trial-events-daily-local-monoschema",
                "trial-people-daily-local"
            ]
        );
        assert_eq!(both[1].data_source, DataSource::People);
        assert_eq!((both[1].schema_type, both[1].trial), (None, true));
        let raw = check_create(
            &request(&[("trial", "true"), ("from_date", "-"), ("type", "local-raw")]),
            now(),
            &Limits::default(),
        );
        assert_eq!(raw.unwrap().len(), 1);
        let tokyo = spec(&[
            ("trial", "true"),
            ("from_date", "-"),
            ("tz", "Pacific/Kiritimati"),
        ]);
        assert_eq!(
            tokyo.from_date.to_string(),
            "2024-07-15",
            "yesterday in project time (UTC+14)"
        );
        assert_eq!(spec(&[("name", "my.pipe_1")]).name, "my.pipe_1");
    }

    #[test]
    fn p31_project_counts_and_one_trial_ever() {
        let limits = Limits::default();
        let make = |pairs: &[(&str, &str)]| check_create(&request(pairs), now(), &limits).unwrap();
        let existing = |specs: Vec<PipelineSpec>| -> Vec<Pipeline> {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, spec)| Pipeline {
                    id: i as i64 + 1,
                    spec,
                    state: PipelineState::Enabled,
                    reason: None,
                    created_at: now(),
                    cursor: None,
                })
                .collect()
        };
        let daily = make(&[]);
        let hourly = make(&[("frequency", "hourly")]);
        let ranged = make(&[("to_date", "2024-07-10")]);
        let check = |new: &[PipelineSpec], have: Vec<PipelineSpec>, had_trial: bool| {
            let have = existing(have);
            check_project(
                new,
                &ProjectFacts {
                    pipelines: &have,
                    had_trial,
                },
                &limits,
            )
        };
        check(&hourly, daily.clone(), false).unwrap();
        let same = check(&daily, daily.clone(), false).unwrap_err();
        assert!(
            same.starts_with(
                "frequency: recurring pipelines of a project must have different frequencies"
            ),
            "{same}"
        );
        let third = check(&daily, [daily.clone(), hourly.clone()].concat(), false).unwrap_err();
        assert!(
            third.starts_with("to_date: the project has 2 recurring event pipelines"),
            "{third}"
        );
        check(&ranged, [daily.clone(), hourly].concat(), false).unwrap();
        let second_range = check(&ranged, ranged.clone(), false).unwrap_err();
        assert!(
            second_range.starts_with("to_date: the project has 1 date-ranged"),
            "{second_range}"
        );
        let trial = make(&[("trial", "true"), ("from_date", "-")]);
        let again = check(&trial, Vec::new(), true).unwrap_err();
        assert!(again.contains("already had a trial"), "{again}");
        check_project(
            &daily,
            &ProjectFacts {
                pipelines: &existing(daily.clone()),
                had_trial: false,
            },
            &Limits::none(),
        )
        .unwrap();
    }

    #[test]
    fn p16_edit_changes_events_and_where_only_as_the_rules_allow() {
        let spec = check_create(&request(&[]), now(), &Limits::default())
            .unwrap()
            .remove(0);
        let edited = check_edit(
            &spec,
            Some(vec!["a".into()]),
            Some("properties[\"x\"] == 1".into()),
        )
        .unwrap();
        assert_eq!(edited.events, ["a"]);
        assert_eq!(edited.where_expr.as_deref(), Some("properties[\"x\"] == 1"));
        let cleared = check_edit(&edited, None, Some(String::new())).unwrap();
        assert_eq!(cleared.where_expr, None);
        assert_eq!(cleared.events, ["a"], "not given: unchanged");
        assert!(check_edit(&spec, None, Some("(".into()))
            .unwrap_err()
            .to_string()
            .starts_with("where: "));
        let trial = check_create(
            &request(&[("trial", "true"), ("from_date", "-")]),
            now(),
            &Limits::default(),
        )
        .unwrap()
        .remove(0);
        assert!(check_edit(&trial, Some(vec!["a".into()]), None).is_err());
    }
}
