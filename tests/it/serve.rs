//! `tidewater serve` as a process (P19, P42): it prints where it listens, refuses a
//! second server on its state file, survives `kill -9` without losing or redoing a
//! committed window, and stops cleanly on SIGTERM. On the real clock, so its data is
//! generated for the last days.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidewater_mock::{Fault, MockAuth, MockConfig, MockServer};
use tidewater_service::{Frequency, Schedule, DEFAULT_DELAY};

use crate::service::{events_per_day, query_value, SECRET};

const KEY: &str = "u3p+HrQ4Xv9x2m1nZk5bJ7dL0cR8tY6wE4aS2fG1hKs=";

type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `tidewater serve`; returns the child, its base URL once it listens, and its
/// log lines as they come.
fn serve(state: &Path, mock: &str, extra: &[&str]) -> (Child, String, Log) {
    serve_with_env(state, mock, extra, &[])
}

/// [`serve`] with more environment variables (an object store's).
pub(crate) fn serve_with_env(
    state: &Path,
    mock: &str,
    extra: &[&str],
    env: &[(&'static str, String)],
) -> (Child, String, Log) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .args([
            "--mixpanel-url",
            mock,
            "--rate-limit",
            "1000/1s",
            "--grace",
            "2s",
            "--concurrency",
            "1",
        ])
        .args(extra)
        .env("TIDEWATER_SECRET_KEY", KEY)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve printed where it listens")
            .unwrap();
        if let Some(rest) = line.strip_prefix("tidewater: listening on ") {
            break rest.split(' ').next().unwrap().to_string();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    let log = Log::default();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    (child, url, log)
}

/// `tidewater serve keys create` on `state`: the key it prints once.
pub(crate) fn make_key(state: &Path) -> String {
    let made = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["serve", "keys", "create", "--label", "ci", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    String::from_utf8(made.stdout).unwrap().trim().to_string()
}

pub(crate) fn rest(
    url: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut req = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let response = req.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null),
        )
    })
}

pub(crate) fn runs(url: &str, key: &str) -> Vec<Value> {
    let (status, page) = rest(url, key, "GET", "/v1/pipelines/runs?limit=1000", None);
    assert_eq!(status, 200, "{page}");
    page["runs"].as_array().unwrap().clone()
}

/// (day, state) of every run, read from the state file while no server runs.
fn runs_in(state: &Path) -> Vec<(String, String)> {
    let store = tidewater_service::StateStore::open(state).unwrap();
    let runs = store
        .runs(&tidewater_service::RunFilter {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    runs.into_iter()
        .map(|r| (r.from_date.to_string(), r.state.as_str().to_string()))
        .collect()
}

pub(crate) fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn p19_p42_serve_listens_refuses_a_second_server_survives_kill_9_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let first = today.checked_sub(jiff::Span::new().days(8)).unwrap();
    let data = dir.path().join("data.jsonl.gz");
    let gen = tidewater::synth::GenConfig {
        events: 3000,
        days: 10,
        seed: 5,
        start: today.checked_sub(jiff::Span::new().days(9)).unwrap(),
    };
    tidewater::synth::generate_file(&gen, &data).unwrap();
    // Every export request takes 600 ms, so that a kill lands mid-run.
    let mock = MockServer::start(MockConfig {
        data: vec![data.clone()],
        auth: MockAuth::Secret(SECRET.into()),
        limits: Vec::new(),
        faults: vec![Fault::parse("slow=600ms,count=1000").unwrap()],
        ..Default::default()
    })
    .unwrap();
    let state = dir.path().join("state.db");

    // Without the secret key the server refuses to start, saying how to make one.
    let out = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["serve", "--state"])
        .arg(&state)
        .env_remove("TIDEWATER_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tidewater serve secret-key"));

    let key = make_key(&state);
    assert!(key.starts_with("tw_"));

    let (mut server, url, log) = serve(&state, mock.url(), &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .env("TIDEWATER_SECRET_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let refusal = String::from_utf8_lossy(&second.stderr);
    assert!(refusal.contains("in use by another server"), "{refusal}");

    let out_dir = dir.path().join("out");
    let (status, created) = rest(
        &url,
        &key,
        "POST",
        "/v1/pipelines",
        Some(serde_json::json!({
            "project_id": 77, "type": "local", "path": out_dir, "from_date": first.to_string(),
            "credentials": {"api_secret": SECRET},
        })),
    );
    assert_eq!(status, 201, "{created}");
    let schedule = Schedule::new(Frequency::Daily, first, None, "UTC", DEFAULT_DELAY).unwrap();
    let due: Vec<String> = schedule
        .due(now, 100)
        .iter()
        .map(|w| w.key.to_string())
        .collect();
    assert!(due.len() >= 7, "{due:?}");

    // Kill -9 while the second window runs.
    wait_until("the second run", Duration::from_secs(60), || {
        let runs = runs(&url, &key);
        runs.iter().any(|r| r["state"] == "succeeded")
            && runs.iter().any(|r| r["state"] == "running")
    });
    server.kill().unwrap();
    server.wait().unwrap();
    let committed_before_kill: Vec<String> = runs_in(&state)
        .into_iter()
        .filter(|(_, s)| s == "succeeded")
        .map(|(d, _)| d)
        .collect();
    // P42: a line per run state change.
    let text = log.lock().unwrap().join("\n");
    assert!(
        text.contains("run 1 of events-daily-local-monoschema ("),
        "{text}"
    );
    assert!(text.contains("): succeeded"), "{text}");
    assert!(!text.contains(SECRET), "P40");
    // Two more kills, each once one more day is committed and the next one runs.
    let mut committed_now = committed_before_kill.clone();
    for _ in 0..2 {
        let before = committed_now.len();
        let (mut server, url, _) = serve(&state, mock.url(), &[]);
        wait_until("one more day", Duration::from_secs(60), || {
            let runs = runs(&url, &key);
            runs.iter().filter(|r| r["state"] == "succeeded").count() > before
                && runs.iter().any(|r| r["state"] == "running")
        });
        server.kill().unwrap();
        server.wait().unwrap();
        committed_now = runs_in(&state)
            .into_iter()
            .filter(|(_, s)| s == "succeeded")
            .map(|(d, _)| d)
            .collect();
    }

    let (mut server, url, log) = serve(&state, mock.url(), &["--json-logs"]);
    wait_until("every due day", Duration::from_secs(60), || {
        let runs = runs(&url, &key);
        runs.iter().filter(|r| r["state"] == "succeeded").count() == due.len()
            && !runs
                .iter()
                .any(|r| r["state"] == "pending" || r["state"] == "running")
    });
    let runs = runs(&url, &key);
    let retried: Vec<&Value> = runs.iter().filter(|r| r["state"] == "retried").collect();
    // Each kill landed while a run ran (a run can end between the look and the kill).
    assert!(
        (1..=3).contains(&retried.len()),
        "the killed runs are recorded as retried: {runs:#?}"
    );
    assert!(retried
        .iter()
        .all(|r| r["error"].as_str().unwrap().contains("server stopped")));
    // Nothing committed twice, nothing lost: each due day succeeded once, holds its
    // events, and only the killed day was requested twice.
    let mut succeeded: Vec<String> = runs
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .map(|r| r["from_date"].as_str().unwrap().to_string())
        .collect();
    succeeded.sort();
    assert_eq!(succeeded, due);
    let per_day = events_per_day(&data);
    for day in &due {
        let folder = out_dir.join(format!("77/mp_master_event/{}", day.replace('-', "/")));
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(folder.join("_manifest.json")).unwrap()).unwrap();
        assert_eq!(
            manifest["events_kept"].as_u64(),
            Some(per_day[day]),
            "{day}"
        );
    }
    let mut requested = std::collections::BTreeMap::<String, usize>::new();
    for r in mock.requests() {
        *requested
            .entry(query_value(&r.request, "from_date"))
            .or_default() += 1;
    }
    // A day committed before the first kill is never fetched again; the others may
    // have been in flight or fetched ahead at each of the three kills. The create's
    // credential check asked for one line of yesterday.
    let checked_day = today.yesterday().unwrap().to_string();
    assert!(!committed_before_kill.is_empty());
    for day in &due {
        let times = requested.get(day).copied().unwrap_or(0);
        let again = if committed_before_kill.contains(day) {
            0
        } else {
            3
        };
        let allowed = 1..=1 + again + usize::from(*day == checked_day);
        assert!(
            allowed.contains(&times),
            "{day} requested {times} times: {requested:?}"
        );
    }

    // Byte for byte what an uninterrupted export of the same days writes.
    let uninterrupted = dir.path().join("uninterrupted");
    let summary = tidewater::export::Exporter::new(
        &uninterrupted,
        tidewater::export::Credentials::ApiSecret(SECRET.into()),
        &due[0],
        &due[due.len() - 1],
    )
    .unwrap()
    .with_options(tidewater::RunOptions {
        format: tidewater::Format::Json,
        ..Default::default()
    })
    .project_id(77)
    .base_url(mock.url())
    .run()
    .unwrap();
    summary.check().unwrap();
    let data_files = |root: &Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        crate::util::tree(root)
            .into_iter()
            .filter(|(k, _)| !k.starts_with(".tidewater/") && !k.ends_with("manifest.json"))
            .collect()
    };
    let (ours, theirs) = (
        data_files(&out_dir.join("77")),
        data_files(&uninterrupted.join("77")),
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>()
    );
    for (k, v) in &ours {
        assert!(v == &theirs[k], "{k} differs from an uninterrupted export");
    }

    // JSON logs on request: one object per line, with the run's fields.
    let lines = log.lock().unwrap().clone();
    let states: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["state"].is_string())
        .collect();
    assert!(!states.is_empty(), "{lines:?}");
    assert!(
        states.iter().any(|v| v["state"] == "succeeded"
            && v["pipeline"] == "events-daily-local-monoschema"
            && v["window"].is_string()),
        "{states:?}"
    );

    // SIGTERM: a clean stop.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));

    // P40: the credential is nowhere in plain text: state file (and its WAL), output,
    // log lines; and another key cannot open the state file.
    let mut files = vec![state.clone(), state.with_extension("db-wal")];
    files.extend(crate::util::tree(&out_dir).keys().map(|k| out_dir.join(k)));
    for f in files.iter().filter(|f| f.exists()) {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the secret",
            f.display()
        );
    }
    let text = log.lock().unwrap().join("\n");
    assert!(!text.contains(SECRET));
    let other_key = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .env(
            "TIDEWATER_SECRET_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert_ne!(other_key.status.code(), Some(0));
    let refusal = String::from_utf8_lossy(&other_key.stderr);
    assert!(
        refusal.contains("not the one the secrets were sealed with"),
        "{refusal}"
    );
}

#[test]
fn p42_sigterm_cancels_a_running_run_uncommitted_after_the_grace_period_and_the_next_start_runs_it()
{
    let dir = tempfile::tempdir().unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let first = today.checked_sub(jiff::Span::new().days(3)).unwrap();
    let data = dir.path().join("data.jsonl.gz");
    let gen = tidewater::synth::GenConfig {
        events: 600,
        days: 4,
        seed: 9,
        start: first,
    };
    tidewater::synth::generate_file(&gen, &data).unwrap();
    // The create's check, then a first day that takes 3 s: longer than the grace.
    let mock = MockServer::start(MockConfig {
        data: vec![data],
        auth: MockAuth::Secret(SECRET.into()),
        limits: Vec::new(),
        faults: vec![
            Fault::parse("slow=1ms").unwrap(),
            Fault::parse("slow=3s").unwrap(),
        ],
        ..Default::default()
    })
    .unwrap();
    let state = dir.path().join("state.db");
    let key = make_key(&state);
    let (mut server, url, _) = serve(&state, mock.url(), &[]);
    let out_dir = dir.path().join("out");
    let (status, created) = rest(
        &url,
        &key,
        "POST",
        "/v1/pipelines",
        Some(serde_json::json!({
            "project_id": 5, "type": "local", "path": out_dir, "from_date": first.to_string(),
            "to_date": first.to_string(), "credentials": {"api_secret": SECRET},
        })),
    );
    assert_eq!(status, 201, "{created}");
    wait_until("the run", Duration::from_secs(30), || {
        runs(&url, &key).iter().any(|r| r["state"] == "running")
    });
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let states = runs_in(&state);
    assert_eq!(
        states,
        [
            (first.to_string(), "pending".into()),
            (first.to_string(), "canceled".into())
        ],
        "canceled uncommitted, to run again"
    );
    let folder = out_dir.join(format!(
        "5/mp_master_event/{}",
        first.to_string().replace('-', "/")
    ));
    assert!(!folder.join("_complete").exists(), "nothing committed");
    let (mut server, url, _) = serve(&state, mock.url(), &[]);
    wait_until("the run again", Duration::from_secs(30), || {
        runs(&url, &key).iter().any(|r| r["state"] == "succeeded")
    });
    assert!(folder.join("_complete").exists());
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(server.wait().unwrap().code(), Some(0));
}
