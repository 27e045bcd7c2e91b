//! `tidewater gen`: deterministic, realistic Mixpanel-like events or user profiles.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::exit::usage;

#[derive(Args)]
pub struct GenArgs {
    /// Number of events.
    #[arg(long = "events", default_value_t = 100_000)]
    events: u64,
    /// Generate this many user profiles instead of events, one Engage result
    /// ({"$distinct_id": …, "$properties": {…}}) per line.
    #[arg(long, value_name = "N", conflicts_with_all = ["events", "days", "start"])]
    profiles: Option<u64>,
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

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let start = jiff::civil::Date::strptime("%Y-%m-%d", &args.start).map_err(|e| {
        usage(format!(
            "invalid option --start: {:?} is not YYYY-MM-DD ({e})",
            args.start
        ))
    })?;
    if let Some(profiles) = args.profiles {
        let config = tidewater::synth::ProfileConfig {
            profiles,
            seed: args.seed,
        };
        let t = Instant::now();
        let bytes = tidewater::synth::generate_profiles_file(&config, &args.out)?;
        report(profiles, "profiles", bytes, t, &args.out);
        return Ok(ExitCode::SUCCESS);
    }
    if args.days == 0 {
        return Err(usage("invalid option --days: must be at least 1".into()));
    }
    let config = tidewater::synth::GenConfig {
        events: args.events,
        days: args.days,
        seed: args.seed,
        start,
    };
    let t = Instant::now();
    let bytes = tidewater::synth::generate_file(&config, &args.out)?;
    report(args.events, "events", bytes, t, &args.out);
    Ok(ExitCode::SUCCESS)
}

fn report(count: u64, what: &str, bytes: u64, started: Instant, out: &std::path::Path) {
    eprintln!(
        "tidewater: generated {count} {what} ({:.1} MB of JSON) in {:.1}s into {}",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        out.display()
    );
}
