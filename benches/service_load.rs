//! The pipelines service under load (issue figures; not a test):
//!
//! ```sh
//! cargo bench --bench service_load -- [PIPELINES [CLIENTS [SECONDS]]]   # 1000 50 20
//! ```
//!
//! Starts the mock export server (in-process) and `tidewater serve` (the binary), makes
//! PIPELINES date-ranged pipelines over 3 days (one per project, so each has 3 runs
//! with counts), waits until every run has ended, then
//!
//! 1. measures CPU time and memory of the idle server over 30 s (`/proc`);
//! 2. has CLIENTS concurrent clients call, for SECONDS, `GET nessie/pipeline/status`,
//!    `GET /v1/pipelines/runs?pipeline=..` and `GET /v1/pipelines/:id/status` of random
//!    pipelines, and reports requests/s and latency percentiles per endpoint.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidewater_mock::{MockAuth, MockConfig, MockServer};

const SECRET: &str = "bench-secret";
const KEY: &str = "u3p+HrQ4Xv9x2m1nZk5bJ7dL0cR8tY6wE4aS2fG1hKs=";

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds and (RSS, peak RSS) in KiB of process `pid`.
fn cpu_and_memory(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (ticks / 100.0, kib("VmRSS:"), kib("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let pipelines = arg(1, 1000);
    let clients = arg(2, 50) as usize;
    let seconds = arg(3, 20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl.gz");
    tidewater::synth::generate_file(
        &tidewater::synth::GenConfig {
            events: 3000,
            days: 3,
            seed: 3,
            start: jiff::civil::date(2024, 1, 1),
        },
        &data,
    )
    .unwrap();
    let mock = MockServer::start(MockConfig {
        data: vec![data],
        auth: MockAuth::Secret(SECRET.into()),
        limits: Vec::new(),
        max_concurrent: 10_000,
        ..Default::default()
    })
    .unwrap();
    let state = dir.path().join("state.db");
    let made = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args(["serve", "keys", "create", "--label", "bench", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tidewater"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:18093",
            "--no-limits",
            "--state",
        ])
        .arg(&state)
        .args(["--mixpanel-url", mock.url(), "--rate-limit", "100000/1s"])
        .env("TIDEWATER_SECRET_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let base = "http://127.0.0.1:18093".to_string();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let out = dir.path().join("out");

    runtime.block_on(async {
        let started = Instant::now();
        while http.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "serve did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t = Instant::now();
        for p in 1..=pipelines {
            let body = serde_json::json!({
                "project_id": p, "name": format!("p{p}"), "type": "local", "path": out,
                "from_date": "2024-01-01", "to_date": "2024-01-03",
                "credentials": {"api_secret": SECRET},
            });
            let r = http
                .post(format!("{base}/v1/pipelines"))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
        }
        eprintln!(
            "created {pipelines} pipelines in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        loop {
            let metrics = http
                .get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let succeeded = metrics
                .lines()
                .find(|l| l.starts_with("tidewater_runs{state=\"succeeded\"}"))
                .and_then(|l| l.split(' ').nth(1)?.parse::<u64>().ok())
                .unwrap_or(0);
            if succeeded >= pipelines * 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "all {} runs succeeded {:.1} s after the first create",
            pipelines * 3,
            t.elapsed().as_secs_f64()
        );
    });

    // 1. Idle.
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, _, _) = cpu_and_memory(pid);
    let idle = Duration::from_secs(30);
    std::thread::sleep(idle);
    let (cpu1, rss, hwm) = cpu_and_memory(pid);
    println!(
        "idle with {pipelines} pipelines: {:.3}% of a core over {} s, RSS {:.1} MiB (peak so far {:.1} MiB)",
        (cpu1 - cpu0) / idle.as_secs_f64() * 100.0,
        idle.as_secs(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    // 2. Load.
    let endpoints = [
        "nessie status",
        "/v1/pipelines/runs?pipeline=",
        "/v1/pipelines/:id/status",
    ];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let results = runtime.block_on(async {
        let key = Arc::new(key);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (http, base, key) = (http.clone(), base.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mut seen: Vec<(usize, f64)> = Vec::new();
                let mut n = c as u64;
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let p = (n >> 33) % pipelines + 1;
                    let which = (n >> 20) as usize % 3;
                    let req = match which {
                        0 => http
                            .get(format!(
                                "{base}/api/2.0/nessie/pipeline/status?project_id={p}&name=p{p}"
                            ))
                            .basic_auth(SECRET, Some("")),
                        1 => http
                            .get(format!("{base}/v1/pipelines/runs?pipeline={p}"))
                            .bearer_auth(key.as_str()),
                        _ => http
                            .get(format!("{base}/v1/pipelines/{p}/status"))
                            .bearer_auth(key.as_str()),
                    };
                    let t = Instant::now();
                    let response = req.send().await.unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    let _ = response.bytes().await.unwrap();
                    seen.push((which, t.elapsed().as_secs_f64() * 1e3));
                }
                seen
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let (_, _, hwm) = cpu_and_memory(pid);
    println!(
        "{clients} clients for {seconds} s, {pipelines} pipelines, {} runs:",
        pipelines * 3
    );
    for (i, name) in endpoints.iter().enumerate() {
        let mut ms: Vec<f64> = results
            .iter()
            .filter(|(w, _)| *w == i)
            .map(|(_, t)| *t)
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "  {name:32} {:>7} requests {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
            ms.len(),
            ms.len() as f64 / seconds as f64,
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0)
        );
    }
    let mut ms: Vec<f64> = results.iter().map(|(_, t)| *t).collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "  {:32} {:>7} requests {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms; server peak RSS {:.1} MiB",
        "all",
        ms.len(),
        ms.len() as f64 / seconds as f64,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        hwm as f64 / 1024.0
    );
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = server.wait();
}
