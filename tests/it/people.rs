//! People profiles (export-api §5): `tidewater export --data-source people` against the
//! mock server's Engage API on loopback, `convert --data-source people`, and the
//! `mp_people_data` snapshot that each run replaces whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;
use tidewater_mock::{Fault, MockAuth, MockConfig, MockServer};

const SECRET: &str = "s3cret-Tidewater-people-41d7";

pub(crate) fn profiles(dir: &Path, name: &str, n: u64, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let config = tidewater::synth::ProfileConfig { profiles: n, seed };
    tidewater::synth::generate_profiles_file(&config, &path).unwrap();
    path
}

pub(crate) fn engage_mock(profiles: &Path, faults: &[&str]) -> MockServer {
    MockServer::start(MockConfig {
        profiles: vec![profiles.to_path_buf()],
        auth: MockAuth::Secret(SECRET.into()),
        engage_limits: Vec::new(),
        faults: faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
        ..Default::default()
    })
    .unwrap()
}

/// `tidewater export --data-source people` into `out` (a folder or a URL) from the
/// mock at `url`, with short waits.
pub(crate) fn export_people(
    out: impl AsRef<std::ffi::OsStr>,
    url: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidewater"));
    cmd.args(["export", "--data-source", "people", "--out"])
        .arg(out)
        .args([
            "--base-url",
            url,
            "--pace",
            "1000/1s",
            "--backoff",
            "20ms",
            "--backoff-429",
            "50ms",
            "--stall-timeout",
            "500ms",
            "--timeout-first-byte",
            "2s",
        ])
        .args(extra)
        .env_remove("MIXPANEL_SERVICE_ACCOUNT_USERNAME")
        .env_remove("MIXPANEL_SERVICE_ACCOUNT_SECRET")
        .env("MIXPANEL_API_SECRET", SECRET);
    cmd
}

fn run_ok(mut cmd: Command) -> serde_json::Value {
    let output = cmd.arg("--json").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The snapshot and its mapping file (without the run's lock and rejects): each file's
/// size and a hash of its bytes.
fn snapshot(root: &Path) -> BTreeMap<String, (usize, u64)> {
    use std::hash::{Hash, Hasher};
    tree(root)
        .into_iter()
        .filter(|(k, _)| k.starts_with("mp_people_data/") || k.starts_with("schema/"))
        .map(|(k, bytes)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            (k, (bytes.len(), h.finish()))
        })
        .collect()
}

/// Converts `inputs` one after another into `out`, as the snapshots of successive
/// runs (the mapping file keeps its names across them, T6).
fn convert_people(inputs: &[&Path], out: &Path) -> BTreeMap<String, (usize, u64)> {
    let dir = out.parent().unwrap();
    for input in inputs {
        convert_quietly(dir, input, out, &["--data-source", "people"]);
    }
    snapshot(out)
}

#[test]
fn export_under_page_faults_equals_convert_of_the_profiles_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = profiles(dir.path(), "profiles.jsonl.gz", 5000, 5);
    let server = engage_mock(
        &data,
        &[
            "429,page=0",
            "500,page=1",
            "cut=10,page=2",
            "drop=3,page=3",
            "stall=2s@5,page=4",
            "status=503,count=2,page=9",
        ],
    );
    let out = dir.path().join("export");
    let summary = run_ok(export_people(&out, server.url(), &["--page-size", "500"]));
    assert_eq!(summary["events_kept"], 5000);
    assert_eq!(summary["retries"], 7, "{summary}");
    assert_eq!(summary["windows"][0]["status"], "committed");
    let reference = convert_people(&[&data], &dir.path().join("convert"));
    assert_eq!(snapshot(&out), reference, "nothing lost or doubled");
    assert_eq!(
        reference.keys().collect::<Vec<_>>(),
        [
            "mp_people_data/_complete",
            "mp_people_data/part-00000.parquet",
            "schema/people.json"
        ]
    );
    // Ten full pages and the empty eleventh that ends the paging, plus the retries.
    let pages: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.status == 200 && r.fault.is_none())
        .map(|r| r.request.clone())
        .collect();
    assert_eq!(pages.len(), 11, "{pages:?}");
    assert!(pages[10].contains("page=10&") && pages[10].contains("session_id="));
}

#[test]
fn a_failed_last_page_commits_nothing_and_the_previous_snapshot_stays() {
    let dir = tempfile::tempdir().unwrap();
    let first = profiles(dir.path(), "first.jsonl", 3000, 1);
    let out = dir.path().join("out");
    let server = engage_mock(&first, &[]);
    run_ok(export_people(&out, server.url(), &[]));
    let before = snapshot(&out);
    let reference = dir.path().join("reference");
    assert_eq!(before, convert_people(&[&first], &reference));

    // 3,000 profiles in pages of 1,000: the fourth page is the last (and empty).
    let second = profiles(dir.path(), "second.jsonl", 3000, 2);
    let failing = engage_mock(&second, &["500,count=1000,page=3"]);
    let output = export_people(&out, failing.url(), &["--max-attempts", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("people page 3") && stderr.contains("nothing was committed"),
        "{stderr}"
    );
    assert_eq!(snapshot(&out), before, "the previous snapshot is untouched");

    let working = engage_mock(&second, &[]);
    run_ok(export_people(&out, working.url(), &[]));
    assert_eq!(
        snapshot(&out),
        convert_people(&[&second], &reference),
        "replaced whole"
    );
}

#[test]
fn an_export_killed_while_paging_leaves_the_snapshot_then_completes() {
    let dir = tempfile::tempdir().unwrap();
    let first = profiles(dir.path(), "first.jsonl", 500, 3);
    let out = dir.path().join("out");
    let server = engage_mock(&first, &[]);
    run_ok(export_people(&out, server.url(), &[]));
    let before = snapshot(&out);

    // 40 pages of 100 at 10 a second: about four seconds; kill it part-way.
    let second = profiles(dir.path(), "second.jsonl", 4000, 4);
    let slow = engage_mock(&second, &[]);
    let mut child = export_people(&out, slow.url(), &["--page-size", "100"])
        .args(["--pace", "10/1s", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while slow.requests().len() < 8 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(slow.requests().len() < 40, "killed while paging");
    let files = std::fs::read_dir(out.join("mp_people_data"))
        .unwrap()
        .count();
    assert_eq!(files, 2, "the old snapshot's data and complete marker");
    let reference = dir.path().join("reference");
    convert_people(&[&first], &reference);
    let unchanged = |name: &str| {
        let path = |root: &Path| root.join("mp_people_data").join(name);
        std::fs::read(path(&out)).unwrap() == std::fs::read(path(&reference)).unwrap()
    };
    assert!(unchanged("part-00000.parquet") && unchanged("_complete"));

    run_ok(export_people(&out, slow.url(), &["--page-size", "100"]));
    // `snapshot` goes through `tree`, which also fails on a staging folder left behind.
    let after = snapshot(&out);
    assert_ne!(after, before);
    assert_eq!(after, convert_people(&[&second], &reference));
}

#[test]
fn n1_n5_t2_t5_profile_properties_follow_the_naming_and_type_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut wide = serde_json::Map::new();
    for i in 0..9_600 {
        wide.insert(format!("p{i:04}"), serde_json::json!(i));
    }
    let lines = [
        serde_json::json!({"$distinct_id": "a", "$properties": {
            "$email": "a@example.com", "age": 30, "Plan": "pro", "order": 1,
            "time": "t", "distinct_id": "inner", "tags": ["x", {"y": 1}]}}),
        serde_json::json!({"$distinct_id": 12345678901234567890u64, "$properties": {
            "age": "thirty", "plan": "free"}}),
        serde_json::json!({"$distinct_id": "wide", "$properties": wide}),
        serde_json::json!({"$properties": {"age": 1}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let input = write(dir.path(), "profiles.jsonl", &text);
    let out = dir.path().join("out");
    convert_exiting(
        dir.path(),
        &input,
        &out,
        &["--data-source", "people", "--format", "json"],
        0,
    );
    let mapping: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("schema/people.json")).unwrap()).unwrap();
    let columns = mapping["tables"]["mp_people_data"]["columns"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[..9],
        [
            "distinct_id",   // §4.3, from $distinct_id
            "mp_email",      // N1
            "age",           // T2: first type fixes the column
            "plan",          // N2
            "res_order",     // N4
            "time_1",        // reserved column names (§4.3) hold in the people table too
            "distinct_id_1", // a property called distinct_id is not the profile's id
            "tags",
            "age_string", // T2
        ]
    );
    assert_eq!(names[9], "plan_1", "N5: `plan` after `Plan`");
    assert_eq!(columns[0]["property"], "$distinct_id");
    // T5: 9,500 property columns, then mp_properties.
    assert_eq!(names.len(), 1 + 9_500 + 1);
    assert_eq!(names.last(), Some(&"mp_properties"));
    let rows = json_lines(&tree(&out)["mp_people_data/part-00000.json"]);
    assert_eq!(
        rows.len(),
        3,
        "the profile without $distinct_id is a reject"
    );
    assert_eq!(rows[0]["tags"], serde_json::json!(["x", {"y": 1}]));
    assert_eq!(rows[1]["distinct_id"], "12345678901234567890");
    assert_eq!(rows[1]["age_string"], "thirty");
    // JSON output keeps objects native (T3).
    let overflow = rows[2]["mp_properties"].as_object().unwrap();
    assert_eq!(overflow.len(), 9_600 - (9_500 - 9));
    assert_eq!(overflow["p9599"], 9599);
    let rejects = std::fs::read_to_string(out.join("_rejects/rejects-00000.jsonl")).unwrap();
    assert!(
        rejects.contains("profile without \\\"$distinct_id\\\""),
        "{rejects}"
    );
}

#[test]
fn where_and_output_properties_go_to_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = profiles(dir.path(), "profiles.jsonl", 2000, 9);
    let expected = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""plan":"free""#))
        .count();
    let server = engage_mock(&data, &[]);
    let out = dir.path().join("out");
    let summary = run_ok(export_people(
        &out,
        server.url(),
        &[
            "--where",
            r#"properties["plan"] == "free""#,
            "--output-property",
            "plan",
            "--output-property",
            "$email",
        ],
    ));
    assert_eq!(summary["events_kept"], expected as u64);
    let mapping = std::fs::read_to_string(out.join("schema/people.json")).unwrap();
    for column in ["\"distinct_id\"", "\"plan\"", "\"mp_email\""] {
        assert!(mapping.contains(column), "{mapping}");
    }
    assert!(!mapping.contains("mp_city"), "{mapping}");
    let request = &server.requests()[0].request;
    assert!(request.contains("where=") && request.contains("output_properties="));
}

#[test]
fn duckdb_and_pyarrow_read_the_people_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = profiles(dir.path(), "profiles.jsonl.gz", 3000, 6);
    let out = dir.path().join("out");
    convert_quietly(
        dir.path(),
        &data,
        &out,
        &["--data-source", "people", "--row-group-rows", "700"],
    );
    let script = r#"
import sys, duckdb, pyarrow.parquet as pq
folder = sys.argv[1] + "/mp_people_data"
n, ids = duckdb.connect().execute(
    f"select count(*), count(distinct distinct_id) from read_parquet('{folder}/*.parquet')"
).fetchone()
t = pq.read_table(folder + "/part-00000.parquet")
assert (n, ids, t.num_rows) == (3000, 3000, 3000), (n, ids, t.num_rows)
assert t.schema.field("mp_email").type == "string"
assert t.schema.field("lifetime_value").type == "double"
print("people ok")
"#;
    let output = Command::new("python3")
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .expect("python3 must be installed (see .ci/run)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("people ok"), "{text}");
}

#[test]
fn people_options_are_checked_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = profiles(dir.path(), "profiles.jsonl", 10, 1);
    let server = engage_mock(&data, &[]);
    let out = dir.path().join("out");
    for (extra, message) in [
        (&["--from", "2024-01-01"][..], "profiles have no days"),
        (&["--schema", "multischema"][..], "--data-source"),
        (&["--events", "Signup"][..], "filter them with `where`"),
        (&["--where", "properties[\"x\" =="][..], "--where"),
    ] {
        let output = export_people(&out, server.url(), extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
    }
    assert!(server.requests().is_empty());
}

#[test]
fn the_mock_engage_api_validates_pages_sessions_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let data = profiles(dir.path(), "profiles.jsonl", 30, 1);
    let server = MockServer::start(MockConfig {
        profiles: vec![data],
        engage_limits: vec![(4, Duration::from_secs(3600))],
        ..Default::default()
    })
    .unwrap();
    let get = |query: &str| {
        let path = format!("/api/2.0/engage?{query}");
        let (head, _, body) = crate::export::raw_get(server.url(), &path, false);
        let status = head["http/1.1 ".len()..][..3].parse::<u16>().unwrap();
        (status, String::from_utf8(body).unwrap())
    };
    let (status, body) = get("page_size=20");
    assert_eq!(status, 200, "{body}");
    let first: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            first["total"].as_u64(),
            first["results"].as_array().unwrap().len()
        ),
        (Some(30), 20)
    );
    let session = first["session_id"].as_str().unwrap();
    let (status, body) = get(&format!("page=1&page_size=20&session_id={session}"));
    let second: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, second["results"].as_array().unwrap().len()),
        (200, 10)
    );
    assert!(
        second.get("total").is_none(),
        "total is on the first page only"
    );
    for (query, why) in [
        ("page=1", "needs the 'session_id'"),
        ("page=1&session_id=nope", "unknown or expired"),
    ] {
        let (status, body) = get(query);
        assert_eq!(status, 400, "{query}");
        assert!(body.contains(why), "{body}");
    }
    // Four accepted requests an hour: the fifth is refused (the 400s did not count).
    let (status, _) = get("page_size=0");
    assert_eq!(status, 400);
    assert_eq!(get("").0, 200);
    assert_eq!(get("").0, 200);
    assert_eq!(get("").0, 429);
}
