//! `tidewater export` against the mock export server on loopback (export-api XC1–XC5,
//! XM1–XM4): nothing lost or duplicated under faults, refused requests fail at once,
//! resume after `kill -9`, pacing, credentials never shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use tidewater::export::{Credentials, ExportSummary, Exporter, Tuning};
use tidewater::{Converter, RunOptions, SchemaMode};
use tidewater_mock::{Fault, MockAuth, MockConfig, MockServer};

const SECRET: &str = "s3cret-Tidewater-test-9f2c";

/// 30 days of generated events, in time order.
pub(crate) fn generated(dir: &Path, events: u64, days: u32) -> PathBuf {
    let path = dir.join("data.jsonl.gz");
    let config = tidewater::synth::GenConfig {
        events,
        days,
        seed: 11,
        start: jiff::civil::date(2024, 1, 1),
    };
    tidewater::synth::generate_file(&config, &path).unwrap();
    path
}

pub(crate) fn mock(data: &Path, configure: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut config = MockConfig {
        data: vec![data.to_path_buf()],
        auth: MockAuth::Secret(SECRET.into()),
        today: Some(jiff::civil::date(2024, 12, 31)),
        limits: Vec::new(),
        ..Default::default()
    };
    configure(&mut config);
    MockServer::start(config).unwrap()
}

/// Short waits so that retries take milliseconds.
fn fast_tuning() -> Tuning {
    Tuning {
        concurrency: 4,
        max_attempts: 12,
        timeout_first_byte: Duration::from_millis(700),
        stall_timeout: Duration::from_millis(700),
        pace: vec![(1000, Duration::from_secs(1))],
        backoff_rate_limited_first: Duration::from_millis(50),
        backoff_rate_limited_max: Duration::from_millis(200),
        backoff_first: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
    }
}

fn exporter(
    out: &Path,
    server: &MockServer,
    options: RunOptions,
    from: &str,
    to: &str,
) -> Exporter {
    Exporter::new(out, Credentials::ApiSecret(SECRET.into()), from, to)
        .unwrap()
        .with_options(options)
        .base_url(server.url())
        .tuning(fast_tuning())
}

pub(crate) fn convert(data: &Path, out: &Path, options: RunOptions) {
    let summary = Converter::new(out)
        .input(data)
        .with_options(RunOptions {
            out: out.to_path_buf(),
            ..options
        })
        .run()
        .unwrap();
    summary.check().unwrap();
}

/// Data files and mapping file: everything but export's own manifests.
fn data_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(root)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".tidewater/") && !k.ends_with("manifest.json"))
        .collect()
}

fn assert_same_data(export: &Path, convert: &Path) {
    let (a, b) = (data_tree(export), data_tree(convert));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between export and convert");
    }
}

#[test]
fn xm4_export_under_every_fault_matches_convert_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 6000, 30);
    let faults = [
        "429,count=2",
        "429=1s",
        "500",
        "503",
        "terminated=7",
        "cut=7",
        "drop=7",
        "slow=2s",
        "stall=2s@7",
        "drop=3,p=0.05",
    ];
    let server = mock(&data, |c| {
        c.faults = faults.iter().map(|f| Fault::parse(f).unwrap()).collect();
    });
    let options = RunOptions {
        schema: SchemaMode::Multischema,
        ..Default::default()
    };
    let out = dir.path().join("export");
    let summary = exporter(&out, &server, options.clone(), "2024-01-01", "2024-01-30")
        .run()
        .unwrap();
    summary.check().unwrap();
    assert_eq!(summary.run.windows_committed, 30);
    assert_eq!(summary.run.events_kept, 6000);
    assert!(
        summary.retries >= 10,
        "every fault caused a retry: {}",
        summary.retries
    );
    assert!(summary
        .windows
        .iter()
        .all(|w| w.status == tidewater::export::WindowStatus::Committed));
    let applied: Vec<String> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.fault)
        .collect();
    for f in &faults[..9] {
        assert!(
            applied.iter().any(|a| a == f),
            "fault {f} was applied: {applied:?}"
        );
    }
    let reference = dir.path().join("convert");
    convert(&data, &reference, options);
    assert_same_data(&out, &reference);

    // Manifests: one per window, with the request, attempts, hash and counts.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join(".tidewater/export/2024-01-05.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["request"]["from_date"], "2024-01-05");
    assert_eq!(manifest["request"]["schema"], "multischema");
    assert_eq!(manifest["sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["attempts"].as_u64().unwrap() >= 1);
    assert_eq!(manifest["events_kept"], manifest["lines"]);
    assert!(
        std::fs::read_dir(out.join("mp_master_event")).is_err(),
        "multischema only"
    );

    // XC4: a second run skips every window and changes nothing.
    let before = tree(&out);
    let again = exporter(
        &out,
        &server,
        RunOptions {
            schema: SchemaMode::Multischema,
            ..Default::default()
        },
        "2024-01-01",
        "2024-01-30",
    )
    .run()
    .unwrap();
    assert_eq!(again.windows_skipped, 30);
    assert_eq!(again.requests, 0);
    assert_eq!(before, tree(&out));
}

#[test]
fn x7_refused_requests_fail_at_once_with_the_servers_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 300, 3);
    type Configure = Box<dyn Fn(&mut MockConfig)>;
    let cases: [(&str, Configure, &str); 4] = [
        (
            "400",
            Box::new(|c| c.today = Some(jiff::civil::date(2024, 1, 1))),
            "to_date cannot be later than today",
        ),
        (
            "401",
            Box::new(|c| c.auth = MockAuth::Secret("another".into())),
            "Invalid credentials",
        ),
        (
            "402",
            Box::new(|c| c.faults = vec![Fault::parse("402").unwrap()]),
            "injected fault: 402",
        ),
        (
            "403",
            Box::new(|c| c.faults = vec![Fault::parse("403").unwrap()]),
            "injected fault: 403",
        ),
    ];
    for (status, configure, message) in cases {
        let server = mock(&data, configure);
        let out = dir.path().join(format!("out-{status}"));
        let err = exporter(
            &out,
            &server,
            RunOptions::default(),
            "2024-01-02",
            "2024-01-02",
        )
        .run()
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(status) && text.contains(message),
            "{status}: {text}"
        );
        assert!(text.contains("2024-01-02"), "names the window: {text}");
        assert!(!text.contains(SECRET));
        assert_eq!(server.requests().len(), 1, "{status} is not retried");
        assert!(!out.join("mp_master_event").exists(), "nothing committed");
    }
}

#[test]
fn xc2_pacing_never_exceeds_the_limits_at_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 400, 16);
    // The server enforces the same limits: a request beyond them would get 429.
    let limits = vec![(4, Duration::from_secs(1)), (9, Duration::from_secs(3))];
    let server = mock(&data, |c| c.limits = limits.clone());
    let out = dir.path().join("out");
    let mut tuning = fast_tuning();
    tuning.pace = limits.clone();
    let summary = exporter(
        &out,
        &server,
        RunOptions::default(),
        "2024-01-01",
        "2024-01-16",
    )
    .tuning(tuning)
    .run()
    .unwrap();
    summary.check().unwrap();
    assert_eq!(summary.retries, 0, "no request was refused for its rate");
    assert!(summary.rate_limit_wait_seconds > 0.0);
    let times: Vec<u64> = server.requests().iter().map(|r| r.at_ms).collect();
    assert_eq!(times.len(), 16);
    for (n, period) in limits {
        let period = period.as_millis() as u64;
        for (i, t) in times.iter().enumerate() {
            let in_period = times[..=i].iter().filter(|u| t - *u < period).count();
            assert!(
                in_period <= n as usize,
                "{in_period} requests within {period} ms: {times:?}"
            );
        }
    }
}

/// XC2 with slow responses and every concurrency slot busy: a request takes its place
/// in the rate budget only when it is about to be sent, not while it waits for a slot.
#[test]
fn xc2_pacing_holds_when_responses_are_slow_and_slots_are_full() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 400, 12);
    let limits = vec![(3, Duration::from_secs(1))];
    let server = mock(&data, |c| {
        c.limits = limits.clone();
        // The first two responses are slow, the rest fast: the requests that waited
        // for a slot meanwhile must not all go at once when the slots free up.
        c.faults = vec![Fault::parse("slow=1300ms,count=2").unwrap()];
    });
    let mut tuning = fast_tuning();
    tuning.pace = limits.clone();
    tuning.concurrency = 2;
    tuning.timeout_first_byte = Duration::from_secs(5);
    let summary = exporter(
        &dir.path().join("out"),
        &server,
        RunOptions::default(),
        "2024-01-01",
        "2024-01-12",
    )
    .tuning(tuning)
    .run()
    .unwrap();
    summary.check().unwrap();
    let times: Vec<u64> = server.requests().iter().map(|r| r.at_ms).collect();
    for (i, t) in times.iter().enumerate() {
        let in_period = times[..=i].iter().filter(|u| t - *u < 1000).count();
        assert!(in_period <= 3, "{in_period} requests within 1 s: {times:?}");
    }
    assert_eq!(summary.retries, 0, "no request was refused for its rate");
}

#[test]
fn f2_where_and_events_on_the_server_or_locally_keep_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 3000, 5);
    let server = mock(&data, |_| {});
    let options = RunOptions {
        where_expr: Some(
            r#"properties["$os"] == "Linux" or properties["mp_country_code"] == "JP""#.into(),
        ),
        events: vec![
            "Page View".into(),
            "Sign Up".into(),
            "$mp_web_page_view".into(),
        ],
        ..Default::default()
    };
    let remote = dir.path().join("remote");
    let summary = exporter(
        &remote,
        &server,
        options.clone(),
        "2024-01-01",
        "2024-01-05",
    )
    .run()
    .unwrap();
    assert!(summary.run.events_kept > 0 && summary.run.events_kept < 3000);
    let local = dir.path().join("local");
    exporter(&local, &server, options.clone(), "2024-01-01", "2024-01-05")
        .filter_locally(true)
        .run()
        .unwrap();
    let reference = dir.path().join("convert");
    convert(&data, &reference, options);
    assert_same_data(&remote, &reference);
    assert_same_data(&local, &reference);
    let requests = server.requests();
    assert!(requests[0].request.contains("where=") && requests[0].request.contains("event="));
    assert!(!requests.last().unwrap().request.contains("where="));
}

#[test]
fn w1_events_outside_their_window_are_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 600, 3);
    // The server's days are UTC days; asking for Tokyo days gets events of other days.
    let server = mock(&data, |_| {});
    let out = dir.path().join("out");
    let summary = exporter(
        &out,
        &server,
        RunOptions {
            tz: "Asia/Tokyo".into(),
            ..Default::default()
        },
        "2024-01-02",
        "2024-01-02",
    )
    .run()
    .unwrap();
    assert!(summary.run.events_rejected > 0);
    assert_eq!(
        summary.run.events_kept + summary.run.events_rejected,
        summary.run.lines_read
    );
    let rejects = std::fs::read_to_string(summary.run.rejects_file.unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(rejects.lines().next().unwrap()).unwrap();
    assert_eq!(first["source"], "export:2024-01-02");
    assert!(first["reason"]
        .as_str()
        .unwrap()
        .contains("outside the window"));
}

#[test]
fn xm2_server_validates_like_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 200, 2);
    let server = mock(&data, |c| c.today = Some(jiff::civil::date(2024, 1, 2)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let get = |query: &str, secret: &str| {
        let url = format!("{}/api/2.0/export?{query}", server.url());
        rt.block_on(async {
            let r = client
                .get(url)
                .basic_auth(secret, Some(""))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let gzip = r.headers().contains_key("content-encoding");
            (status, gzip, r.text().await.unwrap())
        })
    };
    for (query, message) in [
        ("to_date=2024-01-01", "'from_date' is a required parameter"),
        ("from_date=2024-1-1&to_date=2024-01-01", "not a valid date"),
        ("from_date=2024-01-02&to_date=2024-01-01", "cannot be after"),
        (
            "from_date=2024-01-01&to_date=2024-01-03",
            "to_date cannot be later than today",
        ),
        ("from_date=2024-01-01&to_date=2024-01-01&limit=0", "'limit'"),
        (
            "from_date=2024-01-01&to_date=2024-01-01&limit=100001",
            "'limit'",
        ),
        (
            "from_date=2024-01-01&to_date=2024-01-01&event=Signup",
            "JSON array of strings",
        ),
        (
            "from_date=2024-01-01&to_date=2024-01-01&event=%5B1%5D",
            "JSON array of strings",
        ),
        (
            "from_date=2024-01-01&to_date=2024-01-01&where=properties%5B",
            "invalid 'where'",
        ),
    ] {
        let (status, _, body) = get(query, SECRET);
        assert_eq!(status, 400, "{query}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            json["error"].as_str().unwrap().contains(message),
            "{query}: {body}"
        );
        assert!(json["request"]
            .as_str()
            .unwrap()
            .starts_with("/api/2.0/export?"));
    }
    assert_eq!(
        get("from_date=2024-01-01&to_date=2024-01-01", "wrong").0,
        401
    );

    // XM1: limit keeps the first N in data order; time_in_ms writes milliseconds;
    // X5: small bodies are not compressed.
    let (status, gzip, body) = get(
        "from_date=2024-01-01&to_date=2024-01-01&limit=1&time_in_ms=true",
        SECRET,
    );
    assert_eq!(status, 200);
    assert!(!gzip, "a body under 1400 bytes is sent plain");
    let lines = json_lines(body.as_bytes());
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["properties"]["time"].as_u64().unwrap() >= 100_000_000_000);
    let (_, _, all) = get("from_date=2024-01-01&to_date=2024-01-01", SECRET);
    let all = json_lines(all.as_bytes());
    assert!(all.len() > 50);
    assert_eq!(
        all[0]["properties"]["$insert_id"],
        lines[0]["properties"]["$insert_id"]
    );
    let (_, _, filtered) = get(
        "from_date=2024-01-01&to_date=2024-01-02&where=properties%5B%22%24os%22%5D%20%3D%3D%20%22Linux%22",
        SECRET,
    );
    let filtered = json_lines(filtered.as_bytes());
    assert!(!filtered.is_empty());
    assert!(filtered.iter().all(|e| e["properties"]["$os"] == "Linux"));
}

/// Runs `tidewater export` as a process with the secret in its environment.
pub(crate) fn export_command(out: &Path, url: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidewater"));
    cmd.args([
        "export",
        "--from",
        "2024-01-01",
        "--to",
        "2024-01-20",
        "--out",
        out.to_str().unwrap(),
        "--base-url",
        url,
        "--backoff",
        "20ms",
        "--backoff-429",
        "50ms",
        "--stall-timeout",
        "500ms",
        "--timeout-first-byte",
        "500ms",
    ])
    .args(extra)
    .env_remove("MIXPANEL_SERVICE_ACCOUNT_USERNAME")
    .env_remove("MIXPANEL_SERVICE_ACCOUNT_SECRET")
    .env("MIXPANEL_API_SECRET", SECRET);
    cmd
}

#[test]
fn xc4_export_killed_mid_run_resumes_to_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 4000, 20);
    let server = mock(&data, |_| {});
    let out = dir.path().join("out");
    // Two requests a second: the run takes about ten seconds; kill it part-way.
    let mut child = export_command(&out, server.url(), &["--pace", "2/1s", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = out.join(".tidewater/export");
    // Committed windows' manifests; a kill between writing a manifest's temporary file
    // and renaming it leaves a `.json.tmp`, which does not count.
    let manifests = |state: &Path| {
        std::fs::read_dir(state).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
    };
    let start = Instant::now();
    loop {
        let done = manifests(&state);
        if done >= 4 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let committed_before = manifests(&state);
    assert!(
        (4..20).contains(&committed_before),
        "killed part-way: {committed_before}"
    );

    let output = export_command(&out, server.url(), &["--pace", "100/1s", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["windows_skipped"].as_u64().unwrap(),
        committed_before as u64
    );
    assert_eq!(summary["windows"].as_array().unwrap().len(), 20);
    let reference = dir.path().join("convert");
    convert(&data, &reference, RunOptions::default());
    assert_same_data(&out, &reference); // also: no staging or spool folder left
}

#[test]
fn x3_credentials_never_appear_in_output_logs_or_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 500, 20);
    let server = mock(&data, |c| {
        c.faults = ["503", "drop=5", "terminated=3"]
            .iter()
            .map(|f| Fault::parse(f).unwrap())
            .collect();
    });
    let out = dir.path().join("out");
    let output = export_command(&out, server.url(), &["--pace", "100/1s", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("retrying"), "retries are logged: {stderr}");
    let denied = export_command(&out, server.url(), &["--refetch"])
        .env("MIXPANEL_API_SECRET", format!("{SECRET}-wrong"))
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));
    let no_credentials = export_command(&out, server.url(), &[])
        .env_remove("MIXPANEL_API_SECRET")
        .output()
        .unwrap();
    assert_eq!(no_credentials.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_credentials.stderr).contains("MIXPANEL_API_SECRET"));
    for o in [&output, &denied, &no_credentials] {
        for stream in [&o.stdout, &o.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(SECRET));
        }
    }
    for (path, bytes) in tree(&out) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{path} holds the secret"
        );
    }
    // The library summary's Debug form is free of it too.
    let summary: ExportSummary = exporter(
        &dir.path().join("lib"),
        &server,
        RunOptions::default(),
        "2024-01-01",
        "2024-01-02",
    )
    .run()
    .unwrap();
    assert!(!format!("{summary:?}").contains(SECRET));
    assert!(!format!("{:?}", Credentials::ApiSecret(SECRET.into())).contains(SECRET));
}

/// X3: a server or proxy that echoes the request's headers in an error body (retried,
/// then refused) never gets the `Authorization` value onto stderr.
#[test]
fn x3_credentials_echoed_by_a_server_are_redacted() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 50, 2);
    let server = mock(&data, |c| {
        c.faults = ["echo=502", "echo=403"]
            .iter()
            .map(|f| Fault::parse(f).unwrap())
            .collect();
    });
    let output = export_command(
        &dir.path().join("out"),
        server.url(),
        &["--concurrency", "1"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"));
    assert!(
        stderr.contains("your request was") && stderr.contains("[redacted]"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&basic) && !stderr.contains(SECRET),
        "{stderr}"
    );
}

/// A GET over a plain socket, so that the test sees the response as sent: the status
/// line and headers (lowercased) and the body with chunked transfer encoding removed.
pub(crate) fn raw_get(url: &str, path_query: &str, accept_gzip: bool) -> (String, bool, Vec<u8>) {
    raw_request(url, "GET", path_query, accept_gzip, b"")
}

/// A request over a plain socket; see [`raw_get`].
fn raw_request(
    url: &str,
    method: &str,
    path_query: &str,
    accept_gzip: bool,
    body: &[u8],
) -> (String, bool, Vec<u8>) {
    use base64::Engine;
    use std::io::{Read, Write};
    let host = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"));
    let accept = if accept_gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "{method} {path_query} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n{accept}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec())
        .unwrap()
        .to_ascii_lowercase();
    let mut rest = &response[split + 4..];
    let chunked = head.contains("transfer-encoding: chunked");
    if !chunked {
        return (head, false, rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
    (head, true, body)
}

#[test]
fn x4_x5_xm3_gzip_only_when_accepted_and_large_streamed_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 600, 3);
    let server = mock(&data, |_| {});
    let day = "/api/2.0/export?from_date=2024-01-02&to_date=2024-01-02";

    let (head, chunked, plain) = raw_get(server.url(), day, false);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(chunked, "XM3: streamed with chunked transfer: {head}");
    assert!(plain.starts_with(b"{\"event\""), "plain JSONL");
    assert!(plain.len() > 1400);

    let (head, chunked, zipped) = raw_get(server.url(), day, true);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(chunked, "{head}");
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(&zipped[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, plain, "the same day, gzip-encoded");

    // X5: a body of at most 1400 bytes is sent as it is, even when gzip is accepted.
    let (head, _, small) = raw_get(server.url(), &format!("{day}&limit=1"), true);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(small.len() <= 1400 && small.starts_with(b"{\"event\""));

    // X4: the client always asks for gzip.
    let out = dir.path().join("out");
    exporter(
        &out,
        &server,
        RunOptions::default(),
        "2024-01-01",
        "2024-01-03",
    )
    .run()
    .unwrap()
    .check()
    .unwrap();
    let from_client: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.request.contains("2024-01-01"))
        .collect();
    assert!(!from_client.is_empty());
    assert!(from_client.iter().all(|r| r.accept_gzip), "{from_client:?}");
}

/// The service's seams: one window at a time through `export_window`, with a ledger and
/// a rate budget of the caller's (here an in-memory ledger), resumed from that ledger.
#[test]
fn xc4_export_window_commits_one_window_and_skips_it_from_the_callers_ledger() {
    use std::sync::{Arc, Mutex};
    use tidewater::export::{Ledger, Manifest, Pacer, WindowStatus};

    #[derive(Default)]
    struct MemoryLedger(Mutex<BTreeMap<String, Manifest>>);
    impl Ledger for MemoryLedger {
        fn committed(&self, name: &str) -> Option<Manifest> {
            self.0.lock().unwrap().get(name).cloned()
        }
        fn record(&self, name: &str, manifest: &Manifest) -> tidewater::Result<()> {
            self.0.lock().unwrap().insert(name.into(), manifest.clone());
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 600, 3);
    let server = mock(&data, |_| {});
    let out = dir.path().join("out");
    let ledger = MemoryLedger::default();
    let budget = Arc::new(Pacer::new(vec![(1000, Duration::from_secs(1))]));
    let export = exporter(
        &out,
        &server,
        RunOptions::default(),
        "2024-01-01",
        "2024-01-03",
    );
    let first = export
        .export_window("2024-01-02", "2024-01-02", &ledger, budget.clone())
        .unwrap();
    assert_eq!(first.status, WindowStatus::Committed);
    assert!(first.events > 0);
    let folder = out.join("mp_master_event/2024/01/02");
    assert!(folder.join("_complete").is_file());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("_manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["events_kept"], first.events);
    assert_eq!(
        ledger.committed("2024-01-02").unwrap().events_kept,
        first.events
    );
    // Only that window: its neighbours were not exported, nor recorded in the file ledger.
    assert!(!out.join("mp_master_event/2024/01/01").exists());
    assert!(!out.join(".tidewater/export/2024-01-02.json").exists());
    let again = export
        .export_window("2024-01-02", "2024-01-02", &ledger, budget)
        .unwrap();
    assert_eq!(again.status, WindowStatus::Skipped);
    assert_eq!(again.events, first.events);
}

/// A cancelled export stops, commits nothing further (every committed window has its
/// ledger record, nothing is left staged) and a re-run finishes the rest.
#[test]
fn xc4_a_cancelled_export_commits_nothing_further_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 3000, 30);
    let server = mock(&data, |_| {});
    let out = dir.path().join("export");
    let options = RunOptions {
        schema: SchemaMode::Multischema,
        ..Default::default()
    };
    let slow = Tuning {
        concurrency: 1,
        pace: vec![(1, Duration::from_millis(100))],
        ..fast_tuning()
    };
    let export = exporter(&out, &server, options.clone(), "2024-01-01", "2024-01-30").tuning(slow);
    let (cancel, progress) = (export.cancel_token(), export.export_progress());
    let canceller = std::thread::spawn(move || {
        while progress
            .windows_done
            .load(std::sync::atomic::Ordering::Relaxed)
            < 3
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        cancel.cancel();
    });
    let err = export.run().unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, tidewater::Error::Cancelled), "{err}");
    let files = tree(&out);
    let committed_days: std::collections::BTreeSet<String> = files
        .keys()
        .filter(|k| k.ends_with("/_complete"))
        .map(|k| {
            let parts: Vec<&str> = k.split('/').collect();
            parts[parts.len() - 4..parts.len() - 1].join("-")
        })
        .collect();
    let recorded: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.strip_prefix(".tidewater/export/"))
        .map(|k| k.trim_end_matches(".json").to_string())
        .collect();
    assert!(
        committed_days.len() >= 3 && committed_days.len() < 30,
        "{committed_days:?}"
    );
    assert_eq!(
        committed_days, recorded,
        "every committed window is recorded, no other"
    );
    assert!(
        files.keys().all(|k| !k.starts_with(".tidewater-staging")),
        "nothing left staged"
    );

    let summary = exporter(&out, &server, options.clone(), "2024-01-01", "2024-01-30")
        .run()
        .unwrap();
    summary.check().unwrap();
    assert_eq!(summary.windows_skipped as usize, committed_days.len());
    let converted = dir.path().join("convert");
    convert(&data, &converted, options);
    assert_same_data(&out, &converted);
}

/// `export_command` for other days than its own.
pub(crate) fn export_days(out: &Path, url: &str, from: &str, to: &str, extra: &[&str]) -> Command {
    let base = export_command(out, url, extra);
    let mut args: Vec<String> = base
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for (flag, day) in [("--from", from), ("--to", to)] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = day.to_string();
    }
    let mut cmd = Command::new(base.get_program());
    cmd.args(args);
    same_environment(&mut cmd, &base);
    cmd
}

/// Gives `cmd` the environment changes of `base` (credentials set, others removed).
pub(crate) fn same_environment(cmd: &mut Command, base: &Command) {
    for (key, value) in base.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
}

/// A refused request still gets its summary printed with `--json`, and the cause once.
#[test]
fn x7_a_refused_export_prints_its_summary_and_the_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 300, 3);
    let server = mock(&data, |c| c.faults = vec![Fault::parse("403").unwrap()]);
    let output = export_days(
        &dir.path().join("out"),
        server.url(),
        "2024-01-01",
        "2024-01-01",
        &["--json"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["requests"], 1, "{summary}");
    let window = &summary["windows"][0];
    assert_eq!(window["status"], "failed", "{summary}");
    assert!(
        window["error"].as_str().unwrap().contains("403"),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("injected fault: 403").count(), 1, "{stderr}");
}

/// A window that fails for good: its reason is reported once, as it fails, and the
/// exit message names the window.
#[test]
fn xc3_a_window_that_fails_for_good_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 300, 3);
    let server = mock(&data, |c| {
        c.faults = vec![Fault::parse("500,count=2").unwrap()]
    });
    let output = export_days(
        &dir.path().join("out"),
        server.url(),
        "2024-01-02",
        "2024-01-02",
        &["--max-attempts", "2"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("gave up after 2 attempts").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("1 window not committed: 2024-01-02; run the same command again"),
        "{stderr}"
    );
}

/// Everything local is checked before the first request: options and dates before
/// credentials, then the output root's schema mode and its lock.
#[test]
fn local_checks_come_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 300, 3);
    let server = mock(&data, |_| {});
    let out = dir.path().join("out");

    let bad_day = export_days(&out, server.url(), "2024-01-03", "2024-01-02", &[])
        .env_remove("MIXPANEL_API_SECRET")
        .output()
        .unwrap();
    assert_eq!(bad_day.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_day.stderr).contains("--to"));

    convert(
        &data,
        &out,
        RunOptions {
            schema: SchemaMode::Multischema,
            ..RunOptions::default()
        },
    );
    let other_mode = export_command(&out, server.url(), &[]).output().unwrap();
    assert_eq!(other_mode.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other_mode.stderr).contains("multischema"));

    let held = tidewater::RootLock::acquire(&out).unwrap();
    let locked = export_command(&out, server.url(), &["--schema", "multischema"])
        .output()
        .unwrap();
    assert_eq!(locked.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&locked.stderr).contains("in use by another run"));
    drop(held);
    assert!(server.requests().is_empty(), "no request was spent");
}

/// The mock's clock and late data, for tests of sync: "today" moves and late events
/// join their day while the server runs, and a re-export serves them.
#[test]
fn mock_moves_today_and_serves_late_events_to_a_past_day() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 600, 3);
    let server = mock(&data, |c| c.today = Some(jiff::civil::date(2024, 1, 2)));
    let day3 = "/api/2.0/export?from_date=2024-01-03&to_date=2024-01-03";
    assert!(raw_get(server.url(), day3, false)
        .0
        .starts_with("http/1.1 400"));
    let (head, _, _) = raw_request(server.url(), "POST", "/_mock/today", false, b"2024-01-03");
    assert!(head.starts_with("http/1.1 204"), "{head}");
    assert!(raw_get(server.url(), day3, false)
        .0
        .starts_with("http/1.1 200"));
    let (head, _, _) = raw_request(server.url(), "POST", "/_mock/today", false, b"soon");
    assert!(head.starts_with("http/1.1 400"), "{head}");

    let out = dir.path().join("out");
    let export = |refetch: bool| {
        exporter(
            &out,
            &server,
            RunOptions::default(),
            "2024-01-01",
            "2024-01-03",
        )
        .refetch(refetch)
        .run()
        .unwrap()
    };
    export(false).check().unwrap();
    let manifest = |out: &Path| {
        let text = std::fs::read(out.join(".tidewater/export/2024-01-02.json")).unwrap();
        serde_json::from_slice::<serde_json::Value>(&text).unwrap()["sha256"].clone()
    };
    let before = manifest(&out);

    let late: Vec<String> = (0..3)
        .map(|i| {
            event(
                "Late Event",
                1_704_153_600 + 3600 * i,
                r#""distinct_id":"late""#,
            )
        })
        .collect();
    let late_text = late.join("\n") + "\nnot an event\n";
    let (head, _, body) = raw_request(
        server.url(),
        "POST",
        "/_mock/events",
        false,
        late_text.as_bytes(),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let added: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        added,
        serde_json::json!({"added": 3, "unusable": 1, "days": ["2024-01-02"]})
    );

    export(true).check().unwrap();
    assert_ne!(manifest(&out), before, "the day's body changed");
    let late_file = write(dir.path(), "late.jsonl", &late.join("\n"));
    let reference = dir.path().join("reference");
    Converter::new(&reference)
        .inputs([data.clone(), late_file])
        .run()
        .unwrap()
        .check()
        .unwrap();
    assert_same_data(&out, &reference);
}

/// A root an earlier version wrote, whose table windows have `complete` and
/// `manifest.json`: an export resumed there fetches none of its windows again, and the
/// next commit of a window (here `--refetch` of one day) moves it to the `_` names.
#[test]
fn xc4_windows_an_earlier_version_committed_are_not_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 900, 3);
    let server = mock(&data, |_| {});
    let out = dir.path().join("out");
    let run = |from: &str, to: &str, refetch: bool| {
        exporter(&out, &server, RunOptions::default(), from, to)
            .refetch(refetch)
            .run()
            .unwrap()
    };
    assert_eq!(
        run("2024-01-01", "2024-01-03", false).run.windows_committed,
        3
    );
    // The side files as the earlier version named them.
    let days: Vec<std::path::PathBuf> = (1..=3)
        .map(|d| out.join(format!("mp_master_event/2024/01/{d:02}")))
        .collect();
    for day in &days {
        std::fs::rename(day.join("_complete"), day.join("complete")).unwrap();
        std::fs::rename(day.join("_manifest.json"), day.join("manifest.json")).unwrap();
    }
    let again = run("2024-01-01", "2024-01-03", false);
    assert_eq!((again.windows_skipped, again.requests), (3, 0));
    assert!(
        days[0].join("complete").is_file(),
        "a skipped window is left as it is"
    );

    run("2024-01-02", "2024-01-02", true);
    let mut names: Vec<String> = std::fs::read_dir(&days[1])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["_complete", "_manifest.json", "part-00000.parquet"]);
}
