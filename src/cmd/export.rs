//! `tidewater export` and `tidewater mock-server`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tidewater::export::{Credentials, ExportProgress, ExportSummary, Exporter, Tuning};
use tidewater::Progress;
use tidewater_mock::{parse_duration, parse_rate, Fault, MockAuth, MockConfig, MockServer};

use crate::cli::{usage, OutputArgs};

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

pub fn run_export(args: ExportArgs) -> anyhow::Result<ExitCode> {
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
        .with_options(args.output.to_options(args.out.clone()))
        .base_url(base_url)
        .window_days(args.window_days)
        .filter_locally(args.filter_locally)
        .refetch(args.refetch)
        .verbose(!args.output.quiet)
        .tuning(args.tuning());
    let summary = run_with_progress(&exporter, args.output.quiet)?;
    report(&summary, args.output.json, args.output.quiet)?;
    summary.check()?;
    Ok(ExitCode::SUCCESS)
}

fn report(summary: &ExportSummary, json: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(summary)?);
    }
    crate::cli::report(&summary.run, false, quiet)?;
    if !quiet {
        eprintln!(
            "tidewater: {} windows skipped (already committed), {} requests, {} retries, {:.1}s waiting on rate limits",
            summary.windows_skipped, summary.requests, summary.retries, summary.rate_limit_wait_seconds
        );
        for w in summary.windows.iter().filter(|w| w.status == "failed") {
            let range = if w.from_date == w.to_date {
                w.from_date.clone()
            } else {
                format!("{}..{}", w.from_date, w.to_date)
            };
            eprintln!(
                "tidewater: window {range} failed: {}",
                w.error.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(())
}

fn run_with_progress(exporter: &Exporter, quiet: bool) -> tidewater::Result<ExportSummary> {
    let done = Arc::new(AtomicBool::new(false));
    let reporter = (!quiet).then(|| {
        let done = done.clone();
        let (p, e) = (exporter.progress(), exporter.export_progress());
        std::thread::spawn(move || show_progress(&p, &e, &done))
    });
    let result = exporter.run();
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    result
}

fn show_progress(p: &Progress, e: &ExportProgress, done: &AtomicBool) {
    let start = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:25} {pos}/{len} windows, {msg} ({elapsed}, ETA {eta})",
            )
            .expect("valid template"),
        );
        bar
    });
    let mut last_log = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let total = e.windows_total.load(Ordering::Relaxed);
        let windows = e.windows_done.load(Ordering::Relaxed);
        let mb = e.bytes_received.load(Ordering::Relaxed) as f64 / 1e6;
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let message = format!(
            "{} events, {mb:.1} MB received ({:.1} MB/s), {} retries, {:.0}s waiting on rate limits",
            p.events.load(Ordering::Relaxed),
            mb / secs,
            e.retries.load(Ordering::Relaxed),
            e.rate_limit_wait_ms.load(Ordering::Relaxed) as f64 / 1e3
        );
        match &bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(windows);
                bar.set_message(message);
            }
            None if last_log.elapsed() >= Duration::from_secs(10) => {
                last_log = Instant::now();
                eprintln!("tidewater: {windows}/{total} windows, {message}");
            }
            None => {}
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[derive(Args)]
pub struct MockArgs {
    /// Event files or folders to serve.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    data: Vec<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    listen: SocketAddr,
    /// The project's id (requests naming another get 400).
    #[arg(long, value_name = "N")]
    project_id: Option<u64>,
    /// Accept only this API secret (test credentials, not a real one).
    #[arg(long, value_name = "S", conflicts_with = "service_account")]
    secret: Option<String>,
    /// Accept only this service account (test credentials, not a real one).
    #[arg(long, value_name = "USER:SECRET")]
    service_account: Option<String>,
    /// "Today" for the to_date check.
    #[arg(long, value_name = "YYYY-MM-DD")]
    today: Option<String>,
    /// Time zone of the project's days.
    #[arg(long, default_value = "UTC", value_name = "ZONE")]
    tz: String,
    /// Request limit N/DUR, repeatable (default 3/1s and 60/1h); `none` for no limit.
    #[arg(long = "rate-limit", value_name = "N/DUR|none")]
    rate_limit: Vec<String>,
    /// Requests served at once before 429.
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_concurrent: usize,
    /// Inject a fault (see below); repeatable.
    #[arg(long = "fault", value_name = "SPEC", value_parser = Fault::parse)]
    faults: Vec<Fault>,
    /// Seed for faults given by probability.
    #[arg(long, default_value_t = 1, value_name = "N")]
    fault_seed: u64,
}

pub fn run_mock(args: MockArgs) -> anyhow::Result<ExitCode> {
    let auth = match (&args.secret, &args.service_account) {
        (Some(s), _) => MockAuth::Secret(s.clone()),
        (None, Some(sa)) => {
            let (username, secret) = sa.split_once(':').ok_or_else(|| {
                usage("invalid option --service-account: expected USER:SECRET".into())
            })?;
            MockAuth::ServiceAccount {
                username: username.into(),
                secret: secret.into(),
            }
        }
        (None, None) => MockAuth::Open,
    };
    let limits = if args.rate_limit.iter().any(|r| r == "none") {
        Vec::new()
    } else if args.rate_limit.is_empty() {
        MockConfig::default().limits
    } else {
        args.rate_limit
            .iter()
            .map(|r| parse_rate(r).map_err(|e| usage(format!("invalid option --rate-limit: {e}"))))
            .collect::<anyhow::Result<_>>()?
    };
    let today = args
        .today
        .as_deref()
        .map(|d| {
            jiff::civil::Date::strptime("%Y-%m-%d", d).map_err(|e| {
                usage(format!(
                    "invalid option --today: {d:?} is not YYYY-MM-DD ({e})"
                ))
            })
        })
        .transpose()?;
    let started = Instant::now();
    let mut server = MockServer::start(MockConfig {
        data: args.data,
        listen: args.listen,
        project_id: args.project_id,
        auth,
        today,
        tz: args.tz,
        limits,
        max_concurrent: args.max_concurrent,
        faults: args.faults,
        fault_seed: args.fault_seed,
    })?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    let days = server.days();
    eprintln!(
        "tidewater mock-server: serving {} days ({}..{}) at {}/api/2.0/export; loaded in {:.1}s{}; Ctrl-C stops",
        days.len(),
        days.first().map_or("-".into(), |d| d.to_string()),
        days.last().map_or("-".into(), |d| d.to_string()),
        server.url(),
        started.elapsed().as_secs_f64(),
        if server.unusable_lines > 0 {
            format!("; {} lines without a valid event or time are not served", server.unusable_lines)
        } else {
            String::new()
        }
    );
    server.wait();
    Ok(ExitCode::SUCCESS)
}
