//! Parse: one line of JSON into a simd-json tape, validated per output-format IN2–IN4,
//! with helpers that read the tape without building a DOM.

use simd_json::{value::tape::Node, Buffers, StaticNode, Tape};

use crate::json_text::decimal_digits;
use crate::reject::{RejectReason, MAX_DEPTH};
use crate::swar::{bytes_below, quotes_or_backslashes};
use crate::tape::{has_duplicate_keys, hash_key, key_of, object_entries, span, EntryScratch};

/// First time (ms) at or after the year 10000 (IN3).
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// Times at or above this are milliseconds, below it seconds (IN3).
const MS_THRESHOLD: u64 = 100_000_000_000;

/// Reusable parsing state: one per worker, never one per line.
pub struct LineParser {
    scratch: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
    entries: Vec<(usize, usize)>,
    entry_scratch: EntryScratch,
}

impl Default for LineParser {
    fn default() -> Self {
        LineParser {
            scratch: Vec::new(),
            buffers: Buffers::default(),
            tape: Some(Tape::null().reset()),
            entries: Vec::new(),
            entry_scratch: EntryScratch::default(),
        }
    }
}

/// What a line holds: an event of the export API, or a user profile of the Engage API
/// (`{"$distinct_id": …, "$properties": {…}}`, one of a response's `results`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// An event line.
    Event,
    /// A profile line.
    Profile,
}

/// A parsed, valid event line: a view over the tape. A profile is seen as an event
/// without name or time whose properties are the profile's `$properties`.
pub struct Event<'t, 'i> {
    /// The tape nodes of the whole line.
    pub nodes: &'t [Node<'i>],
    /// The top-level `event` string.
    pub name: &'i str,
    /// Entries of `properties` other than `time` and `distinct_id`, as (key node, value
    /// node) indices, deduplicated (last value wins at the first position) and in order.
    pub properties: &'t [(usize, usize)],
    /// [`hash_key`] of each property's key, aligned with `properties`.
    pub key_hashes: &'t [u64],
    /// `properties.time` in milliseconds (IN3); 0 for a profile.
    pub time_ms: i64,
    /// Node index of `properties.time` (`None` for a profile, which has no time).
    pub time_node: Option<usize>,
    /// Node index of `properties.distinct_id` (of a profile's `$distinct_id`), if
    /// present (also when it is `null`).
    pub distinct_id: Option<usize>,
    /// Node index just past the `properties` object.
    properties_end: usize,
    /// The line as read, before simd-json rewrote strings in place.
    line: &'t [u8],
    /// Address of the parse buffer: a string node's offset in it is the offset of its
    /// text in `line` (simd-json unescapes in place, from the string's first byte).
    input_base: usize,
}

impl<'t, 'i> Event<'t, 'i> {
    /// The key string of a property entry.
    pub fn key(&self, entry: (usize, usize)) -> &'i str {
        match self.nodes[entry.0] {
            Node::String(s) => s,
            _ => unreachable!("object keys on the tape are strings"),
        }
    }

    /// The list or object value at node `value` (a property's, found in
    /// [`Event::properties`]) exactly as written in the line, when that text already is
    /// its compact JSON (T3): no whitespace between tokens and no repeated key at any
    /// depth. Copying it costs a fraction of re-encoding it with [`write_compact`],
    /// which remains the way for every other value.
    pub fn compact_as_written(&self, value: usize) -> Option<&'t [u8]> {
        if !matches!(self.nodes[value], Node::Array { .. } | Node::Object { .. })
            || repeats_a_key(self.nodes, value)
        {
            return None;
        }
        // The value's own key is the node before it (after repeated keys, the entry's
        // key may be an earlier one).
        let mut start = string_end(self.line, self.text_offset(value - 1))?;
        start = skip_whitespace(self.line, start);
        if self.line.get(start) != Some(&b':') {
            return None;
        }
        start = skip_whitespace(self.line, start + 1);
        if !matches!(self.line.get(start), Some(b'[' | b'{')) {
            return None; // cannot happen in a line simd-json accepted
        }
        // The next property's key, when there is one, bounds the value from behind:
        // `<value>,"<key>`. Without whitespace anywhere in between, the value is
        // compact; otherwise (or for the last property) scan it token by token.
        let next = value + span(self.nodes, value);
        if next < self.properties_end {
            let end = self.text_offset(next).checked_sub(2)?;
            let text = self.line.get(start..end)?;
            if self.line[end] == b',' && !has_space_or_control(text) {
                return Some(text);
            }
        }
        let end = compact_value_end(self.line, start)?;
        Some(&self.line[start..end])
    }

    /// Offset in the line of the text of the string at node `i`.
    fn text_offset(&self, i: usize) -> usize {
        match self.nodes[i] {
            Node::String(s) => s.as_ptr() as usize - self.input_base,
            _ => unreachable!("called for string nodes only"),
        }
    }
}

/// Whether `text` holds a byte at or below `b' '`.
fn has_space_or_control(text: &[u8]) -> bool {
    let mut words = text.chunks_exact(8);
    let found = words.any(|w| {
        bytes_below(
            u64::from_le_bytes(w.try_into().expect("eight bytes")),
            b' ' + 1,
        ) != 0
    });
    found || words.remainder().iter().any(|&b| b <= b' ')
}

/// Position after the closing quote of the string whose text starts at `from`.
#[inline]
fn string_end(line: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        // Eight bytes at a time while none is a quote or a backslash.
        while let Some(word) = line.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let found = quotes_or_backslashes(word);
            if found != 0 {
                i += found.trailing_zeros() as usize / 8;
                break;
            }
            i += 8;
        }
        match line.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

fn skip_whitespace(line: &[u8], mut at: usize) -> usize {
    while matches!(line.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// End of the array or object starting at `start` of a line simd-json accepted, or
/// `None` if it has whitespace between tokens.
fn compact_value_end(line: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0u32;
    let mut i = start;
    while let Some(&b) = line.get(i) {
        i += 1;
        if b == b'"' {
            i = string_end(line, i)?;
            continue;
        }
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => return None,
            _ => {}
        }
    }
    None
}

/// Whether any object within the value at node `i` (itself included) may repeat a key:
/// one of more than 8 entries counts as repeating (rare; `write_compact` resolves it).
fn repeats_a_key(nodes: &[Node<'_>], i: usize) -> bool {
    (i..i + span(nodes, i)).any(|j| match nodes[j] {
        Node::Object { len, .. } if len > 1 => len > 8 || has_duplicate_keys(nodes, j, len),
        _ => false,
    })
}

impl LineParser {
    /// Parses `line` (without its `\n` or trailing `\r`) and calls `f` with the event, or
    /// returns why the line is rejected.
    pub fn parse<R>(
        &mut self,
        line: &[u8],
        f: impl FnOnce(&Event<'_, '_>) -> R,
    ) -> Result<R, RejectReason> {
        self.parse_as(LineKind::Event, line, f)
    }

    /// Parses `line` as a line of `kind` (see [`LineParser::parse`]).
    pub fn parse_as<R>(
        &mut self,
        kind: LineKind,
        line: &[u8],
        f: impl FnOnce(&Event<'_, '_>) -> R,
    ) -> Result<R, RejectReason> {
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        self.scratch
            .resize(line.len() + simd_json::INPUT_PADDING, 0);
        let input_base = self.scratch.as_ptr() as usize;
        let mut tape: Tape<'_> = self
            .tape
            .take()
            .expect("tape is returned after each line")
            .reset();
        let result = match simd_json::fill_tape_padded(
            &mut self.scratch,
            line.len(),
            &mut self.buffers,
            &mut tape,
        ) {
            Err(e) => Err(RejectReason::InvalidJson(describe_invalid_json(line, &e))),
            Ok(()) => {
                let nodes = &tape.0[..];
                let validate = match kind {
                    LineKind::Event => validate,
                    LineKind::Profile => validate_profile,
                };
                match validate(
                    nodes,
                    line,
                    input_base,
                    &mut self.entries,
                    &mut self.entry_scratch,
                ) {
                    Err(r) => Err(r),
                    Ok(fields) => {
                        let event = Event {
                            nodes,
                            name: fields.name,
                            properties: &self.entries[fields.leading..],
                            key_hashes: &self.entry_scratch.hashes[fields.leading..],
                            time_ms: fields.time_ms,
                            time_node: fields.time_node,
                            distinct_id: fields.distinct_id,
                            properties_end: fields.properties_node
                                + span(nodes, fields.properties_node),
                            line,
                            input_base,
                        };
                        Ok(f(&event))
                    }
                }
            }
        };
        self.tape = Some(tape.reset());
        result
    }
}

/// Why `line` is not JSON, in words and at the byte where it goes wrong. simd-json finds
/// most errors in a first pass that knows no offsets (it says `Syntax at byte 0`), so a
/// rejected line — rare — is read again by serde_json, whose messages name the fault and
/// its column; simd-json's own verdict remains for what serde_json takes differently.
fn describe_invalid_json(line: &[u8], e: &simd_json::Error) -> String {
    if let Err(utf8) = std::str::from_utf8(line) {
        return format!("invalid UTF-8 at byte {}", utf8.valid_up_to());
    }
    if let Err(err) = serde_json::from_slice::<serde_json::Value>(line) {
        let message = err.to_string();
        if !message.starts_with("recursion limit") {
            let what = match message.split(" at line ").next().unwrap_or(&message) {
                // serde_json's word for a bare `true`, `false` or `null` gone wrong.
                "expected ident" => "expected a JSON value",
                what => what,
            };
            return format!("{what} at byte {}", err.column().saturating_sub(1));
        }
    }
    let what = match e.error() {
        simd_json::ErrorType::InvalidNumber | simd_json::ErrorType::InvalidExponent => {
            "invalid number or one too large for a double"
        }
        simd_json::ErrorType::InvalidUnicodeCodepoint => "invalid \\u escape",
        _ => "not valid JSON",
    };
    format!("{what} at byte {}", e.index())
}

/// The `event` name as Mixpanel writes it, without parsing the line: the bytes between
/// a leading `{"event":"` and the next quote, when there is no backslash or control
/// character in between (which a valid line could not hold, or would have to unescape),
/// and when nothing later in the line could be another `event` key (IN2: the last one
/// wins) — neither `"event"` nor a `\u` escape of one of its letters. The line may still
/// be invalid elsewhere.
pub fn written_event_name(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"{\"event\":\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    let name = &rest[..end];
    if rest[end] != b'"' || name.iter().any(|&b| b < b' ') {
        return None;
    }
    let after = &rest[end..];
    if EVENT_KEY.find(after).is_some() || has_unicode_escape(after) {
        return None;
    }
    Some(name)
}

/// Built once: building a searcher per line cost more than the search.
static EVENT_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"event\""));

/// Whether `text` holds a `\u` escape of a letter of `event` (`e`, `v`, `n`, `t`): only
/// those can spell another `event` key. Other escapes (`\u0001`, emoji) are common in
/// values and leave the name known.
fn has_unicode_escape(text: &[u8]) -> bool {
    let mut at = 0;
    while let Some(p) = memchr::memchr(b'\\', &text[at..]) {
        let escape = at + p;
        if text.get(escape + 1) == Some(&b'u') {
            let code = text
                .get(escape + 2..escape + 6)
                .map(<[u8]>::to_ascii_lowercase);
            if matches!(code.as_deref(), Some(b"0065" | b"0076" | b"006e" | b"0074")) {
                return true;
            }
        }
        // Past the escaped character, which may be a backslash itself.
        at = escape + 2;
        if at >= text.len() {
            break;
        }
    }
    false
}

fn validate<'i>(
    nodes: &[Node<'i>],
    line: &[u8],
    input_base: usize,
    entries: &mut Vec<(usize, usize)>,
    scratch: &mut EntryScratch,
) -> Result<Fields<'i>, RejectReason> {
    let len = top_level_object(nodes)?;
    let mut name = None;
    let mut properties = None;
    let mut i = 1;
    for _ in 0..len {
        let key = match nodes[i] {
            Node::String(s) => s,
            _ => unreachable!("object keys on the tape are strings"),
        };
        let value = i + 1;
        match key {
            // Repeated keys: the last value wins (IN2).
            "event" => name = Some(value),
            "properties" => properties = Some(value),
            _ => {}
        }
        i = value + span(nodes, value);
    }
    let name = match name.map(|n| &nodes[n]) {
        Some(Node::String(s)) => *s,
        _ => return Err(RejectReason::MissingEvent),
    };
    let Some(props) = properties.filter(|&p| matches!(nodes[p], Node::Object { .. })) else {
        return Err(RejectReason::MissingProperties);
    };
    object_entries(nodes, props, entries, scratch);
    let mut time = None;
    let mut distinct_id = None;
    // `time` and `distinct_id` leave the entries. Their hashes are compared first: a
    // string comparison per entry cost more than the rest of this function.
    let (time_hash, distinct_id_hash) = (hash_key("time"), hash_key("distinct_id"));
    let mut special = [usize::MAX; 2];
    for (n, (&(k, v), &h)) in entries.iter().zip(&scratch.hashes).enumerate() {
        if h == time_hash && key_of(nodes, k) == "time" {
            time = Some(v);
            special[0] = n;
        } else if h == distinct_id_hash && key_of(nodes, k) == "distinct_id" {
            distinct_id = Some(v);
            special[1] = n;
        }
    }
    // Found positions first, ascending. Mixpanel writes the two first: then the
    // property entries start after them, and nothing moves.
    special.sort_unstable();
    let found = special.iter().filter(|&&n| n != usize::MAX).count();
    let leading = if special[..found].iter().all(|&n| n < found) {
        found
    } else {
        for &n in special[..found].iter().rev() {
            entries.remove(n);
            scratch.hashes.remove(n);
        }
        0
    };
    let time_ms = match time.map(|t| &nodes[t]) {
        None | Some(Node::Static(StaticNode::Null)) => return Err(RejectReason::MissingTime),
        Some(Node::Static(n)) => {
            let written = time.and_then(|t| number_as_written(nodes, t, line, input_base));
            time_to_ms(n, written)?
        }
        Some(_) => return Err(RejectReason::NonNumericTime),
    };
    Ok(Fields {
        name,
        leading,
        time_ms,
        time_node: time,
        distinct_id,
        properties_node: props,
    })
}

/// What [`validate`] finds besides the property entries.
struct Fields<'i> {
    name: &'i str,
    /// Entries before the properties proper (`time` and `distinct_id` when first).
    leading: usize,
    time_ms: i64,
    time_node: Option<usize>,
    distinct_id: Option<usize>,
    properties_node: usize,
}

/// The number of keys of the line's top-level object, unless the line nests too deep
/// or is not an object.
fn top_level_object(nodes: &[Node<'_>]) -> Result<usize, RejectReason> {
    if nodes.len() > MAX_DEPTH && max_depth(nodes) > MAX_DEPTH {
        return Err(RejectReason::TooDeep);
    }
    match nodes[0] {
        Node::Object { len, .. } => Ok(len),
        _ => Err(RejectReason::NotAnObject),
    }
}

/// [`validate`] for a profile line: `$distinct_id` (required, not null) and the
/// `$properties` object, whose entries all stay properties (a profile property named
/// `time` or `distinct_id` is an ordinary property). Other keys, such as the
/// `$last_seen` some clients lift out of `$properties`, are ignored like an event
/// line's extra keys.
fn validate_profile<'i>(
    nodes: &[Node<'i>],
    _line: &[u8],
    _input_base: usize,
    entries: &mut Vec<(usize, usize)>,
    scratch: &mut EntryScratch,
) -> Result<Fields<'i>, RejectReason> {
    let len = top_level_object(nodes)?;
    let (mut distinct_id, mut properties) = (None, None);
    let mut i = 1;
    for _ in 0..len {
        let value = i + 1;
        match nodes[i] {
            // Repeated keys: the last value wins (IN2).
            Node::String("$distinct_id") => distinct_id = Some(value),
            Node::String("$properties") => properties = Some(value),
            _ => {}
        }
        i = value + span(nodes, value);
    }
    let distinct_id = distinct_id
        .filter(|&d| !matches!(nodes[d], Node::Static(StaticNode::Null)))
        .ok_or(RejectReason::MissingProfileId)?;
    let Some(props) = properties.filter(|&p| matches!(nodes[p], Node::Object { .. })) else {
        return Err(RejectReason::MissingProfileProperties);
    };
    object_entries(nodes, props, entries, scratch);
    Ok(Fields {
        name: "",
        leading: 0,
        time_ms: 0,
        time_node: None,
        distinct_id: Some(distinct_id),
        properties_node: props,
    })
}

/// Deepest nesting of arrays and objects on the tape (the top-level value is depth 1).
fn max_depth(nodes: &[Node<'_>]) -> usize {
    let mut ends: Vec<usize> = Vec::new();
    let mut deepest = 0;
    for (i, node) in nodes.iter().enumerate() {
        while ends.last().is_some_and(|&e| e <= i) {
            ends.pop();
        }
        if let Node::Object { count, .. } | Node::Array { count, .. } = node {
            ends.push(i + count + 1);
            deepest = deepest.max(ends.len());
        }
    }
    deepest
}

/// The text of the number at node `value` as written in the line: found after its key
/// (the node before it), whose text simd-json left in place.
fn number_as_written<'l>(
    nodes: &[Node<'_>],
    value: usize,
    line: &'l [u8],
    input_base: usize,
) -> Option<&'l [u8]> {
    let Node::String(key) = nodes.get(value.checked_sub(1)?)? else {
        return None;
    };
    let key_text = (key.as_ptr() as usize).checked_sub(input_base)?;
    let mut start = skip_whitespace(line, string_end(line, key_text)?);
    if line.get(start) != Some(&b':') {
        return None;
    }
    start = skip_whitespace(line, start + 1);
    let len = line
        .get(start..)?
        .iter()
        .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .count();
    Some(&line[start..start + len])
}

/// IN3: seconds or milliseconds to whole milliseconds, truncating toward negative
/// infinity. Integers are exact on the tape; for any other number the threshold and the
/// truncation use the decimal as written (`written`), not the nearest double, which
/// is only the fallback when the text cannot be found.
fn time_to_ms(n: &StaticNode, written: Option<&[u8]>) -> Result<i64, RejectReason> {
    let ms = match *n {
        StaticNode::I64(v) if v < 0 => return Err(RejectReason::NegativeTime),
        StaticNode::I64(v) => scale_integer(v as u64)?,
        StaticNode::U64(v) => scale_integer(v)?,
        StaticNode::F64(v) if v < 0.0 => return Err(RejectReason::NegativeTime),
        // Negative zero, and underflow of any sign (IN2), are time 0.
        StaticNode::F64(0.0) => 0, // float patterns compare with ==: -0.0 matches too
        StaticNode::F64(v) if !v.is_finite() => return Err(RejectReason::TimeOutOfRange),
        StaticNode::F64(v) => {
            let mut buf = ryu::Buffer::new();
            let text = match written {
                Some(text) => text,
                None => buf.format_finite(v).as_bytes(),
            };
            decimal_time_to_ms(text).ok_or(RejectReason::TimeOutOfRange)?
        }
        _ => return Err(RejectReason::NonNumericTime),
    };
    if ms >= YEAR_10000_MS {
        return Err(RejectReason::TimeOutOfRange);
    }
    Ok(ms)
}

fn scale_integer(v: u64) -> Result<i64, RejectReason> {
    if v >= MS_THRESHOLD {
        i64::try_from(v).map_err(|_| RejectReason::TimeOutOfRange)
    } else {
        Ok(v as i64 * 1000)
    }
}

/// A positive JSON number's text to whole milliseconds: seconds below 1e11, otherwise
/// milliseconds, both decided and floored on the exact decimal. `None` when the value is
/// far past any valid time.
fn decimal_time_to_ms(text: &[u8]) -> Option<i64> {
    // value = digits × 10^exp10, with no leading or trailing zero digit.
    let (digits, exp10) = decimal_digits(std::str::from_utf8(text).ok()?);
    if digits == "0" {
        return Some(0);
    }
    let (digits, exp10) = (digits.as_bytes(), i64::from(exp10));
    // The value has `integer_digits` digits before the point: ≥ 1e11 iff ≥ 12 of them.
    let integer_digits = digits.len() as i64 + exp10;
    let shift = if integer_digits >= 12 {
        exp10
    } else {
        exp10 + 3
    };
    // Keep the digits left of the point after shifting: at most 16 for a valid time.
    let keep = digits.len() as i64 + shift;
    if keep > 16 {
        return None;
    }
    let mut ms: i64 = 0;
    for &d in digits.iter().take(keep.max(0) as usize) {
        ms = ms * 10 + i64::from(d - b'0');
    }
    for _ in 0..(keep - digits.len() as i64).max(0) {
        ms *= 10;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_text::{number_value, plain_decimal, write_compact, write_json_string};

    fn parse(line: &str) -> Result<(String, i64, Vec<String>), RejectReason> {
        let mut p = LineParser::default();
        p.parse(line.as_bytes(), |e| {
            let keys = e
                .properties
                .iter()
                .map(|&en| e.key(en).to_string())
                .collect();
            (e.name.to_string(), e.time_ms, keys)
        })
    }

    fn parse_profile(line: &str) -> Result<(Option<String>, Vec<String>), RejectReason> {
        LineParser::default().parse_as(LineKind::Profile, line.as_bytes(), |e| {
            let id = e.distinct_id.map(|d| format!("{:?}", e.nodes[d]));
            let keys = e.properties.iter().map(|&en| e.key(en).to_string());
            (id, keys.collect())
        })
    }

    #[test]
    fn profiles_keep_every_property_and_need_an_id_and_properties() {
        let (id, keys) = parse_profile(
            r#"{"$distinct_id":"a","$distinct_id":"b","$properties":{"time":1,"distinct_id":"x","$email":"e"}}"#,
        )
        .unwrap();
        assert_eq!(
            id.as_deref(),
            Some(r#"String("b")"#),
            "the last key wins (IN2)"
        );
        assert_eq!(keys, ["time", "distinct_id", "$email"]);
        for (line, reason) in [
            (r#"{"$properties":{}}"#, RejectReason::MissingProfileId),
            (
                r#"{"$distinct_id":null,"$properties":{}}"#,
                RejectReason::MissingProfileId,
            ),
            (
                r#"{"$distinct_id":"a"}"#,
                RejectReason::MissingProfileProperties,
            ),
            (
                r#"{"$distinct_id":"a","$properties":"x"}"#,
                RejectReason::MissingProfileProperties,
            ),
            (r#"["a"]"#, RejectReason::NotAnObject),
        ] {
            assert_eq!(parse_profile(line).unwrap_err(), reason, "{line}");
        }
        // An event line is not a profile, and a profile is not an event.
        assert!(parse_profile(r#"{"event":"a","properties":{"time":1}}"#).is_err());
        assert!(parse(r#"{"$distinct_id":"a","$properties":{}}"#).is_err());
    }

    fn compact(json: &str) -> String {
        let mut data = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut data).unwrap();
        let mut out = Vec::new();
        write_compact(&mut out, &tape.0, 0);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn in2_valid_event() {
        let (name, ms, keys) = parse(
            r#"{"event":"A","properties":{"time":1709078400,"b":1,"distinct_id":"u","a":2},"x":1}"#,
        )
        .unwrap();
        assert_eq!(name, "A");
        assert_eq!(ms, 1_709_078_400_000);
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn time_and_distinct_id_leave_the_properties_wherever_they_are() {
        let cases = [
            (r#""time":1,"distinct_id":"u","a":1,"b":2"#, &["a", "b"][..]),
            (r#""distinct_id":"u","time":1,"a":1,"b":2"#, &["a", "b"]),
            (r#""time":1,"a":1,"distinct_id":"u","b":2"#, &["a", "b"]),
            (r#""a":1,"b":2,"distinct_id":"u","time":1"#, &["a", "b"]),
            (r#""a":1,"time":1,"b":2"#, &["a", "b"]),
            (r#""time":1,"a":1,"b":2"#, &["a", "b"]),
            (r#""distinct_id":null,"a":1,"time":1"#, &["a"]),
            (r#""time":1"#, &[]),
            (r#""time":1,"distinct_id":"u""#, &[]),
        ];
        for (properties, want) in cases {
            let line = format!(r#"{{"event":"e","properties":{{{properties}}}}}"#);
            let (_, ms, keys) = parse(&line).unwrap();
            assert_eq!(ms, 1000, "{line}");
            assert_eq!(keys, want, "{line}");
        }
    }

    #[test]
    fn in2_duplicate_keys_last_wins_at_first_position() {
        let mut p = LineParser::default();
        let got = p
            .parse(
                br#"{"event":"A","event":"B","properties":{"time":1,"a":1,"b":2,"a":"x"}}"#,
                |e| {
                    let v: Vec<String> = e
                        .properties
                        .iter()
                        .map(|&(k, v)| {
                            let mut out = Vec::new();
                            write_compact(&mut out, e.nodes, v);
                            format!("{}={}", e.key((k, v)), String::from_utf8(out).unwrap())
                        })
                        .collect();
                    (e.name.to_string(), v)
                },
            )
            .unwrap();
        assert_eq!(
            got,
            (
                "B".to_string(),
                vec!["a=\"x\"".to_string(), "b=2".to_string()]
            )
        );
        assert_eq!(
            compact(r#"{"k":1,"j":[1,2],"k":{"z":null}}"#),
            r#"{"k":{"z":null},"j":[1,2]}"#
        );
    }

    #[test]
    fn in2_invalid_json_variants() {
        let bad: &[&[u8]] = &[
            b"{",
            b"not json",
            b"{\"event\":\"a\",\"properties\":{\"time\":1,\"s\":\"\xff\"}}",
            br#"{"event":"a","properties":{"time":1,"n":1e400}}"#,
            br#"{"event":"a","properties":{"time":1,"s":"\ud800"}}"#,
            // Everything RFC 8259 forbids inside a list or object must be rejected here:
            // `Event::compact_as_written` copies accepted values as written.
            b"{\"event\":\"a\",\"properties\":{\"time\":1,\"x\":[\"a\tb\"]}}",
            b"{\"event\":\"a\",\"properties\":{\"time\":1,\"x\":[\"a\x01b\"]}}",
            br#"{"event":"a","properties":{"time":1,"x":[01]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[-01]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[1.]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[.5]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[+1]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[1e]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[0x10]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[Infinity]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":["\q"]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":["\u00"]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":["\udc00\ud800"]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[1,]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":{"a":1,}}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[truex]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":[1 2]}}"#,
            br#"{"event":"a","properties":{"time":1,"x":{"a":"b" "c":1}}}"#,
        ];
        let mut p = LineParser::default();
        for line in bad {
            let r = p.parse(line, |_| ());
            assert!(
                matches!(r, Err(RejectReason::InvalidJson(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn f4_a_name_is_known_only_when_nothing_later_can_rename_it() {
        assert_eq!(
            written_event_name(br#"{"event":"A","properties":{"s":"\u0001\u00E9"}}"#),
            Some(&b"A"[..])
        );
        assert_eq!(
            written_event_name(br#"{"event":"A","properties":{},"\u0065\u0056ent":1}"#),
            None
        );
        let name =
            |l: &[u8]| written_event_name(l).map(|n| String::from_utf8_lossy(n).into_owned());
        assert_eq!(
            name(br#"{"event":"A","properties":{"s":"a\\u"}}"#).as_deref(),
            Some("A")
        );
        assert_eq!(
            name(br#"{"event":"A","properties":{"s":"a\\"}}"#).as_deref(),
            Some("A")
        );
        assert_eq!(
            name(br#"{"event":"A","properties":{},"\u0065vent":"B"}"#),
            None
        );
        assert_eq!(name(br#"{"event":"A","properties":{},"event":"B"}"#), None);
        assert_eq!(name(b"{\"event\":\"A\tB\",\"properties\":{}}"), None);
    }

    #[test]
    fn in4_reasons_read_as_words_and_name_the_byte_at_fault() {
        let mut p = LineParser::default();
        let mut reason = |line: &[u8]| p.parse(line, |_| ()).unwrap_err().to_string();
        let mut utf8 = br#"{"event":"a","properties":{"time":1,"s":"ok","t":"#.to_vec();
        let at = utf8.len() + 2; // after `"x`
        utf8.extend_from_slice(b"\"x\xffy\"}}");
        assert_eq!(
            reason(&utf8),
            format!("invalid JSON: invalid UTF-8 at byte {at}")
        );
        assert_eq!(
            reason(b"{\"event\":\"tab\there\",\"properties\":{\"time\":1}}"),
            "invalid JSON: control character (\\u0000-\\u001F) found while parsing a string at byte 13"
        );
        assert_eq!(
            reason(br#"{"event":"a","properties":{"time":1,"x":[1,]}}"#),
            "invalid JSON: trailing comma at byte 43"
        );
    }

    #[test]
    fn in2_big_integers_and_underflow_are_valid() {
        let mut p = LineParser::default();
        let line = br#"{"event":"a","properties":{"time":1,"big":123456789012345678901234567890,"tiny":1e-400,"nz":-0.0}}"#;
        let vals = p
            .parse(line, |e| {
                e.properties
                    .iter()
                    .map(|&(_, v)| match &e.nodes[v] {
                        Node::Static(n) => number_value(n).unwrap(),
                        _ => f64::NAN,
                    })
                    .collect::<Vec<f64>>()
            })
            .unwrap();
        assert_eq!(vals[0], 1.2345678901234568e29);
        assert_eq!(vals[1], 0.0);
        assert!(vals[2] == 0.0 && vals[2].is_sign_negative());
    }

    #[test]
    fn in2_nesting_limit() {
        let ok = format!(
            r#"{{"event":"a","properties":{{"time":1,"d":{}{}}}}}"#,
            "[".repeat(998),
            "]".repeat(998)
        );
        assert!(parse(&ok).is_ok(), "1000 levels are allowed");
        let deep = format!(
            r#"{{"event":"a","properties":{{"time":1,"d":{}{}}}}}"#,
            "[".repeat(999),
            "]".repeat(999)
        );
        assert_eq!(parse(&deep).unwrap_err(), RejectReason::TooDeep);
        let very_deep = format!(
            r#"{{"event":"a","properties":{{"time":1,"d":{}{}}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(parse(&very_deep).is_err());
    }

    #[test]
    fn in4_structural_rejects() {
        assert_eq!(parse("[1]").unwrap_err(), RejectReason::NotAnObject);
        assert_eq!(
            parse(r#"{"properties":{"time":1}}"#).unwrap_err(),
            RejectReason::MissingEvent
        );
        assert_eq!(
            parse(r#"{"event":1,"properties":{"time":1}}"#).unwrap_err(),
            RejectReason::MissingEvent
        );
        assert_eq!(
            parse(r#"{"event":"a"}"#).unwrap_err(),
            RejectReason::MissingProperties
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":[]}"#).unwrap_err(),
            RejectReason::MissingProperties
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":{}}"#).unwrap_err(),
            RejectReason::MissingTime
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":{"time":null}}"#).unwrap_err(),
            RejectReason::MissingTime
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":{"time":"1"}}"#).unwrap_err(),
            RejectReason::NonNumericTime
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":{"time":-1}}"#).unwrap_err(),
            RejectReason::NegativeTime
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":{"time":-0.5}}"#).unwrap_err(),
            RejectReason::NegativeTime
        );
        assert_eq!(
            parse(r#"{"event":"a","properties":{"time":253402300800000}}"#).unwrap_err(),
            RejectReason::TimeOutOfRange
        );
        assert!(parse(r#"{"event":"a","properties":{"time":253402300799}}"#).is_ok());
    }

    #[test]
    fn in3_seconds_and_milliseconds() {
        let t = |v: &str| {
            parse(&format!(r#"{{"event":"a","properties":{{"time":{v}}}}}"#))
                .unwrap()
                .1
        };
        assert_eq!(t("1709078400"), 1_709_078_400_000);
        assert_eq!(t("1709078400.123"), 1_709_078_400_123);
        assert_eq!(t("1709078400.1239"), 1_709_078_400_123);
        assert_eq!(t("1709078400123"), 1_709_078_400_123);
        assert_eq!(t("1709078400123.9"), 1_709_078_400_123);
        assert_eq!(t("99999999999"), 99_999_999_999_000);
        assert_eq!(t("100000000000"), 100_000_000_000);
        assert_eq!(t("0"), 0);
        assert_eq!(t("0.0005"), 0);
        assert_eq!(t("1.5e9"), 1_500_000_000_000);
    }

    #[test]
    fn in3_negative_zero_and_underflow_are_time_0() {
        let t = |v: &str| parse(&format!(r#"{{"event":"a","properties":{{"time":{v}}}}}"#));
        for zero in [
            "-0.0", "-0.00", "-0e0", "-0.0e5", "-1e-400", "1e-400", "0.0", "-0",
        ] {
            assert_eq!(t(zero).unwrap().1, 0, "{zero}");
        }
        assert_eq!(t("-1e-5").unwrap_err(), RejectReason::NegativeTime);
    }

    #[test]
    fn in3_uses_the_exact_decimal_written() {
        let t = |v: &str| {
            parse(&format!(r#"{{"event":"a","properties":{{"time":{v}}}}}"#)).map(|p| p.1)
        };
        // The nearest double of the first is …400.124: flooring it would give …124.
        assert_eq!(t("1709078400.12399999999"), Ok(1_709_078_400_123));
        assert_eq!(t("1709078400.123"), Ok(1_709_078_400_123));
        assert_eq!(t("17090784.00123e2"), Ok(1_709_078_400_123));
        assert_eq!(
            t("0.0000000000000000001709078400123e31"),
            Ok(1_709_078_400_123)
        );
        // Below 1e11 as written (the double rounds up to 1e11): seconds.
        assert_eq!(t("99999999999.99999999"), Ok(99_999_999_999_999));
        assert_eq!(t("100000000000.0"), Ok(100_000_000_000));
        assert_eq!(t("1e11"), Ok(100_000_000_000));
        assert_eq!(t("1709078400123.999999999999"), Ok(1_709_078_400_123));
        assert_eq!(t("253402300799999.9"), Ok(253_402_300_799_999));
        assert_eq!(t("253402300800000.0"), Err(RejectReason::TimeOutOfRange));
        assert_eq!(t("1e15"), Err(RejectReason::TimeOutOfRange));
        assert_eq!(t("1e300"), Err(RejectReason::TimeOutOfRange));
        assert_eq!(
            t("123456789012345678901234567890"),
            Err(RejectReason::TimeOutOfRange)
        );
        assert_eq!(t("1.5E+9"), Ok(1_500_000_000_000));
    }

    #[test]
    fn plain_decimal_forms() {
        assert_eq!(plain_decimal(1.0), "1");
        assert_eq!(plain_decimal(1e21), "1000000000000000000000");
        assert_eq!(plain_decimal(1.5e-7), "0.00000015");
        assert_eq!(plain_decimal(-2.5), "-2.5");
        assert_eq!(plain_decimal(123.456), "123.456");
        assert_eq!(plain_decimal(0.1), "0.1");
    }

    #[test]
    fn compact_json_escapes() {
        assert_eq!(
            compact(r#"["a\"b","\u0001","\u2028",1.50,-0]"#),
            "[\"a\\\"b\",\"\\u0001\",\"\u{2028}\",1.5,0]"
        );
    }

    #[test]
    fn t3_compact_as_written_skips_repeated_keys_and_whitespace() {
        let line = r#"{"event":"e","properties":{"time":1,"a":{"x":1,"x":2},"b":[{"y":[{"z":1,"z":1}]}],"c":[1, 2],"d":{"k":"v w"} ,"e\"q":[true],"f":[1,{"g":null}]}}"#;
        let got = LineParser::default()
            .parse(line.as_bytes(), |e| {
                e.properties
                    .iter()
                    .map(|&(k, v)| {
                        let text = e.compact_as_written(v);
                        (
                            e.key((k, v)).to_string(),
                            text.map(|t| String::from_utf8(t.to_vec()).unwrap()),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap();
        let want = [
            ("a", None),
            ("b", None),
            ("c", None),
            ("d", Some(r#"{"k":"v w"}"#)),
            ("e\"q", Some("[true]")),
            ("f", Some(r#"[1,{"g":null}]"#)),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, t)| (k.to_string(), t.map(str::to_string)))
            .collect();
        assert_eq!(got, want);
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "(\\PC|[\\x00-\\x1f\"\\\\ ]){0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec(("[a-c \"\\\\]{1,3}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// A list or object comes back as written exactly when it is written compactly
        /// (no repeated keys: serde's maps cannot hold any), whatever the whitespace
        /// around it, the escapes in its key, and its place among the properties.
        #[test]
        fn t3_compact_as_written_is_the_compact_text(
            values in proptest::collection::vec((arb_json(), proptest::bool::ANY, proptest::bool::ANY), 1..6),
            key_chars in "[a\"\\\\é]{0,3}",
        ) {
            let mut line = String::from(r#"{"event":"e","properties":{"time":1"#);
            let mut want = Vec::new();
            for (n, (value, pretty, spaced)) in values.iter().enumerate() {
                let value = serde_json::Value::Array(vec![value.clone()]);
                let compact = serde_json::to_string(&value).unwrap();
                let text = if *pretty { serde_json::to_string_pretty(&value).unwrap() } else { compact.clone() };
                let key = serde_json::to_string(&format!("{key_chars}{n}")).unwrap();
                let sep = if *spaced { " , " } else { "," };
                line.push_str(&format!("{sep}{key}{}{text}", if *spaced { " :\t" } else { ":" }));
                want.push((text == compact).then_some(compact));
            }
            line.push_str("}}");
            let got = LineParser::default()
                .parse(line.as_bytes(), |e| {
                    e.properties
                        .iter()
                        .map(|&(_, v)| e.compact_as_written(v).map(|t| String::from_utf8(t.to_vec()).unwrap()))
                        .collect::<Vec<_>>()
                })
                .unwrap();
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn json_string_escaping_matches_serde(s in "(\\PC|[\\x00-\\x1f\"\\\\]){0,40}") {
            let mut out = Vec::new();
            write_json_string(&mut out, &s);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn in2_repeated_keys_found_in_objects_of_any_size(
            keys in proptest::collection::vec("[a-e]{1,2}", 0..80)
        ) {
            let members: Vec<String> =
                keys.iter().enumerate().map(|(n, k)| format!("\"{k}\":{n}")).collect();
            let json = format!("{{{}}}", members.join(","));
            // Expected: first-seen key order, last value (IN2).
            let mut want: Vec<(String, usize)> = Vec::new();
            for (n, k) in keys.iter().enumerate() {
                match want.iter_mut().find(|(w, _)| w == k) {
                    Some(e) => e.1 = n,
                    None => want.push((k.clone(), n)),
                }
            }
            let want = format!(
                "{{{}}}",
                want.iter().map(|(k, n)| format!("\"{k}\":{n}")).collect::<Vec<_>>().join(",")
            );
            proptest::prop_assert_eq!(compact(&json), want);
            let mut data = json.into_bytes();
            let tape = simd_json::to_tape(&mut data).unwrap();
            let mut entries = Vec::new();
            let mut scratch = EntryScratch::default();
            object_entries(&tape.0, 0, &mut entries, &mut scratch);
            let hashes: Vec<u64> = entries.iter().map(|&(k, _)| hash_key(key_of(&tape.0, k))).collect();
            proptest::prop_assert_eq!(&scratch.hashes, &hashes);
        }
    }
}
