//! The run summary on stderr (and as JSON on stdout with `--json`).

use std::process::ExitCode;

use tidewater::export::ExportSummary;
use tidewater::{Format, RunOptions, RunSummary, SchemaMode};

/// Exit 1 naming the input when an input was incomplete (IN5).
pub fn finish(summary: &RunSummary) -> anyhow::Result<ExitCode> {
    summary.check()?;
    Ok(ExitCode::SUCCESS)
}

pub fn report(
    summary: &RunSummary,
    options: &RunOptions,
    json: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    if !quiet {
        counts(summary);
        next_steps(summary, options);
        for i in &summary.incomplete_inputs {
            eprintln!("tidewater: input {} is incomplete: {}", i.input, i.reason);
        }
        for w in &summary.windows_not_committed {
            eprintln!("tidewater: window {w} not committed (incomplete input)");
        }
    }
    Ok(())
}

/// The counts of a run, and where its rejects are.
fn counts(summary: &RunSummary) {
    let mb = summary.input_bytes_uncompressed as f64 / 1e6;
    let what = match summary.data_source {
        tidewater::DataSource::Events => "events",
        tidewater::DataSource::People => "profiles",
    };
    eprintln!(
            "tidewater: {} {what} kept, {} filtered, {} rejected; {} windows committed, {} files; {:.1} MB in {:.2}s ({:.0} MB/s)",
            summary.events_kept,
            summary.events_filtered,
            summary.events_rejected,
            summary.windows_committed,
            summary.files_written,
            mb,
            summary.seconds,
            mb / summary.seconds.max(1e-9)
        );
    if let Some(r) = &summary.rejects_file {
        eprintln!("tidewater: rejected lines are in {r}");
    }
}

/// Where the output went and how to read it: the tables this run wrote, and a DuckDB
/// line that reads one of them whole.
fn next_steps(summary: &RunSummary, options: &RunOptions) {
    if summary.files_written == 0 {
        return;
    }
    let root = options.root().display().to_string();
    // Largest first: the example reads the table with the most rows.
    let mut tables: Vec<(&str, u64)> = match options.schema {
        SchemaMode::Raw => Vec::new(),
        _ => summary
            .rows_per_table
            .iter()
            .map(|(t, rows)| (t.as_str(), *rows))
            .collect(),
    };
    tables.sort_by_key(|&(t, rows)| (std::cmp::Reverse(rows), t));
    let tables: Vec<&str> = tables.into_iter().map(|(t, _)| t).collect();
    let listed = match tables.len() {
        0 => String::new(),
        n if n <= 3 => format!(" ({})", tables.join(", ")),
        n => format!(" ({}, … {} more)", tables[..3].join(", "), n - 3),
    };
    let count = match tables.len() {
        0 => "raw export files".to_string(),
        1 => "1 table".to_string(),
        n => format!("{n} tables"),
    };
    let files = match summary.files_written {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    eprintln!("tidewater: output in {root}: {count}{listed}, {files}");
    let glob = match tables.first() {
        Some(t) => format!("{root}/{t}/**/*"),
        None => format!("{root}/**/*"),
    };
    let read = match (options.schema, options.format) {
        // Raw lines keep case-variant property names, which DuckDB's struct detection
        // refuses: the properties stay one JSON value.
        (SchemaMode::Raw, _) => format!(
            "read_json('{glob}.json.gz', columns = {{event: 'VARCHAR', properties: 'JSON'}})"
        ),
        (_, Format::Json) => format!("read_json('{glob}.json.gz', union_by_name = true)"),
        (_, Format::Parquet) => format!("read_parquet('{glob}.parquet', union_by_name = true)"),
    };
    eprintln!("tidewater: read it with: duckdb -c \"SELECT count(*) FROM {read}\"");
}

/// The export summary: the run's, then the windows.
pub fn report_export(
    summary: &ExportSummary,
    options: &RunOptions,
    json: bool,
    quiet: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    if !quiet {
        // Failed windows were reported as they failed, and the exit message names them.
        counts(&summary.run);
        next_steps(&summary.run, options);
        eprintln!(
            "tidewater: {} windows skipped (already committed), {} requests, {:.1} MB received (compressed), {} retries, {:.1}s waiting on rate limits",
            summary.windows_skipped,
            summary.requests,
            summary.run.input_bytes_compressed as f64 / 1e6,
            summary.retries,
            summary.rate_limit_wait_seconds
        );
    }
    Ok(())
}
