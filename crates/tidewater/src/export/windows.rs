//! The windows an export asks for: one request and one unit of commit each (XC1).

use jiff::civil::Date;

use crate::error::{Error, Result};
use crate::field::Field;

/// A planned window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub from: Date,
    pub to: Date,
    /// `[start, end)` in ms in the project's time zone.
    pub range: (i64, i64),
    /// The part of `range` that is kept and committed, with the suffix that names it
    /// (`T05` for an hour); `None`: all of it.
    pub within: Option<((i64, i64), String)>,
}

impl Window {
    /// `YYYY-MM-DD`, or `YYYY-MM-DD..YYYY-MM-DD` for several days, with the suffix of
    /// the part kept (`2024-01-02T05`).
    pub fn label(&self) -> String {
        if self.from == self.to {
            format!("{}{}", self.from, self.suffix())
        } else {
            format!("{}..{}{}", self.from, self.to, self.suffix())
        }
    }

    /// The window's name in the resume ledger.
    pub fn ledger_name(&self) -> String {
        if self.from == self.to {
            format!("{}{}", self.from, self.suffix())
        } else {
            format!("{}_{}{}", self.from, self.to, self.suffix())
        }
    }

    fn suffix(&self) -> &str {
        self.within.as_ref().map_or("", |(_, s)| s.as_str())
    }

    /// The range kept and committed.
    pub fn kept(&self) -> (i64, i64) {
        self.within.as_ref().map_or(self.range, |(r, _)| *r)
    }
}

/// Splits `from..=to` into windows of `window_days` days of the time zone `tz`, each
/// with its `[start, end)` in ms.
pub(crate) fn plan_windows(
    tz: &str,
    from: Date,
    to: Date,
    window_days: u32,
) -> Result<Vec<Window>> {
    let zone = jiff::tz::TimeZone::get(tz)
        .map_err(|e| Error::config(Field::Tz, format!("unknown time zone {:?} ({e})", tz)))?;
    let start_of = |d: Date| -> Result<i64> {
        zone.to_ambiguous_zoned(d.to_datetime(jiff::civil::Time::midnight()))
            .compatible()
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|e| Error::config(Field::Tz, e.to_string()))
    };
    let mut windows = Vec::new();
    let mut day = from;
    while day <= to {
        let last = day
            .checked_add(jiff::Span::new().days(i64::from(window_days) - 1))
            .unwrap_or(to)
            .min(to);
        let next = last
            .tomorrow()
            .map_err(|e| Error::config(Field::To, e.to_string()))?;
        windows.push(Window {
            from: day,
            to: last,
            range: (start_of(day)?, start_of(next)?),
            within: None,
        });
        day = next;
    }
    Ok(windows)
}
