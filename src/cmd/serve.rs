//! `tidewater serve`: the pipelines service (pipelines-api): the HTTP APIs, the
//! scheduler and the runs in one process, its state in one SQLite file; and
//! `tidewater serve keys ...` for the REST API's keys, `tidewater serve secret-key`
//! for the key that seals stored credentials.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use tidewater::export::{parse_duration, parse_rate, region_base_url, Tuning};
use tidewater_service::rules::Limits;
use tidewater_service::{
    ApiKeys, SecretBox, Service, ServiceConfig, StateStore, SystemClock, KEY_ENV,
};

use crate::exit::usage;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Subcommand)]
enum ServeCommand {
    /// Make, list or revoke REST API keys (run it beside or without a server).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print a new random key for TIDEWATER_SECRET_KEY.
    SecretKey,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key; it is printed once and stored only as its hash.
    Create {
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// A label that says whose key it is.
        #[arg(long, value_name = "TEXT")]
        label: String,
        /// Limit the key to this project; repeatable (default: every project).
        #[arg(long = "project", value_name = "ID")]
        projects: Vec<u64>,
    },
    /// List keys (never the keys themselves).
    List {
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The state file.
        #[arg(long, value_name = "FILE")]
        state: PathBuf,
        /// The key's id, as listed.
        id: i64,
    },
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// The state file (SQLite; created if missing). One server per file.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The export API's base URL for every project (e.g. a mock server's).
    #[arg(long, value_name = "URL", conflicts_with = "region")]
    mixpanel_url: Option<String>,
    /// Mixpanel's data residency: us, eu or in.
    #[arg(long, default_value = "us", value_name = "REGION")]
    region: String,
    /// How long after a window closes it is exported.
    #[arg(long, default_value = "30m", value_name = "DUR")]
    delay: String,
    /// Turn off Mixpanel's create limits (6 months of backfill, 2 recurring and 1
    /// date-ranged event pipeline per project).
    #[arg(long)]
    no_limits: bool,
    /// Scheduler retries of a failed run.
    #[arg(long, default_value_t = 3, value_name = "N")]
    scheduler_retries: u32,
    /// Wait before the first scheduler retry (doubled for each next one).
    #[arg(long, default_value = "5m", value_name = "DUR")]
    retry_backoff: String,
    /// A run taking longer is timed_out.
    #[arg(long, default_value = "6h", value_name = "DUR")]
    run_timeout: String,
    /// How many days back sync checks committed days.
    #[arg(long, default_value_t = 10, value_name = "N")]
    sync_days: u32,
    /// Runs of one project at a time.
    #[arg(long, default_value_t = 1, value_name = "N")]
    runs_per_project: usize,
    /// Runs of all projects at a time on this server.
    #[arg(long, default_value_t = 2, value_name = "N")]
    max_runs: usize,
    /// Requests a run sends at once (it fetches the next days ahead while it converts).
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// Request limit per project N/DUR, repeatable (default 3/1s and 60/1h).
    #[arg(long = "rate-limit", value_name = "N/DUR")]
    rate_limit: Vec<String>,
    /// How long a stopping server waits for running runs.
    #[arg(long, default_value = "30s", value_name = "DUR")]
    grace: String,
    /// Log lines as JSON objects (one per line) instead of text.
    #[arg(long)]
    json_logs: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(ServeCommand::SecretKey) => {
            println!("{}", SecretBox::generate_key_text()?);
            Ok(ExitCode::SUCCESS)
        }
        Some(ServeCommand::Keys(command)) => keys(command),
        None => serve(args.server),
    }
}

fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            state,
            label,
            projects,
        } => {
            if !state.exists() {
                eprintln!("tidewater: making the state file {}", state.display());
            }
            let keys = ApiKeys::new(StateStore::open_shared(&state)?);
            let projects = (!projects.is_empty()).then_some(projects);
            let (grant, key) = keys.create(&label, projects)?;
            eprintln!(
                "tidewater: API key {} ({label}) made; it is shown this once:",
                grant.id
            );
            println!("{key}");
        }
        KeysCommand::List { state } => {
            for grant in ApiKeys::new(StateStore::open_shared(&state)?).list()? {
                let projects = grant.projects.map_or("all projects".to_string(), |p| {
                    p.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
                });
                println!("{}\t{}\t{projects}", grant.id, grant.label);
            }
        }
        KeysCommand::Revoke { state, id } => {
            if !ApiKeys::new(StateStore::open_shared(&state)?).revoke(id)? {
                return Err(usage(format!("there is no API key {id}")));
            }
            eprintln!("tidewater: API key {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn duration(flag: &str, text: &str) -> anyhow::Result<std::time::Duration> {
    parse_duration(text).map_err(|e| usage(format!("invalid option --{flag}: {e}")))
}

fn config(args: &ServerArgs) -> anyhow::Result<ServiceConfig> {
    let mixpanel_url = match &args.mixpanel_url {
        Some(url) => url.clone(),
        None => region_base_url(&args.region)
            .ok_or_else(|| {
                usage(format!(
                    "invalid option --region: {:?}; use us, eu or in",
                    args.region
                ))
            })?
            .to_string(),
    };
    let signed = |flag: &str, text: &str| -> anyhow::Result<jiff::SignedDuration> {
        jiff::SignedDuration::try_from(duration(flag, text)?)
            .map_err(|e| usage(format!("invalid option --{flag}: {e}")))
    };
    let mut tuning = Tuning {
        concurrency: args.concurrency,
        ..Tuning::default()
    };
    if let Err(tidewater::Error::Config { message, .. }) = tuning.validate() {
        return Err(usage(format!("invalid option --concurrency: {message}")));
    }
    if !args.rate_limit.is_empty() {
        tuning.pace = args
            .rate_limit
            .iter()
            .map(|r| parse_rate(r).map_err(|e| usage(format!("invalid option --rate-limit: {e}"))))
            .collect::<anyhow::Result<_>>()?;
    }
    if args.runs_per_project == 0 {
        return Err(usage(
            "invalid option --runs-per-project: must be at least 1".into(),
        ));
    }
    Ok(ServiceConfig {
        mixpanel_url,
        delay: signed("delay", &args.delay)?,
        limits: if args.no_limits {
            Limits::none()
        } else {
            Limits::default()
        },
        scheduler_retries: args.scheduler_retries,
        retry_backoff: signed("retry-backoff", &args.retry_backoff)?,
        run_timeout: duration("run-timeout", &args.run_timeout)?,
        sync_days: args.sync_days,
        runs_per_project: args.runs_per_project,
        max_runs: args.max_runs,
        tuning,
        grace: duration("grace", &args.grace)?,
        ..ServiceConfig::default()
    })
}

fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let state = args.state.clone().ok_or_else(|| {
        usage("serve needs --state FILE: the state file (SQLite) the server keeps".into())
    })?;
    let config = config(&args)?;
    crate::logging::init_server(args.json_logs);
    let secrets = SecretBox::from_env()?.ok_or_else(|| {
        usage(format!(
            "set {KEY_ENV} to the key that seals stored credentials (make one with \
             `tidewater serve secret-key`, and keep it: without it the state file's \
             credentials cannot be opened)"
        ))
    })?;
    let store = StateStore::open(&state)?;
    let service = Service::new(store, Arc::new(SystemClock), secrets, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("tidewater-serve")
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| usage(format!("cannot listen on {}: {e}", args.listen)))?;
        let addr = listener.local_addr()?;
        eprintln!("tidewater: listening on http://{addr} (state {})", state.display());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let app = tidewater_service::api::router(service.clone());
        let mut http_stop = stop_rx.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|s| *s).await;
                })
                .await
        });
        let scheduler = {
            let service = service.clone();
            tokio::spawn(async move { service.run_scheduler().await })
        };
        shutdown_signal().await;
        tracing::info!("stopping: no new runs; running ones are canceled uncommitted and run again at the next start");
        service.stop();
        let _ = stop_tx.send(true);
        scheduler.await??;
        let _ = http.await;
        eprintln!("tidewater: stopped");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
