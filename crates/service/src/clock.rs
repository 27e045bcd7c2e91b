//! The scheduler's one clock (P21): the system's in production; in tests a simulated
//! one that they move, so that 40 days of daily schedules, syncs and a trial's expiry
//! run in seconds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;

/// Where the scheduler reads the time and waits for it.
pub trait Clock: Send + Sync {
    /// The time now.
    fn now(&self) -> Timestamp;

    /// Waits until the time is `at` or later.
    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Re-read the time after each sleep: the system clock may be set meanwhile.
            loop {
                let left = at.duration_since(Timestamp::now());
                if left.is_zero() || left.is_negative() {
                    return;
                }
                let left = std::time::Duration::try_from(left).unwrap_or_default();
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that stands still until it is moved; sleepers wake when it reaches their
/// time. Cheap to clone: clones share the time.
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    now: Arc<tokio::sync::watch::Sender<Timestamp>>,
}

impl SimulatedClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        SimulatedClock {
            now: Arc::new(tokio::sync::watch::Sender::new(start)),
        }
    }

    /// Moves the clock to `to` (never backwards) and wakes the sleepers it reached.
    pub fn set(&self, to: Timestamp) {
        self.now.send_if_modified(|now| {
            let forward = to > *now;
            if forward {
                *now = to;
            }
            forward
        });
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: jiff::SignedDuration) {
        let to = self.now() + by;
        self.set(to);
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> Timestamp {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut changes = self.now.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current time first, then each change.
            let _ = changes.wait_for(|now| *now >= at).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn p21_a_simulated_clock_wakes_sleepers_when_moved_past_their_time() {
        let start: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let clock = SimulatedClock::new(start);
        let wake: Timestamp = "2024-01-02T00:30:00Z".parse().unwrap();
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                clock.sleep_until(wake).await;
                clock.now()
            })
        };
        clock.advance(jiff::SignedDuration::from_hours(24));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "not yet: 00:00 of the next day");
        clock.set(start); // never backwards
        assert_eq!(clock.now(), start + jiff::SignedDuration::from_hours(24));
        clock.advance(jiff::SignedDuration::from_hours(1));
        assert!(sleeper.await.unwrap() >= wake);
        // A time already past returns at once.
        clock.sleep_until(start).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_sleeps_until_the_time() {
        let clock = SystemClock;
        let at = clock.now() + jiff::SignedDuration::from_millis(20);
        clock.sleep_until(at).await;
        assert!(clock.now() >= at);
    }
}
