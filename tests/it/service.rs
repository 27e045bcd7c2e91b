//! The pipelines service (pipelines-api P1–P42) against the mock export server on
//! loopback: the service runs in-process on a simulated clock (P21), so that days of
//! schedule, sync and a trial's expiry pass in seconds; its HTTP APIs are called as a
//! client would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{json, Value};
use tidewater::export::Tuning;
use tidewater_mock::{Fault, MockAuth, MockConfig, MockServer};
use tidewater_service::model::RunState;
use tidewater_service::rules::Limits;
use tidewater_service::{
    ApiKeys, RunFilter, SecretBox, Service, ServiceConfig, SimulatedClock, StateStore,
};

use crate::export::generated;

pub(crate) const SECRET: &str = "s3cret-Tidewater-test-9f2c";
const PROJECT: u64 = 4242;

/// The mock, a service on a simulated clock with its API on loopback, and a client.
pub(crate) struct Harness {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub mock: MockServer,
    pub clock: SimulatedClock,
    pub service: Service,
    pub url: String,
    pub runtime: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    pub key: String,
    pub out: PathBuf,
}

pub(crate) fn fast_tuning() -> Tuning {
    Tuning {
        concurrency: 2,
        max_attempts: 2,
        timeout_first_byte: Duration::from_millis(2000),
        stall_timeout: Duration::from_millis(2000),
        pace: vec![(1000, Duration::from_secs(1))],
        backoff_rate_limited_first: Duration::from_millis(20),
        backoff_rate_limited_max: Duration::from_millis(50),
        backoff_first: Duration::from_millis(20),
        backoff_max: Duration::from_millis(50),
    }
}

impl Harness {
    /// `events` generated events over 30 days from 2024-01-01, a clock at `now`.
    pub fn start(
        events: u64,
        now: &str,
        faults: &[&str],
        configure: impl FnOnce(&mut ServiceConfig),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = generated(dir.path(), events, 30);
        let mock = MockServer::start(MockConfig {
            data: vec![data.clone()],
            auth: MockAuth::Secret(SECRET.into()),
            today: Some(jiff::civil::date(2024, 12, 31)),
            limits: Vec::new(),
            faults: faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
            ..Default::default()
        })
        .unwrap();
        let clock = SimulatedClock::new(now.parse().unwrap());
        let mut config = ServiceConfig {
            mixpanel_url: mock.url().to_string(),
            tuning: fast_tuning(),
            limits: Limits::default(),
            grace: Duration::from_secs(5),
            ..ServiceConfig::default()
        };
        configure(&mut config);
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let (_, key) = ApiKeys::new(store.clone()).create("tests", None).unwrap();
        let secrets = SecretBox::from_key_text(&SecretBox::generate_key_text().unwrap()).unwrap();
        let service = Service::new(store, Arc::new(clock.clone()), secrets, config).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let url = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = tidewater_service::api::router(service.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            let scheduler = service.clone();
            tokio::spawn(async move { scheduler.run_scheduler().await });
            format!("http://{addr}")
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let out = dir.path().join("out");
        Harness {
            dir,
            data,
            mock,
            clock,
            service,
            url,
            runtime,
            http: reqwest::Client::new(),
            key,
            out,
        }
    }

    /// A Mixpanel-API call with `params` (form body for POST, query for GET) and the
    /// test's API secret: the status and the JSON answer.
    pub fn nessie(&self, method: &str, endpoint: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.nessie_as(method, endpoint, params, Some((SECRET, "")))
    }

    pub fn nessie_as(
        &self,
        method: &str,
        endpoint: &str,
        params: &[(&str, &str)],
        auth: Option<(&str, &str)>,
    ) -> (u16, Value) {
        let url = format!("{}/api/2.0/nessie/pipeline/{endpoint}", self.url);
        let mut req = match method {
            "GET" => self.http.get(&url).query(params),
            _ => self
                .http
                .post(&url)
                .body(form(params))
                .header("content-type", "application/x-www-form-urlencoded"),
        };
        if let Some((user, pass)) = auth {
            req = req.basic_auth(user, Some(pass));
        }
        self.send(req)
    }

    /// A REST call with the test's API key.
    pub fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.rest_as(method, path, body, Some(&self.key))
    }

    pub fn rest_as(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let mut req = self
            .http
            .request(method.parse().unwrap(), &url)
            .header("content-type", "application/json");
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        self.send(req)
    }

    pub fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        self.runtime.block_on(async {
            let response = req.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, value)
        })
    }

    /// Creates a local pipeline from `from_date` with extra parameters; its names.
    pub fn create(&self, extra: &[(&str, &str)]) -> Vec<String> {
        let out = self.out.to_str().unwrap().to_string();
        let project = PROJECT.to_string();
        let mut params = vec![
            ("project_id", project.as_str()),
            ("type", "local"),
            ("path", out.as_str()),
        ];
        params.extend_from_slice(extra);
        let (status, body) = self.nessie("POST", "create", &params);
        assert_eq!(status, 200, "{body}");
        body["pipeline_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    /// Runs of every pipeline, oldest first.
    pub fn runs(&self) -> Vec<tidewater_service::model::Run> {
        let mut runs = self
            .service
            .store()
            .runs(&RunFilter {
                limit: 100_000,
                ..Default::default()
            })
            .unwrap();
        runs.reverse();
        runs
    }

    /// Waits (at most a minute of real time) until `done` holds for the runs and no
    /// run is in progress.
    pub fn wait_for(&self, what: &str, done: impl Fn(&[tidewater_service::model::Run]) -> bool) {
        let start = Instant::now();
        loop {
            let runs = self.runs();
            if done(&runs) && self.service.runs_in_progress() == 0 {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "gave up waiting for {what}; runs: {:#?}",
                runs.iter()
                    .map(|r| (r.id, r.kind, r.from_date, r.state, r.error.clone()))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn advance_to(&self, at: &str) {
        self.clock.set(at.parse::<Timestamp>().unwrap());
    }

    pub fn succeeded_days(&self) -> Vec<String> {
        let mut days: Vec<String> = self
            .runs()
            .iter()
            .filter(|r| r.state == RunState::Succeeded)
            .map(|r| r.from_date.to_string())
            .collect();
        days.sort();
        days
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.service.stop();
    }
}

/// A query parameter of a logged request.
pub(crate) fn query_value(request: &str, key: &str) -> String {
    let query = request.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn form(params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Events of the generated file per day (UTC), from the lines themselves.
pub(crate) fn events_per_day(data: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(data).unwrap()),
        &mut text,
    )
    .unwrap();
    let mut days = std::collections::BTreeMap::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let t = v["properties"]["time"].as_f64().unwrap() as i64;
        let ms = if t < 100_000_000_000 { t * 1000 } else { t };
        let day = Timestamp::from_millisecond(ms)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        *days.entry(day.to_string()).or_insert(0) += 1;
    }
    days
}

#[test]
fn p10_p11_p20_p23_p24_backfill_oldest_first_then_daily_at_0030_with_status_and_timeline() {
    let h = Harness::start(3000, "2024-01-05T12:00:00Z", &[], |_| {});
    let names = h.create(&[("from_date", "2024-01-01"), ("data_format", "parquet")]);
    assert_eq!(names, ["events-daily-local-monoschema"]);
    // Created at 01-05 12:00: 01-01..01-04 are closed and due (01-04 at 01-05 00:30).
    h.wait_for("the backfill", |runs| {
        runs.len() == 4 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    let runs = h.runs();
    let days: Vec<String> = runs.iter().map(|r| r.from_date.to_string()).collect();
    assert_eq!(
        days,
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"],
        "oldest first"
    );
    assert!(runs
        .iter()
        .all(|r| r.kind == tidewater_service::model::RunKind::Backfill));
    let per_day = events_per_day(&h.data);
    for r in &runs {
        let steps = r.steps.clone().unwrap();
        let expected = per_day[&r.from_date.to_string()];
        assert_eq!(
            steps.passed[0], expected,
            "P20 fetched = lines of {}",
            r.from_date
        );
        assert_eq!(
            steps.passed[4], expected,
            "P20 committed = rows of {}",
            r.from_date
        );
        assert_eq!(steps.failed, [0; 5]);
    }
    // 00:29 on 01-06: 01-05 is not due yet; 00:30 it is.
    h.advance_to("2024-01-06T00:29:00Z");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.runs().len(), 4, "not before 00:30");
    h.advance_to("2024-01-07T00:30:00Z");
    h.wait_for("the scheduled days", |runs| {
        runs.len() == 6 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    let scheduled: Vec<_> = h.runs()[4..]
        .iter()
        .map(|r| (r.from_date.to_string(), r.kind))
        .collect();
    assert_eq!(
        scheduled,
        [
            (
                "2024-01-05".to_string(),
                tidewater_service::model::RunKind::Scheduled
            ),
            (
                "2024-01-06".to_string(),
                tidewater_service::model::RunKind::Scheduled
            )
        ]
    );
    // Each day was requested once (P10: nothing fetched twice), plus the create's check.
    let mut requested: Vec<String> = h
        .mock
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| query_value(&r.request, "from_date"))
        .collect();
    requested.sort();
    assert_eq!(requested.len(), 7, "{requested:?}");
    // The output is the export's layout under <path>/<project_id>/.
    let day_dir = h.out.join("4242/mp_master_event/2024/01/03");
    assert!(day_dir.join("complete").exists(), "{}", day_dir.display());

    let name = "events-daily-local-monoschema";
    let project = PROJECT.to_string();
    let (status, body) = h.nessie("GET", "status", &[("project_id", &project), ("name", name)]);
    assert_eq!(status, 200, "{body}");
    let tasks = body["succeeded"].as_array().unwrap();
    assert_eq!(tasks.len(), 6);
    assert_eq!(tasks[0]["from_date"], "2024-01-01T00:00:00+00:00");
    assert_eq!(tasks[0]["to_date"], "2024-01-01T00:00:00+00:00");
    assert_eq!(tasks[0]["project_id"], PROJECT);
    assert_eq!(tasks[0]["name"], name);
    assert!(tasks[0]["last_finish"].is_string());
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "P27: empty states left out: {body}"
    );
    let (_, summary) = h.nessie(
        "POST",
        "status",
        &[
            ("project_id", &project),
            ("name", name),
            ("summary", "true"),
        ],
    );
    assert_eq!(summary, json!({"succeeded": 6}));
    let (_, filtered) = h.nessie(
        "GET",
        "status",
        &[
            ("project_id", &project),
            ("name", name),
            ("status", "failed"),
            ("status", "running"),
        ],
    );
    assert_eq!(filtered, json!({}));
    let (_, timeline) = h.nessie(
        "GET",
        "timeline",
        &[("project_id", &project), ("name", name)],
    );
    let days = timeline["day_syncs"].as_array().unwrap();
    assert_eq!(days.len(), 6, "{timeline}");
    assert_eq!(days[0]["date"], "2024-01-01");
    assert_eq!(days[0]["status"], "synced");
    assert_eq!(days[0]["sync_times"].as_array().unwrap().len(), 1);
    let (_, jobs) = h.nessie("GET", "jobs", &[("project_id", &project)]);
    let list = jobs[&project].as_array().unwrap();
    assert_eq!(list[0]["name"], name);
    assert_eq!(list[0]["frequency"], "daily");
    assert_eq!(list[0]["sync_enabled"], "false");
    assert!(list[0]["last_dispatched"]
        .as_str()
        .unwrap()
        .ends_with(" UTC"));
}

#[test]
fn p28_p29_p13_p17_rest_api_with_runs_pause_resume_manual_runs_and_delete() {
    let h = Harness::start(2000, "2024-01-03T12:00:00Z", &[], |_| {});
    let out = h.out.to_str().unwrap();
    let body = json!({
        "project_id": PROJECT, "name": "nightly", "type": "local", "path": out,
        "from_date": "2024-01-01", "schema_type": "multischema", "data_format": "parquet",
        "credentials": {"api_secret": SECRET},
    });
    let (status, created) = h.rest("POST", "/v1/pipelines", Some(body.clone()));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "nightly");
    assert_eq!(created["credentials"], "********", "P40: never returned");
    assert!(!created.to_string().contains(SECRET));
    let id = created["id"].as_i64().unwrap();
    let (status, taken) = h.rest("POST", "/v1/pipelines", Some(body));
    assert_eq!(status, 409, "P29: name taken: {taken}");
    h.wait_for("the backfill", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });

    // Runs: the REST shape of P20 and P28, newest first, paged.
    let (status, page) = h.rest(
        "GET",
        &format!("/v1/pipelines/runs?pipeline={id}&limit=1"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let run = &page["runs"][0];
    assert_eq!(run["from_date"], "2024-01-02");
    assert_eq!(
        run["steps"],
        json!(["fetched", "parsed", "filtered", "written", "committed"])
    );
    assert_eq!(run["passed"].as_array().unwrap().len(), 5);
    assert!(run["passed"][4].as_u64().unwrap() > 0);
    assert!(run["startTime"].is_string() && run["endTime"].is_string());
    let before = page["next_before"].as_i64().unwrap();
    let (_, next) = h.rest(
        "GET",
        &format!("/v1/pipelines/{id}/runs?before={before}"),
        None,
    );
    assert_eq!(next["runs"].as_array().unwrap().len(), 1);
    assert_eq!(next["runs"][0]["from_date"], "2024-01-01");
    let run_id = run["id"].as_i64().unwrap();
    let (status, one) = h.rest("GET", &format!("/v1/pipelines/runs/{run_id}"), None);
    assert_eq!((status, &one["id"]), (200, &json!(run_id)));
    let (status, _) = h.rest("GET", "/v1/pipelines/runs?state=bogus", None);
    assert_eq!(status, 400);

    // P17: paused, nothing runs; a manual run is refused (P13: 422).
    let (status, paused) = h.rest(
        "PUT",
        &format!("/v1/pipelines/{id}/status"),
        Some(json!({"enabled": false})),
    );
    assert_eq!(
        (status, &paused["state"]),
        (200, &json!("paused")),
        "{paused}"
    );
    h.advance_to("2024-01-05T01:00:00Z");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        h.runs()
            .iter()
            .filter(|r| r.state == RunState::Running)
            .count(),
        0
    );
    assert_eq!(h.succeeded_days().len(), 2, "nothing ran while paused");
    let (status, refused) = h.rest("POST", &format!("/v1/pipelines/{id}/runs"), None);
    assert_eq!(status, 422, "{refused}");
    // Resume: the windows that became due meanwhile run, oldest first.
    let (status, _) = h.rest(
        "PUT",
        &format!("/v1/pipelines/{id}/status"),
        Some(json!({"enabled": true})),
    );
    assert_eq!(status, 200);
    h.wait_for("the days due while paused", |runs| {
        runs.iter()
            .filter(|r| r.state == RunState::Succeeded)
            .count()
            == 4
    });
    assert_eq!(
        h.succeeded_days(),
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    );

    // Manual only (P28 schedule null), then a manual run covers the closed days since
    // the last successful run (P13).
    let (status, manual) = h.rest(
        "PUT",
        &format!("/v1/pipelines/{id}/schedule"),
        Some(json!({"period": null})),
    );
    assert_eq!(
        (status, &manual["schedule"]["period"]),
        (200, &Value::Null),
        "{manual}"
    );
    let (status, bad) = h.rest(
        "PUT",
        &format!("/v1/pipelines/{id}/schedule"),
        Some(json!({"period": "2h"})),
    );
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("\"1h\""), "{bad}");
    h.advance_to("2024-01-07T12:00:00Z");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(h.runs().len(), 4, "no automatic runs");
    let (status, triggered) = h.rest("POST", &format!("/v1/pipelines/{id}/runs"), None);
    assert_eq!(status, 201, "{triggered}");
    let manual_id = triggered["id"].as_i64().unwrap();
    h.wait_for("the manual run", |runs| {
        runs.iter()
            .any(|r| r.id == manual_id && r.state == RunState::Succeeded)
    });
    let (_, manual_run) = h.rest("GET", &format!("/v1/pipelines/runs/{manual_id}"), None);
    assert_eq!(manual_run["kind"], "manual");
    assert_eq!(
        (&manual_run["from_date"], &manual_run["to_date"]),
        (&json!("2024-01-05"), &json!("2024-01-06"))
    );
    for day in ["05", "06"] {
        let folder = h.out.join(format!("4242/mp_master_event/2024/01/{day}"));
        assert!(!folder.exists(), "multischema has no master table");
    }
    let (_, status_now) = h.rest("GET", &format!("/v1/pipelines/{id}/status"), None);
    assert_eq!(status_now["state"], "enabled");
    assert_eq!(status_now["latest_run"]["id"], manual_id);

    // Operators' endpoints.
    let (status, health) = h.rest_as("GET", "/healthz", None, None);
    assert_eq!((status, health), (200, json!("ok\n")));
    let (_, metrics) = h.rest_as("GET", "/metrics", None, None);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("tidewater_runs{state=\"succeeded\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tidewater_windows_committed_total 6"),
        "{metrics}"
    );
    assert!(!metrics.contains(SECRET));
    let (_, openapi) = h.rest_as("GET", "/openapi.json", None, None);
    for path in [
        "/api/2.0/nessie/pipeline/create",
        "/v1/pipelines/{id}/runs",
        "/v1/pipelines/runs/{id}",
        "/metrics",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} in /openapi.json"
        );
    }

    // Keys: none, unknown, limited to another project.
    let (status, _) = h.rest_as("GET", "/v1/pipelines", None, None);
    assert_eq!(status, 401);
    let (status, _) = h.rest_as("GET", "/v1/pipelines", None, Some("tw_not-a-key"));
    assert_eq!(status, 401);
    let (_, other) = ApiKeys::new(h.service.store().clone())
        .create("other", Some(vec![7]))
        .unwrap();
    let (status, listed) = h.rest_as("GET", "/v1/pipelines", None, Some(&other));
    assert_eq!((status, listed), (200, json!({"pipelines": []})));
    let (status, _) = h.rest_as("GET", &format!("/v1/pipelines/{id}"), None, Some(&other));
    assert_eq!(status, 403);
    let (status, _) = h.rest_as(
        "GET",
        &format!("/v1/pipelines/runs/{manual_id}"),
        None,
        Some(&other),
    );
    assert_eq!(status, 403);

    // Delete: history gone, data stays (P17).
    let (status, _) = h.rest("DELETE", &format!("/v1/pipelines/{id}"), None);
    assert_eq!(status, 200);
    let (status, _) = h.rest("GET", &format!("/v1/pipelines/{id}"), None);
    assert_eq!(status, 404);
    assert!(h.runs().is_empty());
    assert!(h.out.join("4242").exists(), "exported data stays");
    let _ = &h.dir;
}
