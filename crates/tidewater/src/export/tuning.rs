//! Pacing, retry and timeout settings of an export.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::field::Field;

/// Pacing, retry and timeout settings (XC2, XC3, XC5).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Requests in flight at once (1..=100).
    pub concurrency: usize,
    /// Attempts per window, the first included.
    pub max_attempts: u32,
    /// Time allowed until the response headers arrive.
    pub timeout_first_byte: Duration,
    /// Time allowed without a byte of the body.
    pub stall_timeout: Duration,
    /// Request limits: at most `n` requests in any period `d`.
    pub pace: Vec<(u32, Duration)>,
    /// First backoff after a 429 without `Retry-After`, and its cap.
    pub backoff_rate_limited_first: Duration,
    /// See `backoff_rate_limited_first`.
    pub backoff_rate_limited_max: Duration,
    /// First backoff after other retryable failures, and its cap.
    pub backoff_first: Duration,
    /// See `backoff_first`.
    pub backoff_max: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            concurrency: 4,
            max_attempts: 6,
            timeout_first_byte: Duration::from_secs(600),
            stall_timeout: Duration::from_secs(120),
            pace: vec![(3, Duration::from_secs(1)), (60, Duration::from_secs(3600))],
            backoff_rate_limited_first: Duration::from_secs(30),
            backoff_rate_limited_max: Duration::from_secs(300),
            backoff_first: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl Tuning {
    /// Checks the settings; an error names the field at fault.
    pub fn validate(&self) -> Result<()> {
        if !(1..=100).contains(&self.concurrency) {
            return Err(Error::config(
                Field::Concurrency,
                "must be between 1 and 100",
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::config(Field::MaxAttempts, "must be at least 1"));
        }
        if self.pace.iter().any(|(n, d)| *n == 0 || d.is_zero()) {
            return Err(Error::config(
                Field::Pace,
                "each limit needs at least 1 request in a non-zero period",
            ));
        }
        Ok(())
    }
}
