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
    /// The profiles the mock's Engage API serves.
    pub profiles: PathBuf,
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
        Self::start_with_mock(events, now, faults, |_| {}, configure)
    }

    pub fn start_with_mock(
        events: u64,
        now: &str,
        faults: &[&str],
        configure_mock: impl FnOnce(&mut MockConfig),
        configure: impl FnOnce(&mut ServiceConfig),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let data = generated(dir.path(), events, 30);
        let profiles = crate::people::profiles(dir.path(), "profiles.jsonl", 50, 1);
        let mut mock_config = MockConfig {
            data: vec![data.clone()],
            profiles: vec![profiles.clone()],
            engage_limits: Vec::new(),
            auth: MockAuth::Secret(SECRET.into()),
            today: Some(jiff::civil::date(2024, 12, 31)),
            limits: Vec::new(),
            faults: faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
            ..Default::default()
        };
        configure_mock(&mut mock_config);
        let mock = MockServer::start(mock_config).unwrap();
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
            profiles,
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

/// The lines of a generated gzip file with their event time in seconds.
pub(crate) fn timed_lines(data: &Path) -> Vec<(i64, String)> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(data).unwrap()),
        &mut text,
    )
    .unwrap();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let t = v["properties"]["time"].as_f64().unwrap() as i64;
            let seconds = if t < 100_000_000_000 { t } else { t / 1000 };
            (seconds, line.to_string())
        })
        .collect()
}

/// Events of the generated file per day (UTC), from the lines themselves.
pub(crate) fn events_per_day(data: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut days = std::collections::BTreeMap::new();
    for (seconds, _) in timed_lines(data) {
        let day = Timestamp::from_second(seconds)
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
    assert!(day_dir.join("_complete").exists(), "{}", day_dir.display());

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

    // PATCH edits events and where (P16); new credentials are tried upstream first.
    let (status, patched) = h.rest(
        "PATCH",
        &format!("/v1/pipelines/{id}"),
        Some(json!({"events": ["signup"], "where": "properties[\"plan\"] == \"pro\""})),
    );
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["events"], json!(["signup"]));
    assert_eq!(patched["where"], "properties[\"plan\"] == \"pro\"");
    let (status, refused) = h.rest(
        "PATCH",
        &format!("/v1/pipelines/{id}"),
        Some(json!({"credentials": {"api_secret": "not-it"}})),
    );
    assert_eq!(status, 401, "{refused}");
    let (status, _) = h.rest(
        "PATCH",
        &format!("/v1/pipelines/{id}"),
        Some(json!({"where": "properties["})),
    );
    assert_eq!(status, 400);

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

/// Rows of a committed day, from its manifest.
fn committed_rows(h: &Harness, day: &str) -> u64 {
    let manifest = h
        .out
        .join(format!("4242/mp_master_event/2024/01/{day}/_manifest.json"));
    let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["events_kept"].as_u64().unwrap()
}

#[test]
fn p14_p24_sync_replaces_a_day_whose_body_changed_and_leaves_the_others() {
    let h = Harness::start(2000, "2024-01-03T12:00:00Z", &[], |_| {});
    h.create(&[("from_date", "2024-01-01"), ("sync", "true")]);
    h.wait_for("the backfill", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    let before_02 = crate::util::tree(&h.out.join("4242/mp_master_event/2024/01/02"));
    let rows_01 = committed_rows(&h, "01");
    // Late data for 01-01 arrives upstream.
    let late = br#"{"event":"late_signup","properties":{"time":1704100000,"distinct_id":"u-late","$insert_id":"late-1"}}"#;
    assert_eq!(h.mock.add_events(late).unwrap().added, 1);
    // Not before 24 h after the export (P14).
    h.advance_to("2024-01-04T11:59:00Z");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!h
        .runs()
        .iter()
        .any(|r| r.kind == tidewater_service::model::RunKind::Sync));
    h.advance_to("2024-01-04T12:00:00Z");
    h.wait_for("the sync checks", |runs| {
        runs.iter()
            .filter(|r| {
                r.kind == tidewater_service::model::RunKind::Sync && r.state == RunState::Succeeded
            })
            .count()
            == 2
    });
    let syncs: Vec<_> = h
        .runs()
        .into_iter()
        .filter(|r| r.kind == tidewater_service::model::RunKind::Sync)
        .map(|r| (r.from_date.to_string(), r.changed))
        .collect();
    assert_eq!(
        syncs,
        [
            ("2024-01-01".into(), Some(true)),
            ("2024-01-02".into(), Some(false))
        ]
    );
    assert_eq!(
        committed_rows(&h, "01"),
        rows_01 + 1,
        "the late event is in"
    );
    assert_eq!(
        crate::util::tree(&h.out.join("4242/mp_master_event/2024/01/02")),
        before_02,
        "an unchanged day is left as it is"
    );
    let project = PROJECT.to_string();
    let (_, timeline) = h.nessie(
        "GET",
        "timeline",
        &[
            ("project_id", &project),
            ("name", "events-daily-local-monoschema"),
        ],
    );
    let day_syncs = timeline["day_syncs"].as_array().unwrap();
    assert_eq!(day_syncs[0]["date"], "2024-01-01");
    assert_eq!(
        day_syncs[0]["sync_times"].as_array().unwrap().len(),
        2,
        "{timeline}"
    );
    // Checked again a day later, and no more once older than sync_days (10).
    h.advance_to("2024-01-05T12:00:00Z");
    h.wait_for("the next day's checks", |runs| {
        runs.iter()
            .filter(|r| {
                r.kind == tidewater_service::model::RunKind::Sync
                    && r.from_date.to_string() == "2024-01-01"
            })
            .count()
            == 2
            && runs.iter().all(|r| r.state.is_final())
    });
    h.advance_to("2024-01-14T12:00:00Z");
    h.wait_for("two more weeks", |runs| {
        runs.iter().all(|r| r.state.is_final())
            && runs.iter().any(|r| r.from_date.to_string() == "2024-01-13")
    });
    let checks_of_01 = h
        .runs()
        .iter()
        .filter(|r| {
            r.kind == tidewater_service::model::RunKind::Sync
                && r.from_date.to_string() == "2024-01-01"
        })
        .count();
    assert_eq!(
        checks_of_01, 2,
        "checked once a day while within 10 days, then no more"
    );
}

#[test]
fn p18_p19_faulted_on_403_retried_with_backoff_after_500_and_timed_out() {
    // Faults apply one per request, in order: the create's credential check, then runs.
    let h = Harness::start(
        1000,
        "2024-01-02T12:00:00Z",
        &["slow=1ms", "403", "500,count=2"],
        |c| {
            c.retry_backoff = jiff::SignedDuration::from_mins(5);
        },
    );
    let name = &h.create(&[("from_date", "2024-01-01")])[0];
    let project = PROJECT.to_string();
    h.wait_for("the refused run", |runs| {
        runs.iter().any(|r| r.state == RunState::Failed)
    });
    let pipeline = h
        .service
        .store()
        .pipeline_named(PROJECT, name)
        .unwrap()
        .unwrap();
    assert_eq!(
        pipeline.state,
        tidewater_service::model::PipelineState::Faulted
    );
    let reason = pipeline.reason.unwrap();
    assert!(
        reason.contains("403") && reason.contains("credentials"),
        "{reason}"
    );
    let (_, status) = h.nessie("GET", "status", &[("project_id", &project), ("name", name)]);
    assert_eq!(status["failed"].as_array().unwrap().len(), 1, "{status}");
    // Resume clears the fault; the next attempt meets two 500s (its 2 attempts) and is
    // retried by the scheduler after the backoff.
    let (code, _) = h.nessie(
        "POST",
        "resume",
        &[("project_id", &project), ("name", name)],
    );
    assert_eq!(code, 200);
    h.wait_for("the retried run", |runs| {
        runs.iter().any(|r| r.state == RunState::Retried)
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !h.runs().iter().any(|r| r.state == RunState::Succeeded),
        "not before the backoff"
    );
    h.advance_to("2024-01-02T12:05:00Z");
    h.wait_for("the retry", |runs| {
        runs.iter().any(|r| r.state == RunState::Succeeded)
    });
    let states: Vec<RunState> = h.runs().iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [RunState::Failed, RunState::Retried, RunState::Succeeded]
    );
    let retried = &h.runs()[1];
    assert!(
        retried.error.as_deref().unwrap().contains("500"),
        "{:?}",
        retried.error
    );
    assert_eq!(h.runs()[2].attempt, 2);

    // A run over its time limit is timed_out, nothing committed; with no scheduler
    // retries left it stays so.
    let slow = Harness::start(
        1000,
        "2024-01-02T12:00:00Z",
        &["slow=1ms", "slow=5s"],
        |c| {
            c.run_timeout = Duration::from_millis(300);
            c.scheduler_retries = 0;
        },
    );
    slow.create(&[("from_date", "2024-01-01")]);
    slow.wait_for("the timeout", |runs| {
        runs.iter().any(|r| r.state == RunState::TimedOut)
    });
    let run = &slow.runs()[0];
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("longer than its limit"),
        "{:?}",
        run.error
    );
    assert!(!slow
        .out
        .join("4242/mp_master_event/2024/01/01/_complete")
        .exists());
}

#[test]
fn p15_a_trial_exports_from_yesterday_once_per_project_and_expires_after_30_days() {
    let h = Harness::start(1000, "2024-01-05T12:00:00Z", &[], |_| {});
    let project = PROJECT.to_string();
    let out = h.out.to_str().unwrap().to_string();
    let base = [
        ("project_id", project.as_str()),
        ("type", "local"),
        ("path", out.as_str()),
        ("trial", "true"),
    ];
    for (extra, field) in [
        (("events", "signup"), "events"),
        (("from_date", "2024-01-01"), "from_date"),
        (("sync", "true"), "sync"),
        (("schema_type", "multischema"), "schema_type"),
    ] {
        let mut params = base.to_vec();
        params.push(extra);
        let (status, body) = h.nessie("POST", "create", &params);
        assert_eq!(status, 400, "{extra:?}: {body}");
        assert!(body["error"].as_str().unwrap().starts_with(field), "{body}");
        assert_eq!(body["status"], "error");
    }
    let names = h.create(&[("trial", "true")]);
    assert_eq!(
        names,
        [
            "trial-events-daily-local-monoschema",
            "trial-people-daily-local"
        ],
        "a schematized trial exports events and people"
    );
    let p = h
        .service
        .store()
        .pipeline_named(PROJECT, &names[0])
        .unwrap()
        .unwrap();
    assert_eq!(
        p.spec.from_date.to_string(),
        "2024-01-04",
        "yesterday in project time"
    );
    h.wait_for("yesterday", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    assert!(h.out.join("4242/mp_people_data/_complete").is_file());
    for name in &names {
        let (status, _) = h.nessie(
            "POST",
            "cancel",
            &[("project_id", &project), ("name", name)],
        );
        assert_eq!(status, 200);
    }
    let (status, body) = h.nessie("POST", "create", &base);
    assert_eq!(status, 400, "one trial per project, ever: {body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("already had a trial"));

    // Another project's trial runs 30 days and stops by itself.
    let other = Harness::start(1000, "2024-01-02T12:00:00Z", &[], |_| {});
    let trials = other.create(&[("trial", "true")]);
    let trial = &trials[0];
    let events_id = other
        .service
        .store()
        .pipeline_named(PROJECT, trial)
        .unwrap()
        .unwrap()
        .id;
    let event_runs = |runs: &[tidewater_service::model::Run]| {
        runs.iter().filter(|r| r.pipeline_id == events_id).count()
    };
    other.wait_for("the first day", |runs| runs.len() == 2);
    other.advance_to("2024-01-31T12:00:00Z");
    // People take a snapshot of now: one more run for the latest day, not 29.
    other.wait_for("29 days", |runs| {
        event_runs(runs) == 30 && runs.len() == 32 && runs.iter().all(|r| r.state.is_final())
    });
    let p = other
        .service
        .store()
        .pipeline_named(PROJECT, trial)
        .unwrap()
        .unwrap();
    assert_eq!(p.state, tidewater_service::model::PipelineState::Enabled);
    other.advance_to("2024-02-01T12:00:00Z");
    let start = Instant::now();
    loop {
        let p = other
            .service
            .store()
            .pipeline_named(PROJECT, trial)
            .unwrap()
            .unwrap();
        if p.state == tidewater_service::model::PipelineState::Canceled {
            assert_eq!(p.reason.as_deref(), Some("trial_expired"));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the trial did not expire"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = other.nessie(
        "POST",
        "resume",
        &[("project_id", &project), ("name", trial)],
    );
    assert_eq!(status, 422, "{body}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(other.runs().len(), 32, "no run after the expiry");
}

#[test]
fn p25_p26_p29_bad_requests_and_credentials_get_clear_errors() {
    let h = Harness::start(1000, "2024-01-03T12:00:00Z", &[], |_| {});
    let project = PROJECT.to_string();
    let out = h.out.to_str().unwrap().to_string();
    let create = |params: &[(&str, &str)], auth: Option<(&str, &str)>| {
        let mut all = vec![
            ("project_id", project.as_str()),
            ("type", "local"),
            ("path", out.as_str()),
            ("from_date", "2024-01-01"),
        ];
        all.extend_from_slice(params);
        h.nessie_as("POST", "create", &all, auth)
    };
    let secret = Some((SECRET, ""));
    let cases: Vec<((u16, Value), u16, &str)> = vec![
        (create(&[], None), 401, "authenticate with HTTP Basic"),
        (
            create(&[], Some(("wrong-secret", ""))),
            401,
            "Mixpanel refused these credentials for project 4242 (401",
        ),
        (
            create(&[("colour", "blue")], secret),
            400,
            "unknown parameter \"colour\"",
        ),
        (
            create(&[("from_date", "2024-01-02")], secret),
            400,
            "from_date: given more than once",
        ),
        (
            create(&[("where", "properties[\"plan\"] == ")], secret),
            400,
            "where: ",
        ),
        (
            create(&[("sync", "yes")], secret),
            400,
            "sync: \"yes\" is not a boolean",
        ),
        (
            h.nessie(
                "POST",
                "create",
                &[
                    ("project_id", &project),
                    ("type", "bigquery"),
                    ("bq_dataset_name", "d"),
                    ("from_date", "2024-01-01"),
                ],
            ),
            400,
            "type: bigquery is not supported by this server yet",
        ),
        (
            h.nessie("POST", "create", &[("type", "local")]),
            400,
            "project_id: is required",
        ),
        (
            h.nessie(
                "GET",
                "status",
                &[("project_id", &project), ("name", "nope")],
            ),
            404,
            "project 4242 has no pipeline named \"nope\"",
        ),
        (
            h.nessie("GET", "status", &[("project_id", &project)]),
            400,
            "name: is required",
        ),
        (
            h.nessie(
                "GET",
                "status",
                &[("project_id", &project), ("name", "x"), ("status", "done")],
            ),
            404,
            "project 4242 has no pipeline",
        ),
    ];
    for ((status, body), want_status, want) in &cases {
        assert_eq!(status, want_status, "{body}");
        let error = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {body}"));
        assert!(
            error.starts_with(want) || error.contains(want),
            "{error:?} should say {want:?}"
        );
        assert_eq!(body["status"], "error", "P25 shape: {body}");
        assert!(!body.to_string().contains(SECRET), "P40: {body}");
    }
    // An unwritable destination is a 400 at create, naming the path.
    let file = h.dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad_path = file.join("out");
    let (status, body) = h.nessie(
        "POST",
        "create",
        &[
            ("project_id", &project),
            ("type", "local"),
            ("path", bad_path.to_str().unwrap()),
            ("from_date", "2024-01-01"),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(bad_path.to_str().unwrap()),
        "{body}"
    );

    let name = &h.create(&[
        ("from_date", "2024-01-01"),
        ("where", "properties[\"no_such\"] == 1"),
    ])[0];
    // Later calls must present the project's credentials (P26): others get 401, and
    // another project sees nothing (404).
    let (status, body) = h.nessie_as(
        "GET",
        "status",
        &[("project_id", &project), ("name", name)],
        Some(("someone-else", "")),
    );
    assert_eq!(status, 401, "{body}");
    let (status, _) = h.nessie("GET", "status", &[("project_id", "99"), ("name", name)]);
    assert_eq!(status, 404);
    // Malformed and oversized bodies.
    let (status, body) = h.send(
        h.http
            .post(format!("{}/api/2.0/nessie/pipeline/pause", h.url))
            .basic_auth(SECRET, Some(""))
            .body(vec![0xff, 0xfe, b'=', b'1']),
    );
    assert_eq!(status, 400, "{body}");
    let big = "x".repeat(100_000);
    let (status, body) = h.nessie(
        "POST",
        "edit",
        &[("project_id", &project), ("name", name), ("where", &big)],
    );
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    let (status, body) = h.rest(
        "POST",
        "/v1/pipelines",
        Some(json!({"project_id": PROJECT, "type": "local", "bogus": 1})),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `bogus`"),
        "{body}"
    );
    let (status, body) = h.send(
        h.http
            .post(format!("{}/v1/pipelines", h.url))
            .bearer_auth(&h.key)
            .body("{\"project_id\": "),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("line 1 column"),
        "{body}"
    );
    let (status, body) = h.nessie("GET", "nowhere", &[]);
    assert_eq!(status, 404, "{body}");
    // An edit with a bad where says where; a good one is used by later windows (P16).
    let (status, body) = h.nessie(
        "POST",
        "edit",
        &[
            ("project_id", &project),
            ("name", name),
            ("where", "properties["),
        ],
    );
    assert_eq!(status, 400, "{body}");
    h.wait_for("the filtered backfill", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    assert!(
        h.runs()
            .iter()
            .all(|r| r.steps.as_ref().unwrap().passed[4] == 0),
        "where kept nothing"
    );
    let (status, _) = h.nessie(
        "POST",
        "edit",
        &[("project_id", &project), ("name", name), ("where", "")],
    );
    assert_eq!(status, 200);
    h.advance_to("2024-01-04T00:30:00Z");
    h.wait_for("the next day", |runs| {
        runs.len() == 3 && runs.iter().all(|r| r.state.is_final())
    });
    assert!(
        h.runs()[2].steps.as_ref().unwrap().passed[4] > 0,
        "the edit applies to later windows"
    );
}

#[test]
fn a_destination_that_fails_fails_the_run_naming_the_path_and_the_retry_succeeds_once_fixed() {
    // Before 00:30: the pipeline exists, its first window is not due yet.
    let h = Harness::start(1000, "2024-01-02T00:10:00Z", &[], |c| {
        c.retry_backoff = jiff::SignedDuration::from_mins(1);
    });
    h.create(&[("from_date", "2024-01-01")]);
    // Block the project's folder with a file, then let the window come due.
    let blocked = h.out.join("4242");
    std::fs::write(&blocked, "not a folder").unwrap();
    h.advance_to("2024-01-02T00:30:00Z");
    h.wait_for("the failed attempt", |runs| {
        runs.iter().any(|r| r.state == RunState::Retried)
    });
    let error = h.runs()[0].error.clone().unwrap();
    assert!(
        error.contains(blocked.to_str().unwrap()),
        "names the path: {error}"
    );
    assert!(!h
        .service
        .store()
        .runs(&RunFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .any(|r| r.state == RunState::Succeeded));
    std::fs::remove_file(&blocked).unwrap();
    h.advance_to("2024-01-02T00:31:00Z");
    h.wait_for("the retry", |runs| {
        runs.iter().any(|r| r.state == RunState::Succeeded)
    });
    assert!(blocked
        .join("mp_master_event/2024/01/01/_complete")
        .exists());
}

#[test]
fn p11_hourly_pipelines_export_hour_h_at_h_plus_1_30_each_hour_its_own_commit() {
    let h = Harness::start(3000, "2024-01-01T03:00:00Z", &[], |_| {});
    let name = &h.create(&[("from_date", "2024-01-01"), ("frequency", "hourly")])[0];
    assert_eq!(name, "events-hourly-local-monoschema");
    // At 03:00, hours 00 (due 01:30) and 01 (due 02:30) are due; 02 is due at 03:30.
    h.wait_for("two hours", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    let mut per_hour = std::collections::BTreeMap::<i64, u64>::new();
    for (seconds, _) in timed_lines(&h.data) {
        *per_hour.entry(seconds / 3600).or_default() += 1;
    }
    let hour0 = Timestamp::from_second(0).unwrap();
    let first_hour = (h.runs()[0].interval_start.as_second() - hour0.as_second()) / 3600;
    for (i, run) in h.runs().iter().enumerate() {
        let expected = per_hour.get(&(first_hour + i as i64)).copied().unwrap_or(0);
        let steps = run.steps.clone().unwrap();
        assert_eq!(
            steps.passed[4], expected,
            "hour {i}: only its events are committed"
        );
        assert_eq!(
            steps.passed[2] + steps.failed[2],
            steps.passed[1],
            "the day's other hours are filtered"
        );
        let folder = h
            .out
            .join(format!("4242/mp_master_event/2024/01/01/{i:02}"));
        assert_eq!(
            folder.join("_complete").exists(),
            expected > 0,
            "{}",
            folder.display()
        );
    }
    assert!(
        !h.out.join("4242/mp_master_event/2024/01/01/02").exists(),
        "hour 02 is not due yet"
    );
    h.advance_to("2024-01-01T04:30:00Z");
    h.wait_for("two more hours", |runs| {
        runs.len() == 4 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    // Each hour is its own entry in the ledger: the earlier hours stay committed.
    let ledger = tidewater_service::WindowLedger::new(h.service.store().clone(), 1);
    assert_eq!(
        ledger.windows().unwrap(),
        [
            "2024-01-01T00",
            "2024-01-01T01",
            "2024-01-01T02",
            "2024-01-01T03"
        ]
    );
    // A manual run of an hourly pipeline is a run per closed hour since the last one.
    h.advance_to("2024-01-01T06:10:00Z");
    h.wait_for("hour 04", |runs| {
        runs.len() == 5 && runs.iter().all(|r| r.state.is_final())
    });
    let (_, paused) = h.rest(
        "PUT",
        "/v1/pipelines/1/schedule",
        Some(json!({"period": null})),
    );
    assert_eq!(paused["schedule"]["period"], Value::Null);
    let (status, triggered) = h.rest("POST", "/v1/pipelines/1/runs", None);
    assert_eq!(status, 201, "{triggered}");
    assert_eq!(
        triggered["runs"].as_array().unwrap().len(),
        1,
        "hour 05 closed at 06:00: {triggered}"
    );
}

#[test]
fn p12_a_projects_pipelines_run_one_at_a_time() {
    // The mock answers at most one request at a time (429 beyond): two runs of the
    // project at once would show as a 429 in its log.
    let faults = ["slow=1ms", "slow=40ms,count=1000"];
    // Created before any window is due; then the three pipelines' windows come due
    // at once.
    let h = Harness::start_with_mock(
        2000,
        "2024-01-01T00:00:00Z",
        &faults,
        |m| m.max_concurrent = 1,
        // One request at a time inside a run too (the engine fetches ahead otherwise),
        // and the project's budget: at most 4 requests in any second.
        |c| {
            c.tuning.concurrency = 1;
            c.tuning.pace = vec![(4, Duration::from_secs(1))];
        },
    );
    h.create(&[("from_date", "2024-01-01")]);
    h.create(&[
        ("from_date", "2024-01-02"),
        ("to_date", "2024-01-03"),
        ("data_format", "parquet"),
    ]);
    h.create(&[("from_date", "2024-01-04"), ("frequency", "hourly")]);
    h.advance_to("2024-01-04T12:00:00Z");
    h.wait_for("every run", |runs| {
        runs.len() == 3 + 2 + 11 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    let statuses: Vec<u16> = h.mock.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.len(),
        3 + 3 + 2 + 11,
        "three credential checks and a request per run"
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no request was refused as concurrent: {statuses:?}"
    );
    // The three pipelines drew on one budget: no 5 requests within a second.
    let mut at: Vec<u64> = h.mock.requests().iter().map(|r| r.at_ms).collect();
    at.sort();
    for w in at.windows(5) {
        assert!(
            w[4] - w[0] >= 950,
            "5 requests in {} ms: {at:?}",
            w[4] - w[0]
        );
    }
}

#[test]
fn p4_p18_a_backfill_fetches_ahead_yet_each_day_is_its_own_run_and_a_failed_day_is_retried_alone() {
    // After the check and a first day, one request meets a 500 with no attempt left:
    // which day it is depends on the order of the requests fetched ahead.
    let h = Harness::start(
        2000,
        "2024-01-06T12:00:00Z",
        &["slow=1ms", "slow=1ms", "500"],
        |c| {
            c.tuning.max_attempts = 1;
            c.retry_backoff = jiff::SignedDuration::from_mins(10);
        },
    );
    h.create(&[("from_date", "2024-01-01"), ("to_date", "2024-01-05")]);
    h.wait_for("the batch", |runs| {
        runs.len() == 6
            && runs
                .iter()
                .all(|r| r.state.is_final() || r.state == RunState::Pending)
    });
    let runs = h.runs();
    let failed: Vec<_> = runs
        .iter()
        .filter(|r| r.state == RunState::Retried)
        .collect();
    assert_eq!(failed.len(), 1, "{runs:#?}");
    assert!(
        failed[0].error.as_deref().unwrap().contains("500"),
        "{:?}",
        failed[0].error
    );
    let retry = &runs[5];
    assert_eq!(
        (retry.state, retry.from_date, retry.attempt),
        (RunState::Pending, failed[0].from_date, 2)
    );
    assert_eq!(
        runs.iter()
            .filter(|r| r.state == RunState::Succeeded)
            .count(),
        4,
        "the other days of the batch"
    );
    let per_day = events_per_day(&h.data);
    for r in runs.iter().filter(|r| r.state == RunState::Succeeded) {
        assert_eq!(
            r.steps.as_ref().unwrap().passed[4],
            per_day[&r.from_date.to_string()],
            "{}",
            r.from_date
        );
        assert!(r.started_at.is_some() && r.ended_at.is_some());
    }
    h.advance_to("2024-01-06T12:10:00Z");
    h.wait_for("the retry", |runs| {
        runs.iter()
            .filter(|r| r.state == RunState::Succeeded)
            .count()
            == 5
    });
    assert_eq!(
        h.succeeded_days(),
        [
            "2024-01-01",
            "2024-01-02",
            "2024-01-03",
            "2024-01-04",
            "2024-01-05"
        ]
    );
}

#[test]
fn p11_p19_windows_that_came_due_while_the_server_was_down_run_when_it_starts_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 1000, 30);
    let mock = MockServer::start(MockConfig {
        data: vec![data],
        auth: MockAuth::Secret(SECRET.into()),
        today: Some(jiff::civil::date(2024, 12, 31)),
        limits: Vec::new(),
        ..Default::default()
    })
    .unwrap();
    let key = SecretBox::generate_key_text().unwrap();
    let path = dir.path().join("state.db");
    let config = ServiceConfig {
        mixpanel_url: mock.url().to_string(),
        tuning: fast_tuning(),
        ..ServiceConfig::default()
    };
    // One server's life: start at `now`, do `work`, wait until `done`, stop.
    let life = |now: &str,
                work: &dyn Fn(&Service, &tokio::runtime::Runtime),
                done: &dyn Fn(&Service) -> bool| {
        let clock = SimulatedClock::new(now.parse().unwrap());
        let store = StateStore::open(&path).unwrap();
        let service = Service::new(
            store,
            Arc::new(clock),
            SecretBox::from_key_text(&key).unwrap(),
            config.clone(),
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let scheduler = {
            let s = service.clone();
            runtime.spawn(async move { s.run_scheduler().await })
        };
        work(&service, &runtime);
        let start = Instant::now();
        while !(done(&service) && service.runs_in_progress() == 0) {
            assert!(start.elapsed() < Duration::from_secs(60), "gave up waiting");
            std::thread::sleep(Duration::from_millis(20));
        }
        service.stop();
        runtime.block_on(scheduler).unwrap().unwrap();
    };
    let succeeded = |s: &Service| -> Vec<String> {
        let mut runs = s
            .store()
            .runs(&RunFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        runs.reverse();
        runs.iter()
            .filter(|r| r.state == RunState::Succeeded)
            .map(|r| r.from_date.to_string())
            .collect()
    };
    let out = dir.path().join("out");
    life(
        "2024-01-02T12:00:00Z",
        &|s, rt| {
            let req = tidewater_service::rules::CreateRequest {
                project_id: Some(PROJECT),
                kind: Some("local".into()),
                path: Some(out.to_str().unwrap().into()),
                from_date: Some("2024-01-01".into()),
                ..Default::default()
            };
            let _ = rustls::crypto::ring::default_provider().install_default();
            rt.block_on(s.create(
                &req,
                &tidewater::export::Credentials::ApiSecret(SECRET.into()),
            ))
            .unwrap();
        },
        &|s| succeeded(s).len() == 1,
    );
    // Down for three days; the next start runs what came due, oldest first.
    life("2024-01-05T12:00:00Z", &|_, _| {}, &|s| {
        succeeded(s).len() == 4
    });
    let store = StateStore::open(&path).unwrap();
    let mut runs = store
        .runs(&RunFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    runs.reverse();
    let days: Vec<String> = runs.iter().map(|r| r.from_date.to_string()).collect();
    assert_eq!(
        days,
        ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    );
    assert!(runs.iter().all(|r| r.state == RunState::Succeeded));
    assert!(
        runs.windows(2).all(|w| w[0].ended_at <= w[1].started_at),
        "one after the other, oldest first"
    );
}

/// The data files of `root` under window folders (not manifests, mapping files or the
/// state folder), by path.
fn window_files(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    crate::util::tree(root)
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with(".tidewater/")
                && !k.starts_with("schema/")
                && !k.starts_with("_rejects/")
                && !k.ends_with("manifest.json")
        })
        .collect()
}

/// `convert` of `inputs` with `options` into `out`.
fn convert_all(inputs: &[PathBuf], out: &Path, options: tidewater::RunOptions) {
    let summary = tidewater::Converter::new(out)
        .inputs(inputs.to_vec())
        .with_options(tidewater::RunOptions {
            out: out.to_path_buf(),
            ..options
        })
        .run()
        .unwrap();
    summary.check().unwrap();
}

/// Every file the service committed equals convert's, and every file convert wrote in
/// those windows was committed: nothing lost, nothing duplicated, byte for byte.
fn assert_windows_match(service: &Path, convert: &Path) {
    let ours = window_files(service);
    let folders: std::collections::BTreeSet<String> = ours
        .keys()
        .filter_map(|k| k.rsplit_once('/').map(|(dir, _)| dir.to_string()))
        .collect();
    let theirs: std::collections::BTreeMap<String, Vec<u8>> = window_files(convert)
        .into_iter()
        .filter(|(k, _)| {
            k.rsplit_once('/')
                .is_some_and(|(dir, _)| folders.contains(dir))
        })
        .collect();
    assert!(!ours.is_empty());
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (k, v) in &ours {
        assert!(v == &theirs[k], "{k} differs from convert");
    }
}

#[test]
fn e2e_three_pipelines_over_40_simulated_days_under_faults_match_convert_and_sync_picks_up_late_data(
) {
    let faults = [
        "500,p=0.08",
        "429,p=0.08",
        "cut=40,p=0.05",
        "drop=30,p=0.05",
        "terminated=50,p=0.05",
        "stall=50ms@20,p=0.05",
    ];
    let h = Harness::start_with_mock(
        6000,
        "2024-01-01T00:00:00Z",
        &faults,
        |m| m.fault_seed = 7,
        |c| {
            c.limits = Limits::none();
            c.tuning.max_attempts = 12;
            c.retry_backoff = jiff::SignedDuration::from_mins(1);
        },
    );
    let root = h.dir.path();
    let (daily, hourly, synced) = (root.join("daily"), root.join("hourly"), root.join("synced"));
    let project = PROJECT.to_string();
    let create = |path: &Path, extra: &[(&str, &str)]| {
        let path = path.to_str().unwrap().to_string();
        let mut params = vec![
            ("project_id", project.as_str()),
            ("type", "local"),
            ("path", path.as_str()),
        ];
        params.extend_from_slice(extra);
        // The credential check meets the faults too; it tries 3 times, the test more.
        for _ in 0..10 {
            let (status, body) = h.nessie("POST", "create", &params);
            if status == 200 {
                return;
            }
            assert_eq!(status, 502, "{body}");
        }
        panic!("create kept failing");
    };
    create(
        &daily,
        &[
            ("from_date", "2024-01-01"),
            ("data_format", "parquet"),
            ("schema_type", "monoschema"),
        ],
    );
    create(
        &hourly,
        &[
            ("from_date", "2024-01-28"),
            ("frequency", "hourly"),
            ("data_format", "parquet"),
            ("schema_type", "multischema"),
        ],
    );
    create(
        &synced,
        &[
            ("from_date", "2024-01-01"),
            ("sync", "true"),
            ("data_format", "json"),
            ("schema_type", "multischema"),
        ],
    );
    let late_line = r#"{"event":"late_signup","properties":{"time":1704450000,"distinct_id":"u-late","$insert_id":"late-e2e","plan":"pro"}}"#;
    let late = root.join("late.jsonl");
    std::fs::write(&late, format!("{late_line}\n")).unwrap();
    let settle = |what: &str| {
        // The scheduler's next pass sees the new time; then wait for what it started.
        let passes = |h: &Harness| {
            h.service
                .metrics()
                .scheduler_passes
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let before = passes(&h);
        h.service.wake();
        let start = Instant::now();
        while passes(&h) == before {
            assert!(start.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(5));
        }
        h.wait_for(what, |runs| {
            let now = tidewater_service::Clock::now(&h.clock);
            runs.iter()
                .all(|r| r.state.is_final() || (r.state == RunState::Pending && r.run_at > now))
        })
    };
    let mut at: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
    for day in 1..=40 {
        at += jiff::SignedDuration::from_hours(24);
        h.clock.set(at + jiff::SignedDuration::from_hours(2));
        settle(&format!("day {day}"));
        if day == 9 {
            // Late data for 2024-01-05 (already exported) arrives upstream.
            assert_eq!(h.mock.add_events(late_line.as_bytes()).unwrap().added, 1);
        }
    }
    let runs = h.runs();
    assert!(
        runs.iter()
            .all(|r| r.state != RunState::Failed && r.state != RunState::TimedOut),
        "{runs:#?}"
    );
    assert!(
        h.mock.requests().iter().any(|r| r.fault.is_some()),
        "faults were met"
    );

    // Byte for byte what convert writes from the same data and options.
    let by_convert = root.join("by-convert");
    convert_all(
        std::slice::from_ref(&h.data),
        &by_convert.join("daily"),
        tidewater::RunOptions {
            schema: tidewater::SchemaMode::Monoschema,
            format: tidewater::Format::Parquet,
            ..Default::default()
        },
    );
    assert_windows_match(&daily.join("4242"), &by_convert.join("daily"));
    convert_all(
        &[h.data.clone(), late.clone()],
        &by_convert.join("synced"),
        tidewater::RunOptions {
            schema: tidewater::SchemaMode::Multischema,
            format: tidewater::Format::Json,
            ..Default::default()
        },
    );
    assert_windows_match(&synced.join("4242"), &by_convert.join("synced"));
    // The hourly pipeline starts on 01-28: convert the same events, from that day.
    let from_28 = root.join("from-28.jsonl");
    let start_28 = 1706400000; // 2024-01-28T00:00:00Z
    let kept: Vec<String> = timed_lines(&h.data)
        .into_iter()
        .filter(|(seconds, _)| *seconds >= start_28)
        .map(|(_, line)| line)
        .collect();
    std::fs::write(&from_28, kept.join("\n") + "\n").unwrap();
    convert_all(
        &[from_28],
        &by_convert.join("hourly"),
        tidewater::RunOptions {
            schema: tidewater::SchemaMode::Multischema,
            format: tidewater::Format::Parquet,
            partition: tidewater::Partition::Hourly,
            ..Default::default()
        },
    );
    assert_windows_match(&hourly.join("4242"), &by_convert.join("hourly"));

    // Sync replaced 2024-01-05 and the timeline shows both times.
    let name = "events-daily-local-multischema";
    let synced_name = h
        .service
        .store()
        .pipelines(Some(PROJECT))
        .unwrap()
        .into_iter()
        .find(|p| p.spec.sync)
        .unwrap()
        .spec
        .name;
    assert_eq!(synced_name, name, "the sync pipeline is the JSON daily one");
    let (_, timeline) = h.nessie(
        "GET",
        "timeline",
        &[("project_id", &project), ("name", &synced_name)],
    );
    let day5 = timeline["day_syncs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == "2024-01-05")
        .unwrap()
        .clone();
    assert!(day5["sync_times"].as_array().unwrap().len() >= 2, "{day5}");
    assert!(runs
        .iter()
        .any(|r| r.kind == tidewater_service::model::RunKind::Sync
            && r.changed == Some(true)
            && r.from_date.to_string() == "2024-01-05"));
}

/// The people snapshot and its mapping file below `root`.
fn people_files(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    crate::util::tree(root)
        .into_iter()
        .filter(|(k, _)| k.starts_with("mp_people_data/") || k == "schema/people.json")
        .collect()
}

#[test]
fn p15_people_pipelines_take_a_daily_snapshot_that_replaces_the_previous_one() {
    let h = Harness::start(500, "2024-01-05T12:00:00Z", &[], |_| {});
    let names = h.create(&[
        ("from_date", "2024-01-01"),
        ("data_source", "people"),
        ("data_format", "parquet"),
    ]);
    assert_eq!(names, ["people-daily-local"]);
    h.wait_for("the first snapshot", |runs| {
        runs.len() == 1 && runs[0].state == RunState::Succeeded
    });
    assert_eq!(
        h.runs()[0].from_date.to_string(),
        "2024-01-04",
        "one snapshot, for the latest closed day, not one per day since from_date"
    );
    let root = h.out.join(PROJECT.to_string());
    let reference = h.dir.path().join("reference");
    let people = || tidewater::RunOptions {
        data_source: tidewater::DataSource::People,
        ..Default::default()
    };
    convert_all(std::slice::from_ref(&h.profiles), &reference, people());
    assert_eq!(people_files(&root), people_files(&reference));

    // Overnight the profiles change; the next day's snapshot replaces the first.
    let changed = crate::people::profiles(h.dir.path(), "changed.jsonl", 80, 2);
    h.mock.set_profiles(std::slice::from_ref(&changed)).unwrap();
    h.advance_to("2024-01-06T12:00:00Z");
    h.wait_for("the second snapshot", |runs| {
        runs.len() == 2 && runs.iter().all(|r| r.state == RunState::Succeeded)
    });
    convert_all(std::slice::from_ref(&changed), &reference, people());
    assert_eq!(people_files(&root), people_files(&reference));
    let run = h.runs().pop().unwrap();
    assert_eq!(run.from_date.to_string(), "2024-01-05");
    let (_, timeline) = h.nessie(
        "GET",
        "timeline",
        &[("project_id", &PROJECT.to_string()), ("name", &names[0])],
    );
    let days: Vec<&str> = timeline["day_syncs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["date"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2024-01-04", "2024-01-05"], "{timeline}");
}
