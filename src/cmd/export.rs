//! `tidewater export`: days from Mixpanel's export API, paced, resumable, each window
//! committed whole or not at all.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tidewater::export::{parse_duration, parse_rate};
use tidewater::export::{Credentials, Exporter, PeopleExporter, Tuning};

use crate::args::{DataSourceArg, OutputArgs};
use crate::exit::usage;
use crate::progress::{run_with_progress, Meter};
use crate::report::report_export;

#[derive(Args)]
pub struct ExportArgs {
    /// First day, YYYY-MM-DD, in the project's time zone (--tz). Events only.
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: Option<String>,
    /// Last day, inclusive. Events only.
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: Option<String>,
    /// People: profiles asked for per Engage page.
    #[arg(long, default_value_t = tidewater::export::DEFAULT_PAGE_SIZE, value_name = "N")]
    page_size: usize,
    /// People: keep only this profile property (Engage's output_properties);
    /// repeatable. Default: every property.
    #[arg(long = "output-property", value_name = "NAME")]
    output_properties: Vec<String>,
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
    fn tuning(&self, people: bool) -> Tuning {
        let mut defaults = Tuning::default();
        if people {
            defaults.pace = tidewater::export::engage_pace();
        }
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
    let people = args.output.data_source == DataSourceArg::People;
    let days = match (people, &args.from, &args.to) {
        (false, Some(from), Some(to)) => {
            tidewater::export::check_range(from, to)?;
            Some((from.clone(), to.clone()))
        }
        (false, _, _) => {
            return Err(usage(
                "--from and --to are required: the first and last day to export".into(),
            ))
        }
        (true, None, None) => None,
        (true, _, _) => {
            return Err(usage(
                "invalid option --from/--to: profiles have no days; each people export \
                 is a full snapshot"
                    .into(),
            ))
        }
    };
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
    let region = match args.region {
        Region::Us => "us",
        Region::Eu => "eu",
        Region::In => "in",
    };
    let Some((from, to)) = days else {
        let base_url = args.base_url.clone().unwrap_or_else(|| {
            let url = tidewater::export::engage_base_url(region).expect("known region");
            url.to_string()
        });
        let exporter = PeopleExporter::new(&args.out, credentials)
            .with_options(options.clone())
            .base_url(base_url)
            .page_size(args.page_size)
            .output_properties(args.output_properties.clone())
            .tuning(args.tuning(true));
        let meter = Meter::Export(exporter.progress(), exporter.export_progress());
        let result = run_with_progress(meter, args.output.quiet, || exporter.run());
        return finish(result, &options, &args);
    };
    let base_url = match &args.base_url {
        Some(u) => u.clone(),
        None => tidewater::export::region_base_url(region)
            .expect("known region")
            .to_string(),
    };
    let exporter = Exporter::new(&args.out, credentials, &from, &to)?
        .with_options(options.clone())
        .base_url(base_url)
        .window_days(args.window_days)
        .filter_locally(args.filter_locally)
        .refetch(args.refetch)
        .tuning(args.tuning(false));
    let result = run_with_progress(Meter::export(&exporter), args.output.quiet, || {
        exporter.run()
    });
    finish(result, &options, &args)
}

/// Reports the run and turns what went wrong into the exit status.
fn finish(
    result: tidewater::Result<tidewater::export::ExportSummary>,
    options: &tidewater::RunOptions,
    args: &ExportArgs,
) -> anyhow::Result<ExitCode> {
    let summary = match result {
        Ok(summary) => summary,
        // Stopped part-way: the summary of what was done, then the cause.
        Err(tidewater::Error::ExportStopped { source, summary }) => {
            report_export(&summary, options, args.output.json, args.output.quiet)?;
            return Err((*source).into());
        }
        Err(e) => return Err(e.into()),
    };
    report_export(&summary, options, args.output.json, args.output.quiet)?;
    summary.check()?;
    Ok(ExitCode::SUCCESS)
}
