//! `/openapi.json`, made from the route table the router is built from: a route
//! cannot be served without being described, or described without being served. The
//! schemas of pipelines and runs are read off what the views render for a sample, so
//! that they cannot drift from the answers.

use serde_json::{json, Map, Value};

use super::{view, ROUTES};
use crate::model::{
    DataFormat, DataSource, DestinationType, Pipeline, PipelineSpec, PipelineState, Run, RunKind,
    RunState, SchemaType, StepCounts,
};
use crate::schedule::Frequency;

/// The JSON schema of `value`'s shape (every field of the sample is set).
fn schema_of(value: &Value) -> Value {
    match value {
        Value::Null => json!({"nullable": true}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(items) => {
            json!({"type": "array", "items": items.first().map_or(json!({}), schema_of)})
        }
        Value::Object(fields) => {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), schema_of(v)))
                .collect();
            json!({"type": "object", "properties": properties})
        }
    }
}

fn sample_pipeline() -> Pipeline {
    let day = jiff::civil::date(2024, 1, 1);
    Pipeline {
        id: 1,
        spec: PipelineSpec {
            project_id: 1,
            name: "events-daily-local-monoschema".into(),
            kind: DestinationType::Local,
            path: Some("/srv/out".into()),
            // Both kinds of destination, so that the schema shows both (a pipeline has
            // one: the other is null).
            bucket: Some(crate::destination::Bucket {
                scheme: "s3".into(),
                bucket: "bucket".into(),
                prefix: "prefix".into(),
                region: Some("us-east-1".into()),
                encryption: Some(crate::destination::S3Encryption::Kms),
                kms_key_id: Some("key".into()),
                storage_account: Some("account".into()),
                client_id: Some("id".into()),
                tenant_id: Some("tenant".into()),
                client_secret: Some("sealed".into()),
            }),
            data_source: DataSource::Events,
            schema_type: Some(SchemaType::Monoschema),
            data_format: DataFormat::Parquet,
            events: vec!["Signup".into()],
            where_expr: Some("true".into()),
            frequency: Frequency::Daily,
            from_date: day,
            to_date: Some(day),
            sync: true,
            trial: false,
            tz: "UTC".into(),
            automatic: true,
        },
        state: PipelineState::Faulted,
        reason: Some("why".into()),
        created_at: jiff::Timestamp::UNIX_EPOCH,
        cursor: None,
    }
}

fn sample_run() -> Run {
    let (day, t) = (jiff::civil::date(2024, 1, 1), jiff::Timestamp::UNIX_EPOCH);
    Run {
        id: 1,
        pipeline_id: 1,
        kind: RunKind::Backfill,
        from_date: day,
        to_date: day,
        interval_start: t,
        interval_end: t,
        state: RunState::Succeeded,
        attempt: 1,
        run_at: t,
        started_at: Some(t),
        ended_at: Some(t),
        error: Some("why".into()),
        steps: Some(StepCounts::default()),
        changed: Some(true),
    }
}

/// The answers' schemas, by name.
fn schemas() -> Map<String, Value> {
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let mut pipeline = schema_of(&view::pipeline(&sample_pipeline()));
    for nullable in [
        "path",
        "destination",
        "schema_type",
        "where",
        "to_date",
        "faulted_reason",
    ] {
        pipeline["properties"][nullable]["nullable"] = json!(true);
    }
    let mut run = schema_of(&view::run(&sample_run()));
    for nullable in ["startTime", "endTime", "error", "changed"] {
        run["properties"][nullable]["nullable"] = json!(true);
    }
    let mut all = Map::new();
    all.insert("Pipeline".into(), pipeline);
    all.insert("Run".into(), run);
    all.insert(
        "PipelineList".into(),
        json!({"type": "object", "properties": {"pipelines": {"type": "array", "items": reference("Pipeline")}}}),
    );
    all.insert(
        "RunPage".into(),
        json!({"type": "object", "properties": {"runs": {"type": "array", "items": reference("Run")}, "next_before": {"type": "integer", "nullable": true}}}),
    );
    all.insert(
        "RunCreated".into(),
        json!({"type": "object", "properties": {"id": {"type": "integer"}, "runs": {"type": "array", "items": {"type": "integer"}}}}),
    );
    all.insert(
        "PipelineStatus".into(),
        json!({"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "state": {"type": "string"}, "enabled": {"type": "boolean"}, "faulted_reason": {"type": "string", "nullable": true}, "latest_run": reference("Run")}}),
    );
    all.insert(
        "PipelineNames".into(),
        json!({"type": "object", "properties": {"pipeline_names": {"type": "array", "items": {"type": "string"}}}}),
    );
    all.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "status": {"type": "string", "enum": ["error"]}}}),
    );
    all
}

/// The service's API as an OpenAPI 3.0 document.
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        let path_params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer"}}))
            .collect();
        let nessie = route.path.starts_with("/api/2.0/nessie");
        for method in route.methods {
            let mut op = json!({
                "summary": route.summary,
                "tags": [route.tag],
                "responses": responses(nessie),
            });
            if let Some((_, schema)) = route.returns.iter().find(|(m, _)| m == method) {
                op["responses"]["200"]["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
            }
            let fields: Map<String, Value> = route
                .params
                .iter()
                .map(|(name, what)| {
                    (
                        name.to_string(),
                        json!({"description": what, "type": "string"}),
                    )
                })
                .collect();
            let mut parameters = path_params.clone();
            match (*method, nessie) {
                ("GET", _) | ("DELETE", _) => parameters.extend(route.params.iter().map(|(name, what)| {
                    json!({"name": name, "in": "query", "description": what, "schema": {"type": "string"}})
                })),
                (_, true) => {
                    op["requestBody"] = json!({"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": fields}}}});
                }
                (_, false) => {
                    op["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object", "properties": fields}}}});
                }
            }
            if !parameters.is_empty() {
                op["parameters"] = Value::Array(parameters);
            }
            if nessie {
                op["security"] = json!([{"basic": []}]);
            } else if route.path.starts_with("/v1") {
                op["security"] = json!([{"bearer": []}]);
            }
            entry[method.to_lowercase()] = op;
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Tidewater pipelines service",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Mixpanel's Data Pipelines API (form bodies, HTTP Basic with Mixpanel credentials) and a REST API with runs (JSON, bearer API keys).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic", "description": "A service account user:secret (with project_id), or the project's API secret as the user name"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key made with `tidewater serve keys create`"},
            },
            "schemas": schemas(),
        },
    })
}

fn responses(nessie: bool) -> Value {
    let error = json!({"description": "An error that says what to fix", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut r = json!({"200": {"description": "Success"}});
    for code in ["400", "401", "403", "404"] {
        r[code] = error.clone();
    }
    if !nessie {
        for code in ["409", "422"] {
            r[code] = error.clone();
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn p29_the_document_names_every_route_and_every_schema_it_refers_to_exists() {
        let doc = openapi_document();
        for route in ROUTES {
            for method in route.methods {
                assert!(
                    doc["paths"][route.path][method.to_lowercase()].is_object(),
                    "{method} {}",
                    route.path
                );
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20);
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(doc["components"]["schemas"][name].is_object(), "{r}");
        }
        let run = &doc["components"]["schemas"]["Run"]["properties"];
        assert_eq!(run["passed"]["type"], "array");
        assert_eq!(run["passed"]["items"]["type"], "integer");
        assert_eq!(run["endTime"]["nullable"], true);
        let pipeline = &doc["components"]["schemas"]["Pipeline"]["properties"];
        assert_eq!(
            pipeline["schedule"]["properties"]["period"]["type"],
            "string"
        );
        assert_eq!(pipeline["enabled"]["type"], "boolean");
    }
}
