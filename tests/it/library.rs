//! The library API: builder, summary, streaming batches.

use tidewater::{Converter, SchemaMode};

fn input(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("in.jsonl");
    let lines = [
        r#"{"event":"A","properties":{"time":1704067200,"distinct_id":"u","n":1}}"#,
        r#"{"event":"B","properties":{"time":1704067201,"s":"x"}}"#,
        r#"not json"#,
        r#"{"event":"A","properties":{"time":1704153600,"n":"two"}}"#,
    ];
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

#[test]
fn builder_runs_and_summarises_m3() {
    let dir = tempfile::tempdir().unwrap();
    let s = Converter::new(dir.path().join("out"))
        .input(input(dir.path()))
        .schema(SchemaMode::Multischema)
        .threads(1)
        .run()
        .unwrap();
    assert_eq!(
        (
            s.lines_read,
            s.events_kept,
            s.events_rejected,
            s.events_filtered
        ),
        (4, 3, 1, 0)
    );
    assert_eq!(s.rows_per_table["a"], 2);
    assert_eq!(s.rows_per_table["b"], 1);
    assert_eq!((s.windows_committed, s.files_written), (2, 3));
    assert!(
        s.input_bytes_uncompressed > 100 && s.input_bytes_compressed == s.input_bytes_uncompressed
    );
    assert!(s.rejects_file.is_some());
    s.check().unwrap();
}

#[test]
fn streaming_batches_per_table_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let s = Converter::new(dir.path().join("out"))
        .input(input(dir.path()))
        .schema(SchemaMode::Multischema)
        .run_batches(|b| {
            let cols: Vec<String> = b
                .batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            seen.push((b.table, b.window.to_string(), b.batch.num_rows(), cols));
            Ok(())
        })
        .unwrap();
    assert_eq!(s.events_kept, 3);
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "a".to_string(),
                "2024-01-01".to_string(),
                1,
                vec!["time".to_string(), "distinct_id".into(), "n".into()]
            ),
            (
                "a".to_string(),
                "2024-01-02".to_string(),
                1,
                vec!["time".to_string(), "distinct_id".into(), "n_string".into()]
            ),
            (
                "b".to_string(),
                "2024-01-01".to_string(),
                1,
                vec!["time".to_string(), "distinct_id".into(), "s".into()]
            ),
        ]
    );
    assert!(
        !dir.path().join("out/a").exists(),
        "no data files in streaming mode"
    );
}

#[test]
fn sink_error_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let err = Converter::new(dir.path().join("out"))
        .input(input(dir.path()))
        .run_batches(|_| Err(tidewater::Error::Stopped("enough".into())))
        .unwrap_err();
    assert!(err.to_string().contains("enough"));
}

#[test]
fn a_cancelled_run_returns_cancelled_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let converter = Converter::new(&out).input(input(dir.path()));
    converter.cancel_token().cancel();
    let err = converter.run().unwrap_err();
    assert!(matches!(err, tidewater::Error::Cancelled), "{err}");
    // Only the released lock of the run on its root.
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|name| name != ".tidewater")
        .collect();
    assert_eq!(std::fs::read(out.join(".tidewater/lock")).unwrap(), b"");
    assert!(
        left.is_empty(),
        "nothing committed or left staged: {left:?}"
    );
}

#[test]
fn options_are_validated_once_and_errors_name_the_field() {
    let options = tidewater::RunOptions {
        tz: "Mars/Olympus".into(),
        ..Default::default()
    };
    match options.validate() {
        Err(tidewater::Error::Config { field, .. }) => {
            assert_eq!(field, tidewater::Field::Tz);
            assert_eq!(field.json_name(), "tz");
        }
        other => panic!("{other:?}"),
    }
    let options = tidewater::RunOptions {
        where_expr: Some("properties[".into()),
        ..Default::default()
    };
    assert!(matches!(
        options.validate(),
        Err(tidewater::Error::Config {
            field: tidewater::Field::Where,
            ..
        })
    ));
    let valid = tidewater::RunOptions::default().validate().unwrap();
    assert!(valid.threads >= 1);
}

/// A generated file of `events` events over two days.
fn generated(dir: &std::path::Path, events: u64) -> std::path::PathBuf {
    let path = dir.join("gen.jsonl");
    let config = tidewater::synth::GenConfig {
        events,
        days: 2,
        seed: 3,
        start: jiff::civil::date(2024, 1, 1),
    };
    tidewater::synth::generate_file(&config, &path).unwrap();
    path
}

fn small_batches(dir: &std::path::Path, input: &std::path::Path) -> Converter {
    Converter::new(dir.join("out"))
        .input(input)
        .schema(SchemaMode::Multischema)
        .row_group_rows(200)
        .block_bytes(16 << 10)
        .memory_limit(64 << 20)
        .threads(2)
}

#[test]
fn the_batch_iterator_gives_what_the_callback_gives_with_schemas_that_only_grow() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 6000);
    let mut pushed = Vec::new();
    small_batches(dir.path(), &input)
        .run_batches(|b| {
            pushed.push(b);
            Ok(())
        })
        .unwrap();
    let mut batches = small_batches(dir.path(), &input).batches(2).unwrap();
    let pulled: Vec<_> = batches.by_ref().map(Result::unwrap).collect();
    assert_eq!(batches.summary().unwrap().events_kept, 6000);
    assert_eq!(pulled.len(), pushed.len());
    let mut schemas: std::collections::HashMap<String, arrow::datatypes::SchemaRef> =
        Default::default();
    for (a, b) in pulled.iter().zip(&pushed) {
        assert_eq!(
            (&a.table, a.window, &a.batch),
            (&b.table, b.window, &b.batch)
        );
        // The batch's columns are the table's, in its order and with its types.
        let table = &a.table_schema;
        let mut at = 0;
        for field in a.batch.schema().fields() {
            let (i, f) = table
                .column_with_name(field.name())
                .expect("a column of the table");
            assert!(i >= at && f == field.as_ref(), "{}", field.name());
            at = i;
        }
        // A table's schema only gains columns at the end.
        if let Some(before) = schemas.get(&a.table) {
            assert_eq!(table.fields()[..before.fields().len()], before.fields()[..]);
        }
        schemas.insert(a.table.clone(), table.clone());
    }
}

#[test]
fn the_batch_iterator_waits_for_a_busy_caller_and_a_drop_cancels_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 20_000);
    let total = std::fs::metadata(&input).unwrap().len();
    let converter = small_batches(dir.path(), &input);
    let progress = converter.progress();
    let mut batches = converter.batches(2).unwrap();
    batches.next().unwrap().unwrap();
    // The caller is busy: the run fills its queue and its blocks in flight, then
    // waits, having read a part of the input only.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let read = || {
        progress
            .decompressed_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let stalled = read();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(read(), stalled, "the run waits for the caller");
    assert!(stalled < total / 2, "{stalled} of {total} bytes read ahead");
    let started = std::time::Instant::now();
    drop(batches);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(read() < total, "cancelled before the end");
    // Nothing of the run is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".tidewater-staging")),
        "{leftovers:?}"
    );
}

#[test]
fn the_batch_stream_serves_async_callers() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let input = generated(dir.path(), 3000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(async {
        let mut stream = small_batches(dir.path(), &input).batch_stream(2).unwrap();
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            rows += batch.unwrap().batch.num_rows();
        }
        assert_eq!(stream.summary().unwrap().events_kept, 3000);
        rows
    });
    assert_eq!(rows, 3000);
    // Dropped part-way, the stream cancels its run.
    let first = runtime.block_on(async {
        let mut stream = small_batches(dir.path(), &input).batch_stream(1).unwrap();
        stream.next().await.unwrap().unwrap().batch.num_rows()
    });
    assert!(first > 0);
}

#[test]
fn inputs_from_memory_and_readers_keep_their_order_and_names() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let line = |n: u32| format!(r#"{{"event":"E","properties":{{"time":1704067200,"n":{n}}}}}"#);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    writeln!(gz, "{}\nnot json", line(2)).unwrap();
    let gzip = gz.finish().unwrap();
    let file = dir.path().join("three.jsonl");
    std::fs::write(&file, line(3)).unwrap();
    let converter = Converter::new(dir.path().join("out"))
        .input_bytes("first", line(1).into_bytes())
        .input_reader("second", std::io::Cursor::new(gzip))
        .input(&file)
        .threads(1);
    let mut seen = Vec::new();
    let summary = converter
        .run_batches(|b| {
            let n = b.batch.column_by_name("n").unwrap();
            let n = n
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .unwrap();
            seen.extend(n.iter().flatten());
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, [1.0, 2.0, 3.0], "input order");
    let rejects = std::fs::read_to_string(summary.rejects_file.as_deref().unwrap()).unwrap();
    assert!(
        rejects.contains(r#""source":"second","line":2"#),
        "{rejects}"
    );
    // A reader is read once.
    let err = converter.run_batches(|_| Ok(())).unwrap_err().to_string();
    assert!(
        err.contains("second") && err.contains("read by an earlier run"),
        "{err}"
    );
}
