//! One parsed event line as the language reads it (V2, V2a).

use std::borrow::Cow;

use jiff::tz::TimeZone;
use simd_json::value::tape::Node;

use crate::datetime;
use crate::ops::to_datetime;
use crate::value::Value;

/// One parsed event line as the language sees it.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    /// The tape of the whole line.
    pub nodes: &'a [Node<'a>],
    /// The top-level `event` string.
    pub name: &'a str,
    /// (key, value) node indices of `properties` other than `time` and `distinct_id`,
    /// repeated keys already resolved.
    pub properties: &'a [(usize, usize)],
    /// Node of `properties.time`.
    pub time: Option<usize>,
    /// Node of `properties.distinct_id` (also when it is `null`).
    pub distinct_id: Option<usize>,
}

impl<'a> EventRef<'a> {
    /// An event with no properties: what constant folding evaluates against.
    pub fn empty() -> EventRef<'static> {
        EventRef {
            nodes: &[],
            name: "",
            properties: &[],
            time: None,
            distinct_id: None,
        }
    }

    /// A view of a line validated by [`tidewater_event::LineParser`].
    pub fn from_event(event: &tidewater_event::Event<'a, 'a>) -> EventRef<'a> {
        EventRef {
            nodes: event.nodes,
            name: event.name,
            properties: event.properties,
            time: event.time_node,
            distinct_id: event.distinct_id,
        }
    }

    /// `properties[key]` (V2, V2a).
    pub fn property(&self, key: &str, tz: &TimeZone) -> Value<'a> {
        match key {
            // A profile has no time: its `time` is an ordinary property.
            "time" if self.time.is_none() => self.plain_property(key),
            "time" => self.node_value(self.time),
            "distinct_id" => self.node_value(self.distinct_id),
            "$time" => {
                let raw = match self.time {
                    Some(t) => Value::from_node(self.nodes, t),
                    None => self.plain_property("$time"),
                };
                match raw {
                    Value::Num(n) => datetime::from_number(n).map_or(Value::Undef, Value::Time),
                    other => to_datetime(&other, tz),
                }
            }
            _ => self.plain_property(key),
        }
    }

    fn plain_property(&self, key: &str) -> Value<'a> {
        self.properties
            .iter()
            .find(|&&(k, _)| matches!(self.nodes[k], Node::String(s) if s == key))
            .map_or(Value::Undef, |&(_, v)| Value::from_node(self.nodes, v))
    }

    fn node_value(&self, node: Option<usize>) -> Value<'a> {
        node.map_or(Value::Undef, |i| Value::from_node(self.nodes, i))
    }

    /// `event[key]` (F-event).
    pub fn event_field(&self, key: &str, tz: &TimeZone) -> Value<'a> {
        match key {
            "$time" | "time" => self.property("$time", tz),
            "$event_name" | "name" => Value::Str(Cow::Borrowed(self.name)),
            "$distinct_id" | "distinct_id" => self.property("distinct_id", tz),
            _ => Value::Undef,
        }
    }
}
