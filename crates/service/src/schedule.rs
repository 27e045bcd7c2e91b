//! When a pipeline's windows are due (P3, P10, P11): every window from `from_date` up to
//! `to_date` (or forever), in the project's time zone, due once it has closed and the
//! schedule's delay has passed; backfill and recurring runs are the same walk, oldest
//! first. Pure arithmetic on a given "now", so that the scheduler's clock can be
//! simulated (P21).

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tidewater::{Partition, WindowKey, Windowing};

/// How often a pipeline exports: a window per day or per hour of the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// Calendar days; the previous day is exported at 00:30 (P11).
    Daily,
    /// Hours; hour H is exported at H+1:30 (P11).
    Hourly,
}

impl Frequency {
    /// The name in the APIs (`frequency`).
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Hourly => "hourly",
        }
    }
}

/// Mixpanel's delay after a window closes before it is exported: 00:30 for the
/// previous day, H+1:30 for hour H (P11).
pub const DEFAULT_DELAY: SignedDuration = SignedDuration::from_mins(30);

/// The first instant of the local `day` in `zone` (`compatible`: a day that starts in
/// a skipped hour starts when the clock resumes).
pub(crate) fn day_start(zone: &TimeZone, day: Date) -> Option<Timestamp> {
    zone.to_ambiguous_zoned(day.to_datetime(Time::midnight()))
        .compatible()
        .ok()
        .map(|z| z.timestamp())
}

/// A window of a pipeline: its key and the instants it spans, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledWindow {
    /// The window (a local day, or a local hour).
    pub key: WindowKey,
    /// Its first instant.
    pub start: Timestamp,
    /// The instant after it.
    pub end: Timestamp,
}

/// The windows of one pipeline and when each is due.
#[derive(Debug, Clone)]
pub struct Schedule {
    from: Date,
    to: Option<Date>,
    windowing: Windowing,
    start: Timestamp,
    delay: SignedDuration,
}

/// Why a schedule cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The time zone is not a known IANA name.
    #[error("unknown time zone {0:?}; use an IANA name such as UTC or America/New_York")]
    UnknownZone(String),
    /// `to_date` is before `from_date`.
    #[error("to_date {to} is before from_date {from}")]
    Reversed {
        /// The first day.
        from: Date,
        /// The last day.
        to: Date,
    },
    /// The first day has no first instant in the zone (out of the calendar's range).
    #[error("from_date {0} is out of range")]
    OutOfRange(Date),
}

impl Schedule {
    /// The windows of `frequency` from `from` to `to` (inclusive; `None`: forever) in
    /// time zone `tz`, each due `delay` after it closes.
    pub fn new(
        frequency: Frequency,
        from: Date,
        to: Option<Date>,
        tz: &str,
        delay: SignedDuration,
    ) -> Result<Schedule, ScheduleError> {
        if let Some(to) = to.filter(|to| *to < from) {
            return Err(ScheduleError::Reversed { from, to });
        }
        let zone = TimeZone::get(tz).map_err(|_| ScheduleError::UnknownZone(tz.into()))?;
        let partition = match frequency {
            Frequency::Daily => Partition::Daily,
            Frequency::Hourly => Partition::Hourly,
        };
        let windowing =
            Windowing::new(tz, partition).map_err(|_| ScheduleError::UnknownZone(tz.into()))?;
        let start = day_start(&zone, from).ok_or(ScheduleError::OutOfRange(from))?;
        Ok(Schedule {
            from,
            to,
            windowing,
            start,
            delay,
        })
    }

    /// The windows that are due at `now` (closed, and the delay passed), oldest first,
    /// with at most `limit` of them.
    pub fn due(&self, now: Timestamp, limit: usize) -> Vec<ScheduledWindow> {
        self.windows()
            .take_while(|w| w.end + self.delay <= now)
            .take(limit)
            .collect()
    }

    /// When the first window that is not due at `now` becomes due; `None` when every
    /// window (up to `to_date`) is due already. The scheduler sleeps until then. In
    /// constant time: that window is the one holding `now - delay` (windows are
    /// contiguous), or the first one.
    pub fn next_due_at(&self, now: Timestamp) -> Option<Timestamp> {
        let at = (now - self.delay)
            .as_millisecond()
            .max(self.start.as_millisecond());
        let (key, end) = self.windowing.clone().window_and_end(at)?;
        let day = Date::new(key.year, key.month, key.day).ok()?;
        if self.to.is_some_and(|to| day > to) {
            return None;
        }
        Some(Timestamp::from_millisecond(end).ok()? + self.delay)
    }

    /// The first day.
    pub fn from_date(&self) -> Date {
        self.from
    }

    /// Every window in order, up to `to_date` or without end.
    pub fn windows(&self) -> impl Iterator<Item = ScheduledWindow> + '_ {
        self.windows_from(self.start)
    }

    /// The first instant of the first window.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The windows in order from `from` on, which is the first instant of a window
    /// (the end of one the scheduler planned), or before the first.
    pub fn windows_from(&self, from: Timestamp) -> impl Iterator<Item = ScheduledWindow> + '_ {
        let mut walker = self.windowing.clone();
        let mut at = from.max(self.start).as_millisecond();
        std::iter::from_fn(move || {
            let (key, end) = walker.window_and_end(at)?;
            let day = Date::new(key.year, key.month, key.day).ok()?;
            if self.to.is_some_and(|to| day > to) {
                return None;
            }
            let window = ScheduledWindow {
                key,
                start: Timestamp::from_millisecond(at).ok()?,
                end: Timestamp::from_millisecond(end).ok()?,
            };
            at = end.max(at + 1);
            Some(window)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn p11_daily_windows_are_due_at_0030_of_the_next_day_in_project_time() {
        let s = Schedule::new(
            Frequency::Daily,
            date(2024, 5, 20),
            None,
            "America/Los_Angeles",
            DEFAULT_DELAY,
        )
        .unwrap();
        // 5/22 is exported on 5/23 at 00:30 PT (07:30Z).
        let due = s.due(at("2024-05-23T07:29:59Z"), 100);
        assert_eq!(
            due.iter().map(|w| w.key.to_string()).collect::<Vec<_>>(),
            ["2024-05-20", "2024-05-21"]
        );
        assert_eq!(s.due(at("2024-05-23T07:30:00Z"), 100).len(), 3);
        assert_eq!(
            s.next_due_at(at("2024-05-23T07:29:59Z")),
            Some(at("2024-05-23T07:30:00Z"))
        );
        assert_eq!(
            s.due(at("2024-05-23T07:30:00Z"), 1).len(),
            1,
            "oldest first, limited"
        );
    }

    #[test]
    fn p11_hourly_windows_follow_daylight_saving() {
        let s = Schedule::new(
            Frequency::Hourly,
            date(2024, 11, 3),
            Some(date(2024, 11, 3)),
            "America/New_York",
            DEFAULT_DELAY,
        )
        .unwrap();
        let windows: Vec<_> = s.windows().collect();
        // 25 hours, the repeated 01:00 being one window of two hours (W1).
        assert_eq!(windows.len(), 24);
        let repeated = windows.iter().find(|w| w.key.hour == Some(1)).unwrap();
        assert_eq!(
            repeated.end.duration_since(repeated.start),
            SignedDuration::from_hours(2)
        );
        // Hour 00 is exported at 01:30 local (05:30Z in EDT).
        assert_eq!(
            s.next_due_at(at("2024-11-03T00:00:00Z")),
            Some(at("2024-11-03T05:30:00Z"))
        );
        assert_eq!(
            s.next_due_at(at("2024-11-05T00:00:00Z")),
            None,
            "to_date reached"
        );
    }

    #[test]
    fn p11_next_due_at_is_the_first_window_not_due_by_the_walk() {
        for (frequency, tz) in [
            (Frequency::Daily, "UTC"),
            (Frequency::Hourly, "America/New_York"),
            (Frequency::Daily, "Australia/Lord_Howe"),
        ] {
            let s = Schedule::new(
                frequency,
                date(2024, 3, 1),
                Some(date(2024, 11, 10)),
                tz,
                DEFAULT_DELAY,
            )
            .unwrap();
            let mut now = at("2024-02-28T00:00:00Z");
            while now < at("2024-11-12T00:00:00Z") {
                let walked = s
                    .windows()
                    .map(|w| w.end + DEFAULT_DELAY)
                    .find(|due| *due > now);
                assert_eq!(s.next_due_at(now), walked, "{tz} at {now}");
                now += SignedDuration::from_mins(97 * 7);
            }
        }
    }

    #[test]
    fn p10_backfill_walks_every_closed_window_from_the_first_day() {
        let s = Schedule::new(
            Frequency::Daily,
            date(2024, 1, 1),
            Some(date(2024, 1, 31)),
            "UTC",
            DEFAULT_DELAY,
        )
        .unwrap();
        let due = s.due(at("2024-03-01T00:00:00Z"), usize::MAX);
        assert_eq!(due.len(), 31);
        assert_eq!(due[0].key.to_string(), "2024-01-01");
        assert_eq!(due[30].key.to_string(), "2024-01-31");
        assert!(Schedule::new(
            Frequency::Daily,
            date(2024, 2, 1),
            Some(date(2024, 1, 1)),
            "UTC",
            DEFAULT_DELAY
        )
        .is_err());
        assert!(Schedule::new(
            Frequency::Daily,
            date(2024, 2, 1),
            None,
            "Mars/Base",
            DEFAULT_DELAY
        )
        .is_err());
    }
}
