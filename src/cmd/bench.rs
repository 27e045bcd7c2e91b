//! `tidewater bench`: the pipeline on generated or given data, with throughput, memory
//! and the time per stage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tidewater::{Converter, RunSummary};

use crate::args::OutputArgs;
use crate::exit::usage;
use crate::progress::{run_with_progress, Meter};
use crate::report::finish;

#[derive(Args)]
pub struct BenchArgs {
    /// Inputs to convert; without them, data is generated.
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Events to generate (default 1000000). Without INPUTs, `--events N` with a number
    /// says the same; `--events NAME` still filters by event name.
    #[arg(long = "gen-events", value_name = "N")]
    gen_events: Option<u64>,
    /// Days to generate (default 30).
    #[arg(long, value_name = "D")]
    days: Option<u32>,
    /// Output folder (default: a temporary folder, removed afterwards).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// file: convert the data; http: serve it from an in-process mock export server on
    /// loopback (no rate limits) and run `export` against it.
    #[arg(long, value_enum, default_value_t = BenchSource::File)]
    source: BenchSource,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchSource {
    File,
    Http,
}

/// How many events `bench` generates: `--gen-events N`, or `--events N` as the issue
/// that defined `bench` spells it, whose numeric value is then taken out of the event
/// name filter (a benchmark of an event literally named "1000000" would keep nothing).
fn bench_event_count(args: &mut BenchArgs) -> anyhow::Result<u64> {
    let (counts, names): (Vec<String>, Vec<String>) = std::mem::take(&mut args.output.events)
        .into_iter()
        .partition(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    args.output.events = names;
    match (counts.as_slice(), args.gen_events) {
        ([], count) => Ok(count.unwrap_or(1_000_000)),
        ([n], None) => n
            .parse()
            .map_err(|_| usage(format!("--events {n}: too many events to generate"))),
        _ => Err(usage(
            "give the number of events to generate once, with --gen-events N or --events N".into(),
        )),
    }
}

pub fn run(mut args: BenchArgs) -> anyhow::Result<ExitCode> {
    let people = args.output.data_source == crate::args::DataSourceArg::People;
    if people && (args.inputs.is_empty() || matches!(args.source, BenchSource::Http)) {
        return Err(usage(
            "invalid option --data-source: bench generates and serves events; to measure \
             people, give a profiles file (tidewater gen --profiles N) as INPUT, or run \
             benches/people_figures.sh"
                .into(),
        ));
    }
    if !args.inputs.is_empty() && (args.gen_events.is_some() || args.days.is_some()) {
        return Err(usage(
            "--gen-events and --days describe generated data; leave them out when giving INPUTs"
                .into(),
        ));
    }
    let temp = tempfile::Builder::new()
        .prefix("tidewater-bench-")
        .tempdir()?;
    let inputs = if args.inputs.is_empty() {
        let events = bench_event_count(&mut args)?;
        let days = args.days.unwrap_or(30);
        let path = temp.path().join("bench.jsonl.gz");
        let config = tidewater::synth::GenConfig {
            events,
            days,
            seed: 1,
            start: jiff::civil::date(2024, 1, 1),
        };
        eprintln!("tidewater bench: generating {events} events over {days} days...");
        tidewater::synth::generate_file(&config, &path)?;
        vec![path]
    } else {
        args.inputs.clone()
    };
    let out = args.out.clone().unwrap_or_else(|| temp.path().join("out"));
    let summary = match args.source {
        BenchSource::File => {
            let converter = Converter::new(&out)
                .inputs(inputs)
                .with_options(args.output.to_options(out.clone()));
            run_with_progress(Meter::convert(&converter), true, || converter.run())?
        }
        BenchSource::Http => bench_http(inputs, &out, &args.output)?,
    };
    if args.output.json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    let mb = summary.input_bytes_uncompressed as f64 / 1e6;
    let s = &summary.stages;
    eprintln!(
        "tidewater bench: {:.1} MB uncompressed ({:.1} MB as stored), {} events in {:.2}s\n  \
         throughput: {:.1} MB/s, {:.0} events/s\n  peak RSS: {:.0} MiB\n  \
         stages (s): read+decode+frame {:.2} | parse+filter+shape {:.2} (cpu) | merge {:.2} | encode {:.2} (cpu) | finish files {:.2} | commit {:.2}",
        mb,
        summary.input_bytes_compressed as f64 / 1e6,
        summary.events_kept,
        summary.seconds,
        mb / summary.seconds,
        summary.events_kept as f64 / summary.seconds,
        summary.peak_rss_bytes.unwrap_or(0) as f64 / (1 << 20) as f64,
        s.read_decode_frame,
        s.parse_filter_shape,
        s.merge,
        s.encode,
        s.finish_files,
        s.commit
    );
    if summary.events_kept == 0 {
        eprintln!("tidewater bench: no event was kept: check --events and --where");
    }
    finish(&summary)
}

/// `bench --source http`: the export path end to end on loopback.
fn bench_http(
    inputs: Vec<PathBuf>,
    out: &std::path::Path,
    output: &OutputArgs,
) -> anyhow::Result<RunSummary> {
    use tidewater::export::{Credentials, Exporter, Tuning};
    use tidewater_mock::{MockConfig, MockServer};
    let t = Instant::now();
    let server = MockServer::start(MockConfig {
        data: inputs,
        tz: output.tz.clone(),
        limits: Vec::new(),
        ..Default::default()
    })?;
    let days = server.days();
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Err(usage("the bench data holds no events".into()));
    };
    eprintln!(
        "tidewater bench: mock server ready in {:.1}s ({} days at {})",
        t.elapsed().as_secs_f64(),
        days.len(),
        server.url()
    );
    let tuning = Tuning {
        pace: vec![(1_000_000, Duration::from_secs(1))],
        ..Tuning::default()
    };
    let exporter = Exporter::new(
        out,
        Credentials::ApiSecret("bench".into()),
        &first.to_string(),
        &last.to_string(),
    )?
    .with_options(output.to_options(out.to_path_buf()))
    .base_url(server.url())
    .tuning(tuning);
    let summary = exporter.run()?;
    eprintln!(
        "tidewater bench: {} requests, {} retries, {:.1} MB received",
        summary.requests,
        summary.retries,
        summary.run.input_bytes_compressed as f64 / 1e6
    );
    Ok(summary.run)
}
