//! One Mixpanel event line: parsed into a simd-json tape and validated per
//! output-format IN2–IN4 (`line`), the reasons a line is rejected (`reject`), and
//! JSON text written back out as Mixpanel's compact JSON (`json_text`), and tape
//! helpers (`tape`).
//!
//! ```
//! use tidewater_event::LineParser;
//!
//! let mut parser = LineParser::default();
//! let name = parser
//!     .parse(br#"{"event":"Signup","properties":{"time":1709078400,"plan":"pro"}}"#, |e| {
//!         (e.name.to_string(), e.time_ms)
//!     })
//!     .unwrap();
//! assert_eq!(name, ("Signup".to_string(), 1_709_078_400_000));
//! ```

mod json_text;
mod line;
mod reject;
mod swar;
mod tape;

pub use json_text::{
    decimal_digits, number_value, plain_decimal, write_compact, write_f64, write_json_string,
    write_number,
};
pub use line::{written_event_name, Event, LineKind, LineParser};
pub use reject::{Reject, RejectReason, MAX_DEPTH};
pub use tape::{hash_key, object_entries, span, EntryScratch};
