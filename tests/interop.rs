//! Independent readers: DuckDB and pyarrow read the Parquet output (installed by
//! `.ci/run`; locally: `pip install duckdb pyarrow pytz`).

mod util;

use util::*;

fn check(schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("gen.jsonl");
    tidewater_ok(
        dir.path(),
        &[
            "gen",
            "--events",
            "4000",
            "--days",
            "3",
            "--seed",
            "11",
            "--out",
            input.to_str().unwrap(),
        ],
        0,
    );
    let out = dir.path().join("out");
    convert_quietly(
        dir.path(),
        &input,
        &out,
        &["--schema", schema, "--row-group-rows", "500"],
    );
    let script = fixtures().join("../tests/interop/check.py");
    let result = std::process::Command::new("python3")
        .args([
            script.to_str().unwrap(),
            input.to_str().unwrap(),
            out.to_str().unwrap(),
            schema,
        ])
        .output()
        .expect("python3 must be installed (see .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(result.status.success(), "interop check failed:\n{text}");
    assert!(text.contains("interop ok"), "{text}");
}

#[test]
fn duckdb_and_pyarrow_read_monoschema() {
    check("monoschema");
}

#[test]
fn duckdb_and_pyarrow_read_multischema() {
    check("multischema");
}
