//! `tidewater mock-server`: local event files served as Mixpanel's export API, with
//! injectable faults.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use tidewater::export::parse_rate;
use tidewater_mock::{Fault, MockAuth, MockConfig, MockServer};

use crate::exit::usage;

#[derive(Args)]
pub struct MockArgs {
    /// Event files or folders to serve.
    #[arg(long, required_unless_present = "profiles", num_args = 1.., value_name = "PATH")]
    data: Vec<PathBuf>,
    /// Profile files or folders the Engage API serves (one Engage result,
    /// {"$distinct_id": …, "$properties": {…}}, per line; `tidewater gen --profiles N`).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    profiles: Vec<PathBuf>,
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
    /// Engage request limit N/DUR, repeatable (default 60/1h, the Query API's); `none`
    /// for no limit.
    #[arg(long = "engage-rate-limit", value_name = "N/DUR|none")]
    engage_rate_limit: Vec<String>,
    /// Engage requests served at once before 429.
    #[arg(long, default_value_t = 5, value_name = "N")]
    engage_max_concurrent: usize,
    /// Inject a fault (see below); repeatable.
    #[arg(long = "fault", value_name = "SPEC", value_parser = Fault::parse)]
    faults: Vec<Fault>,
    /// Seed for faults given by probability.
    #[arg(long, default_value_t = 1, value_name = "N")]
    fault_seed: u64,
}

pub fn run(args: MockArgs) -> anyhow::Result<ExitCode> {
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
    let defaults = MockConfig::default();
    let limits = request_limits("--rate-limit", &args.rate_limit, defaults.limits)?;
    let engage_limits = request_limits(
        "--engage-rate-limit",
        &args.engage_rate_limit,
        defaults.engage_limits,
    )?;
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
        profiles: args.profiles,
        listen: args.listen,
        project_id: args.project_id,
        auth,
        today,
        tz: args.tz,
        limits,
        max_concurrent: args.max_concurrent,
        engage_limits,
        engage_max_concurrent: args.engage_max_concurrent,
        faults: args.faults,
        fault_seed: args.fault_seed,
    })?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    let days = server.days();
    if !days.is_empty() || server.profiles() == 0 {
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
    }
    if server.profiles() > 0 || server.unusable_profiles > 0 {
        eprintln!(
            "tidewater mock-server: serving {} profiles at {}/api/2.0/engage{}",
            server.profiles(),
            server.url(),
            if server.unusable_profiles > 0 {
                format!(
                    "; {} lines that are not profiles are not served",
                    server.unusable_profiles
                )
            } else {
                String::new()
            }
        );
    }
    server.wait();
    Ok(ExitCode::SUCCESS)
}

/// Request limits as given (`N/DUR`, repeatable, or `none`), or the defaults.
fn request_limits(
    option: &str,
    given: &[String],
    defaults: Vec<(u32, std::time::Duration)>,
) -> anyhow::Result<Vec<(u32, std::time::Duration)>> {
    if given.iter().any(|r| r == "none") {
        return Ok(Vec::new());
    }
    if given.is_empty() {
        return Ok(defaults);
    }
    given
        .iter()
        .map(|r| parse_rate(r).map_err(|e| usage(format!("invalid option {option}: {e}"))))
        .collect()
}
