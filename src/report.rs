//! The run summary on stderr (and as JSON on stdout with `--json`).

use std::process::ExitCode;

use tidewater::export::ExportSummary;
use tidewater::RunSummary;

/// Exit 1 naming the input when an input was incomplete (IN5).
pub fn finish(summary: &RunSummary) -> anyhow::Result<ExitCode> {
    summary.check()?;
    Ok(ExitCode::SUCCESS)
}

pub fn report(summary: &RunSummary, json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    if !quiet {
        counts(summary);
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

/// The export summary: the run's, then the windows.
pub fn report_export(summary: &ExportSummary, json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    if !quiet {
        // Failed windows were reported as they failed, and the exit message names them.
        counts(&summary.run);
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
