//! The operators and functions of the language on values (§4–§7): what the VM and the
//! reference interpreter both apply.

use std::borrow::Cow;

use jiff::tz::TimeZone;

use crate::ast::{BinOp, Func};
use crate::datetime;
use crate::number::{number_text, parse_number};
use crate::value::{Obj, Value};
use crate::RuntimeError;

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
        (Value::Obj(x), Value::Obj(y)) => objects_equal(x, y, tz),
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
pub fn arithmetic<'a>(op: BinOp, a: &Value<'a>, b: &Value<'a>) -> Value<'a> {
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
pub fn compare<'a>(op: BinOp, a: &Value<'a>, b: &Value<'a>, tz: &TimeZone) -> Value<'a> {
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
pub fn binary<'a>(op: BinOp, a: &Value<'a>, b: &Value<'a>, tz: &TimeZone) -> Value<'a> {
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
pub fn logical(v: &Value<'_>, operator: &'static str) -> Result<bool, RuntimeError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Undef | Value::Null => Ok(false),
        other => Err(RuntimeError {
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

/// The one-argument functions and `has_prefix`/`has_suffix` (§7). `string(x, d)` and
/// `any`/`all` are evaluated lazily by their callers.
pub fn call<'a>(func: Func, args: &[Value<'a>], tz: &TimeZone) -> Value<'a> {
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

/// E5: the same key set and pairwise equal values, in any order.
fn objects_equal(a: &Obj<'_>, b: &Obj<'_>, tz: &TimeZone) -> bool {
    let (ea, eb) = (a.entries(), b.entries());
    ea.len() == eb.len()
        && ea.iter().all(|(k, va)| {
            eb.iter().find(|(kb, _)| kb == k).is_some_and(|(_, vb)| {
                equal(
                    &Value::from_node(a.nodes, *va),
                    &Value::from_node(b.nodes, *vb),
                    tz,
                )
            })
        })
}
