//! The `tidewater` command. Parses flags (clap), builds library options, runs one
//! subcommand, and decides the exit code: 0 success, 2 usage or configuration errors,
//! 1 failures at run time.

mod cli;

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
