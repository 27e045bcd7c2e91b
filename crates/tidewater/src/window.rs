//! Windows (output-format W1): the local calendar day or hour of an event's time.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result};
use crate::field::Field;
use crate::options::{Layout, Partition};

/// A window: a local date, and for hourly partitions a local hour. Ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    /// Local year.
    pub year: i16,
    /// Local month, 1–12.
    pub month: i8,
    /// Local day, 1–31.
    pub day: i8,
    /// Local hour for hourly windows; `None` for daily ones.
    pub hour: Option<i8>,
}

impl WindowKey {
    /// The one window of a people snapshot, which has no time: its files are in the
    /// table folder itself (`mp_people_data/part-00000.parquet`), and each run replaces
    /// it whole.
    pub const SNAPSHOT: WindowKey = WindowKey {
        year: i16::MIN,
        month: 1,
        day: 1,
        hour: None,
    };

    /// Whether this is [`WindowKey::SNAPSHOT`].
    pub fn is_snapshot(&self) -> bool {
        *self == WindowKey::SNAPSHOT
    }

    /// The window folder below a table folder (or the root, for raw output); empty for
    /// the snapshot.
    pub fn folder(&self, layout: Layout, raw: bool) -> String {
        if self.is_snapshot() {
            return String::new();
        }
        let (y, m, d) = (self.year, self.month, self.day);
        match (layout, self.hour) {
            (Layout::Mixpanel, None) if raw => format!("{y:04}/{m:02}/{d:02}/full_day"),
            (Layout::Mixpanel, None) => format!("{y:04}/{m:02}/{d:02}"),
            (Layout::Mixpanel, Some(h)) => format!("{y:04}/{m:02}/{d:02}/{h:02}"),
            (Layout::Hive, None) if raw => format!("mp_date={y:04}-{m:02}-{d:02}/full_day"),
            (Layout::Hive, None) => format!("mp_date={y:04}-{m:02}-{d:02}"),
            (Layout::Hive, Some(h)) => format!("mp_date={y:04}-{m:02}-{d:02}/mp_hour={h:02}"),
        }
    }
}

impl fmt::Display for WindowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_snapshot() {
            return f.write_str("snapshot");
        }
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)?;
        if let Some(h) = self.hour {
            write!(f, "T{h:02}")?;
        }
        Ok(())
    }
}

/// Maps event times to windows in one time zone. Cheap to clone; each worker keeps its
/// own copy so that the last window's bounds serve as a cache.
#[derive(Debug, Clone)]
pub struct Windowing {
    tz: TimeZone,
    hourly: bool,
    /// Every time maps to [`WindowKey::SNAPSHOT`] (people profiles).
    snapshot: bool,
    /// `[start_ms, end_ms)` of the last window looked up, and that window.
    cached: Option<(i64, i64, WindowKey)>,
}

impl Windowing {
    /// Resolves `tz` (an IANA name) for the given partitioning.
    pub fn new(tz: &str, partition: Partition) -> Result<Self> {
        let zone = TimeZone::get(tz).map_err(|e| {
            Error::config(Field::Tz, format!("unknown time zone {tz:?} ({e}); use an IANA name such as UTC or America/New_York"))
        })?;
        Ok(Windowing {
            tz: zone,
            hourly: partition == Partition::Hourly,
            snapshot: false,
            cached: None,
        })
    }

    /// The windowing of people profiles: one snapshot, whatever the time.
    pub fn snapshot() -> Self {
        Windowing {
            tz: TimeZone::UTC,
            hourly: false,
            snapshot: true,
            cached: None,
        }
    }

    /// The time zone's IANA name.
    pub fn zone_name(&self) -> &str {
        self.tz.iana_name().unwrap_or("of the run")
    }

    /// The window of a time in milliseconds since the epoch. `None` when the time is out
    /// of the range the calendar supports (callers reject such events).
    pub fn window_of(&mut self, ms: i64) -> Option<WindowKey> {
        if self.snapshot {
            return Some(WindowKey::SNAPSHOT);
        }
        if let Some((start, end, key)) = self.cached {
            if ms >= start && ms < end {
                return Some(key);
            }
        }
        let local = self.local_time(ms)?;
        let date = local.date();
        let hour = self.hourly.then(|| local.hour());
        let key = WindowKey {
            year: date.year(),
            month: date.month(),
            day: date.day(),
            hour,
        };
        if let Some((start, end)) = self.bounds(date, hour) {
            self.cached = Some((start, end, key));
        }
        Some(key)
    }

    /// The local date and time of `ms`. `None` when it falls in a local year after 9999,
    /// which no window folder can name (only in zones east of UTC, in the last hours of
    /// 9999 UTC).
    fn local_time(&self, ms: i64) -> Option<DateTime> {
        if let Ok(ts) = Timestamp::from_millisecond(ms) {
            return Some(self.tz.to_datetime(ts));
        }
        // Timestamps end at 9999-12-30T22:00Z (so that every offset maps into the civil
        // range) while IN3 accepts times up to the end of 9999 UTC: past the end, apply
        // the zone's last offset (no zone changes offset in the last day of December).
        if ms < 0 {
            return None;
        }
        let offset = self.tz.to_offset(Timestamp::MAX);
        let since_epoch = SignedDuration::from_millis(ms) + SignedDuration::from(offset);
        DateTime::constant(1970, 1, 1, 0, 0, 0, 0)
            .checked_add(since_epoch)
            .ok()
    }

    /// The window of a time and the instant (ms) at which that window ends; for walking
    /// through every window of a time range.
    pub fn window_and_end(&mut self, ms: i64) -> Option<(WindowKey, i64)> {
        let key = self.window_of(ms)?;
        match self.cached {
            Some((start, end, k)) if k == key && ms >= start => Some((key, end)),
            // Around a skipped hour the bounds are not cached: step an hour at most.
            _ => Some((key, ms + 3_600_000)),
        }
    }

    /// `[start, end)` in ms of a local date (or hour). A repeated local hour (end of
    /// daylight saving) is one window covering both occurrences.
    fn bounds(&self, date: Date, hour: Option<i8>) -> Option<(i64, i64)> {
        let start_of = |d: Date, h: i8| -> Option<i64> {
            let dt = d.at(h, 0, 0, 0);
            // `compatible` picks the earlier instant of a repeated hour and the later
            // of a skipped one: exactly the first instant that maps into the window.
            let z = self.tz.to_ambiguous_zoned(dt).compatible().ok()?;
            Some(z.timestamp().as_millisecond())
        };
        match hour {
            None => {
                let start = self
                    .tz
                    .to_ambiguous_zoned(date.to_datetime(jiff::civil::Time::midnight()))
                    .compatible()
                    .ok()?;
                let next = date.tomorrow().ok()?;
                let end = self
                    .tz
                    .to_ambiguous_zoned(next.to_datetime(jiff::civil::Time::midnight()))
                    .compatible()
                    .ok()?;
                Some((
                    start.timestamp().as_millisecond(),
                    end.timestamp().as_millisecond(),
                ))
            }
            Some(h) => {
                let start = start_of(date, h)?;
                let end = if h == 23 {
                    start_of(date.tomorrow().ok()?, 0)?
                } else {
                    start_of(date, h + 1)?
                };
                // Around a skipped hour `end` can land before `start`; then do not cache.
                (end > start).then_some((start, end))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(y: i16, m: i8, d: i8, h: Option<i8>) -> WindowKey {
        WindowKey {
            year: y,
            month: m,
            day: d,
            hour: h,
        }
    }

    #[test]
    fn w1_daily_utc() {
        let mut w = Windowing::new("UTC", Partition::Daily).unwrap();
        assert_eq!(w.window_of(1_709_078_400_000), Some(key(2024, 2, 28, None)));
        assert_eq!(
            w.window_of(1_709_078_400_000 - 1),
            Some(key(2024, 2, 27, None))
        );
        assert_eq!(
            w.window_of(1_709_078_400_000 + 86_399_999),
            Some(key(2024, 2, 28, None))
        );
        assert_eq!(
            w.window_of(1_709_078_400_000 + 86_400_000),
            Some(key(2024, 2, 29, None))
        );
    }

    #[test]
    fn w1_daily_in_zone() {
        let mut w = Windowing::new("America/New_York", Partition::Daily).unwrap();
        // 2024-02-28T00:00Z is 2024-02-27T19:00 in New York.
        assert_eq!(w.window_of(1_709_078_400_000), Some(key(2024, 2, 27, None)));
        assert_eq!(
            w.window_of(1_709_078_400_000 + 5 * 3_600_000),
            Some(key(2024, 2, 28, None))
        );
    }

    #[test]
    fn w1_repeated_hour_is_one_window() {
        let mut w = Windowing::new("America/New_York", Partition::Hourly).unwrap();
        // 2024-11-03: 01:00–02:00 EDT (05:00Z) and 01:00–02:00 EST (06:00Z).
        let first = Timestamp::from_second(1_730_610_000)
            .unwrap()
            .as_millisecond(); // 05:00Z
        let second = first + 3_600_000; // 06:00Z
        assert_eq!(w.window_of(first), Some(key(2024, 11, 3, Some(1))));
        assert_eq!(w.window_of(second + 1000), Some(key(2024, 11, 3, Some(1))));
        assert_eq!(
            w.window_of(second + 3_600_000),
            Some(key(2024, 11, 3, Some(2)))
        );
        let mut fresh = Windowing::new("America/New_York", Partition::Hourly).unwrap();
        assert_eq!(
            fresh.window_of(second + 1000),
            Some(key(2024, 11, 3, Some(1)))
        );
    }

    #[test]
    fn in3_every_valid_time_up_to_the_end_of_9999_has_a_window() {
        let last_ms = 253_402_300_800_000 - 1; // 9999-12-31T23:59:59.999Z
        for partition in [Partition::Daily, Partition::Hourly] {
            let mut utc = Windowing::new("UTC", partition).unwrap();
            // Timestamps end at 9999-12-30T22:00Z: both sides of that edge, and the
            // whole last day.
            for (ms, day) in [
                (253_402_207_200_000, 30),
                (253_402_207_200_001, 30),
                (253_402_214_400_000 - 1, 30),
                (253_402_214_400_000, 31),
                (last_ms, 31),
            ] {
                let key = utc.window_of(ms).expect("a window in UTC");
                assert_eq!((key.year, key.month, key.day), (9999, 12, day), "{ms}");
            }
            assert_eq!(
                utc.window_of(last_ms).unwrap().hour,
                (partition == Partition::Hourly).then_some(23)
            );
            let mut west = Windowing::new("America/New_York", partition).unwrap();
            assert_eq!(west.window_of(last_ms).unwrap().day, 31);
            // East of UTC the last hours of 9999 are local year 10000: no window.
            let mut east = Windowing::new("Asia/Tokyo", partition).unwrap();
            assert_eq!(east.window_of(last_ms), None);
            let tokyo_10000 = last_ms + 1 - 9 * 3_600_000;
            assert_eq!(east.window_of(tokyo_10000), None);
            assert_eq!(east.window_of(tokyo_10000 - 1).unwrap().day, 31);
        }
    }

    #[test]
    fn folders() {
        let k = key(2024, 1, 3, None);
        assert_eq!(k.folder(Layout::Mixpanel, false), "2024/01/03");
        assert_eq!(k.folder(Layout::Mixpanel, true), "2024/01/03/full_day");
        assert_eq!(k.folder(Layout::Hive, false), "mp_date=2024-01-03");
        // §5: raw daily windows are in `full_day/` in both layouts.
        assert_eq!(k.folder(Layout::Hive, true), "mp_date=2024-01-03/full_day");
        let h = key(2024, 1, 3, Some(7));
        assert_eq!(h.folder(Layout::Mixpanel, true), "2024/01/03/07");
        assert_eq!(
            h.folder(Layout::Hive, false),
            "mp_date=2024-01-03/mp_hour=07"
        );
    }

    #[test]
    fn unknown_zone_is_config_error() {
        assert!(Windowing::new("Mars/Olympus", Partition::Daily)
            .unwrap_err()
            .is_usage());
    }
}
