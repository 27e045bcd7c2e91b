//! Values of the `where` language (V1) and the event they are read from.
//!
//! Property values are borrowed straight from the parsed line's tape: strings, lists and
//! objects are views, never copies.

use std::borrow::Cow;
use std::sync::Arc;

use jiff::tz::TimeZone;
use simd_json::{value::tape::Node, StaticNode};

use super::datetime;
use crate::parse::{self, span};

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
    nodes: &'a [Node<'a>],
    index: usize,
}

impl<'a> Value<'a> {
    /// The value of the tape node at `i`.
    pub fn from_node(nodes: &'a [Node<'a>], i: usize) -> Value<'a> {
        match &nodes[i] {
            Node::String(s) => Value::Str(Cow::Borrowed(s)),
            Node::Static(StaticNode::Null) => Value::Null,
            Node::Static(StaticNode::Bool(b)) => Value::Bool(*b),
            Node::Static(n) => Value::Num(parse::number_value(n).unwrap_or(f64::NAN)),
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
            Value::Str(s) => parse::write_json_string(out, s),
            Value::List(List::Tape(nodes, i)) => parse::write_compact(out, nodes, *i),
            Value::Obj(o) => parse::write_compact(out, o.nodes, o.index),
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
    fn entries(&self) -> Vec<(&'a str, usize)> {
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

    /// E5: the same key set and pairwise equal values, in any order.
    fn equals(&self, other: &Obj<'a>, tz: &TimeZone) -> bool {
        let (a, b) = (self.entries(), other.entries());
        a.len() == b.len()
            && a.iter().all(|(k, va)| {
                b.iter().find(|(kb, _)| kb == k).is_some_and(|(_, vb)| {
                    equal(
                        &Value::from_node(self.nodes, *va),
                        &Value::from_node(other.nodes, *vb),
                        tz,
                    )
                })
            })
    }
}

/// F-string on numbers: shortest round-trip decimal without exponent, `-0` as `0`.
pub fn number_text(n: f64) -> String {
    if n == 0.0 {
        "0".to_string()
    } else {
        format!("{n}")
    }
}

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

    /// A view of a line validated by [`crate::parse::LineParser`].
    pub fn from_event(event: &crate::parse::Event<'a, 'a>) -> EventRef<'a> {
        EventRef {
            nodes: event.nodes,
            name: event.name,
            properties: event.properties,
            time: Some(event.time_node),
            distinct_id: event.distinct_id,
        }
    }

    /// `properties[key]` (V2, V2a).
    pub fn property(&self, key: &str, tz: &TimeZone) -> Value<'a> {
        match key {
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

/// F-datetime.
pub fn to_datetime<'a>(v: &Value<'a>, tz: &TimeZone) -> Value<'a> {
    let secs = match v {
        Value::Time(t) => Some(*t),
        Value::Num(n) => datetime::from_number(*n),
        Value::Str(s) => datetime::parse(s, tz),
        _ => None,
    };
    secs.map_or(Value::Undef, Value::Time)
}

/// C5: the datetime a string or number compares as, next to a datetime.
fn coerce_time(v: &Value<'_>, tz: &TimeZone) -> Option<i64> {
    match v {
        Value::Num(n) => datetime::from_number(*n),
        Value::Str(s) => datetime::parse(s, tz),
        _ => None,
    }
}

/// `==` (E1–E6, C5).
pub fn equal(a: &Value<'_>, b: &Value<'_>, tz: &TimeZone) -> bool {
    match (a, b) {
        (Value::Undef, Value::Undef) | (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Num(x), Value::Num(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Time(x), Value::Time(y)) => x == y,
        (Value::Time(t), other @ (Value::Str(_) | Value::Num(_)))
        | (other @ (Value::Str(_) | Value::Num(_)), Value::Time(t)) => {
            coerce_time(other, tz) == Some(*t)
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.items().zip(y.items()).all(|(p, q)| equal(&p, &q, tz))
        }
        (Value::Obj(x), Value::Obj(y)) => x.equals(y, tz),
        _ => false,
    }
}

/// `<`, `<=`, `>`, `>=` (C1–C5): a boolean, or undefined when the types do not order.
pub fn ordering(a: &Value<'_>, b: &Value<'_>, tz: &TimeZone) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp(y)),
        (Value::Time(t), other @ (Value::Str(_) | Value::Num(_))) => {
            Some(t.cmp(&coerce_time(other, tz)?))
        }
        (other @ (Value::Str(_) | Value::Num(_)), Value::Time(t)) => {
            Some(coerce_time(other, tz)?.cmp(t))
        }
        _ => None,
    }
}

/// `in` (I1–I4).
pub fn contains<'a>(needle: &Value<'_>, hay: &Value<'_>, tz: &TimeZone) -> Value<'a> {
    match (needle, hay) {
        (Value::Str(n), Value::Str(h)) => Value::Bool(h.contains(n.as_ref())),
        (Value::List(n), Value::List(h)) => {
            Value::Bool(n.items().any(|x| h.items().any(|y| equal(&x, &y, tz))))
        }
        (n, Value::List(h)) => Value::Bool(h.items().any(|y| equal(n, &y, tz))),
        _ => Value::Undef,
    }
}

/// A number result, undefined when not finite (A6).
fn finite<'a>(n: f64) -> Value<'a> {
    if n.is_finite() {
        Value::Num(n)
    } else {
        Value::Undef
    }
}

/// `+`, `-`, `*`, `/`, `%` (A1–A6).
pub fn arithmetic<'a>(op: super::ast::BinOp, a: &Value<'a>, b: &Value<'a>) -> Value<'a> {
    use super::ast::BinOp;
    match (op, a, b) {
        (BinOp::Add, Value::Str(x), Value::Str(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Value::Str(Cow::Owned(s))
        }
        (_, Value::Num(x), Value::Num(y)) => match op {
            BinOp::Add => finite(x + y),
            BinOp::Sub => finite(x - y),
            BinOp::Mul => finite(x * y),
            BinOp::Div | BinOp::Mod if *y == 0.0 => Value::Undef,
            BinOp::Div => finite(x / y),
            BinOp::Mod => finite(x % y),
            _ => unreachable!("not an arithmetic operator"),
        },
        _ => Value::Undef,
    }
}

/// Applies a comparison or `in` operator.
pub fn compare<'a>(
    op: super::ast::BinOp,
    a: &Value<'a>,
    b: &Value<'a>,
    tz: &TimeZone,
) -> Value<'a> {
    use super::ast::BinOp;
    use std::cmp::Ordering::*;
    match op {
        BinOp::Eq => Value::Bool(equal(a, b, tz)),
        BinOp::Ne => Value::Bool(!equal(a, b, tz)),
        BinOp::In => contains(a, b, tz),
        BinOp::NotIn => not(&contains(a, b, tz)),
        _ => match ordering(a, b, tz) {
            None => Value::Undef,
            Some(o) => Value::Bool(match op {
                BinOp::Lt => o == Less,
                BinOp::Le => o != Greater,
                BinOp::Gt => o == Greater,
                BinOp::Ge => o != Less,
                _ => unreachable!("not a comparison"),
            }),
        },
    }
}

/// Applies any binary operator other than `and`/`or`.
pub fn binary<'a>(op: super::ast::BinOp, a: &Value<'a>, b: &Value<'a>, tz: &TimeZone) -> Value<'a> {
    use super::ast::BinOp;
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => arithmetic(op, a, b),
        _ => compare(op, a, b, tz),
    }
}

/// `not` (B5, B2).
pub fn not<'a>(v: &Value<'_>) -> Value<'a> {
    match v {
        Value::Bool(b) => Value::Bool(!b),
        Value::Undef | Value::Null => Value::Bool(true),
        _ => Value::Undef,
    }
}

/// Unary minus (A5).
pub fn negate<'a>(v: &Value<'_>) -> Value<'a> {
    match v {
        Value::Num(n) => Value::Num(-n),
        _ => Value::Undef,
    }
}

/// An `and`/`or` operand as a logical value (B1–B3).
pub fn logical(v: &Value<'_>, operator: &'static str) -> Result<bool, super::RuntimeError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Undef | Value::Null => Ok(false),
        other => Err(super::RuntimeError {
            operator,
            operand: other.type_name(),
        }),
    }
}

/// `x["key"]` (V3).
pub fn index<'a>(v: &Value<'a>, key: &str) -> Value<'a> {
    match v {
        Value::Obj(o) => o.get(key),
        _ => Value::Undef,
    }
}

/// F-number's string grammar: `[+-]? (digits ["." [digits]] | "." digits) [(e|E) [+-]? digits]`.
fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int = digits(&mut i);
    let mut frac = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac = digits(&mut i);
    }
    if int == 0 && frac == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// The one-argument functions and `has_prefix`/`has_suffix` (§7). `string(x, d)` and
/// `any`/`all` are evaluated lazily by their callers.
pub fn call<'a>(func: super::ast::Func, args: &[Value<'a>], tz: &TimeZone) -> Value<'a> {
    use super::ast::Func;
    let x = &args[0];
    match func {
        Func::Defined => Value::Bool(!matches!(x, Value::Undef | Value::Null)),
        Func::Boolean => Value::Bool(match x {
            Value::Bool(b) => *b,
            Value::Undef | Value::Null => false,
            Value::Num(n) => *n != 0.0,
            Value::Str(s) => !(s.is_empty() || s == "false"),
            Value::List(_) | Value::Obj(_) | Value::Time(_) => true,
        }),
        Func::Number => match x {
            Value::Num(n) => Value::Num(*n),
            Value::Bool(b) => Value::Num(if *b { 1.0 } else { 0.0 }),
            Value::Str(s) => parse_number(s).map_or(Value::Undef, Value::Num),
            Value::Time(t) => Value::Num(*t as f64),
            _ => Value::Undef,
        },
        Func::String => to_string(x, tz),
        Func::Datetime => to_datetime(x, tz),
        Func::List => match x {
            Value::List(_) => x.clone(),
            _ => Value::Undef,
        },
        Func::Floor | Func::Round | Func::Ceil => match x {
            Value::Num(n) => Value::Num(match func {
                Func::Floor => n.floor(),
                Func::Ceil => n.ceil(),
                _ => n.round(),
            }),
            _ => Value::Undef,
        },
        Func::HasPrefix | Func::HasSuffix => match (x, &args[1]) {
            (Value::Str(s), Value::Str(p)) => {
                let (s, p) = (s.to_lowercase(), p.to_lowercase());
                Value::Bool(if func == Func::HasPrefix {
                    s.starts_with(&p)
                } else {
                    s.ends_with(&p)
                })
            }
            _ => Value::Undef,
        },
    }
}

/// F-string.
pub fn to_string<'a>(x: &Value<'a>, tz: &TimeZone) -> Value<'a> {
    match x {
        Value::Str(_) | Value::Null | Value::Undef => x.clone(),
        Value::Num(n) => Value::Str(Cow::Owned(number_text(*n))),
        Value::Bool(b) => Value::Str(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::List(_) | Value::Obj(_) => Value::Undef,
        Value::Time(t) => {
            datetime::format(*t, tz).map_or(Value::Undef, |s| Value::Str(Cow::Owned(s)))
        }
    }
}
