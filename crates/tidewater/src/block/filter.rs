//! Filter: decides which events are kept (output-format F1–F4).
//!
//! The event-name whitelist (F1) is checked twice: first on the raw line, before any
//! parsing, when the line starts the way Mixpanel writes it (`{"event":"<name>"`), so
//! dropped lines cost almost nothing (F4); then on the parsed event for lines written any
//! other way. The compiled `where` program (F2) runs last, on events the whitelist kept
//! (F3), before any schema decision.

use std::sync::Arc;

use rustc_hash::FxHashSet;

use tidewater_event::Event;
use tidewater_where::{EventRef, Program, RuntimeError, Scratch};

/// The compiled filter of a run, shared by all workers.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    events: Option<FxHashSet<String>>,
    program: Option<Arc<Program>>,
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
        EventFilter {
            events,
            program: None,
        }
    }

    /// Adds a compiled `where` program (F2).
    pub fn with_where(mut self, program: Program) -> Self {
        self.program = Some(Arc::new(program));
        self
    }

    /// Whether any filtering happens at all.
    pub fn is_pass_all(&self) -> bool {
        self.events.is_none() && self.program.is_none()
    }

    /// F4: with a whitelist, reads the event name from the start of the line when it is
    /// written plainly (no escapes) and drops unlisted events without validating them.
    pub fn precheck(&self, line: &[u8]) -> Precheck {
        match self.unlisted_name(line) {
            Some(_) => Precheck::Drop,
            None => Precheck::Parse,
        }
    }

    /// The event name of a line that [`EventFilter::precheck`] drops, read once for the
    /// drop and for the run's sample of unlisted names.
    pub fn unlisted_name<'l>(&self, line: &'l [u8]) -> Option<&'l str> {
        let events = self.events.as_ref()?;
        // The name is the line's final one (no later `event` key can override it), so
        // F4 allows dropping it unvalidated: it counts as filtered.
        let name = std::str::from_utf8(tidewater_event::written_event_name(line)?).ok()?;
        (!events.contains(name)).then_some(name)
    }

    /// Whether the whitelist lets an event name through (F1); true without one.
    pub fn lists(&self, name: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|events| events.contains(name))
    }

    /// The whitelist, sorted; empty when every event passes it.
    pub fn whitelist(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.events.iter().flatten().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// F1–F3 on a parsed event: the whitelist, then `where`. An error is a `where`
    /// runtime error (B3) on this event; the caller applies the run's policy.
    pub fn keep(&self, event: &Event<'_, '_>, scratch: &mut Scratch) -> Result<bool, RuntimeError> {
        if !self.lists(event.name) {
            return Ok(false);
        }
        self.passes_where(event, scratch)
    }

    /// F2 alone, for callers that applied the whitelist themselves ([`EventFilter::lists`]).
    pub fn passes_where(
        &self,
        event: &Event<'_, '_>,
        scratch: &mut Scratch,
    ) -> Result<bool, RuntimeError> {
        match &self.program {
            None => Ok(true),
            Some(program) => program.matches(&EventRef::from_event(event), scratch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewater_event::LineParser;

    #[test]
    fn f1_whitelist_exact_and_case_sensitive() {
        let f = EventFilter::new(&["Signup".to_string()]);
        let mut p = LineParser::default();
        let keep = |line: &str, p: &mut LineParser| {
            p.parse(line.as_bytes(), |e| f.keep(e, &mut Scratch::default()))
                .unwrap()
                .unwrap()
        };
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

    #[test]
    fn f4_a_name_that_a_later_event_key_overrides_is_not_known_yet() {
        let f = EventFilter::new(&["Signup".to_string()]);
        // IN2: the last `event` wins, so this line is a Signup.
        let repeated = br#"{"event":"Other","properties":{"time":1709078400},"event":"Signup"}"#;
        assert_eq!(f.precheck(repeated), Precheck::Parse);
        let escaped = br#"{"event":"Other","properties":{"time":1},"\u0065vent":"Signup"}"#;
        assert_eq!(f.precheck(escaped), Precheck::Parse);
        let mut p = LineParser::default();
        for line in [&repeated[..], &escaped[..]] {
            let kept = p.parse(line, |e| f.keep(e, &mut Scratch::default()));
            assert!(kept.unwrap().unwrap());
        }
    }

    #[test]
    fn in2_a_control_character_in_the_name_is_parsed_and_rejected() {
        let f = EventFilter::new(&["Signup".to_string()]);
        let line = b"{\"event\":\"tab\there\",\"properties\":{\"time\":1}}";
        assert_eq!(f.precheck(line), Precheck::Parse);
        assert!(LineParser::default().parse(line, |_| ()).is_err());
    }
}

#[cfg(test)]
mod where_tests {
    use super::*;
    use tidewater_event::LineParser;
    use tidewater_where::{compile, Context};

    #[test]
    fn f3_whitelist_and_where_both_apply() {
        let program = compile(r#"properties["n"] > 1"#, Context::new("UTC").unwrap()).unwrap();
        let f = EventFilter::new(&["A".to_string()]).with_where(program);
        assert!(!f.is_pass_all());
        let mut p = LineParser::default();
        let mut scratch = Scratch::default();
        let mut keep = |line: &str| {
            p.parse(line.as_bytes(), |e| f.keep(e, &mut scratch))
                .unwrap()
                .unwrap()
        };
        assert!(keep(r#"{"event":"A","properties":{"time":1,"n":2}}"#));
        assert!(!keep(r#"{"event":"A","properties":{"time":1,"n":1}}"#));
        assert!(!keep(r#"{"event":"B","properties":{"time":1,"n":2}}"#));
    }
}
