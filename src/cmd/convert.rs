//! `tidewater convert`: local event files into partitioned Parquet or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tidewater::Converter;

use crate::args::OutputArgs;
use crate::progress::{run_with_progress, Meter};
use crate::report::{finish, report};

#[derive(Args)]
pub struct ConvertArgs {
    /// Input files, directories (their *.json, *.jsonl, *.ndjson and .gz forms) or - for stdin.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.output.quiet);
    let options = args.output.to_options(args.out.clone());
    let converter = Converter::new(&args.out)
        .inputs(args.inputs.clone())
        .with_options(options.clone());
    let summary = run_with_progress(Meter::convert(&converter), args.output.quiet, || {
        converter.run()
    })?;
    report(&summary, &options, args.output.json, args.output.quiet)?;
    finish(&summary)
}
