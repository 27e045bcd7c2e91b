//! `tidewater export`: days from Mixpanel's export API, paced, resumable, each window
//! committed whole or not at all.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tidewater::export::{parse_duration, parse_rate};
use tidewater::export::{Credentials, Exporter, Tuning};

use crate::args::OutputArgs;
use crate::exit::usage;
use crate::progress::{run_with_progress, Meter};
use crate::report::report_export;

#[derive(Args)]
pub struct ExportArgs {
    /// First day, YYYY-MM-DD, in the project's time zone (--tz).
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: String,
    /// Last day, inclusive.
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: String,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Data residency region of the project.
    #[arg(long, value_enum, default_value_t = Region::Us, conflicts_with = "base_url")]
    region: Region,
    /// Another API base URL (a proxy, the mock server).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Read credentials from this file of NAME=value lines (MIXPANEL_SERVICE_ACCOUNT_USERNAME
    /// and MIXPANEL_SERVICE_ACCOUNT_SECRET, or MIXPANEL_API_SECRET) instead of the
    /// environment.
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// Fetch unfiltered windows and apply --events and --where here instead of on the
    /// server.
    #[arg(long)]
    filter_locally: bool,
    /// Export every window again, even those already committed by the same request.
    #[arg(long)]
    refetch: bool,
    /// Days per request.
    #[arg(long, default_value_t = 1, value_name = "N")]
    window_days: u32,
    /// Requests in flight at once (at most 100).
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Attempts per window before it is given up.
    #[arg(long, default_value_t = 6, value_name = "N")]
    max_attempts: u32,
    /// Time allowed until the response starts.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DUR")]
    timeout_first_byte: Duration,
    /// Time allowed without a byte of the body before the attempt is retried.
    #[arg(long, default_value = "2m", value_parser = parse_duration, value_name = "DUR")]
    stall_timeout: Duration,
    /// Request limit N/DUR, repeatable; the default is Mixpanel's 3/1s and 60/1h.
    #[arg(long = "pace", value_parser = parse_rate, value_name = "N/DUR")]
    pace: Vec<(u32, Duration)>,
    /// First wait after a 429 without Retry-After (doubling, with jitter).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    backoff_429: Duration,
    /// Longest wait after a 429.
    #[arg(long, default_value = "300s", value_parser = parse_duration, value_name = "DUR")]
    backoff_429_max: Duration,
    /// First wait after a 5xx, a dropped connection, a timeout or an incomplete body.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DUR")]
    backoff: Duration,
    /// Longest such wait.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DUR")]
    backoff_max: Duration,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Region {
    Us,
    Eu,
    In,
}

impl ExportArgs {
    fn tuning(&self) -> Tuning {
        let defaults = Tuning::default();
        Tuning {
            concurrency: self.concurrency,
            max_attempts: self.max_attempts,
            timeout_first_byte: self.timeout_first_byte,
            stall_timeout: self.stall_timeout,
            pace: if self.pace.is_empty() {
                defaults.pace
            } else {
                self.pace.clone()
            },
            backoff_rate_limited_first: self.backoff_429,
            backoff_rate_limited_max: self.backoff_429_max,
            backoff_first: self.backoff,
            backoff_max: self.backoff_max,
        }
    }
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.output.quiet);
    // Everything that can be checked here is, before credentials are looked for (and
    // the run checks the output root before its first request): a request budget of
    // 60 an hour is not spent to find a typo.
    let options = args.output.to_options(args.out.clone());
    options.validate()?;
    tidewater::export::check_range(&args.from, &args.to)?;
    let credentials = match &args.credentials_file {
        Some(path) => Credentials::from_file(path)?,
        None => Credentials::from_env().ok_or_else(|| {
            usage(format!(
                "no credentials: set {} and {} (with --project-id), or {}, or pass --credentials-file",
                tidewater::export::ENV_USERNAME,
                tidewater::export::ENV_SECRET,
                tidewater::export::ENV_API_SECRET
            ))
        })?,
    };
    let base_url = match &args.base_url {
        Some(u) => u.clone(),
        None => tidewater::export::region_base_url(match args.region {
            Region::Us => "us",
            Region::Eu => "eu",
            Region::In => "in",
        })
        .expect("known region")
        .to_string(),
    };
    let exporter = Exporter::new(&args.out, credentials, &args.from, &args.to)?
        .with_options(options)
        .base_url(base_url)
        .window_days(args.window_days)
        .filter_locally(args.filter_locally)
        .refetch(args.refetch)
        .tuning(args.tuning());
    let result = run_with_progress(Meter::export(&exporter), args.output.quiet, || {
        exporter.run()
    });
    let summary = match result {
        Ok(summary) => summary,
        // Stopped part-way: the summary of what was done, then the cause.
        Err(tidewater::Error::ExportStopped { source, summary }) => {
            report_export(&summary, args.output.json, args.output.quiet)?;
            return Err((*source).into());
        }
        Err(e) => return Err(e.into()),
    };
    report_export(&summary, args.output.json, args.output.quiet)?;
    summary.check()?;
    Ok(ExitCode::SUCCESS)
}
