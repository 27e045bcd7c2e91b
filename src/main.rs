//! The `tidewater` command. Parses flags (clap), builds library options, runs one
//! subcommand, and decides the exit code: 0 success, 2 usage or configuration errors,
//! 1 failures at run time.

mod cli;
mod export_cmd;
mod where_cmd;

/// Shaping allocates many small per-block vectors (one set per table and window); the
/// system allocator spent over a quarter of worker time on them in multischema runs
/// (perf, 1M events). mimalloc's thread-local free lists make that cost small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            let (code, message) = cli::describe(&e);
            eprintln!("tidewater: {message}");
            ExitCode::from(code)
        }
    }
}
