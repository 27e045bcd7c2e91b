//! Helpers for integration tests: run the binary, read output trees.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Runs and requires exit code `code`; returns stdout.
pub fn tidewater_ok(cwd: &Path, args: &[&str], code: i32) -> (String, String) {
    tidewater_env_ok(cwd, args, &[], code)
}

/// [`tidewater_ok`] with more environment variables.
pub fn tidewater_env_ok(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, String)],
    code: i32,
) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .current_dir(cwd)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run tidewater");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "tidewater {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// Runs `tidewater convert INPUT --out OUT EXTRA... --quiet` in `cwd` and requires exit
/// code `code`; returns stdout and stderr.
pub fn convert_exiting(
    cwd: &Path,
    input: &Path,
    out: &Path,
    extra: &[&str],
    code: i32,
) -> (String, String) {
    convert_reporting(cwd, input, out, &[extra, &["--quiet"]].concat(), code)
}

/// Runs `tidewater convert INPUT --out OUT EXTRA...` in `cwd`, with its summary on
/// stderr, and requires exit code `code`; returns stdout and stderr.
pub fn convert_reporting(
    cwd: &Path,
    input: &Path,
    out: &Path,
    extra: &[&str],
    code: i32,
) -> (String, String) {
    let mut args = vec![
        "convert",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tidewater_ok(cwd, &args, code)
}

/// Runs `tidewater convert INPUT --out OUT EXTRA... --quiet` in `cwd` and requires
/// success.
pub fn convert_quietly(cwd: &Path, input: &Path, out: &Path, extra: &[&str]) {
    convert_exiting(cwd, input, out, extra, 0);
}

/// Every file below `root` (relative path → bytes), gzip files decompressed and
/// renamed without `.gz`. Staging folders must not exist.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        assert!(
            !rel.contains(".tidewater-staging"),
            "staging folder left behind: {rel}"
        );
        if rel == ".tidewater/lock" {
            // The run's lock on its root: left empty once the run has released it.
            assert_eq!(std::fs::read(&p).unwrap(), b"", "lock not released: {rel}");
            continue;
        }
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let bytes = std::fs::read(&p).unwrap();
            match rel.strip_suffix(".gz") {
                Some(name) => {
                    let mut text = Vec::new();
                    flate2::read::MultiGzDecoder::new(&bytes[..])
                        .read_to_end(&mut text)
                        .unwrap();
                    out.insert(name.to_string(), text);
                }
                None => {
                    out.insert(rel, bytes);
                }
            }
        }
    }
}

/// Compares an output tree with `fixtures/expected/<name>/`, or writes the expected
/// tree when `UPDATE_EXPECTED` is set (then review the diff before committing).
pub fn assert_golden(name: &str, root: &Path) {
    let got = tree(root);
    let expected_dir = fixtures().join("expected").join(name);
    if std::env::var_os("UPDATE_EXPECTED").is_some() {
        let _ = std::fs::remove_dir_all(&expected_dir);
        for (rel, bytes) in &got {
            let p = expected_dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        return;
    }
    let want = tree(&expected_dir);
    let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want), "files of {name}");
    for (rel, bytes) in &want {
        assert_eq!(
            String::from_utf8_lossy(&got[rel]),
            String::from_utf8_lossy(bytes),
            "{name}: content of {rel} differs from fixtures/expected/{name}/{rel}"
        );
    }
}

/// Lines of a JSONL text as JSON values.
pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// An event line.
pub fn event(name: &str, time: i64, props: &str) -> String {
    let sep = if props.is_empty() { "" } else { "," };
    format!(r#"{{"event":"{name}","properties":{{"time":{time}{sep}{props}}}}}"#)
}
