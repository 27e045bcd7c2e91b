//! `/openapi.json`, made from the route table the router is built from: a route
//! cannot be served without being described, or described without being served.

use serde_json::{json, Map, Value};

use super::ROUTES;

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
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "status": {"type": "string", "enum": ["error"]}}},
            },
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
