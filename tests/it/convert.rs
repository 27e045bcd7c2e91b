//! `tidewater convert` end to end, each test naming the output-format rules it checks.

use std::path::Path;

use crate::util::*;

const DAY1: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

fn nasty(name: &str) -> String {
    format!("nasty/{name}")
}

#[test]
fn golden_collisions_multischema_n1_to_n6_s3_t1_t3_in2() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    tidewater_ok(
        &fixtures(),
        &[
            "convert",
            &nasty("collisions.jsonl"),
            "--out",
            o,
            "--schema",
            "multischema",
            "--format",
            "json",
            "--quiet",
        ],
        0,
    );
    assert_golden("collisions", out.path());
}

#[test]
fn golden_malformed_in4_m2() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let (stdout, _) = tidewater_ok(
        &fixtures(),
        &[
            "convert",
            &nasty("malformed.jsonl"),
            "--out",
            o,
            "--format",
            "json",
            "--json",
            "--quiet",
        ],
        0,
    );
    assert_golden("malformed", out.path());
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["events_kept"], 2);
    assert_eq!(s["events_rejected"], 12);
    assert_eq!(s["lines_read"], 14);
}

#[test]
fn golden_crlf_blank_unicode_in1_in3() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    tidewater_ok(
        &fixtures(),
        &[
            "convert",
            &nasty("crlf_blank_unicode.jsonl"),
            "--out",
            o,
            "--format",
            "json",
            "--quiet",
        ],
        0,
    );
    assert_golden("crlf_blank_unicode", out.path());
}

#[test]
fn in5_terminated_early_commits_only_unaffected_windows() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.jsonl",
        &event("c", DAY1 + 2 * 86_400, r#""distinct_id":"ok""#),
    );
    let out = dir.path().join("out");
    let marker = fixtures().join("nasty/terminated_early.jsonl");
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            marker.to_str().unwrap(),
            good.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
        1,
    );
    assert!(stderr.contains("terminated_early.jsonl"), "{stderr}");
    assert!(stderr.contains("export terminated early"), "{stderr}");
    let t = tree(&out);
    assert!(
        t.keys()
            .all(|k| !k.contains("2024/01/01") && !k.contains("2024/01/02")),
        "{:?}",
        t.keys()
    );
    assert!(t.contains_key("mp_master_event/2024/01/03/part-00000.json"));
    assert!(t.contains_key("mp_master_event/2024/01/03/_complete"));
}

#[test]
fn in5_truncated_gzip_exit_1_names_input_and_rejects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = fixtures().join("nasty/truncated.jsonl.gz");
    let (stdout, stderr) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
        1,
    );
    assert!(
        stderr.contains("truncated.jsonl.gz") && stderr.contains("truncated"),
        "{stderr}"
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["events_rejected"], 0, "the cut-off line is not a reject");
    assert_eq!(s["windows_committed"], 0);
    assert_eq!(s["windows_not_committed"][0], "2024-01-02");
    assert!(tree(&out).keys().all(|k| !k.starts_with("mp_master_event")));
}

#[test]
fn in6_directory_inputs_sorted_and_first_seen_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    write(
        &data,
        "b.jsonl",
        &event("e", DAY1, r#""from_b":1,"Shared":1"#),
    );
    write(
        &data,
        "a.json",
        &event("e", DAY1, r#""from_a":1,"shared":1"#),
    );
    write(&data, "ignored.txt", &event("e", DAY1, r#""ignored":1"#));
    let out = dir.path().join("out");
    tidewater_ok(
        dir.path(),
        &[
            "convert",
            "data",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
            "--quiet",
        ],
        0,
    );
    let t = tree(&out);
    let mapping: serde_json::Value = serde_json::from_slice(&t["schema/events.json"]).unwrap();
    let cols: Vec<&str> = mapping["tables"]["mp_master_event"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "time",
            "distinct_id",
            "mp_event_name",
            "from_a",
            "shared",
            "from_b",
            "shared_1"
        ]
    );
}

#[test]
fn f1_f3_f4_event_whitelist() {
    let dir = tempfile::tempdir().unwrap();
    let text = [
        event("Keep", DAY1, r#""k":1"#),
        event("Drop", DAY1, r#""only_drop":1"#),
        r#"{"event":"Drop","properties":{"time":"broken"}}"#.to_string(),
        r#"{"properties":{"time":1},"event":"Drop"}"#.to_string(),
        event("keep", DAY1, r#""case":1"#),
    ]
    .join("\n");
    let input = write(dir.path(), "in.jsonl", &text);
    let out = dir.path().join("out");
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--events",
            "Keep",
            "--format",
            "json",
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
            s["events_rejected"].as_u64()
        ),
        (Some(1), Some(4), Some(0))
    );
    let t = tree(&out);
    let rows = json_lines(&t["mp_master_event/2024/01/01/part-00000.json"]);
    assert_eq!(rows.len(), 1);
    let mapping = String::from_utf8_lossy(&t["schema/events.json"]).into_owned();
    assert!(
        !mapping.contains("only_drop") && !mapping.contains("case"),
        "F3: filtered events create no columns"
    );
}

#[test]
fn w1_time_zone_hourly_and_hive_layout() {
    let dir = tempfile::tempdir().unwrap();
    // 2024-01-01T03:30Z is 2023-12-31 22:30 in New York.
    let input = write(
        dir.path(),
        "in.jsonl",
        &event("e", DAY1 + 3 * 3600 + 1800, ""),
    );
    let run = |args: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let mut all = vec![
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
            "--quiet",
        ];
        all.extend_from_slice(args);
        tidewater_ok(dir.path(), &all, 0);
        tree(out.path())
            .into_keys()
            .filter(|k| k.ends_with("complete"))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&[]), ["mp_master_event/2024/01/01/_complete"]);
    assert_eq!(
        run(&["--tz", "America/New_York"]),
        ["mp_master_event/2023/12/31/_complete"]
    );
    assert_eq!(
        run(&["--partition", "hourly"]),
        ["mp_master_event/2024/01/01/03/_complete"]
    );
    assert_eq!(
        run(&["--layout", "hive", "--partition", "hourly"]),
        ["mp_master_event/mp_date=2024-01-01/mp_hour=03/_complete"]
    );
    assert_eq!(run(&["--schema", "raw"]), ["2024/01/01/full_day/complete"]);
    assert_eq!(
        run(&[
            "--schema",
            "raw",
            "--partition",
            "hourly",
            "--prefix",
            "p",
            "--project-id",
            "42"
        ]),
        ["p/42/2024/01/01/03/complete"]
    );
}

#[test]
fn s1_raw_keeps_exact_line_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let line1 = r#"{"event":"a",  "properties":{"time":1704067200, "x": 1.50, "u":"\u00e9"}}"#;
    let line2 = r#"{"event":"b","properties":{"time":1704067201}}"#;
    let input = write(
        dir.path(),
        "in.jsonl",
        &format!("{line1}\r\nbroken line\n\n{line2}"),
    );
    let out = dir.path().join("out");
    convert_quietly(dir.path(), &input, &out, &["--schema", "raw"]);
    let t = tree(&out);
    assert_eq!(
        String::from_utf8_lossy(&t["2024/01/01/full_day/export-00000.json"]),
        format!("{line1}\n{line2}\n")
    );
    assert!(
        !t.contains_key("schema/events.json"),
        "S1: raw writes no mapping file"
    );
    assert_eq!(json_lines(&t["_rejects/rejects-00000.jsonl"]).len(), 1);
}

#[test]
fn t5_overflow_into_mp_properties() {
    let dir = tempfile::tempdir().unwrap();
    let props: Vec<String> = (0..9_502).map(|i| format!(r#""p{i}":{i}"#)).collect();
    let input = write(
        dir.path(),
        "in.jsonl",
        &event("wide", DAY1, &props.join(",")),
    );
    let out = dir.path().join("out");
    tidewater_ok(
        dir.path(),
        &[
            "convert",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
            "--quiet",
        ],
        0,
    );
    let t = tree(&out);
    let row = &json_lines(&t["mp_master_event/2024/01/01/part-00000.json"])[0];
    assert_eq!(row["p9499"], 9499);
    assert!(row.get("p9500").is_none());
    assert_eq!(
        row["mp_properties"],
        serde_json::json!({"p9500": 9500, "p9501": 9501})
    );
    let mapping: serde_json::Value = serde_json::from_slice(&t["schema/events.json"]).unwrap();
    let last = mapping["tables"]["mp_master_event"]["columns"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last,
        serde_json::json!({"column": "mp_properties", "property": null, "type": "object"})
    );
}

#[test]
fn t6_c2_w2_replace_and_append_by_window_keep_names_stable() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a.jsonl",
        &[
            event("e", DAY1, r#""x":1"#),
            event("e", DAY1 + 86_400, r#""x":2"#),
        ]
        .join("\n"),
    );
    let b = write(
        dir.path(),
        "b.jsonl",
        &event("e", DAY1 + 10, r#""X":"s","x":"t""#),
    );
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let convert = |input: &Path, extra: &[&str]| {
        let mut args = vec![
            "convert",
            input.to_str().unwrap(),
            "--out",
            o,
            "--format",
            "json",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        tidewater_ok(dir.path(), &args, 0);
    };
    convert(&a, &[]);
    convert(&b, &[]);
    let t = tree(&out);
    let day1 = json_lines(&t["mp_master_event/2024/01/01/part-00000.json"]);
    assert_eq!(
        day1.len(),
        1,
        "C2 replace: the window holds only the new run's rows"
    );
    assert_eq!(day1[0]["x_1"], "s");
    assert_eq!(
        day1[0]["x_string"], "t",
        "T6: x keeps its number column; the string goes to x_string"
    );
    assert_eq!(
        json_lines(&t["mp_master_event/2024/01/02/part-00000.json"]).len(),
        1,
        "untouched window stays"
    );
    convert(&b, &["--mode", "append"]);
    let t = tree(&out);
    assert!(
        t.contains_key("mp_master_event/2024/01/01/part-00001.json"),
        "{:?}",
        t.keys()
    );
    let mapping: serde_json::Value = serde_json::from_slice(&t["schema/events.json"]).unwrap();
    let cols: Vec<&str> = mapping["tables"]["mp_master_event"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "time",
            "distinct_id",
            "mp_event_name",
            "x",
            "x_1",
            "x_string"
        ]
    );
    // A different schema mode into the same root is refused, not silently mixed.
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            a.to_str().unwrap(),
            "--out",
            o,
            "--schema",
            "multischema",
        ],
        2,
    );
    assert!(stderr.contains("events.json"), "{stderr}");
}

fn generated(dir: &Path, events: u64, days: u32) -> std::path::PathBuf {
    let path = dir.join("gen.jsonl.gz");
    let n = events.to_string();
    let d = days.to_string();
    tidewater_ok(
        dir,
        &[
            "gen",
            "--events",
            &n,
            "--days",
            &d,
            "--seed",
            "3",
            "--out",
            path.to_str().unwrap(),
        ],
        0,
    );
    path
}

#[test]
fn fc3_identical_bytes_at_any_thread_count_and_block_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 6000, 2);
    for schema in ["monoschema", "multischema"] {
        let run = |threads: &str, block: &str| {
            let out = tempfile::tempdir().unwrap();
            tidewater_ok(
                dir.path(),
                &[
                    "convert",
                    input.to_str().unwrap(),
                    "--out",
                    out.path().to_str().unwrap(),
                    "--schema",
                    schema,
                    "--threads",
                    threads,
                    "--block-size",
                    block,
                    "--row-group-rows",
                    "700",
                    "--quiet",
                ],
                0,
            );
            tree(out.path())
        };
        let base = run("1", "2MiB");
        assert!(base.len() > 4);
        assert!(base == run("2", "2MiB"), "{schema}: threads 1 vs 2");
        assert!(base == run("2", "37KiB"), "{schema}: block sizes");
        assert!(base == run("3", "1KiB"), "{schema}: 3 threads, tiny blocks");
    }
}

#[test]
fn fc1_fc2_parquet_matches_json_output_row_by_row() {
    use arrow::array::{Array, BooleanArray, Float64Array, StringArray, TimestampMillisecondArray};
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 3000, 2);
    let pq = dir.path().join("pq");
    let js = dir.path().join("js");
    for (out, format) in [(&pq, "parquet"), (&js, "json")] {
        tidewater_ok(
            dir.path(),
            &[
                "convert",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--schema",
                "multischema",
                "--format",
                format,
                "--row-group-rows",
                "97",
                "--quiet",
            ],
            0,
        );
    }
    let json_tree = tree(&js);
    let mut files = 0;
    for (rel, _) in tree(&pq).iter().filter(|(k, _)| k.ends_with(".parquet")) {
        files += 1;
        let file = std::fs::File::open(pq.join(rel)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let rows = json_lines(&json_tree[&rel.replace(".parquet", ".json")]);
        let mut i = 0;
        for batch in reader {
            let batch = batch.unwrap();
            // FC2: every column of the file has a value somewhere in it.
            for (c, f) in batch.schema().fields().iter().enumerate() {
                let col = batch.column(c);
                for r in 0..batch.num_rows() {
                    let want = &rows[i + r][f.name()];
                    let got = if col.is_null(r) {
                        serde_json::Value::Null
                    } else if let Some(a) = col.as_any().downcast_ref::<StringArray>() {
                        match serde_json::from_str::<serde_json::Value>(a.value(r)) {
                            Ok(v) if !want.is_string() => v,
                            _ => serde_json::Value::String(a.value(r).to_string()),
                        }
                    } else if let Some(a) = col.as_any().downcast_ref::<Float64Array>() {
                        serde_json::json!(a.value(r))
                    } else if let Some(a) = col.as_any().downcast_ref::<BooleanArray>() {
                        serde_json::json!(a.value(r))
                    } else if let Some(a) = col.as_any().downcast_ref::<TimestampMillisecondArray>()
                    {
                        serde_json::json!(a.value(r) / 1000)
                    } else {
                        panic!("unexpected column type {}", f.data_type())
                    };
                    let same = match (&got, want) {
                        (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
                            a.as_f64() == b.as_f64()
                        }
                        _ => &got == want,
                    };
                    assert!(
                        same,
                        "{rel} row {} column {}: parquet {got} vs json {want}",
                        i + r,
                        f.name()
                    );
                }
            }
            i += batch.num_rows();
        }
        assert_eq!(i, rows.len(), "{rel}: row count");
    }
    assert!(files > 20, "{files} files");
}

#[test]
fn usage_errors_exit_2_and_name_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", &event("e", DAY1, ""));
    let i = input.to_str().unwrap();
    let o = dir.path().join("out");
    let o = o.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["convert", i, "--out", o, "--bogus"], "--bogus"),
        (&["convert", "missing.jsonl", "--out", o], "missing.jsonl"),
        (&["convert", i, "--out", o, "--tz", "Mars/Base"], "--tz"),
        (&["convert", i, "--out", o, "--schema", "wide"], "wide"),
        (
            &["convert", i, "--out", o, "--memory-limit", "lots"],
            "lots",
        ),
        (&["convert", i, "--out", "in.jsonl/sub"], "in.jsonl/sub"),
        (&["convert", i, "--out", o, "--prefix", "../up"], "--prefix"),
        (
            &["convert", i, "--out", o, "--row-group-rows", "0"],
            "--row-group-rows",
        ),
        // A field the library names is shown as the flag the user typed.
        (
            &["convert", i, "--out", o, "--block-size", "0"],
            "invalid option --block-size: must be between 1 byte and 1GiB",
        ),
        (
            &["convert", i, "--out", o, "--nested-as-text"],
            "invalid option --nested-as-text: applies only to JSON output of tables",
        ),
        (
            &[
                "convert",
                i,
                "--out",
                o,
                "--format",
                "json",
                "--schema",
                "raw",
                "--nested-as-text",
            ],
            "--nested-as-text",
        ),
        (
            &["convert", i, "--out", o, "--memory-limit", "3 parsecs"],
            "unknown size unit \"parsecs\"",
        ),
        (
            &["convert", i, "--out", o, "--memory-limit", "16MiB"],
            "invalid option --memory-limit: must be at least 64MiB",
        ),
        (
            &[
                "gen",
                "--events",
                "5",
                "--days",
                "1",
                "--out",
                "in.jsonl/g.jsonl",
            ],
            "in.jsonl/g.jsonl",
        ),
    ];
    for (args, culprit) in cases {
        let (_, stderr) = tidewater_ok(dir.path(), args, 2);
        assert!(stderr.contains(culprit), "{args:?}: {stderr}");
    }
    // Sizes in every unit the option documents are accepted.
    for size in ["512MiB", "1GiB", "64m", "100000000"] {
        tidewater_ok(
            dir.path(),
            &["convert", i, "--out", o, "--memory-limit", size, "--quiet"],
            0,
        );
    }
    // A cause is named once, though both the library and the system name it.
    let (_, stderr) = tidewater_ok(dir.path(), &["convert", "missing.jsonl", "--out", o], 2);
    assert!(
        stderr.contains("cannot read input missing.jsonl: No such file")
            && stderr.matches("No such file").count() == 1,
        "{stderr}"
    );
}

#[test]
fn t6_another_schema_mode_into_the_same_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", &event("e", DAY1, r#""x":1"#));
    let out = dir.path().join("out");
    convert_quietly(dir.path(), &input, &out, &[]);
    let before = tree(&out);
    let (_, stderr) = convert_exiting(dir.path(), &input, &out, &["--schema", "multischema"], 2);
    assert!(
        stderr.contains("events.json") && stderr.contains("--schema monoschema"),
        "{stderr}"
    );
    assert_eq!(tree(&out), before, "nothing was written");
}

#[test]
fn fuzz_like_lines_are_rejected_or_kept_never_crash() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        r#"{{"event":"e","properties":{{"time":1704067200,"d":{}1{}}}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let long_value = "x".repeat(5 << 20);
    let long = event("e", DAY1, &format!(r#""big":"{long_value}""#));
    let mut bytes = Vec::new();
    for line in [
        deep.as_str(),
        long.as_str(),
        "\u{0}\u{1}",
        "{\"event\":\"e\",\"properties\":{\"time\":1,\"s\":\"\\ud83d\\ude00\"}}",
    ] {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(b"\xc3\x28 invalid utf8\n{\"event\":\"e\",\"properties\":{\"time\":1");
    std::fs::write(dir.path().join("in.jsonl"), bytes).unwrap();
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &["convert", "in.jsonl", "--out", "out", "--json", "--quiet"],
        0,
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        s["events_kept"], 2,
        "the 5 MB line and the surrogate pair are kept"
    );
    assert_eq!(s["events_rejected"], 4);
}

#[test]
fn sample_fixture_is_what_gen_produces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.jsonl.gz");
    tidewater_ok(
        dir.path(),
        &[
            "gen",
            "--events",
            "2000",
            "--days",
            "2",
            "--seed",
            "1",
            "--out",
            path.to_str().unwrap(),
        ],
        0,
    );
    assert!(
        std::fs::read(&path).unwrap()
            == std::fs::read(fixtures().join("events-sample.jsonl.gz")).unwrap()
    );
    let out = dir.path().join("out");
    let (stdout, _) = tidewater_ok(
        dir.path(),
        &[
            "convert",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--schema",
            "multischema",
            "--json",
            "--quiet",
        ],
        0,
    );
    let s: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (s["events_kept"].as_u64(), s["windows_committed"].as_u64()),
        (Some(2000), Some(2))
    );
    assert!(s["rows_per_table"].as_object().unwrap().len() > 30);
}

#[test]
fn parquet_dictionary_only_for_columns_that_repeat() {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..300)
        .map(|i| {
            event(
                "e",
                DAY1 + i,
                &format!(r#""unique":"id-{i:05}","few":"v{}""#, i % 3),
            )
        })
        .collect();
    let input = write(dir.path(), "in.jsonl", &lines.join("\n"));
    let out = dir.path().join("out");
    convert_quietly(dir.path(), &input, &out, &[]);
    let file =
        std::fs::File::open(out.join("mp_master_event/2024/01/01/part-00000.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let group = reader.metadata().row_group(0);
    let dictionary = |name: &str| {
        let column = (0..group.num_columns())
            .map(|i| group.column(i))
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("column {name}"));
        column.encodings().any(|e| e == Encoding::RLE_DICTIONARY)
    };
    assert!(
        dictionary("few"),
        "a column of 3 values keeps its dictionary"
    );
    assert!(!dictionary("unique"), "all distinct: no dictionary");
    assert!(!dictionary("time"), "all distinct: no dictionary");
}

#[test]
fn bench_generates_the_events_it_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let kept = |args: &[&str]| -> u64 {
        let mut all = vec!["bench", "--days", "2", "--json"];
        all.extend_from_slice(args);
        let (stdout, stderr) = tidewater_ok(dir.path(), &all, 0);
        let summary: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        summary["events_kept"].as_u64().unwrap()
    };
    // The issue's spelling, `--events N`, and `--gen-events N` both give the count.
    assert_eq!(kept(&["--events", "3000"]), 3000);
    assert_eq!(kept(&["--gen-events", "3000"]), 3000);
    // A name next to the count still filters.
    let sign_ups = kept(&["--events", "3000", "--events", "Sign Up"]);
    assert!(sign_ups > 0 && sign_ups < 3000, "{sign_ups}");
    // Two counts, or generator options next to inputs, are usage errors.
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &["bench", "--events", "10", "--gen-events", "20"],
        2,
    );
    assert!(stderr.contains("once"), "{stderr}");
    let sample = fixtures().join("events-sample.jsonl.gz");
    let (_, stderr) = tidewater_ok(
        dir.path(),
        &["bench", sample.to_str().unwrap(), "--days", "3"],
        2,
    );
    assert!(stderr.contains("--days"), "{stderr}");
}

/// A run that keeps nothing exits 0 but says so, with what would help; a directory
/// without inputs is a usage error.
#[test]
fn runs_that_keep_nothing_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let views: Vec<String> = (0..5)
        .map(|i| event("Page View", 1_704_067_200 + i, ""))
        .collect();
    write(d, "views.jsonl", &views.join("\n"));
    let (stdout, stderr) = tidewater_ok(
        d,
        &[
            "convert",
            "views.jsonl",
            "--out",
            "o1",
            "--events",
            "page view",
            "--json",
        ],
        0,
    );
    assert!(
        stderr.contains("no event kept")
            && stderr.contains("did you mean \"Page View\" for \"page view\""),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        summary["warnings"].as_array().unwrap().len(),
        1,
        "{summary}"
    );

    write(d, "table.csv", "a,b\n1,2\n3,4\n");
    let (_, stderr) = tidewater_ok(d, &["convert", "table.csv", "--out", "o2"], 0);
    assert!(
        stderr.contains("every one of the 3 lines was rejected"),
        "{stderr}"
    );

    std::fs::create_dir(d.join("empty")).unwrap();
    write(d, "empty/notes.txt", "not an input");
    let (_, stderr) = tidewater_ok(d, &["convert", "empty", "--out", "o3"], 2);
    assert!(
        stderr.contains("holds no *.json, *.jsonl or *.ndjson file"),
        "{stderr}"
    );
}
