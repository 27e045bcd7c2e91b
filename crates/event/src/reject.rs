//! Why a line is rejected (IN4), and a rejected line as the rejects file records it.

/// Nesting deeper than this makes a line invalid (IN2).
pub const MAX_DEPTH: usize = 1000;

/// Why a line was rejected (IN4). The text goes into the rejects file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// Not valid JSON (RFC 8259), with the parser's message.
    InvalidJson(String),
    /// Valid JSON nested deeper than 1,000 levels.
    TooDeep,
    /// The top-level value is not an object.
    NotAnObject,
    /// `event` is missing or not a string.
    MissingEvent,
    /// `properties` is missing or not an object.
    MissingProperties,
    /// `properties.time` is missing.
    MissingTime,
    /// `properties.time` is not a number.
    NonNumericTime,
    /// `properties.time` is negative.
    NegativeTime,
    /// `properties.time` is at or after the year 10000.
    TimeOutOfRange,
    /// `properties.time` (ms) falls in a local year after 9999 in the run's time zone,
    /// which no window folder can name.
    NoWindow { time_ms: i64, tz: String },
    /// The line is longer than the configured limit.
    Oversized(u64),
    /// A profile line has no `$distinct_id`, or it is null.
    MissingProfileId,
    /// A profile line's `$properties` is missing or not an object.
    MissingProfileProperties,
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::InvalidJson(m) => write!(f, "invalid JSON: {m}"),
            RejectReason::TooDeep => {
                write!(f, "invalid JSON: nesting deeper than {MAX_DEPTH} levels")
            }
            RejectReason::NotAnObject => write!(f, "not a JSON object"),
            RejectReason::MissingEvent => write!(f, "missing or non-string \"event\""),
            RejectReason::MissingProperties => write!(f, "missing or non-object \"properties\""),
            RejectReason::MissingTime => write!(f, "missing properties.time"),
            RejectReason::NonNumericTime => write!(f, "non-numeric properties.time"),
            RejectReason::NegativeTime => write!(f, "negative properties.time"),
            RejectReason::TimeOutOfRange => write!(f, "properties.time at or after the year 10000"),
            RejectReason::NoWindow { time_ms, tz } => write!(
                f,
                "properties.time {time_ms} ms is in the year 10000 in time zone {tz}, which no window can hold"
            ),
            RejectReason::Oversized(n) => {
                write!(f, "line of {n} bytes exceeds the maximum line length")
            }
            RejectReason::MissingProfileId => {
                write!(f, "profile without \"$distinct_id\" (or it is null)")
            }
            RejectReason::MissingProfileProperties => {
                write!(f, "profile with a missing or non-object \"$properties\"")
            }
        }
    }
}

/// A rejected line, as the rejects file records it (output-format §7).
#[derive(Debug, Clone)]
pub struct Reject {
    /// Index of the input.
    pub input: usize,
    /// Physical line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The line exactly as read, without its trailing `\r` (for an oversized line, its
    /// first bytes).
    pub raw: Vec<u8>,
}
