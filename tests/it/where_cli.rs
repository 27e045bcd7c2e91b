//! `tidewater where check|explain|eval` and `convert --where` end to end
//! (output-format F2, F3; where-language §2.4, §8, §10).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::*;

const DAY1: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

fn generated(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("gen.jsonl.gz");
    tidewater_ok(
        dir,
        &[
            "gen",
            "--events",
            "5000",
            "--days",
            "3",
            "--seed",
            "5",
            "--out",
            path.to_str().unwrap(),
        ],
        0,
    );
    path
}

#[test]
fn where_check_exit_codes_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    tidewater_ok(
        dir.path(),
        &["where", "check", r#"properties["$os"] == "Linux""#],
        0,
    );
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &["where", "check", r#"properties["a"] = 1 or lower("x")"#],
        2,
    );
    assert!(stderr.contains("E-IDENT at byte 23"), "{stderr}");
    assert!(
        stderr.contains("\n                         ^"),
        "caret under the fault: {stderr}"
    );
    let (_, stderr) = tidewater_ok(dir.path(), &["where", "check", ""], 2);
    assert!(stderr.contains("E-EMPTY"), "{stderr}");
    let (_, stderr) = tidewater_ok(dir.path(), &["where", "check", "-1 <"], 2);
    assert!(stderr.contains("E-SYNTAX"), "{stderr}");
}

#[test]
fn where_explain_prints_tree_and_bytecode() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "where",
            "explain",
            r#"properties["n"] in [1, 2] or not defined(properties["x"])"#,
        ],
        0,
    );
    for part in [
        "tree:",
        "or\n",
        "  in\n",
        "bytecode",
        "in_set",
        "or_test",
        "call       defined/1",
    ] {
        assert!(stdout.contains(part), "missing {part:?} in\n{stdout}");
    }
}

#[test]
fn where_eval_prints_one_result_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        event("a", DAY1, r#""v":1.5"#),
        event("a", DAY1, r#""v":"x\u2028y""#),
        event("a", DAY1, r#""v":null"#),
        event("a", DAY1, ""),
        "not json".to_string(),
        String::new(),
        event("a", DAY1, r#""v":[1,{"k":true}]"#),
    ]
    .join("\r\n");
    let input = write(dir.path(), "in.jsonl", &text);
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "where",
            "eval",
            r#"properties["v"]"#,
            input.to_str().unwrap(),
        ],
        0,
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(lines[..4], ["1.5", "\"x\u{2028}y\"", "null", "undefined"]);
    assert!(lines[4].starts_with("rejected: invalid JSON"), "{stdout}");
    assert_eq!(lines[5], r#"[1,{"k":true}]"#);
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "where",
            "eval",
            r#"properties["v"] and true"#,
            input.to_str().unwrap(),
        ],
        0,
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("error: E-LOGIC-TYPE: `and` got a number operand"),
        "{stdout}"
    );
    assert_eq!(lines[2], "false");
}

#[test]
fn where_eval_matching_is_a_grep_for_events() {
    let keep = event("Hit", DAY1, r#""city":"Zürich","n":2"#);
    let text = format!(
        "{}\n{keep}\n{}\n",
        event("Miss", DAY1, r#""n":1"#),
        event("Miss", DAY1, r#""n":"2""#)
    );
    // From stdin, gzip-compressed: told apart by the magic bytes.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args([
            "where",
            "eval",
            "--matching",
            r#"properties["n"] == 2"#,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{keep}\n"));
}

#[test]
fn where_eval_matching_runtime_error_policy() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        event("a", DAY1, r#""$insert_id":"id-1","v":true"#),
        event("a", DAY1, r#""$insert_id":"id-2","v":"s""#),
    ]
    .join("\n");
    let input = write(dir.path(), "in.jsonl", &text);
    let expr = r#"properties["v"] or false"#;
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &["where", "eval", "--matching", expr, input.to_str().unwrap()],
        1,
    );
    assert!(
        stderr.contains("line 2") && stderr.contains("id-2") && stderr.contains("E-LOGIC-TYPE"),
        "{stderr}"
    );
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "where",
            "eval",
            "--matching",
            "--on-where-error",
            "skip",
            expr,
            input.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(stdout.lines().count(), 1);
}

#[test]
fn f2_convert_where_keeps_what_where_eval_matches() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path());
    let expr = r#"(properties["$os"] == "Linux" or has_prefix(properties["$browser"], "fire")) and properties["$time"] >= datetime("2024-01-02T06:00:00")"#;
    let (matching, _) = tidewater_ok(
        dir.path(),
        &["where", "eval", "--matching", expr, input.to_str().unwrap()],
        0,
    );
    assert!(
        matching.lines().count() > 100,
        "the filter keeps a fair sample"
    );
    let out = dir.path().join("raw");
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--schema",
            "raw",
            "--where",
            expr,
            "--json",
            "--quiet",
        ],
        0,
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let kept = matching.lines().count() as u64;
    assert_eq!(summary["events_kept"].as_u64(), Some(kept));
    assert_eq!(summary["events_filtered"].as_u64(), Some(5000 - kept));
    // Raw output keeps the exact line bytes, windows in order.
    let t = tree(&out);
    let written: String = t
        .iter()
        .filter(|(k, _)| k.ends_with(".json"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    let mut written: Vec<&str> = written.lines().collect();
    let mut expected: Vec<&str> = matching.lines().collect();
    written.sort_unstable();
    expected.sort_unstable();
    assert_eq!(written, expected);
}

#[test]
fn f3_where_filtered_events_create_no_columns() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        event("a", DAY1, r#""keep":true,"kept_col":1"#),
        event("a", DAY1, r#""keep":false,"dropped_col":1"#),
    ]
    .join("\n");
    let input = write(dir.path(), "in.jsonl", &text);
    let out = dir.path().join("out");
    convert_quietly(
        dir.path(),
        &input,
        &out,
        &["--where", r#"properties["keep"]"#],
    );
    let mapping = String::from_utf8_lossy(&tree(&out)["schema/events.json"]).into_owned();
    assert!(
        mapping.contains("kept_col") && !mapping.contains("dropped_col"),
        "{mapping}"
    );
}

#[test]
fn convert_where_runtime_error_fails_or_skips() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        event("a", DAY1, r#""$insert_id":"ok-1","flag":true"#),
        event("a", DAY1 + 86_400, r#""$insert_id":"bad-7","flag":"yes""#),
        event("a", DAY1, r#""$insert_id":"ok-2""#),
    ]
    .join("\n");
    let input = write(dir.path(), "events.jsonl", &text);
    let out = dir.path().join("out");
    let expr = r#"properties["flag"] or false"#;
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--where",
            expr,
            "--quiet",
        ],
        1,
    );
    assert!(
        stderr.contains("events.jsonl")
            && stderr.contains("line 2")
            && stderr.contains("bad-7")
            && stderr.contains("E-LOGIC-TYPE"),
        "{stderr}"
    );
    assert!(
        !out.join("mp_master_event").exists(),
        "nothing is committed after a where failure"
    );
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--where",
            expr,
            "--on-where-error",
            "skip",
            "--json",
            "--quiet",
        ],
        0,
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            s["events_kept"].as_u64(),
            s["events_filtered"].as_u64(),
            s["where_errors"].as_u64()
        ),
        (Some(1), Some(2), Some(1))
    );
}

#[test]
fn convert_where_compile_error_exit_2_and_empty_means_no_filter() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", &event("a", DAY1, ""));
    let out = dir.path().join("out");
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--where",
            r#"user["x"] == 1"#,
        ],
        2,
    );
    assert!(
        stderr.contains("--where") && stderr.contains("E-CONTEXT"),
        "{stderr}"
    );
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--where",
            "",
            "--json",
            "--quiet",
        ],
        0,
    );
    assert!(stdout.contains("\"events_kept\":1"), "{stdout}");
}

#[test]
fn convert_where_reads_datetimes_in_the_run_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    // 02:00 UTC on Jan 1 is 21:00 on Dec 31 in New York.
    let input = write(dir.path(), "in.jsonl", &event("a", DAY1 + 7200, ""));
    let expr = r#"properties["$time"] >= datetime("2024-01-01")"#;
    for (tz, kept) in [("UTC", 1), ("America/New_York", 0)] {
        let out = dir.path().join(format!("out-{}", kept));
        let (stdout, _) = tidewater_ok(
            dir.path(),
            &[
                "convert",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--where",
                expr,
                "--tz",
                tz,
                "--json",
                "--quiet",
            ],
            0,
        );
        assert!(
            stdout.contains(&format!("\"events_kept\":{kept}")),
            "{tz}: {stdout}"
        );
    }
}
