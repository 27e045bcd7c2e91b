//! Crash points for tests: with `TIDEWATER_FAILPOINT=<name>` in the environment, a run
//! that reaches the point of that name aborts at once, leaving its files as `kill -9`
//! would. Lets tests crash a run at an exact step instead of racing a signal against it.

use std::sync::OnceLock;

/// Aborts the process when `TIDEWATER_FAILPOINT` names this point.
pub(crate) fn crash_point(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var("TIDEWATER_FAILPOINT").ok());
    if point.as_deref() == Some(name) {
        std::process::abort();
    }
}
