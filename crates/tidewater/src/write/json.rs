//! JSON and raw output: gzip JSONL. Each row group becomes one gzip member, encoded on a
//! worker; the final file is the members concatenated in order (a valid multi-member
//! gzip file, IN1).

use std::io::Write;

use flate2::write::GzEncoder;

use crate::columns::{TypeClass, Values};
use crate::merge::RowGroup;
use crate::schema::registry::{ColumnInfo, ColumnType, Fixed};
use tidewater_event::write_json_string;

/// Gzip level for JSON and raw output: a balance of speed and size.
const GZIP_LEVEL: u32 = 6;

/// Compresses `text` into one gzip member.
pub fn gzip_member(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(text.len() / 4),
        flate2::Compression::new(GZIP_LEVEL),
    );
    enc.write_all(text)?;
    enc.finish()
}

/// Raw mode (S1): the kept lines, unaltered, one per line.
pub fn raw_text(group: &RowGroup) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in &group.chunks {
        for i in 0..chunk.raw.len() {
            out.extend_from_slice(chunk.raw.get(i).as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// How JSON output writes the values that have more than one form.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonStyle {
    /// `time` in milliseconds instead of seconds.
    pub time_in_ms: bool,
    /// Lists and objects as JSON strings of their text instead of native JSON.
    pub nested_as_text: bool,
}

/// JSON mode: one object per row, keys in column order, nulls left out, lists and
/// objects as native JSON (T3) or, with `nested_as_text`, as their JSON text.
pub fn json_text(
    group: &RowGroup,
    columns: &[ColumnInfo],
    fixed: Fixed,
    style: JsonStyle,
) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in &group.chunks {
        let mut cursors = vec![0usize; chunk.columns.len()];
        let mut id_cursor = 0usize;
        for row in 0..chunk.count {
            // `{` opens the row; every later key is preceded by `,` (a profile's first
            // key may be `distinct_id` or, without one, its first property).
            let mut first = true;
            let mut key = |out: &mut Vec<u8>, name: &[u8]| {
                out.extend_from_slice(if first { b"{" } else { b"," });
                first = false;
                out.extend_from_slice(name);
            };
            if fixed.time().is_some() {
                let ms = chunk.time[row as usize];
                key(&mut out, b"\"time\":");
                let t = if style.time_in_ms {
                    ms
                } else {
                    ms.div_euclid(1000)
                };
                out.extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
            }
            if chunk.distinct_id.row_of(id_cursor) == Some(row) {
                key(&mut out, b"\"distinct_id\":");
                if let Values::Text(s) = &chunk.distinct_id.values {
                    write_json_string(&mut out, s.get(id_cursor));
                }
                id_cursor += 1;
            }
            if fixed.event_name().is_some() {
                key(&mut out, b"\"mp_event_name\":");
                write_json_string(&mut out, chunk.event_name.get(row as usize));
            }
            for (k, (c, col)) in chunk.columns.iter().enumerate() {
                let i = cursors[k];
                if col.row_of(i) != Some(row) {
                    continue;
                }
                cursors[k] += 1;
                let info = &columns[*c as usize];
                key(&mut out, b"");
                write_json_string(&mut out, &info.name);
                out.push(b':');
                match &col.values {
                    Values::Text(s)
                        if style.nested_as_text
                            || info.ty == ColumnType::Class(TypeClass::String) =>
                    {
                        write_json_string(&mut out, s.get(i))
                    }
                    Values::Text(s) => out.extend_from_slice(s.get(i).as_bytes()),
                    Values::Number(v) => tidewater_event::write_f64(&mut out, v[i]),
                    Values::Boolean(v) => {
                        out.extend_from_slice(if v[i] { b"true" } else { b"false" })
                    }
                }
            }
            if first {
                out.push(b'{');
            }
            out.extend_from_slice(b"}\n");
        }
    }
    out
}
