//! The `tidewater` command. Parses flags (clap), builds library options, runs one
//! subcommand, and decides the exit code: 0 success, 2 usage or configuration errors,
//! 1 failures at run time.

mod args;
mod cmd;
mod exit;
mod logging;
mod progress;
mod report;

/// Shaping allocates many small per-block vectors (one set per table and window); the
/// system allocator spent over a quarter of worker time on them in multischema runs
/// (perf, 1M events). mimalloc's thread-local free lists make that cost small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc's `purge_delay` option: how long freed memory stays mapped before it is
/// returned to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Blocks, parse buffers and column builders are freed and allocated again all run
    // long. With mimalloc's default 10 ms purge delay the freed pages went back to the OS
    // and came back as fresh pages the kernel had to zero: 12% of all samples in a
    // monoschema convert of 1M events (perf), and 1.2 s of system time. Keeping them is
    // safe because the memory budget already bounds the peak of a run. Not for the
    // long-running server, whose memory must go back to the system between runs.
    // `MIMALLOC_PURGE_DELAY` in the environment still wins.
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: sets an option before any thread is started (parsing starts none);
        // mimalloc reads it on purge.
        unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) };
    }
    // Each first touch of a transparent huge page makes the kernel clear 2 MiB at once;
    // on this kind of VM that cost 1.2–1.8 s of system time per 1M-event convert against
    // 0.7 s with ordinary pages, for the same peak RSS (5 interleaved runs: 7% less wall
    // time). mimalloc has already reserved (and advised) its arena before `main`, so the
    // process opts out as a whole, unless `MIMALLOC_ALLOW_THP` asks otherwise.
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process; an error (an old
        // kernel) leaves huge pages allowed, which is merely slower.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let (code, message) = exit::describe(&e);
            eprintln!("tidewater: {message}");
            ExitCode::from(code)
        }
    }
}

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
    Convert(cmd::convert::ConvertArgs),
    /// Generate deterministic, realistic Mixpanel-like events.
    Gen(cmd::gen::GenArgs),
    /// Run the pipeline on generated or given data and report throughput and memory.
    Bench(cmd::bench::BenchArgs),
    /// Check, explain or evaluate a Mixpanel `where` expression.
    #[command(subcommand)]
    Where(cmd::where_expr::WhereCommand),
    /// Export days from the Mixpanel export API (paced, resumable, each window
    /// committed whole or not at all).
    Export(cmd::export::ExportArgs),
    /// Serve local event files as a Mixpanel export API, with injectable faults.
    #[command(after_help = format!(
        "Fault specs (--fault):\n{}\n\nControl while it runs (for tests):\n  \
         GET  /_mock/requests   the requests served, as JSON\n  \
         POST /_mock/today      body YYYY-MM-DD: the last day to_date may name\n  \
         POST /_mock/events     body JSONL: late events, added to the end of their days",
        tidewater_mock::FAULT_HELP
    ))]
    MockServer(cmd::mock::MockArgs),
    /// Run the pipelines service: Mixpanel's Data Pipelines API and a REST API over
    /// scheduled, resumable exports, with its state in one SQLite file.
    Serve(cmd::serve::ServeArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Convert(args) => cmd::convert::run(args),
        Command::Gen(args) => cmd::gen::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Where(command) => cmd::where_expr::run(command),
        Command::Export(args) => cmd::export::run(args),
        Command::MockServer(args) => cmd::mock::run(args),
        Command::Serve(args) => cmd::serve::run(args),
    }
}
