//! Streams event files into Arrow record batches and prints a line per batch.
//!
//! `cargo run --example to_batches -- fixtures/events-sample.jsonl.gz`

use std::io::Write;

use tidewater::{Converter, SchemaMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let inputs: Vec<String> = std::env::args().skip(1).collect();
    if inputs.is_empty() {
        eprintln!("usage: to_batches INPUT...");
        std::process::exit(2);
    }
    let scratch = tempfile::tempdir()?;
    let mut stdout = std::io::stdout().lock();
    let summary = Converter::new(scratch.path())
        .inputs(inputs)
        .schema(SchemaMode::Multischema)
        .run_batches(|b| {
            let (rows, columns) = (b.batch.num_rows(), b.batch.num_columns());
            // A closed pipe (`| head`) stops the run instead of panicking.
            writeln!(
                stdout,
                "{:<32} {}  {rows:>6} rows  {columns:>3} columns",
                b.table, b.window
            )
            .map_err(|e| tidewater::Error::Stopped(e.to_string()))
        })?;
    eprintln!(
        "{} events kept, {} rejected",
        summary.events_kept, summary.events_rejected
    );
    summary.check()?;
    Ok(())
}
