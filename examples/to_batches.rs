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
    let summary = Converter::new(scratch.path())
        .inputs(inputs)
        .schema(SchemaMode::Multischema)
        .run_batches(|b| {
            println!(
                "{:<32} {}  {:>6} rows  {:>3} columns",
                b.table,
                b.window,
                b.batch.num_rows(),
                b.batch.num_columns()
            );
            Ok(())
        })?;
    eprintln!(
        "{} events kept, {} rejected",
        summary.events_kept, summary.events_rejected
    );
    summary.check()?;
    Ok(())
}
