//! Values of the `where` language (V1) and the event they are read from.
//!
//! Property values are borrowed straight from the parsed line's tape: strings, lists and
//! objects are views, never copies.

use std::borrow::Cow;
use std::sync::Arc;

use jiff::tz::TimeZone;
use simd_json::{value::tape::Node, StaticNode};

use crate::datetime;
use crate::number::number_text;
use tidewater_event::{number_value, span, write_compact, write_json_string};

/// A value (V1).
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    List(List<'a>),
    Obj(Obj<'a>),
    /// Whole seconds since the Unix epoch.
    Time(i64),
}

/// A list: a JSON array on the tape, or one built by the expression.
#[derive(Debug, Clone)]
pub enum List<'a> {
    Tape(&'a [Node<'a>], usize),
    Owned(Arc<[Value<'a>]>),
}

/// A JSON object on the tape.
#[derive(Debug, Clone, Copy)]
pub struct Obj<'a> {
    pub(crate) nodes: &'a [Node<'a>],
    index: usize,
}

impl<'a> Value<'a> {
    /// The value of the tape node at `i`.
    pub fn from_node(nodes: &'a [Node<'a>], i: usize) -> Value<'a> {
        match &nodes[i] {
            Node::String(s) => Value::Str(Cow::Borrowed(s)),
            Node::Static(StaticNode::Null) => Value::Null,
            Node::Static(StaticNode::Bool(b)) => Value::Bool(*b),
            Node::Static(n) => Value::Num(number_value(n).unwrap_or(f64::NAN)),
            Node::Array { .. } => Value::List(List::Tape(nodes, i)),
            Node::Object { .. } => Value::Obj(Obj { nodes, index: i }),
        }
    }

    /// The type's name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undef => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Num(_) => "number",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Obj(_) => "object",
            Value::Time(_) => "datetime",
        }
    }

    /// Whether this is the boolean `true` (T1).
    pub fn is_true(&self) -> bool {
        matches!(self, Value::Bool(true))
    }

    /// A value that borrows nothing: constants kept by the compiled program. Tape views
    /// cannot occur in constants (they need an event) and become undefined.
    pub fn into_static(self) -> Value<'static> {
        match self {
            Value::Undef => Value::Undef,
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Num(n) => Value::Num(n),
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::List(List::Owned(items)) => Value::List(List::Owned(
                items.iter().map(|v| v.clone().into_static()).collect(),
            )),
            Value::List(List::Tape(..)) | Value::Obj(_) => Value::Undef,
            Value::Time(t) => Value::Time(t),
        }
    }

    /// The value as an expression-like text for `where eval`: `true`, `null`, `18`,
    /// `"text"`, `[1,"a"]`, `{"k":1}`, `datetime("2020-10-13T18:15:11")`.
    pub fn render(&self, tz: &TimeZone) -> String {
        let mut out = Vec::new();
        self.render_into(&mut out, tz);
        String::from_utf8(out).expect("rendering writes UTF-8")
    }

    fn render_into(&self, out: &mut Vec<u8>, tz: &TimeZone) {
        match self {
            Value::Undef => out.extend_from_slice(b"undefined"),
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Num(n) => out.extend_from_slice(number_text(*n).as_bytes()),
            Value::Str(s) => write_json_string(out, s),
            Value::List(List::Tape(nodes, i)) => write_compact(out, nodes, *i),
            Value::Obj(o) => write_compact(out, o.nodes, o.index),
            Value::List(List::Owned(items)) => {
                out.push(b'[');
                for (n, v) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    v.render_into(out, tz);
                }
                out.push(b']');
            }
            Value::Time(t) => match datetime::format(*t, tz) {
                Some(text) => {
                    out.extend_from_slice(b"datetime(\"");
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\")");
                }
                None => out.extend_from_slice(format!("datetime({t})").as_bytes()),
            },
        }
    }
}

impl<'a> List<'a> {
    /// The elements, in order.
    pub fn items(&self) -> ListItems<'a, '_> {
        match self {
            List::Tape(nodes, i) => {
                let len = match nodes[*i] {
                    Node::Array { len, .. } => len,
                    _ => 0,
                };
                ListItems::Tape {
                    nodes,
                    next: i + 1,
                    left: len,
                }
            }
            List::Owned(items) => ListItems::Owned(items.iter()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            List::Tape(nodes, i) => match nodes[*i] {
                Node::Array { len, .. } => len,
                _ => 0,
            },
            List::Owned(items) => items.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over a list's elements.
pub enum ListItems<'a, 'l> {
    Tape {
        nodes: &'a [Node<'a>],
        next: usize,
        left: usize,
    },
    Owned(std::slice::Iter<'l, Value<'a>>),
}

impl<'a> Iterator for ListItems<'a, '_> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        match self {
            ListItems::Tape { nodes, next, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let i = *next;
                *next += span(nodes, i);
                Some(Value::from_node(nodes, i))
            }
            ListItems::Owned(it) => it.next().cloned(),
        }
    }
}

impl<'a> Obj<'a> {
    /// (key, value node) pairs with repeated keys resolved: the last value wins (IN2).
    pub(crate) fn entries(&self) -> Vec<(&'a str, usize)> {
        let Node::Object { len, .. } = self.nodes[self.index] else {
            return Vec::new();
        };
        let mut out: Vec<(&'a str, usize)> = Vec::with_capacity(len);
        let mut i = self.index + 1;
        for _ in 0..len {
            let Node::String(key) = self.nodes[i] else {
                unreachable!("object keys on the tape are strings")
            };
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = i + 1,
                None => out.push((key, i + 1)),
            }
            i += 1 + span(self.nodes, i + 1);
        }
        out
    }

    /// The member `key` (V3), undefined when absent. Repeated keys: the last wins.
    pub fn get(&self, key: &str) -> Value<'a> {
        let Node::Object { len, .. } = self.nodes[self.index] else {
            return Value::Undef;
        };
        let mut found = None;
        let mut i = self.index + 1;
        for _ in 0..len {
            if matches!(self.nodes[i], Node::String(k) if k == key) {
                found = Some(i + 1);
            }
            i += 1 + span(self.nodes, i + 1);
        }
        found.map_or(Value::Undef, |v| Value::from_node(self.nodes, v))
    }
}
