//! Filter: decides which events are kept (output-format F1–F4).
//!
//! The event-name whitelist (F1) is checked twice: first on the raw line, before any
//! parsing, when the line starts the way Mixpanel writes it (`{"event":"<name>"`), so
//! dropped lines cost almost nothing (F4); then on the parsed event for lines written any
//! other way. The `where` expression (F2) plugs into [`EventFilter::keep`].

use rustc_hash::FxHashSet;

use crate::parse::Event;

/// The compiled filter of a run, shared by all workers.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    events: Option<FxHashSet<String>>,
}

/// The verdict of the cheap pre-check on a raw line.
#[derive(Debug, PartialEq, Eq)]
pub enum Precheck {
    /// The event name is known and not listed: drop without parsing (F4).
    Drop,
    /// Parse the line and decide on the parsed event.
    Parse,
}

impl EventFilter {
    /// A filter with an optional event-name whitelist (empty means all events).
    pub fn new(events: &[String]) -> Self {
        let events = (!events.is_empty()).then(|| events.iter().cloned().collect());
        EventFilter { events }
    }

    /// Whether any filtering happens at all.
    pub fn is_pass_all(&self) -> bool {
        self.events.is_none()
    }

    /// F4: with a whitelist, reads the event name from the start of the line when it is
    /// written plainly (no escapes) and drops unlisted events without validating them.
    pub fn precheck(&self, line: &[u8]) -> Precheck {
        let Some(events) = &self.events else {
            return Precheck::Parse;
        };
        let Some(rest) = line.strip_prefix(b"{\"event\":\"") else {
            return Precheck::Parse;
        };
        let Some(end) = memchr::memchr2(b'"', b'\\', rest) else {
            return Precheck::Parse;
        };
        if rest[end] != b'"' {
            return Precheck::Parse;
        }
        // Mixpanel writes "event" once, first. A line that repeats the key later (IN2:
        // the last wins) is judged by its first name here, which F4 allows: a dropped
        // line is never validated, and counts as filtered.
        match std::str::from_utf8(&rest[..end]) {
            Ok(name) if !events.contains(name) => Precheck::Drop,
            _ => Precheck::Parse,
        }
    }

    /// F1–F3 on a parsed event. `where` (F2) will be evaluated here as well.
    pub fn keep(&self, event: &Event<'_, '_>) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.contains(event.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::LineParser;

    #[test]
    fn f1_whitelist_exact_and_case_sensitive() {
        let f = EventFilter::new(&["Signup".to_string()]);
        let mut p = LineParser::default();
        let keep =
            |line: &str, p: &mut LineParser| p.parse(line.as_bytes(), |e| f.keep(e)).unwrap();
        assert!(keep(
            r#"{"event":"Signup","properties":{"time":1}}"#,
            &mut p
        ));
        assert!(!keep(
            r#"{"event":"signup","properties":{"time":1}}"#,
            &mut p
        ));
        assert!(!keep(
            r#"{"properties":{"time":1},"event":"Other"}"#,
            &mut p
        ));
    }

    #[test]
    fn f1_empty_whitelist_keeps_all() {
        let f = EventFilter::new(&[]);
        assert!(f.is_pass_all());
        assert_eq!(f.precheck(br#"{"event":"x"#), Precheck::Parse);
    }

    #[test]
    fn f4_precheck_drops_unlisted_without_validating() {
        let f = EventFilter::new(&["A".to_string()]);
        assert_eq!(
            f.precheck(br#"{"event":"B","properties":{"time":"broken"#),
            Precheck::Drop
        );
        assert_eq!(
            f.precheck(br#"{"event":"A","properties":{}}"#),
            Precheck::Parse
        );
        // Escaped names and other layouts fall back to a full parse.
        assert_eq!(
            f.precheck(br#"{"event":"B\u0041","properties":{}}"#),
            Precheck::Parse
        );
        assert_eq!(f.precheck(br#"{ "event":"B"}"#), Precheck::Parse);
    }
}
