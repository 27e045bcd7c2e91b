//! JSON text out: numbers and strings written as Mixpanel's compact JSON (T3), and
//! compact re-encoding of a tape value.

use simd_json::{value::tape::Node, StaticNode};

use crate::swar::has_byte_to_escape;
use crate::tape::{has_duplicate_keys, key_of, object_entries, span, EntryScratch};

/// Splits a non-negative JSON number's text (ryu's `123.45`, `1e21`, `1.5e-7`, or a
/// number as written, `17090784.00123e2`) into significant digits without leading or
/// trailing zeros (`"0"` for zero) and a power of ten: value = digits × 10^exp. An
/// exponent is saturated far beyond any that a finite double needs.
pub fn decimal_digits(text: &str) -> (String, i32) {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(p) => (&text[..p], saturated_exponent(&text[p + 1..])),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let frac = frac.trim_end_matches('0');
    let mut digits = format!("{int}{frac}");
    let mut exp = exp - frac.len() as i32;
    let trimmed = digits.trim_start_matches('0');
    digits = if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    };
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    (digits, exp)
}

/// An exponent (`+5`, `-400`, `12`), clamped to ±2^30 so that arithmetic on it cannot
/// overflow; 0 when it is not one.
fn saturated_exponent(text: &str) -> i32 {
    const LIMIT: i64 = 1 << 30;
    let (negative, digits) = match text.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text.as_bytes()),
    };
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return 0;
        }
        value = (value * 10 + i64::from(d - b'0')).min(LIMIT);
    }
    (if negative { -value } else { value }) as i32
}

/// Shortest round-trip decimal of a double, without exponent (§4.3: `1.0` → `1`,
/// `1e21` → `1000000000000000000000`, `1.5e-7` → `0.00000015`).
pub fn plain_decimal(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v.abs());
    let (digits, exp) = decimal_digits(text);
    let mut out = String::new();
    if v < 0.0 {
        out.push('-');
    }
    if exp >= 0 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', exp as usize));
    } else {
        let point = digits.len() as i32 + exp;
        if point > 0 {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        }
    }
    out
}

/// Appends a JSON number for `n` (integers as written, doubles in shortest form).
pub fn write_number(out: &mut Vec<u8>, n: &StaticNode) {
    match *n {
        StaticNode::I64(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        StaticNode::U64(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        StaticNode::F64(v) => write_f64(out, v),
        _ => {}
    }
}

/// Appends a double as a JSON number: integral values below 2^53 without a fraction
/// (`3`, not `3.0`), others in shortest round-trip form.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 && !(v == 0.0 && v.is_sign_negative())
    {
        out.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
    } else if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The value of a JSON number node as a double.
pub fn number_value(n: &StaticNode) -> Option<f64> {
    match *n {
        StaticNode::I64(v) => Some(v as f64),
        StaticNode::U64(v) => Some(v as f64),
        StaticNode::F64(v) => Some(v),
        _ => None,
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip eight bytes at a time while none needs escaping (nearly all text).
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !has_byte_to_escape(word) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the compact JSON text of the value at node `i` (T3). Repeated keys in nested
/// objects keep the last value at the first position, like IN2.
pub fn write_compact(out: &mut Vec<u8>, nodes: &[Node<'_>], i: usize) {
    match &nodes[i] {
        Node::String(s) => write_json_string(out, s),
        Node::Static(StaticNode::Null) => out.extend_from_slice(b"null"),
        Node::Static(StaticNode::Bool(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" })
        }
        Node::Static(n) => write_number(out, n),
        Node::Array { len, .. } => {
            out.push(b'[');
            let mut j = i + 1;
            for k in 0..*len {
                if k > 0 {
                    out.push(b',');
                }
                write_compact(out, nodes, j);
                j += span(nodes, j);
            }
            out.push(b']');
        }
        Node::Object { len, .. } if *len <= 8 && !has_duplicate_keys(nodes, i, *len) => {
            // Small objects without repeated keys (nearly all): no allocation.
            out.push(b'{');
            let mut j = i + 1;
            for k in 0..*len {
                if k > 0 {
                    out.push(b',');
                }
                write_json_string(out, key_of(nodes, j));
                out.push(b':');
                write_compact(out, nodes, j + 1);
                j += 1 + span(nodes, j + 1);
            }
            out.push(b'}');
        }
        Node::Object { .. } => {
            let mut entries = Vec::new();
            object_entries(nodes, i, &mut entries, &mut EntryScratch::default());
            out.push(b'{');
            for (k, &(key, value)) in entries.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_json_string(out, key_of(nodes, key));
                out.push(b':');
                write_compact(out, nodes, value);
            }
            out.push(b'}');
        }
    }
}
