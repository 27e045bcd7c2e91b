//! `tidewater where check|explain|eval`: the `where` language on its own.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use tidewater::{expand_inputs, frame_input, is_blank, open_input, FrameConfig};
use tidewater_event::{LineParser, RejectReason};
use tidewater_where::{self as wherelang, Context, EventRef, Program, Scratch};

#[derive(Subcommand)]
pub enum WhereCommand {
    /// Exit 0 when EXPR compiles; otherwise print the error and exit 2.
    Check(ExprArgs),
    /// Print the parsed tree and the bytecode of EXPR.
    Explain(ExprArgs),
    /// Evaluate EXPR on event lines (files, gzip, directories or - for stdin) and print
    /// one result per event, or with --matching the lines whose result is true.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct ExprArgs {
    /// The expression, e.g. 'properties["$os"] == "Linux"'.
    #[arg(value_name = "EXPR", allow_hyphen_values = true)]
    expr: String,
    /// Project time zone: zone-less datetime strings are read in it (IANA name).
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    tz: String,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    expr: ExprArgs,
    /// Inputs, as for convert (default: stdin).
    #[arg(value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Print only the lines whose result is true, unchanged (a grep for events).
    #[arg(long)]
    matching: bool,
    /// With --matching: what a runtime error (E-LOGIC-TYPE) on an event does.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    on_where_error: OnError,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnError {
    Fail,
    Skip,
}

fn compile(args: &ExprArgs) -> anyhow::Result<Program> {
    let ctx = Context::new(&args.tz).map_err(|m| crate::exit::usage(format!("--tz: {m}")))?;
    wherelang::compile(&args.expr, ctx)
        .map_err(|e| crate::exit::usage(format!("the expression does not compile: {e}")))
}

pub fn run(command: WhereCommand) -> anyhow::Result<ExitCode> {
    match command {
        WhereCommand::Check(args) => {
            compile(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        WhereCommand::Explain(args) => {
            print!("{}", compile(&args)?.explain());
            Ok(ExitCode::SUCCESS)
        }
        WhereCommand::Eval(args) => eval(args),
    }
}

/// Whether an output error means the reader went away (`| head`): stop quietly.
fn closed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let program = compile(&args.expr)?;
    let tz = program.context().tz.clone();
    let given = if args.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.inputs.clone()
    };
    let inputs = expand_inputs(&given)?;
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut parser = LineParser::default();
    let mut scratch = Scratch::default();
    let config = FrameConfig {
        block_bytes: 1 << 20,
        max_line_bytes: 64 << 20,
    };
    let mut failure: Option<anyhow::Error> = None;
    let mut where_failure: Option<String> = None;
    let mut incomplete = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let name = input.name();
        let opened = open_input(input, Arc::new(AtomicU64::new(0)))?;
        let end = frame_input(opened.reader, i, config, |block| {
            // What to print for each event; `None` stops the run (error or closed stdout).
            let mut emit = |text: &[u8]| match out.write_all(text) {
                Ok(()) => Some(()),
                Err(e) => {
                    if !closed(&e) {
                        failure = Some(anyhow::anyhow!("cannot write to stdout: {e}"));
                    }
                    None
                }
            };
            if let Some(o) = &block.oversized {
                if !args.matching {
                    let text = format!("rejected: {}\n", RejectReason::Oversized(o.len));
                    return emit(text.as_bytes()).is_some();
                }
                return true;
            }
            for (this_line, line) in (block.first_line..).zip(block.data.split(|&b| b == b'\n')) {
                if is_blank(line) {
                    continue;
                }
                let stripped = line.strip_suffix(b"\r").unwrap_or(line);
                let result = parser.parse(stripped, |event| {
                    let event = EventRef::from_event(event);
                    let outcome = program.eval(&event, &mut scratch).map(|v| v.render(&tz));
                    let insert_id = match event.property("$insert_id", &tz) {
                        wherelang::Value::Undef => "(none)".to_string(),
                        wherelang::Value::Str(s) => s.into_owned(),
                        v => v.render(&tz),
                    };
                    (outcome, insert_id)
                });
                let printed = match result {
                    Err(reason) if !args.matching => {
                        emit(format!("rejected: {reason}\n").as_bytes())
                    }
                    Err(_) => Some(()),
                    Ok((Ok(v), _)) if !args.matching => emit(format!("{v}\n").as_bytes()),
                    Ok((Ok(v), _)) if v == "true" => emit(line).and_then(|()| emit(b"\n")),
                    Ok((Ok(_), _)) => Some(()),
                    Ok((Err(e), _)) if !args.matching => emit(format!("error: {e}\n").as_bytes()),
                    Ok((Err(_), _)) if args.on_where_error == OnError::Skip => Some(()),
                    Ok((Err(e), insert_id)) => {
                        let message = format!(
                            "--where failed on input {name}, line {this_line} ($insert_id {insert_id}): {e}; use --on-where-error skip to drop such events"
                        );
                        where_failure = Some(message);
                        return false;
                    }
                };
                if printed.is_none() {
                    return false;
                }
            }
            true
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(message) = where_failure {
            let _ = out.flush();
            anyhow::bail!(message);
        }
        match end {
            None => return Ok(ExitCode::SUCCESS), // stdout closed
            Some(end) => {
                if let Some(reason) = end.incomplete {
                    incomplete.push(format!("input {name} is incomplete ({reason})"));
                }
            }
        }
    }
    match out.flush() {
        Err(e) if !closed(&e) => return Err(anyhow::anyhow!("cannot write to stdout: {e}")),
        _ => {}
    }
    if incomplete.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!("{}", incomplete.join("; "))
    }
}
