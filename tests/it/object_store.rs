//! Object-storage outputs against real emulators started here on loopback: S3 on
//! `moto_server` (PyPI `moto[server]`) and Azure Blob on Azurite (npm `azurite`), both
//! installed by `.ci/run`. Each test starts its own emulator on a free port and stops
//! it by its PID.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::export::{export_days, generated, mock};
use crate::util::*;

const S3_KEY_ID: &str = "tidewater-test-key-id";
const S3_SECRET: &str = "S3-s3cret-never-printed-7f1d";
const AZURE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key.
const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An emulator process, stopped by its PID when dropped.
struct Emulator {
    /// `None` for an in-test stub.
    child: Option<Child>,
    port: u16,
    /// The environment a `tidewater` process needs to reach it.
    env: Vec<(&'static str, String)>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(child: &mut Child, port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited at start ({status})");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn moto() -> Emulator {
    let port = free_port();
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server must be installed: pip install 'moto[server]' (.ci/run does)");
    wait_listening(&mut child, port, "moto_server");
    Emulator {
        child: Some(child),
        port,
        env: s3_env(port),
    }
}

/// A running moto with an empty bucket, and a client of the bucket.
fn moto_with_bucket(bucket: &str) -> (Emulator, Arc<dyn ObjectStore>) {
    let s3 = moto();
    make_bucket(&s3, bucket);
    let store = s3_store(&s3, bucket);
    (s3, store)
}

fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", S3_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

fn azurite() -> Emulator {
    let port = free_port();
    let bin = std::env::var("AZURITE_BLOB").unwrap_or_else(|_| "azurite-blob".into());
    let mut child = Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin} must be installed: npm install -g azurite (.ci/run does): {e}")
        });
    wait_listening(&mut child, port, "azurite-blob");
    Emulator {
        child: Some(child),
        port,
        env: vec![
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURE_ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURE_KEY.into()),
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{port}"),
            ),
        ],
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and body.
fn http(port: u16, method: &str, target: &str, headers: &[(String, String)]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn make_bucket(s3: &Emulator, bucket: &str) {
    let (status, body) = http(s3.port, "PUT", &format!("/{bucket}"), &[]);
    assert_eq!(status, 200, "{body}");
}

/// Creates a container through Azurite's REST API, signed with the account key
/// (SharedKey).
fn make_container(az: &Emulator, container: &str) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = httpdate_now();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}/{container}\nrestype:container"
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &b64.decode(AZURE_KEY).unwrap());
    let signature = b64.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
    let headers = [
        ("x-ms-date".to_string(), date),
        ("x-ms-version".to_string(), version.to_string()),
        (
            "Authorization".to_string(),
            format!("SharedKey {AZURE_ACCOUNT}:{signature}"),
        ),
    ];
    let target = format!("/{AZURE_ACCOUNT}/{container}?restype=container");
    let (status, body) = http(az.port, "PUT", &target, &headers);
    assert_eq!(status, 201, "{body}");
}

fn httpdate_now() -> String {
    jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A client of the emulator's store for reading what a run wrote.
fn s3_store(s3: &Emulator, bucket: &str) -> Arc<dyn ObjectStore> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(format!("http://127.0.0.1:{}", s3.port))
            .with_allow_http(true)
            .with_access_key_id(S3_KEY_ID)
            .with_secret_access_key(S3_SECRET)
            .build()
            .unwrap(),
    )
}

fn azure_store(az: &Emulator, container: &str) -> Arc<dyn ObjectStore> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(AZURE_ACCOUNT)
            .with_access_key(AZURE_KEY)
            .with_container_name(container)
            .with_endpoint(format!("http://127.0.0.1:{}/{AZURE_ACCOUNT}", az.port))
            .with_allow_http(true)
            .build()
            .unwrap(),
    )
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every object below `prefix`, copied into `dir` (then read as [`tree`] does, without
/// `.tidewater/`, which holds only the released lock and the export ledger).
fn download(store: &Arc<dyn ObjectStore>, prefix: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(dir).unwrap();
    block_on(async {
        let prefix = Key::from(prefix);
        let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        for meta in objects {
            let rel: Vec<String> = meta
                .location
                .prefix_match(&prefix)
                .unwrap()
                .map(|p| p.as_ref().to_string())
                .collect();
            let path = dir.join(rel.join("/"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let bytes = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    });
    without_state(tree(dir))
}

/// What a reader that follows each folder's manifest sees: the files it lists, in
/// order, under the names a fresh commit gives them, and no convert manifest.
fn reader_view(t: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let listed: BTreeMap<String, Vec<String>> = t
        .iter()
        .filter_map(|(k, v)| {
            let folder = k
                .strip_suffix("/_manifest.json")
                .or_else(|| k.strip_suffix("/manifest.json"))?;
            let m: serde_json::Value = serde_json::from_slice(v).ok()?;
            let files = m["files"].as_array()?;
            Some((
                folder.to_string(),
                files
                    .iter()
                    .map(|f| f.as_str().unwrap().to_string())
                    .collect(),
            ))
        })
        .collect();
    for (k, v) in &t {
        let (folder, name) = k.rsplit_once('/').unwrap_or(("", k));
        match listed.get(folder) {
            None => {
                out.insert(k.clone(), v.clone());
            }
            Some(files) => {
                if let Some(i) = files
                    .iter()
                    .position(|f| f.strip_suffix(".gz").unwrap_or(f) == name)
                {
                    let ext = name.split_once('.').map_or("", |(_, e)| e);
                    out.insert(format!("{folder}/part-{i:05}.{ext}"), v.clone());
                } else if name == "_complete" || name == "complete" {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

fn without_state(t: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    t.into_iter()
        .filter(|(k, _)| !k.starts_with(".tidewater/"))
        .collect()
}

/// Multipart uploads still open in a bucket (moto answers unsigned requests).
fn open_uploads(s3: &Emulator, bucket: &str) -> usize {
    let (status, body) = http(s3.port, "GET", &format!("/{bucket}?uploads"), &[]);
    assert_eq!(status, 200, "{body}");
    body.matches("<Upload>").count()
}

/// Runs `tidewater ARGS` with the emulator's environment; requires exit `code`.
fn run_with(em: &Emulator, cwd: &Path, args: &[&str], code: i32) -> (String, String) {
    let (stdout, stderr) = tidewater_env_ok(cwd, args, &em.env, code);
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(S3_SECRET) && !text.contains(AZURE_KEY),
            "{text}"
        );
    }
    (stdout, stderr)
}

/// Inputs with rejects, type conflicts and many tables, and a generated file whose
/// days hold several row groups (so that final files are assembled from spills).
fn inputs(dir: &Path) -> Vec<String> {
    let bad = write(
        dir,
        "bad.jsonl",
        "{\"event\": \"a\", \"properties\": {\"time\": 1704067200}}\nnot json\n",
    );
    let data = generated(dir, 6000, 3);
    vec![
        fixtures()
            .join("events-sample.jsonl.gz")
            .display()
            .to_string(),
        fixtures()
            .join("nasty/collisions.jsonl")
            .display()
            .to_string(),
        bad.display().to_string(),
        data.display().to_string(),
    ]
}

/// `convert` to the store gives exactly the objects (keys and bytes) of the same
/// convert into a local folder, in both schema modes and both formats.
fn convert_matches_local(em: &Emulator, store: &Arc<dyn ObjectStore>, scheme_root: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = inputs(dir.path());
    let cases: [&[&str]; 3] = [
        &["--schema", "multischema", "--row-group-rows", "700"],
        &[
            "--schema",
            "monoschema",
            "--format",
            "json",
            "--row-group-rows",
            "700",
        ],
        &["--schema", "raw", "--partition", "hourly"],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let local = dir.path().join(format!("local-{i}"));
        let url = format!("{scheme_root}/convert-{i}");
        for out in [local.to_str().unwrap(), url.as_str()] {
            let mut args = vec!["convert"];
            args.extend(inputs.iter().map(String::as_str));
            args.extend(["--out", out, "--quiet"]);
            args.extend_from_slice(extra);
            run_with(em, dir.path(), &args, 0);
        }
        let remote = download(
            store,
            &format!("convert-{i}"),
            &dir.path().join(format!("got-{i}")),
        );
        assert!(
            remote.keys().any(|k| k.starts_with("_rejects/")),
            "{extra:?}"
        );
        assert_eq!(
            remote.keys().collect::<Vec<_>>(),
            without_state(tree(&local)).keys().collect::<Vec<_>>(),
            "{extra:?}"
        );
        assert!(
            remote == without_state(tree(&local)),
            "{extra:?}: bytes differ"
        );
    }
}

#[test]
fn s3_convert_and_export_write_the_objects_of_a_local_run() {
    let (s3, store) = moto_with_bucket("out");
    convert_matches_local(&s3, &store, "s3://out");

    // Export: the data of every window as a local export has it; each window's
    // manifest lists its files.
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 4000, 4);
    let server = mock(&data, |_| {});
    let local = dir.path().join("local");
    let extra = ["--schema", "multischema", "--quiet"];
    let export = |out: &Path| export_days(out, server.url(), "2024-01-01", "2024-01-04", &extra);
    assert!(export(&local).status().unwrap().success());
    let mut remote_export = export(Path::new("s3://out/export"));
    remote_export.envs(s3.env.iter().map(|(k, v)| (*k, v.as_str())));
    assert!(remote_export.status().unwrap().success());
    let remote = download(&store, "export", &dir.path().join("got"));
    let data_only = |t: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        t.into_iter()
            .filter(|(k, _)| !k.ends_with("manifest.json"))
            .collect()
    };
    assert!(data_only(remote.clone()) == data_only(without_state(tree(&local))));
    let manifests: Vec<_> = remote
        .iter()
        .filter(|(k, _)| k.ends_with("manifest.json"))
        .collect();
    assert!(!manifests.is_empty());
    for (key, bytes) in manifests {
        let m: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(
            m["files"],
            serde_json::json!(["part-00000.parquet"]),
            "{key}"
        );
        assert_eq!(m["version"], 2, "{key}");
    }
    // A second export skips every window: the ledger lives in the store (XC4).
    let mut again = export(Path::new("s3://out/export"));
    again
        .envs(s3.env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("--json");
    let summary: serde_json::Value =
        serde_json::from_slice(&again.output().unwrap().stdout).unwrap();
    assert_eq!(summary["windows_skipped"], 4, "{summary}");
    assert_eq!(open_uploads(&s3, "out"), 0);
}

/// A replacement uploads new files under new names, commits them through the manifest
/// and only then deletes the old ones; a reader following the manifest reads exactly
/// the new window. pyarrow, Polars and DuckDB read the table in place from the store.
#[test]
fn s3_replace_commits_new_files_before_deleting_old_ones_and_readers_read_in_place() {
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let first = generated(dir.path(), 3000, 2);
    let second_dir = dir.path().join("second");
    std::fs::create_dir(&second_dir).unwrap();
    let second = generated(&second_dir, 5000, 2);
    let url = "s3://out/table";
    for input in [&first, &second] {
        let args = ["convert", input.to_str().unwrap(), "--out", url, "--quiet"];
        run_with(&s3, dir.path(), &args, 0);
    }
    let local = dir.path().join("local");
    convert_quietly(dir.path(), &second, &local, &[]);
    let remote = download(&store, "table", &dir.path().join("got"));
    for day in ["01", "02"] {
        let folder = format!("mp_master_event/2024/01/{day}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&remote[&format!("{folder}/_manifest.json")]).unwrap();
        assert_eq!(manifest["files"], serde_json::json!(["part-00001.parquet"]));
        // The old file is gone, and the new one is the local run's file.
        assert!(!remote.contains_key(&format!("{folder}/part-00000.parquet")));
        assert!(
            remote[&format!("{folder}/part-00001.parquet")]
                == tree(&local)[&format!("{folder}/part-00000.parquet")]
        );
        assert!(remote.contains_key(&format!("{folder}/_complete")));
    }
    let script = format!(
        r#"
import pyarrow.dataset as ds, pyarrow.fs as fs
s3 = fs.S3FileSystem(access_key="{S3_KEY_ID}", secret_key="{S3_SECRET}", endpoint_override="127.0.0.1:{port}", scheme="http", region="us-east-1")
t = ds.dataset("out/table/mp_master_event", filesystem=s3, format="parquet").to_table()
print("rows", t.num_rows)
import polars as pl
opts = {{"aws_access_key_id": "{S3_KEY_ID}", "aws_secret_access_key": "{S3_SECRET}", "aws_endpoint_url": "http://127.0.0.1:{port}", "aws_region": "us-east-1", "aws_allow_http": "true"}}
n = pl.scan_parquet("s3://out/table/mp_master_event/**/*.parquet", storage_options=opts, missing_columns="insert", extra_columns="ignore").select(pl.len()).collect().item()
print("polars rows", n)
"#,
        port = s3.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\nrows 5000") || text.starts_with("rows 5000"),
        "{text}"
    );
    assert!(text.contains("polars rows 5000"), "{text}");

    // DuckDB in place through its httpfs extension, which its own download server
    // would serve; PyPI has it for DuckDB 1.5, which `.ci/run` installs beside the
    // newer DuckDB into target/duckdb-httpfs.
    let packages = std::env::var_os("TIDEWATER_DUCKDB_HTTPFS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fixtures().join("../target/duckdb-httpfs"));
    assert!(
        packages.join("duckdb_extension_httpfs").is_dir(),
        "{} lacks DuckDB 1.5 with httpfs: python3 -m pip install --target {0} \
         duckdb==1.5.5 duckdb-extension-httpfs==1.5.5 (as .ci/run does)",
        packages.display()
    );
    let script = format!(
        r#"
import os, duckdb, duckdb_extension_httpfs as h
duckdb.sql("INSTALL '" + os.path.join(os.path.dirname(h.__file__), "extensions", "v" + duckdb.__version__, "httpfs.duckdb_extension") + "'")
duckdb.sql("LOAD httpfs")
duckdb.sql("CREATE SECRET (TYPE s3, KEY_ID '{S3_KEY_ID}', SECRET '{S3_SECRET}', ENDPOINT '127.0.0.1:{port}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")
n = duckdb.sql("SELECT count(*) FROM read_parquet('s3://out/table/mp_master_event/**/*.parquet', union_by_name = true)").fetchall()[0][0]
print("duckdb rows", n)
"#,
        port = s3.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .env("PYTHONPATH", &packages)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("duckdb rows 5000"), "{text}");
}

#[test]
fn s3_people_snapshots_replace_each_other_in_place() {
    use crate::people::{engage_mock, export_people, profiles};
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let first = profiles(dir.path(), "first.jsonl", 1500, 1);
    let second = profiles(dir.path(), "second.jsonl", 2500, 2);
    for data in [&first, &second] {
        let server = engage_mock(data, &[]);
        let output = export_people("s3://out/crm", server.url(), &["--quiet"])
            .envs(s3.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains(S3_SECRET), "{stderr}");
    }
    let local = dir.path().join("local");
    for data in [&first, &second] {
        convert_quietly(dir.path(), data, &local, &["--data-source", "people"]);
    }
    let remote = download(&store, "crm", &dir.path().join("got"));
    // The second snapshot went up under a new name and the first one is gone.
    let manifest: serde_json::Value =
        serde_json::from_slice(&remote["mp_people_data/_manifest.json"]).unwrap();
    assert_eq!(manifest["files"], serde_json::json!(["part-00001.parquet"]));
    assert!(!remote.contains_key("mp_people_data/part-00000.parquet"));
    let ours = reader_view(remote);
    let theirs = without_state(tree(&local));
    for rel in [
        "mp_people_data/part-00000.parquet",
        "mp_people_data/_complete",
        "schema/people.json",
    ] {
        assert!(ours[rel] == theirs[rel], "{rel} differs from a local run");
    }
    assert_eq!(open_uploads(&s3, "out"), 0);
}

/// Google Cloud Storage: no local emulator takes `object_store`'s uploads (it speaks
/// the XML API for every call, which fake-gcs-server lacks), so this stub serves the
/// calls it makes on `gcs_base_url`: puts with generation preconditions, gets, heads,
/// deletes, `list-type=2` listings and XML multipart uploads.
#[test]
fn gcs_convert_writes_the_objects_of_a_local_run_through_the_xml_api() {
    let (gcs, stub) = gcs_stub("out");
    let store = gcs_store(&gcs, "out");
    convert_matches_local(&gcs, &store, "gs://out");
    // A file of several parts goes up as an XML multipart upload.
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 60_000, 1);
    let args = [
        "convert",
        data.to_str().unwrap(),
        "--out",
        "gs://out/big",
        "--compression",
        "none",
        "--quiet",
    ];
    run_with(&gcs, dir.path(), &args, 0);
    let got = download(&store, "big", &dir.path().join("got"));
    assert!(got == local_objects(dir.path(), &data, &["--compression", "none"]));
    let state = stub.lock().unwrap();
    assert!(
        state.completed_multipart > 0,
        "no multipart upload was made"
    );
    assert!(state.uploads.is_empty(), "a multipart upload was left open");
}

#[test]
fn azure_convert_writes_the_objects_of_a_local_run() {
    let az = azurite();
    make_container(&az, "out");
    let store = azure_store(&az, "out");
    convert_matches_local(&az, &store, "az://out");
}

/// A proxy in front of the emulator that fails every part upload after the first (a
/// store failing mid-window); one request per connection.
fn failing_proxy(upstream: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || proxy_one(client, upstream));
        }
    });
    port
}

fn proxy_one(mut client: TcpStream, upstream: u16) {
    let Some((method, target, headers, body)) = read_request(&mut client) else {
        return;
    };
    let part = target
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("partNumber="));
    if method == "PUT" && part.is_some_and(|n| n != "1") {
        let _ = client
            .write_all(b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        if !["connection", "content-length", "transfer-encoding"].contains(&k.as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let _ = up.write_all(head.as_bytes());
    let _ = up.write_all(&body);
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let _ = client.write_all(&answer);
}

/// The store failing in the middle of a window's upload: the run fails naming the
/// object, the window is not committed, no multipart upload is left open, and a re-run
/// completes it with the objects of a local run.
#[test]
fn s3_a_store_failing_mid_upload_commits_nothing_and_a_rerun_completes() {
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    // One day whose uncompressed Parquet file takes several 8 MiB parts.
    let data = generated(dir.path(), 60_000, 1);
    let proxy = failing_proxy(s3.port);
    let through_proxy = Emulator {
        child: None,
        port: proxy,
        env: s3_env(proxy),
    };
    // Row groups of 10,000 rows: the file's first parts go up while the rest of the
    // day is encoded, and the failure comes then, not at the commit.
    let args = [
        "convert",
        data.to_str().unwrap(),
        "--out",
        "s3://out/faulty",
        "--compression",
        "none",
        "--row-group-rows",
        "10000",
        "--store-retries",
        "1",
        "--quiet",
    ];
    let (_, stderr) = run_with(&through_proxy, dir.path(), &args, 1);
    assert!(
        stderr.contains("s3://out/faulty/mp_master_event/2024/01/01/part-00000.parquet"),
        "{stderr}"
    );
    let left = download(&store, "faulty", &dir.path().join("left"));
    assert!(
        !left.keys().any(|k| k.ends_with("complete")),
        "{:?}",
        left.keys()
    );
    assert_eq!(
        open_uploads(&s3, "out"),
        0,
        "a multipart upload was left open"
    );
    run_with(&s3, dir.path(), &args, 0);
    let options = ["--compression", "none", "--row-group-rows", "10000"];
    let got = download(&store, "faulty", &dir.path().join("got"));
    assert!(got == local_objects(dir.path(), &data, &options));
    assert_eq!(open_uploads(&s3, "out"), 0);
}

/// The lines of a gzip file.
fn gunzip(path: &Path) -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

/// Where four fifths of `text` end, at the end of a line.
fn four_fifths(text: &[u8]) -> usize {
    text[..text.len() * 4 / 5]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1
}

/// The objects a local convert of `data` with `options` writes (its state folder left
/// out), by path.
fn local_objects(dir: &Path, data: &Path, options: &[&str]) -> BTreeMap<String, Vec<u8>> {
    let local = dir.join("local");
    convert_quietly(dir, data, &local, options);
    without_state(tree(&local))
}

/// `tidewater convert - --out URL OPTIONS` against the emulator, reading its input
/// from the pipe returned.
fn convert_from_stdin(em: &Emulator, url: &str, options: &[&str]) -> (Child, ChildStdin) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["convert", "-", "--out", url, "--quiet"])
        .args(options)
        .envs(em.env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Waits (up to two minutes) until the object `key` of `bucket` has a multipart upload
/// with a part; whether it came.
fn wait_for_a_part(s3: &Emulator, bucket: &str, key: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let (status, body) = http(s3.port, "GET", &format!("/{bucket}?uploads"), &[]);
        assert_eq!(status, 200, "{body}");
        let upload_id = body
            .split("<UploadId>")
            .nth(1)
            .and_then(|rest| rest.split("</UploadId>").next());
        if let Some(id) = upload_id {
            let target = format!("/{bucket}/{key}?uploadId={id}");
            if http(s3.port, "GET", &target, &[]).1.contains("<Part>") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A window's data file goes up in parts while the run is still reading its input, not
/// all at its commit: with the input held back before its end, the window's multipart
/// upload is already open and has parts. The finished run writes the objects of a local
/// run, and leaves no upload open.
#[test]
fn s3_a_windows_parts_are_uploaded_while_its_input_is_still_read() {
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 60_000, 1);
    let text = gunzip(&data);
    let options = ["--compression", "none", "--row-group-rows", "5000"];
    let (child, mut stdin) = convert_from_stdin(&s3, "s3://out/early", &options);
    let cut = four_fifths(&text);
    stdin.write_all(&text[..cut]).unwrap();
    let key = "early/mp_master_event/2024/01/01/part-00000.parquet";
    let parts_sent = wait_for_a_part(&s3, "out", key);
    stdin.write_all(&text[cut..]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(parts_sent, "no part was uploaded before the input ended");
    let got = download(&store, "early", &dir.path().join("got"));
    assert!(got == local_objects(dir.path(), &data, &options));
    assert_eq!(open_uploads(&s3, "out"), 0);
}

/// A run killed while a window's parts go up leaves its multipart upload open (nothing
/// can abort it then); the next run into the root aborts it as it takes the lock, from
/// the upload's id written down under `.tidewater/uploads/`, and writes the objects of
/// a local run.
#[test]
fn s3_the_upload_a_killed_run_left_open_is_aborted_by_the_next_run() {
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 60_000, 1);
    let text = gunzip(&data);
    let options = ["--compression", "none", "--row-group-rows", "5000"];
    let lease = ["--lock-lease", "3"];
    let (mut child, mut stdin) =
        convert_from_stdin(&s3, "s3://out/killed", &[&options[..], &lease].concat());
    stdin.write_all(&text[..four_fifths(&text)]).unwrap();
    let key = "killed/mp_master_event/2024/01/01/part-00000.parquet";
    assert!(wait_for_a_part(&s3, "out", key), "no part was uploaded");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(open_uploads(&s3, "out"), 1, "the killed run's upload");
    // Its lease expires.
    std::thread::sleep(Duration::from_secs(4));
    let input = data.display().to_string();
    let mut args = vec!["convert", &input, "--out", "s3://out/killed", "--quiet"];
    args.extend(options);
    run_with(&s3, dir.path(), &args, 0);
    assert_eq!(open_uploads(&s3, "out"), 0, "an upload was left open");
    let got = download(&store, "killed", &dir.path().join("got"));
    assert!(
        !got.keys().any(|k| k.contains("uploads")),
        "{:?}",
        got.keys()
    );
    assert!(got == local_objects(dir.path(), &data, &options));
}

/// Two runs into one prefix: the second is refused while the first holds the lease;
/// after a run is killed, its lease is taken over once it expires.
#[test]
fn s3_one_run_per_prefix_and_a_crashed_runs_lease_is_taken_over() {
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 60_000, 3);
    let url = "s3://out/locked";
    let args = |lease: &'static str| {
        vec![
            "convert".to_string(),
            data.display().to_string(),
            "--out".into(),
            url.into(),
            "--lock-lease".into(),
            lease.into(),
            "--threads".into(),
            "1".into(),
            "--quiet".into(),
        ]
    };
    let lock = Key::from("locked/.tidewater/lock");
    let wait_for_lock = || {
        let start = Instant::now();
        while block_on(store.head(&lock)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no lock appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let spawn = |lease| {
        Command::new(env!("CARGO_BIN_EXE_tidewater"))
            .args(args(lease))
            .envs(s3.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // A second run while the first holds the prefix is refused at once.
    let mut first = spawn("3");
    wait_for_lock();
    let a: Vec<String> = args("3");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (_, stderr) = run_with(&s3, dir.path(), &a, 1);
    assert!(stderr.contains("in use by another run"), "{stderr}");
    assert!(stderr.contains("s3://out/locked"), "{stderr}");
    // The first run renews its 3 s lease for as long as it runs.
    assert!(first.wait().unwrap().success());
    assert!(
        block_on(store.head(&lock)).is_err(),
        "the lock was not released"
    );

    // A run killed with its lease held: refused until the lease expires, then taken
    // over; the output is that of a clean run.
    let mut crashed = spawn("3");
    wait_for_lock();
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    let (_, stderr) = run_with(&s3, dir.path(), &a, 1);
    assert!(stderr.contains("lease expires in"), "{stderr}");
    std::thread::sleep(Duration::from_secs(4));
    run_with(&s3, dir.path(), &a, 0);
    let want = local_objects(dir.path(), &data, &[]);
    // Windows the killed run committed were replaced (new names, listed by the
    // manifest); a reader following the manifests sees the clean run's files.
    let got = reader_view(download(&store, "locked", &dir.path().join("got")));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert!(got == want);
}

/// `bench --out` takes a store's URL like `convert`: the generated days are committed
/// there, and nothing is left open.
#[test]
fn s3_bench_writes_to_the_store() {
    let (s3, store) = moto_with_bucket("out");
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--gen-events",
        "5000",
        "--days",
        "2",
        "--out",
        "s3://out/bench",
    ];
    let (_, report) = run_with(&s3, dir.path(), &args, 0);
    assert!(report.contains("throughput"), "{report}");
    let got = download(&store, "bench", &dir.path().join("got"));
    for day in ["01", "02"] {
        let folder = format!("mp_master_event/2024/01/{day}");
        assert!(
            got.contains_key(&format!("{folder}/_complete")),
            "{:?}",
            got.keys()
        );
        assert!(got.contains_key(&format!("{folder}/part-00000.parquet")));
    }
    assert_eq!(open_uploads(&s3, "out"), 0);
}

/// A bucket that does not exist: exit 2 or 1 with a message naming the bucket and
/// what to check, and no credential in it.
#[test]
fn s3_a_missing_bucket_is_named() {
    let s3 = moto();
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("events-sample.jsonl.gz");
    let a = [
        "convert",
        input.to_str().unwrap(),
        "--out",
        "s3://no-such-bucket/p",
        "--quiet",
        "--store-retries",
        "0",
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .current_dir(dir.path())
        .args(a)
        .envs(s3.env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("s3://no-such-bucket/p"), "{stderr}");
    assert!(stderr.contains("bucket"), "{stderr}");
    assert!(!stderr.contains(S3_SECRET), "{stderr}");
}

/// Pipelines with object-storage types (P32) on `tidewater serve`: a wrong bucket and
/// an unsupported `s3_role` are 400s at create; an `aws` pipeline writes its days under
/// `<s3_prefix>/<project_id>/`, each the data of a local export of that day.
#[test]
fn p32_an_aws_pipeline_writes_its_days_to_s3_and_a_wrong_bucket_is_refused_at_create() {
    use crate::serve::{make_key, rest, runs, serve_with_env, wait_until};
    use tidewater_mock::{MockAuth, MockConfig, MockServer};
    let (s3, store) = moto_with_bucket("pipes");
    let dir = tempfile::tempdir().unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let first = today.checked_sub(jiff::Span::new().days(3)).unwrap();
    let last = today.yesterday().unwrap();
    let data = dir.path().join("data.jsonl.gz");
    let gen = tidewater::synth::GenConfig {
        events: 3000,
        days: 5,
        seed: 5,
        start: today.checked_sub(jiff::Span::new().days(4)).unwrap(),
    };
    tidewater::synth::generate_file(&gen, &data).unwrap();
    let mock = MockServer::start(MockConfig {
        data: vec![data.clone()],
        auth: MockAuth::Secret(crate::service::SECRET.into()),
        limits: Vec::new(),
        ..Default::default()
    })
    .unwrap();
    let state = dir.path().join("state.db");
    let key = make_key(&state);
    // No delay after a day closes: yesterday is due at once, also in the first half
    // hour after midnight (UTC), when it would not be yet.
    let (mut server, url, log) = serve_with_env(&state, mock.url(), &["--delay", "0s"], &s3.env);
    let create = |destination: serde_json::Value| {
        rest(
            &url,
            &key,
            "POST",
            "/v1/pipelines",
            Some(serde_json::json!({
                "project_id": 77, "type": "aws", "from_date": first.to_string(),
                "schema_type": "monoschema", "data_format": "parquet",
                "destination": destination,
                "credentials": {"api_secret": crate::service::SECRET},
            })),
        )
    };
    let (status, body) =
        create(serde_json::json!({"s3_bucket": "no-such-bucket", "s3_region": "us-east-1"}));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("s3://no-such-bucket"), "{body}");
    let (status, body) = create(serde_json::json!({
        "s3_bucket": "pipes", "s3_region": "us-east-1", "s3_role": "arn:aws:iam::1:role/r"
    }));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("s3_role"), "{body}");
    let (status, body) = create(serde_json::json!({
        "s3_bucket": "pipes", "s3_region": "us-east-1", "s3_prefix": "mixpanel", "s3_encryption": "aes"
    }));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["destination"]["url"], "s3://pipes/mixpanel", "{body}");
    let days = (last - first).get_days() as usize + 1;
    wait_until("every day committed", Duration::from_secs(60), || {
        let runs = runs(&url, &key);
        runs.iter().filter(|r| r["state"] == "succeeded").count() >= days
    });
    let got = download(&store, "mixpanel/77", &dir.path().join("got"));
    let local = dir.path().join("local");
    let status = export_days(
        &local,
        mock.url(),
        &first.to_string(),
        &last.to_string(),
        &["--quiet"],
    )
    .status()
    .unwrap();
    assert!(status.success());
    let data_only = |t: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        t.into_iter()
            .filter(|(k, _)| !k.ends_with("manifest.json"))
            .collect()
    };
    assert_eq!(
        data_only(got.clone()).keys().collect::<Vec<_>>(),
        data_only(without_state(tree(&local)))
            .keys()
            .collect::<Vec<_>>()
    );
    assert!(data_only(got) == data_only(without_state(tree(&local))));
    server.kill().unwrap();
    server.wait().unwrap();
    let log = log.lock().unwrap().join("\n");
    assert!(!log.contains(S3_SECRET), "{log}");
}

/// What the GCS stub holds.
#[derive(Default)]
struct GcsState {
    /// Key → (bytes, generation).
    objects: BTreeMap<String, (Vec<u8>, u64)>,
    /// Open multipart uploads: id → (key, parts by number).
    uploads: BTreeMap<String, (String, BTreeMap<u32, Vec<u8>>)>,
    next: u64,
    completed_multipart: u64,
}

type Gcs = Arc<std::sync::Mutex<GcsState>>;

fn gcs_stub(bucket: &'static str) -> (Emulator, Gcs) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Gcs::default();
    let shared = state.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let state = shared.clone();
            std::thread::spawn(move || gcs_serve(conn, bucket, &state));
        }
    });
    let key = serde_json::json!({
        "private_key": "unused", "private_key_id": "unused", "client_email": "stub@example.com",
        "disable_oauth": true, "gcs_base_url": format!("http://127.0.0.1:{port}"),
    });
    let env = vec![("GOOGLE_SERVICE_ACCOUNT_KEY", key.to_string())];
    (
        Emulator {
            child: None,
            port,
            env,
        },
        state,
    )
}

fn gcs_store(gcs: &Emulator, bucket: &str) -> Arc<dyn ObjectStore> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Arc::new(
        object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(bucket)
            .with_service_account_key(&gcs.env[0].1)
            .build()
            .unwrap(),
    )
}

/// An HTTP request: method, target, headers (lowercase names), body.
type Request = (String, String, BTreeMap<String, String>, Vec<u8>);

/// Reads one HTTP request (head, then a body by length or in chunks).
fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut reader = std::io::BufReader::new(conn);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        std::io::BufRead::read_line(&mut reader, &mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            std::io::BufRead::read_line(&mut reader, &mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers.get("content-length").and_then(|v| v.parse().ok()) {
        body = vec![0; n];
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, target, headers, body))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn gcs_serve(mut conn: TcpStream, bucket: &str, state: &Gcs) {
    let Some((method, target, headers, body)) = read_request(&mut conn) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: BTreeMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), percent_decode(v))
        })
        .collect();
    let rest = path.strip_prefix(&format!("/{bucket}")).unwrap_or("");
    let key = percent_decode(rest.trim_start_matches('/'));
    let precondition = headers
        .get("x-goog-if-generation-match")
        .and_then(|v| v.parse::<u64>().ok());
    let mut s = state.lock().unwrap();
    let mut extra: Vec<(String, String)> = Vec::new();
    let (status, reply): (u16, Vec<u8>) = match (method.as_str(), key.is_empty()) {
        ("GET", true) => {
            let prefix = query.get("prefix").cloned().unwrap_or_default();
            let mut xml = String::from("<ListBucketResult><IsTruncated>false</IsTruncated>");
            for (k, (bytes, generation)) in s.objects.range(prefix.clone()..) {
                if !k.starts_with(&prefix) {
                    break;
                }
                xml.push_str(&format!(
                    "<Contents><Key>{}</Key><Size>{}</Size><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>\"{generation}\"</ETag></Contents>",
                    xml_escape(k),
                    bytes.len()
                ));
            }
            xml.push_str("</ListBucketResult>");
            (200, xml.into_bytes())
        }
        ("PUT", false) if query.contains_key("uploadId") => {
            let upload = query["uploadId"].clone();
            let n: u32 = query["partNumber"].parse().unwrap();
            match s.uploads.get_mut(&upload) {
                Some((_, parts)) => {
                    parts.insert(n, body);
                    extra.push(("ETag".into(), format!("\"p{n}\"")));
                    (200, Vec::new())
                }
                None => (404, b"<Error><Code>NoSuchUpload</Code></Error>".to_vec()),
            }
        }
        ("POST", false) if query.contains_key("uploads") => {
            s.next += 1;
            let id = format!("u{}", s.next);
            s.uploads.insert(id.clone(), (key.clone(), BTreeMap::new()));
            let xml = format!("<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>", xml_escape(&key));
            (200, xml.into_bytes())
        }
        ("POST", false) if query.contains_key("uploadId") => {
            match s.uploads.remove(&query["uploadId"]) {
                Some((k, parts)) => {
                    s.next += 1;
                    let generation = s.next;
                    let bytes: Vec<u8> = parts.into_values().flatten().collect();
                    s.objects.insert(k.clone(), (bytes, generation));
                    s.completed_multipart += 1;
                    extra.push(("x-goog-generation".into(), generation.to_string()));
                    let xml = format!("<CompleteMultipartUploadResult><Location>x</Location><Bucket>{bucket}</Bucket><Key>{}</Key><ETag>\"{generation}\"</ETag></CompleteMultipartUploadResult>", xml_escape(&k));
                    (200, xml.into_bytes())
                }
                None => (404, b"<Error><Code>NoSuchUpload</Code></Error>".to_vec()),
            }
        }
        ("DELETE", false) if query.contains_key("uploadId") => {
            s.uploads.remove(&query["uploadId"]);
            (204, Vec::new())
        }
        ("PUT", false) => {
            let current = s.objects.get(&key).map_or(0, |(_, g)| *g);
            if precondition.is_some_and(|want| want != current) {
                (
                    412,
                    b"<Error><Code>PreconditionFailed</Code></Error>".to_vec(),
                )
            } else {
                s.next += 1;
                let generation = s.next;
                s.objects.insert(key.clone(), (body, generation));
                extra.push(("ETag".into(), format!("\"{generation}\"")));
                extra.push(("x-goog-generation".into(), generation.to_string()));
                (200, Vec::new())
            }
        }
        ("GET" | "HEAD", false) => match s.objects.get(&key) {
            Some((bytes, generation)) => {
                extra.push(("ETag".into(), format!("\"{generation}\"")));
                extra.push(("x-goog-generation".into(), generation.to_string()));
                extra.push((
                    "Last-Modified".into(),
                    "Mon, 01 Jan 2024 00:00:00 GMT".into(),
                ));
                (200, bytes.clone())
            }
            None => (404, b"<Error><Code>NoSuchKey</Code></Error>".to_vec()),
        },
        ("DELETE", false) => match s.objects.remove(&key) {
            Some(_) => (204, Vec::new()),
            None => (404, b"<Error><Code>NoSuchKey</Code></Error>".to_vec()),
        },
        _ => (400, Vec::new()),
    };
    drop(s);
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        reply.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    if method != "HEAD" {
        let _ = conn.write_all(&reply);
    }
}
