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
