//! Command-line layer: clap structs hold what the user typed; `to_options` turns them
//! into library options; one `run_*` per subcommand.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use tidewater::{
    Compression, Converter, Format, Layout, OnWhereError, Partition, Progress, RunOptions,
    RunSummary, SchemaMode, WriteMode,
};

#[derive(Parser)]
#[command(
    name = "tidewater",
    version,
    about = "Streams Mixpanel-format event exports into partitioned Parquet or JSON"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert local event files (plain or gzip JSONL, directories, or - for stdin).
    Convert(ConvertArgs),
    /// Generate deterministic, realistic Mixpanel-like events.
    Gen(GenArgs),
    /// Run the pipeline on generated or given data and report throughput and memory.
    Bench(BenchArgs),
    /// Check, explain or evaluate a Mixpanel `where` expression.
    #[command(subcommand)]
    Where(crate::cmd::where_expr::WhereCommand),
    /// Export days from the Mixpanel export API (paced, resumable, each window
    /// committed whole or not at all).
    Export(crate::cmd::export::ExportArgs),
    /// Serve local event files as a Mixpanel export API, with injectable faults.
    #[command(after_help = format!("Fault specs (--fault):\n{}", tidewater_mock::FAULT_HELP))]
    MockServer(crate::cmd::export::MockArgs),
}

#[derive(Args)]
struct ConvertArgs {
    /// Input files, directories (their *.json, *.jsonl, *.ndjson and .gz forms) or - for stdin.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

/// Options shared by convert, export and bench.
#[derive(Args, Clone)]
pub(crate) struct OutputArgs {
    /// raw (lines as they are), monoschema (one table) or multischema (one table per event).
    #[arg(long, value_enum, default_value_t = SchemaArg::Monoschema)]
    schema: SchemaArg,
    /// Data file format (raw output is always gzip JSONL).
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    format: FormatArg,
    /// Keep only this event name (exact, case-sensitive); repeat for several.
    #[arg(long = "events", value_name = "NAME")]
    events: Vec<String>,
    /// Keep only events for which this Mixpanel `where` expression is true, e.g.
    /// 'properties["$os"] == "Linux"' (see `tidewater where explain`).
    #[arg(long = "where", value_name = "EXPR", allow_hyphen_values = true)]
    where_expr: Option<String>,
    /// What a `where` runtime error on an event does: fail the run (naming the input,
    /// line and $insert_id) or skip the event.
    #[arg(long, value_enum, default_value_t = OnWhereErrorArg::Fail)]
    on_where_error: OnWhereErrorArg,
    /// Window size.
    #[arg(long, value_enum, default_value_t = PartitionArg::Daily)]
    partition: PartitionArg,
    /// Time zone of windows (IANA name).
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    tz: String,
    /// Folder layout: YYYY/MM/DD (mixpanel) or mp_date=YYYY-MM-DD (hive).
    #[arg(long, value_enum, default_value_t = LayoutArg::Mixpanel)]
    layout: LayoutArg,
    /// Folder below --out.
    #[arg(long, value_name = "P")]
    prefix: Option<String>,
    /// Project id folder below the prefix.
    #[arg(long, value_name = "N")]
    project_id: Option<u64>,
    /// replace: windows this run produces replace old ones; append: add part files.
    #[arg(long, value_enum, default_value_t = ModeArg::Replace)]
    mode: ModeArg,
    /// Parquet compression.
    #[arg(long, value_enum, default_value_t = CompressionArg::Snappy)]
    compression: CompressionArg,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Memory budget, e.g. 512MiB or 2GiB.
    #[arg(long, default_value = "1GiB", value_parser = parse_size, value_name = "SIZE")]
    memory_limit: u64,
    /// JSON output writes `time` in milliseconds.
    #[arg(long)]
    time_in_ms: bool,
    /// Rows per Parquet row group (and per gzip member of JSON output).
    #[arg(long, default_value_t = 122_880, value_name = "N")]
    row_group_rows: usize,
    /// Size of the blocks of lines handed to workers (output does not depend on it).
    #[arg(long, default_value = "4MiB", value_parser = parse_size, value_name = "SIZE")]
    block_size: u64,
    /// Print the run summary as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress or summary on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
}

#[derive(Args)]
struct GenArgs {
    /// Number of events.
    #[arg(long = "events", default_value_t = 100_000)]
    events: u64,
    /// Days the events span.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First day (UTC), YYYY-MM-DD.
    #[arg(long, default_value = "2024-01-01")]
    start: String,
    /// Output file; gzip when it ends in .gz.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
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

#[derive(Clone, Copy, ValueEnum)]
enum SchemaArg {
    Raw,
    Monoschema,
    Multischema,
}
#[derive(Clone, Copy, ValueEnum)]
enum OnWhereErrorArg {
    Fail,
    Skip,
}
#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Parquet,
    Json,
}
#[derive(Clone, Copy, ValueEnum)]
enum PartitionArg {
    Daily,
    Hourly,
}
#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Mixpanel,
    Hive,
}
#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Replace,
    Append,
}
#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    Snappy,
    Zstd,
    Lz4,
    Gzip,
    None,
}

/// Parses `1GiB`, `512MiB`, `64M`, `1000000` into bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; use e.g. 512MiB or 2GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown size unit {u:?}; use KiB, MiB or GiB")),
    };
    Ok((n * mult as f64) as u64)
}

impl OutputArgs {
    pub(crate) fn to_options(&self, out: PathBuf) -> RunOptions {
        RunOptions {
            schema: match self.schema {
                SchemaArg::Raw => SchemaMode::Raw,
                SchemaArg::Monoschema => SchemaMode::Monoschema,
                SchemaArg::Multischema => SchemaMode::Multischema,
            },
            format: match self.format {
                FormatArg::Parquet => Format::Parquet,
                FormatArg::Json => Format::Json,
            },
            events: self.events.clone(),
            where_expr: self.where_expr.clone(),
            on_where_error: match self.on_where_error {
                OnWhereErrorArg::Fail => OnWhereError::Fail,
                OnWhereErrorArg::Skip => OnWhereError::Skip,
            },
            partition: match self.partition {
                PartitionArg::Daily => Partition::Daily,
                PartitionArg::Hourly => Partition::Hourly,
            },
            tz: self.tz.clone(),
            layout: match self.layout {
                LayoutArg::Mixpanel => Layout::Mixpanel,
                LayoutArg::Hive => Layout::Hive,
            },
            out,
            prefix: self.prefix.clone(),
            project_id: self.project_id,
            mode: match self.mode {
                ModeArg::Replace => WriteMode::Replace,
                ModeArg::Append => WriteMode::Append,
            },
            compression: match self.compression {
                CompressionArg::Snappy => Compression::Snappy,
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::None => Compression::None,
            },
            threads: self.threads.unwrap_or(0),
            memory_limit: self.memory_limit,
            time_in_ms: self.time_in_ms,
            row_group_rows: self.row_group_rows,
            block_bytes: self.block_size as usize,
            ..RunOptions::default()
        }
    }
}

/// Runs the command line.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Convert(args) => run_convert(args),
        Command::Gen(args) => run_gen(args),
        Command::Bench(args) => run_bench(args),
        Command::Where(command) => crate::cmd::where_expr::run(command),
        Command::Export(args) => crate::cmd::export::run_export(args),
        Command::MockServer(args) => crate::cmd::export::run_mock(args),
    }
}

/// Exit code and message for an error: 2 for usage and configuration, 1 otherwise.
pub fn describe(e: &anyhow::Error) -> (u8, String) {
    let code = match e.downcast_ref::<tidewater::Error>() {
        Some(t) if t.is_usage() => 2,
        Some(_) => 1,
        None if e.downcast_ref::<UsageError>().is_some() => 2,
        None => 1,
    };
    (code, chain_message(e))
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already ends with (library errors name their source in their own text, and anyhow's
/// `{:#}` printed it twice: "cannot read input x: No such file…: No such file…").
fn chain_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.ends_with(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// An error that exits with 2 (usage or configuration).
pub fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

fn run_convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let converter = Converter::new(&args.out)
        .inputs(args.inputs.clone())
        .with_options(args.output.to_options(args.out.clone()));
    let summary = run_with_progress(&converter, args.output.quiet)?;
    report(&summary, args.output.json, args.output.quiet)?;
    finish(&summary)
}

/// Exit 1 naming the input when an input was incomplete (IN5).
pub(crate) fn finish(summary: &RunSummary) -> anyhow::Result<ExitCode> {
    summary.check()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn report(summary: &RunSummary, json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    if !quiet {
        let mb = summary.input_bytes_uncompressed as f64 / 1e6;
        eprintln!(
            "tidewater: {} events kept, {} filtered, {} rejected; {} windows committed, {} files; {:.1} MB in {:.2}s ({:.0} MB/s)",
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
        for i in &summary.incomplete_inputs {
            eprintln!("tidewater: input {} is incomplete: {}", i.input, i.reason);
        }
        for w in &summary.windows_not_committed {
            eprintln!("tidewater: window {w} not committed (incomplete input)");
        }
    }
    Ok(())
}

/// Runs a conversion with a progress bar on a terminal, or a log line every few
/// seconds otherwise.
fn run_with_progress(converter: &Converter, quiet: bool) -> tidewater::Result<RunSummary> {
    let progress = converter.progress();
    let done = Arc::new(AtomicBool::new(false));
    let reporter = (!quiet).then(|| {
        let done = done.clone();
        let progress = progress.clone();
        std::thread::spawn(move || show_progress(&progress, &done))
    });
    let result = converter.run();
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    result
}

fn show_progress(p: &Progress, done: &AtomicBool) {
    let start = Instant::now();
    let style =
        |template| indicatif::ProgressStyle::with_template(template).expect("valid template");
    // A spinner until the size of the inputs is known: the run records it once it has
    // opened them, which is usually after this thread starts (stdin never has one).
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(style("{spinner} {bytes} read, {msg} ({bytes_per_sec})"));
        bar
    });
    let mut sized = false;
    let mut last_log = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let total = p.input_total.load(Ordering::Relaxed);
        let read = p.input_bytes.load(Ordering::Relaxed);
        let events = p.events.load(Ordering::Relaxed);
        match &bar {
            Some(bar) => {
                if total > 0 && !sized {
                    sized = true;
                    bar.set_length(total);
                    bar.set_style(style(
                        "{bar:30} {bytes}/{total_bytes} read, {msg} ({bytes_per_sec}, ETA {eta})",
                    ));
                }
                bar.set_position(read);
                bar.set_message(format!("{events} events"));
            }
            None if last_log.elapsed() >= Duration::from_secs(5) => {
                last_log = Instant::now();
                let secs = start.elapsed().as_secs_f64();
                let pct = if total > 0 {
                    format!(" ({:.0}%)", read as f64 * 100.0 / total as f64)
                } else {
                    String::new()
                };
                eprintln!(
                    "tidewater: {:.1} MB read{pct}, {events} events, {:.1} MB/s",
                    read as f64 / 1e6,
                    read as f64 / 1e6 / secs
                );
            }
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn run_gen(args: GenArgs) -> anyhow::Result<ExitCode> {
    let start = jiff::civil::Date::strptime("%Y-%m-%d", &args.start).map_err(|e| {
        UsageError(format!(
            "invalid option --start: {:?} is not YYYY-MM-DD ({e})",
            args.start
        ))
    })?;
    if args.days == 0 {
        return Err(UsageError("invalid option --days: must be at least 1".into()).into());
    }
    let config = tidewater::synth::GenConfig {
        events: args.events,
        days: args.days,
        seed: args.seed,
        start,
    };
    let t = Instant::now();
    let bytes = tidewater::synth::generate_file(&config, &args.out).map_err(|source| {
        tidewater::Error::Output {
            path: args.out.clone(),
            source,
        }
    })?;
    eprintln!(
        "tidewater: generated {} events ({:.1} MB of JSON) in {:.1}s into {}",
        args.events,
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
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

fn run_bench(mut args: BenchArgs) -> anyhow::Result<ExitCode> {
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
            run_with_progress(&converter, true)?
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

#[cfg(test)]
mod tests {
    use super::{chain_message, parse_size};

    #[test]
    fn error_messages_name_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e: anyhow::Error = tidewater::Error::InputUnreadable {
            input: "x.gz".into(),
            source: io,
        }
        .into();
        assert_eq!(chain_message(&e), "cannot read input x.gz: no such file");
        let e = e.context("while reading the inputs");
        assert_eq!(
            chain_message(&e),
            "while reading the inputs: cannot read input x.gz: no such file"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
