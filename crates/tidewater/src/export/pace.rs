//! The rate budget (XC2): requests to one API spaced so that every limit of the form "at
//! most N requests in any period D" holds. Today in memory, per run ([`Pacer`]); the
//! service keeps one budget per project in its state store.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A budget of requests shared by everything that calls one API.
pub trait RateBudget: Send + Sync {
    /// Waits until one more request fits the budget and takes it. Returns the time
    /// spent waiting.
    fn acquire(&self) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>>;
}

/// Extra time added to every pacing window, so that requests spaced exactly at a limit
/// on our clock are not seen as too close together by the server.
const PACING_MARGIN: Duration = Duration::from_millis(25);

/// How long a request must wait before it fits every limit "at most N requests in any
/// period D", given when earlier requests were sent (`sent`, in milliseconds on one
/// clock, oldest first) and the time now on that clock. Zero when it may go now. Shared
/// by every budget, in memory ([`Pacer`]) or persisted (the service's, per project).
pub fn wait_for_slot(limits: &[(u32, Duration)], sent: &[u64], now: u64) -> Duration {
    let mut wait = Duration::ZERO;
    for &(n, period) in limits {
        let period = period + PACING_MARGIN;
        let period_ms = period.as_millis() as u64;
        let recent = sent
            .iter()
            .rev()
            .take_while(|&&t| now.saturating_sub(t) < period_ms)
            .count();
        if n > 0 && recent >= n as usize {
            // The n-th most recent request must leave the period first.
            let oldest_blocking = sent[sent.len() - n as usize];
            let free_at = oldest_blocking + period_ms;
            wait = wait.max(Duration::from_millis(free_at.saturating_sub(now)));
        }
    }
    wait
}

/// The longest period of `limits` (with the margin): older requests no longer count.
pub fn budget_horizon(limits: &[(u32, Duration)]) -> Duration {
    limits.iter().map(|l| l.1).max().unwrap_or_default() + PACING_MARGIN
}

/// Keeps requests within limits of the form "at most N requests in any period D"
/// (XC2), for every limit at once, in memory for one run.
#[derive(Debug)]
pub struct Pacer {
    limits: Vec<(u32, Duration)>,
    /// The clock's origin: requests are kept as milliseconds since it.
    origin: Instant,
    sent: Mutex<VecDeque<u64>>,
}

impl Pacer {
    /// A pacer of at most `n` requests in any period `d`, for each `(n, d)`.
    pub fn new(limits: Vec<(u32, Duration)>) -> Self {
        Pacer {
            limits,
            origin: Instant::now(),
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes a slot now if one is free (recording the request) or says how long to
    /// wait for one.
    fn try_take(&self) -> Duration {
        let horizon = budget_horizon(&self.limits).as_millis() as u64;
        let mut sent = self.sent.lock().expect("pacer lock");
        let now = self.origin.elapsed().as_millis() as u64;
        while sent
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= horizon)
        {
            sent.pop_front();
        }
        let wait = wait_for_slot(&self.limits, sent.make_contiguous(), now);
        if wait.is_zero() {
            sent.push_back(now);
        }
        wait
    }
}

/// Waits until `try_take` takes a slot (returns zero), sleeping as long as it says
/// each time; returns the time waited. The loop of every budget.
pub async fn take_slot(mut try_take: impl FnMut() -> Duration) -> Duration {
    let mut waited = Duration::ZERO;
    loop {
        let wait = try_take();
        if wait.is_zero() {
            return waited;
        }
        tokio::time::sleep(wait).await;
        waited += wait;
    }
}

impl RateBudget for Pacer {
    fn acquire(&self) -> Pin<Box<dyn Future<Output = Duration> + Send + '_>> {
        Box::pin(take_slot(|| self.try_take()))
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `10m`, `1h`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 500ms, 2s, 10m or 1h"))?;
    let secs = match unit.trim() {
        "ms" => n / 1e3,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(format!(
                "unknown duration unit {u:?} in {s:?}; use ms, s, m or h"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a rate limit `N/DUR`, e.g. `3/1s` or `60/1h`.
pub fn parse_rate(s: &str) -> std::result::Result<(u32, Duration), String> {
    let (n, d) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a limit; use N/DURATION, e.g. 3/1s or 60/1h"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: the count must be a whole number"))?;
    let d = parse_duration(d)?;
    if n == 0 || d.is_zero() {
        return Err(format!("{s:?}: count and period must be positive"));
    }
    Ok((n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn xc2_pacer_keeps_every_limit() {
        let pacer = Pacer::new(vec![
            (3, Duration::from_secs(1)),
            (5, Duration::from_secs(10)),
        ]);
        let start = tokio::time::Instant::now();
        let mut times = Vec::new();
        for _ in 0..11 {
            pacer.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_1s = times[..=i]
                .iter()
                .filter(|u| *t - **u < Duration::from_secs(1))
                .count();
            let in_10s = times[..=i]
                .iter()
                .filter(|u| *t - **u < Duration::from_secs(10))
                .count();
            assert!(in_1s <= 3 && in_10s <= 5, "{times:?}");
        }
        assert!(times[10] >= Duration::from_secs(20), "{times:?}");
    }

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_rate("60/1h").unwrap(),
            (60, Duration::from_secs(3600))
        );
        assert!(parse_rate("0/1s").is_err());
        assert!(parse_rate("3").is_err());
    }
}
