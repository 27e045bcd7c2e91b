//! How pipelines, runs and times look in the APIs' JSON.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::model::{Pipeline, Run, STEPS};
use crate::schedule::Frequency;

/// The project's zone (UTC if the name is no longer known).
pub(crate) fn project_zone(tz: &str) -> TimeZone {
    TimeZone::get(tz).unwrap_or(TimeZone::UTC)
}

/// RFC 3339 with the project's offset, as Mixpanel's tasks show times.
pub(crate) fn rfc3339(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Go's `time.Time.String()`, as Mixpanel's timeline shows sync times.
pub(crate) fn go_time(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S%.f %z %Z")
        .to_string()
}

/// `2019-02-01 12:00:00 US/Pacific`, as Mixpanel's jobs show `last_dispatched`.
pub(crate) fn local_with_zone(t: Timestamp, tz: &str) -> String {
    format!(
        "{} {tz}",
        t.to_zoned(project_zone(tz)).strftime("%Y-%m-%d %H:%M:%S")
    )
}

/// The REST schedule period of a pipeline.
pub(crate) fn period(p: &Pipeline) -> Value {
    if !p.spec.automatic {
        return Value::Null;
    }
    match p.spec.frequency {
        Frequency::Daily => json!("24h"),
        Frequency::Hourly => json!("1h"),
    }
}

/// A pipeline in the REST API (credentials never shown, P40).
pub(crate) fn pipeline(p: &Pipeline) -> Value {
    let s = &p.spec;
    json!({
        "id": p.id,
        "project_id": s.project_id,
        "name": s.name,
        "type": s.kind.as_str(),
        "path": s.path,
        "destination": s.bucket.as_ref().map(destination),
        "data_source": s.data_source.as_str(),
        "schema_type": s.schema_type.map(|t| t.as_str()),
        "data_format": s.data_format.as_str(),
        "events": s.events,
        "where": s.where_expr,
        "frequency": s.frequency.as_str(),
        "from_date": s.from_date.to_string(),
        "to_date": s.to_date.map(|d| d.to_string()),
        "sync": s.sync,
        "trial": s.trial,
        "tz": s.tz,
        "schedule": {"period": period(p)},
        "enabled": p.state == crate::model::PipelineState::Enabled,
        "state": p.state.as_str(),
        "faulted_reason": p.reason,
        "created_at": p.created_at.to_string(),
        "credentials": "********",
    })
}

/// An object-storage destination as shown: its URL and parameters, the client secret
/// masked (P40).
fn destination(b: &crate::destination::Bucket) -> Value {
    json!({
        "url": b.url(),
        "region": b.region,
        "encryption": b.encryption,
        "kms_key_id": b.kms_key_id,
        "storage_account": b.storage_account,
        "client_id": b.client_id,
        "tenant_id": b.tenant_id,
        "client_secret": b.client_secret.as_ref().map(|_| "********"),
    })
}

/// A run in the REST API (P20, P28).
pub(crate) fn run(r: &Run) -> Value {
    let steps = r.steps.clone().unwrap_or_default();
    json!({
        "id": r.id,
        "pipeline": r.pipeline_id,
        "kind": r.kind.as_str(),
        "state": r.state.as_str(),
        "attempt": r.attempt,
        "from_date": r.from_date.to_string(),
        "to_date": r.to_date.to_string(),
        "data_interval_start": r.interval_start.to_string(),
        "data_interval_end": r.interval_end.to_string(),
        "run_at": r.run_at.to_string(),
        "startTime": r.started_at.map(|t| t.to_string()),
        "endTime": r.ended_at.map(|t| t.to_string()),
        "steps": STEPS,
        "passed": steps.passed,
        "failed": steps.failed,
        "error": r.error,
        "changed": r.changed,
    })
}
