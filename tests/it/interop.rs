//! Independent readers: DuckDB and pyarrow read the Parquet output (installed by
//! `.ci/run`; locally: `pip install duckdb pyarrow pytz`).

use crate::util::*;

/// `tidewater gen` into `dir/gen.jsonl`.
fn generate(dir: &std::path::Path, events: &str, days: &str, seed: &str) -> std::path::PathBuf {
    let input = dir.join("gen.jsonl");
    let args = [
        "gen",
        "--events",
        events,
        "--days",
        days,
        "--seed",
        seed,
        "--out",
        input.to_str().unwrap(),
    ];
    tidewater_ok(dir, &args, 0);
    input
}

/// Runs python3 with `args`; it must succeed and print `expected`.
fn python_ok(args: &[&str], expected: &str) {
    let result = std::process::Command::new("python3")
        .args(args)
        .output()
        .expect("python3 must be installed (see .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(result.status.success(), "python check failed:\n{text}");
    assert!(text.contains(expected), "{text}");
}

fn check(schema: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "4000", "3", "11");
    let out = dir.path().join("out");
    convert_quietly(
        dir.path(),
        &input,
        &out,
        &["--schema", schema, "--row-group-rows", "500"],
    );
    let script = fixtures().join("../tests/it/interop_check.py");
    let script = script.to_str().unwrap();
    let args = [
        script,
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        schema,
    ];
    python_ok(&args, "interop ok");
}

#[test]
fn duckdb_and_pyarrow_read_monoschema() {
    check("monoschema");
}

#[test]
fn duckdb_and_pyarrow_read_multischema() {
    check("multischema");
}

/// Every `--compression` codec gives files that pyarrow and DuckDB read back to the
/// same rows as the default (snappy).
#[test]
fn every_codec_reads_back_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "1500", "2", "5");
    let mut roots = Vec::new();
    for codec in ["snappy", "zstd", "lz4", "gzip", "none"] {
        let out = dir.path().join(codec);
        convert_quietly(dir.path(), &input, &out, &["--compression", codec]);
        roots.push(out.to_str().unwrap().to_string());
    }
    let script = r#"
import sys, glob, duckdb, pyarrow.parquet as pq
roots = sys.argv[1:]
def tables(root):
    return [pq.read_table(f) for f in sorted(glob.glob(f"{root}/mp_master_event/*/*/*/*.parquet"))]
want = tables(roots[0])
for root in roots[1:]:
    got = tables(root)
    assert len(got) == len(want) and all(a.equals(b) for a, b in zip(got, want)), root
    files = sorted(glob.glob(f"{root}/mp_master_event/*/*/*/*.parquet"))
    n = duckdb.connect().execute(f"select count(*) from read_parquet({files!r}, union_by_name = true)").fetchone()[0]
    assert n == sum(t.num_rows for t in want), (root, n)
print("codecs ok")
"#;
    let mut args = vec!["-c", script];
    args.extend(roots.iter().map(String::as_str));
    python_ok(&args, "codecs ok");
}

/// pyarrow and DuckDB see the min/max statistics of number (DOUBLE) columns: the
/// footer declares the column order they know (write::column_order), and a filter on a
/// number skips row groups in pyarrow.
/// Number statistics in a form pyarrow and DuckDB use, and the page index (column and
/// offset index) on every column chunk.
#[test]
fn number_statistics_are_seen_by_pyarrow_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), "3000", "1", "8");
    let out = dir.path().join("out");
    convert_quietly(dir.path(), &input, &out, &["--row-group-rows", "500"]);
    let script = r#"
import sys, glob, duckdb, pyarrow.parquet as pq, pyarrow.dataset as ds
f = glob.glob(sys.argv[1] + "/mp_master_event/**/*.parquet", recursive=True)[0]
meta = pq.ParquetFile(f).metadata
doubles = [i for i in range(meta.num_columns) if meta.schema.column(i).physical_type == "DOUBLE"]
assert doubles
for g in range(meta.num_row_groups):
    for i in doubles:
        s = meta.row_group(g).column(i).statistics
        assert s is not None and (s.has_min_max or s.num_values == 0), (g, i, s)
col = meta.schema.column(doubles[0]).name
cut = min(meta.row_group(g).column(doubles[0]).statistics.max for g in range(meta.num_row_groups)
          if meta.row_group(g).column(doubles[0]).statistics.has_min_max)
frags = list(ds.dataset(f, format="parquet").get_fragments())[0].split_by_row_group(ds.field(col) > cut)
assert len(frags) < meta.num_row_groups, (len(frags), meta.num_row_groups)
n = duckdb.sql(f"select count(*) from parquet_metadata('{f}') where path_in_schema = '{col}' and stats_max_value is not null").fetchall()[0][0]
assert n > 0
# Every column chunk has an offset index and a column index.
for g in range(meta.num_row_groups):
    for i in range(meta.num_columns):
        c = meta.row_group(g).column(i)
        assert c.has_offset_index, (g, i)
        assert c.has_column_index, (g, meta.schema.column(i).name)
print("stats ok")
"#;
    python_ok(&["-c", script, out.to_str().unwrap()], "stats ok");
}

/// The summary names where the output went and a DuckDB line that reads a table of it
/// whole; that line runs and counts the table's rows, in every schema mode and format.
#[test]
fn the_summary_says_how_to_read_the_output_and_duckdb_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixtures().join("events-sample.jsonl.gz");
    for (name, extra, rows) in [
        ("mono", &["--schema", "monoschema"][..], 2000),
        ("multi", &["--schema", "multischema"][..], 425),
        ("json", &["--format", "json"][..], 2000),
        ("raw", &["--schema", "raw"][..], 2000),
    ] {
        let out = dir.path().join(name);
        let (_, stderr) = convert_reporting(dir.path(), &input, &out, extra, 0);
        let root = out.display().to_string();
        assert!(stderr.contains(&format!("output in {root}:")), "{stderr}");
        let sql = stderr
            .lines()
            .find_map(|l| l.strip_prefix("tidewater: read it with: duckdb -c \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no DuckDB line: {stderr}"));
        let script = format!("import duckdb; print('rows', duckdb.sql({sql:?}).fetchall()[0][0])");
        python_ok(&["-c", &script], &format!("rows {rows}"));
    }
}

/// Runs a Python `script` that imports docs/read_tables.py (its folder is `argv[1]`) on
/// `runs` (JSON in `argv[2]`); it must print `expected`.
fn with_read_tables(script: &str, runs: Vec<serde_json::Value>, expected: &str) {
    let docs = fixtures().join("../docs");
    let runs = serde_json::Value::Array(runs).to_string();
    python_ok(&["-c", script, docs.to_str().unwrap(), &runs], expected);
}

/// The documented one-call reads (docs/read_tables.py) give every row and every column
/// of every table, with the mapping file's types, in DuckDB, Polars, pyarrow and Spark
/// (pyspark on the machine's JRE, which `.ci/run` installs), for monoschema,
/// multischema, the hive layout (whose folder keys become columns) and people output.
#[test]
fn every_table_reads_whole_in_one_call_in_duckdb_polars_pyarrow_and_spark() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), "6000", "3", "21");
    let people = crate::people::profiles(dir.path(), "people.jsonl", 800, 2);
    let mut runs = Vec::new();
    for (name, input, extra) in [
        ("mono", &events, &["--row-group-rows", "700"][..]),
        ("multi", &events, &["--schema", "multischema"][..]),
        (
            "hive",
            &events,
            &["--layout", "hive", "--partition", "hourly"][..],
        ),
        ("people", &people, &["--data-source", "people"][..]),
    ] {
        let out = dir.path().join(name);
        let (summary, _) =
            convert_exiting(dir.path(), input, &out, &[extra, &["--json"]].concat(), 0);
        let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
        runs.push(serde_json::json!([out, summary["rows_per_table"]]));
    }
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import read_tables as rt
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
tables = 0
for root, rows_per_table in json.loads(sys.argv[2]):
    for table, rows in rows_per_table.items():
        cols = rt.columns(root, table) + [(k, "key") for k in rt.partition_keys(root, table)]
        d = rt.duckdb_table(root, table)
        p = rt.polars_table(root, table).collect()
        a = rt.pyarrow_table(root, table)
        s = rt.spark_table(spark, root, table)
        got = {"duckdb": (len(d.fetchall()), len(d.columns)), "polars": p.shape,
               "pyarrow": (a.num_rows, a.num_columns), "spark": (s.count(), len(s.columns))}
        for reader, shape in got.items():
            assert shape == (rows, len(cols)), (root, table, reader, shape, rows, len(cols))
        assert list(p.columns) == [c for c, _ in cols] == a.column_names == d.columns, table
        assert sorted(s.columns) == sorted(c for c, _ in cols), table
        tables += 1
spark.stop()
print("tables ok", tables)
"#;
    with_read_tables(script, runs, "tables ok");
}

/// JSON output reads in DuckDB, Polars and pyarrow with the documented recipes
/// (docs/read_tables.py), giving the same rows, columns and types as the Parquet output
/// of the same input: lists and objects written as text (`--nested-as-text`) in all
/// three, written native (the default) in DuckDB; `time` in seconds or milliseconds,
/// the default and the hive layout, events and people. pyarrow's JSON reader refuses
/// native lists whose elements change type, which is why `--nested-as-text` exists.
#[test]
fn json_output_reads_in_duckdb_polars_and_pyarrow_as_the_parquet_output_does() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(dir.path(), "5000", "2", "31");
    let people = crate::people::profiles(dir.path(), "people.jsonl", 600, 3);
    let mut runs = Vec::new();
    for (name, input, extra) in [
        ("mono", &events, &["--time-in-ms"][..]),
        (
            "multi-hive",
            &events,
            &[
                "--schema",
                "multischema",
                "--layout",
                "hive",
                "--partition",
                "hourly",
            ][..],
        ),
        ("people", &people, &["--data-source", "people"][..]),
    ] {
        let parquet = dir.path().join(format!("{name}-parquet"));
        let without_time_unit: Vec<&str> = extra
            .iter()
            .copied()
            .filter(|a| *a != "--time-in-ms")
            .collect();
        let (summary, _) = convert_exiting(
            dir.path(),
            input,
            &parquet,
            &[&without_time_unit[..], &["--json"]].concat(),
            0,
        );
        let summary: serde_json::Value = serde_json::from_str(summary.trim()).unwrap();
        for nested in ["native", "text"] {
            let json = dir.path().join(format!("{name}-{nested}"));
            let mut args = vec!["--format", "json"];
            args.extend_from_slice(extra);
            if nested == "text" {
                args.push("--nested-as-text");
            }
            convert_quietly(dir.path(), input, &json, &args);
            runs.push(serde_json::json!({
                "parquet": parquet, "json": json, "nested": nested,
                "time_in_ms": extra.contains(&"--time-in-ms"),
                "tables": summary["rows_per_table"],
            }));
        }
    }
    let script = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import read_tables as rt

def normal(value, kind, seconds):
    if value is None:
        return None
    if kind in ("list", "object"):
        try:
            return json.loads(value)
        except ValueError as e:
            raise AssertionError(f"not JSON text: {value!r}") from e
    if kind == "timestamp":
        ms = value.timestamp() * 1000
        return ms // 1000 if seconds else ms
    return value

def rows(names, tuples, kinds, seconds):
    out = [tuple(normal(v, kinds.get(n), seconds) for n, v in zip(names, t)) for t in tuples]
    return sorted(out, key=repr)

checked = 0
for run in json.loads(sys.argv[2]):
    for table, count in run["tables"].items():
        kinds = dict(rt.columns(run["parquet"], table))
        seconds = not run["time_in_ms"]
        ref = rt.duckdb_table(run["parquet"], table)
        want_names, want_types = ref.columns, [str(t) for t in ref.types]
        want = rows(want_names, ref.fetchall(), kinds, seconds)
        assert len(want) == count, (table, len(want), count)
        got = {}
        d = rt.duckdb_json_table(run["json"], table, time_in_ms=run["time_in_ms"])
        assert [str(t) for t in d.types] == want_types, (table, d.types, want_types)
        got["duckdb"] = (d.columns, d.fetchall())
        p = rt.polars_json_table(run["json"], table, time_in_ms=run["time_in_ms"]).collect()
        pr = rt.polars_table(run["parquet"], table).collect()
        assert p.schema == pr.schema, (table, p.schema, pr.schema)
        assert p.shape == (count, len(want_names)), (table, p.shape)
        if run["nested"] == "text":
            # Native lists and objects come back from Polars as text that is not always
            # JSON (a backslash in a string is not escaped again), so values are
            # compared for text output only.
            got["polars"] = (p.columns, p.rows())
            a = rt.pyarrow_json_table(run["json"], table, time_in_ms=run["time_in_ms"])
            assert a.schema == rt.pyarrow_table(run["parquet"], table).schema, table
            got["pyarrow"] = (a.column_names, [tuple(r.values()) for r in a.to_pylist()])
        for reader, (names, tuples) in got.items():
            assert list(names) == list(want_names), (table, reader)
            assert rows(names, tuples, kinds, seconds) == want, (run["json"], table, reader)
        checked += 1
    if run["nested"] == "native" and run["parquet"].endswith("mono-parquet"):
        try:
            rt.pyarrow_json_table(run["json"], "mp_master_event", time_in_ms=True)
            raise SystemExit("pyarrow read native lists whose elements change type")
        except Exception as e:
            assert "changed from" in str(e), e
print("json tables ok", checked)
"#;
    with_read_tables(script, runs, "json tables ok");
}
