//! Datetimes of the `where` language (§8): whole seconds since the Unix epoch.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// F-datetime on a number: 1..=4294967295 are seconds, larger values milliseconds,
/// anything below 1 is undefined.
pub fn from_number(n: f64) -> Option<i64> {
    if (1.0..=4_294_967_295.0).contains(&n) {
        Some(n.floor() as i64)
    } else if n > 4_294_967_295.0 {
        // `as` saturates: absurd values stay ordered and fail to format, never wrap.
        Some((n / 1000.0).floor() as i64)
    } else {
        None
    }
}

/// F-datetime on a string: `YYYY-M[M]-D[D]`, optionally followed by `T` or a space,
/// `H[H]:MM[:SS[.fraction]]` and a zone (`Z`, `±HH:MM`, `±HHMM`). Without a zone the time
/// is read in `tz`. Anything else, or an impossible date or time, is undefined.
pub fn parse(s: &str, tz: &TimeZone) -> Option<i64> {
    if !looks_like_date(s) {
        return None;
    }
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = c.digits(4, 4)? as i16;
    c.byte(b'-')?;
    let month = c.digits(1, 2)? as i8;
    c.byte(b'-')?;
    let day = c.digits(1, 2)? as i8;
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    let mut offset = None;
    if !c.done() {
        if !(c.byte(b'T').is_some() || c.byte(b' ').is_some()) {
            return None;
        }
        hour = c.digits(1, 2)? as i8;
        c.byte(b':')?;
        minute = c.digits(2, 2)? as i8;
        if c.byte(b':').is_some() {
            second = c.digits(2, 2)? as i8;
            if c.byte(b'.').is_some() {
                // Whole-second resolution: the fraction is dropped.
                c.digits(1, usize::MAX)?;
            }
        }
        if !c.done() {
            offset = Some(c.zone()?);
        }
        if !c.done() {
            return None;
        }
    }
    if !(0..=23).contains(&hour) || !(0..=59).contains(&minute) || !(0..=59).contains(&second) {
        return None;
    }
    let dt = DateTime::new(year, month, day, hour, minute, second, 0).ok()?;
    let ts = match offset {
        Some(seconds) => Offset::from_seconds(seconds).ok()?.to_timestamp(dt).ok()?,
        None => tz.to_ambiguous_timestamp(dt).compatible().ok()?,
    };
    Some(ts.as_second())
}

/// Whether a string may be a datetime, cheaply (§11: parse lazily, only when it looks
/// like `\d{4}-`).
pub fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// `YYYY-MM-DDTHH:MM:SS` in `tz`, or `None` outside the calendar's range.
pub fn format(seconds: i64, tz: &TimeZone) -> Option<String> {
    let dt = Timestamp::from_second(seconds).ok()?.to_zoned(tz.clone());
    let dt = dt.datetime();
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    ))
}

struct Cursor<'s> {
    b: &'s [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i == self.b.len()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&want)).then(|| self.i += 1)
    }

    /// Between `min` and `max` ASCII digits, as a number (saturating for long fractions).
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        let mut value: i64 = 0;
        while self.i < self.b.len() && self.i - start < max && self.b[self.i].is_ascii_digit() {
            value = value
                .saturating_mul(10)
                .saturating_add(i64::from(self.b[self.i] - b'0'));
            self.i += 1;
        }
        (self.i - start >= min).then_some(value)
    }

    /// `Z` or `±HH[:]MM`, as seconds east of UTC.
    fn zone(&mut self) -> Option<i32> {
        if self.byte(b'Z').is_some() {
            return Some(0);
        }
        let sign = match self.b.get(self.i)? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.i += 1;
        let hours = self.digits(2, 2)?;
        let _ = self.byte(b':');
        let minutes = self.digits(2, 2)?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        Some(sign * (hours * 3600 + minutes * 60) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms() {
        let utc = TimeZone::UTC;
        assert_eq!(parse("2020-10-13", &utc), Some(1_602_547_200));
        assert_eq!(parse("2014-09-9", &utc), Some(1_410_220_800));
        assert_eq!(parse("2020-10-13T18:15:11", &utc), Some(1_602_612_911));
        assert_eq!(parse("2020-10-13 18:15", &utc), Some(1_602_612_900));
        assert_eq!(parse("2020-10-13T18:15:11.999Z", &utc), Some(1_602_612_911));
        assert_eq!(
            parse("2020-10-13T20:15:11+02:00", &utc),
            Some(1_602_612_911)
        );
        assert_eq!(parse("2020-10-13T20:15:11+0200", &utc), Some(1_602_612_911));
        for bad in [
            "2020-02-30",
            "2020-10-13T25:00:00",
            "2020-13-01",
            "2020-10-13T",
            "20-10-13",
            "2020-10-13x",
            "2020-10-13T10:5",
            "2020-10-13T10:00:60",
            "",
        ] {
            assert_eq!(parse(bad, &utc), None, "{bad}");
        }
        assert_eq!(parse("2020-02-29", &utc), Some(1_582_934_400));
        let ny = jiff::tz::TimeZone::get("America/New_York").unwrap();
        assert_eq!(parse("2020-10-13", &ny), Some(1_602_547_200 + 4 * 3600));
    }

    #[test]
    fn number_forms() {
        assert_eq!(from_number(1.9), Some(1));
        assert_eq!(from_number(4_294_967_295.0), Some(4_294_967_295));
        assert_eq!(from_number(1_602_611_311_874.0), Some(1_602_611_311));
        assert_eq!(from_number(0.5), None);
        assert_eq!(from_number(-5.0), None);
        assert_eq!(
            format(1_602_612_911, &TimeZone::UTC).as_deref(),
            Some("2020-10-13T18:15:11")
        );
        assert_eq!(format(i64::MAX, &TimeZone::UTC), None);
    }
}
