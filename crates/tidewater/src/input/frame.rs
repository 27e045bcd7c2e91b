//! Frame: cuts a decompressed stream into numbered blocks of whole lines (IN1), detects
//! the `export terminated early` trailer and cut-off gzip streams (IN5), and turns lines
//! longer than the configured limit into an `OversizedLine` instead of growing without
//! bound.

use std::io::{ErrorKind, Read};

/// The line Mixpanel writes when an export fails part-way (IN5).
pub const TERMINATED_EARLY: &[u8] = b"export terminated early";

/// How much of an oversized line is kept for the rejects file.
const OVERSIZED_PREFIX: usize = 1024;

/// A run of whole lines from one input.
#[derive(Debug)]
pub struct Block {
    /// Index of the input in the run's input list.
    pub input: usize,
    /// Physical line number (1-based) of the first line in `data`.
    pub first_line: u64,
    /// Whole lines, each ending in `\n` except possibly the last line of the input.
    pub data: Vec<u8>,
    /// A line too long to frame, standing alone at `first_line` (then `data` is empty).
    pub oversized: Option<OversizedLine>,
}

/// A line longer than the limit: rejected without being held in memory.
#[derive(Debug)]
pub struct OversizedLine {
    /// Its first bytes.
    pub prefix: Vec<u8>,
    /// Its full length in bytes.
    pub len: u64,
}

/// How an input ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEnd {
    /// Index of the input.
    pub input: usize,
    /// Physical lines read.
    pub lines: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// `Some(reason)` when the input is incomplete (IN5).
    pub incomplete: Option<String>,
}

/// Framing limits.
#[derive(Debug, Clone, Copy)]
pub struct FrameConfig {
    /// Target block size in bytes.
    pub block_bytes: usize,
    /// Longest line accepted.
    pub max_line_bytes: usize,
}

/// Frames `reader` (input number `input`) and pushes each block to `emit`. Returns how
/// the input ended; stops early, with `None`, when `emit` returns `false`.
pub fn frame_input<R: Read>(
    mut reader: R,
    input: usize,
    config: FrameConfig,
    mut emit: impl FnMut(Block) -> bool,
) -> Option<InputEnd> {
    let block_bytes = config.block_bytes.max(1);
    let mut buf: Vec<u8> = Vec::with_capacity(block_bytes);
    let mut target = block_bytes;
    let mut next_line: u64 = 1;
    let mut total: u64 = 0;
    let mut at_start = true;
    let mut failure: Option<String> = None;

    loop {
        let eof = fill(&mut reader, &mut buf, target, &mut total, &mut failure);
        if at_start && (buf.len() >= 3 || eof) {
            if buf.starts_with(b"\xEF\xBB\xBF") {
                buf.drain(..3);
            }
            at_start = false;
        }
        if eof {
            if failure.is_some() {
                // The stream broke off: its unfinished last line is an artifact of the
                // truncation, not a line of the input (the input is incomplete anyway).
                buf.truncate(memchr::memrchr(b'\n', &buf).map_or(0, |p| p + 1));
            }
            let mut incomplete = failure;
            if let Some((start, _)) = trailing_terminated_marker(&buf) {
                let marker_line =
                    next_line + memchr::memchr_iter(b'\n', &buf[..start]).count() as u64;
                buf.truncate(start);
                incomplete.get_or_insert(format!(
                    "it ends with `export terminated early` at line {marker_line}"
                ));
            }
            let lines_in_tail = memchr::memchr_iter(b'\n', &buf).count() as u64
                + u64::from(buf.last().is_some_and(|&b| b != b'\n'));
            if !buf.is_empty() {
                let block = Block {
                    input,
                    first_line: next_line,
                    data: buf,
                    oversized: None,
                };
                if !emit(block) {
                    return None;
                }
            }
            return Some(InputEnd {
                input,
                lines: next_line - 1 + lines_in_tail,
                bytes: total,
                incomplete,
            });
        }
        match memchr::memrchr(b'\n', &buf) {
            Some(pos) => {
                let mut cut = pos + 1;
                if let Some((start, _)) = trailing_terminated_marker(&buf[..cut]) {
                    // Hold the marker back until we know whether more lines follow it.
                    cut = start;
                }
                if cut == 0 {
                    target = buf.len() + block_bytes;
                    continue;
                }
                let carry = buf[cut..].to_vec();
                buf.truncate(cut);
                let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
                let block = Block {
                    input,
                    first_line: next_line,
                    data: buf,
                    oversized: None,
                };
                if !emit(block) {
                    return None;
                }
                next_line += lines;
                buf = carry;
                buf.reserve(block_bytes);
                target = block_bytes.max(buf.len() + 1);
            }
            None if buf.len() > config.max_line_bytes => {
                let (len, rest) =
                    skip_oversized_line(&mut reader, &mut buf, &mut total, &mut failure);
                let oversized = OversizedLine {
                    prefix: buf[..OVERSIZED_PREFIX.min(buf.len())].to_vec(),
                    len,
                };
                let block = Block {
                    input,
                    first_line: next_line,
                    data: Vec::new(),
                    oversized: Some(oversized),
                };
                if !emit(block) {
                    return None;
                }
                next_line += 1;
                buf = rest;
                target = block_bytes.max(buf.len() + 1);
            }
            None => {
                // A line longer than the block: grow, up to the line limit.
                target =
                    (buf.len() * 2).clamp(block_bytes, config.max_line_bytes.saturating_add(1));
            }
        }
    }
}

/// Reads until `buf` holds `target` bytes or the input ends. Returns true at the end of
/// the input; a read error ends it too and is recorded in `failure`.
fn fill<R: Read>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    target: usize,
    total: &mut u64,
    failure: &mut Option<String>,
) -> bool {
    if failure.is_some() {
        return true;
    }
    let start = buf.len();
    if start >= target {
        return false;
    }
    let want = target - start;
    buf.reserve(want);
    // `read_to_end` on a `Take` reads into the spare capacity and zeroes each byte at most
    // once; resizing before every `read` zeroed the whole rest of the block for each
    // chunk the decoder returned. It retries `Interrupted` itself, and on an error keeps
    // what it read before it.
    let result = reader.by_ref().take(want as u64).read_to_end(buf);
    *total += (buf.len() - start) as u64;
    match result {
        Ok(n) => n < want,
        Err(e) => {
            *failure = Some(describe_read_error(&e));
            true
        }
    }
}

fn describe_read_error(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::UnexpectedEof => {
            "the gzip stream ends before its trailer (truncated file)".to_string()
        }
        ErrorKind::InvalidInput | ErrorKind::InvalidData => format!("corrupt gzip data: {e}"),
        _ => format!("read error: {e}"),
    }
}

/// Consumes the rest of an oversized line whose first bytes are in `buf`. Returns the
/// line's length and the bytes after its `\n`.
fn skip_oversized_line<R: Read>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    total: &mut u64,
    failure: &mut Option<String>,
) -> (u64, Vec<u8>) {
    let mut len = buf.len() as u64;
    buf.truncate(OVERSIZED_PREFIX.min(buf.len()));
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return (len, Vec::new()),
            Ok(n) => {
                *total += n as u64;
                if let Some(pos) = memchr::memchr(b'\n', &chunk[..n]) {
                    return (len + pos as u64, chunk[pos + 1..n].to_vec());
                }
                len += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                *failure = Some(describe_read_error(&e));
                return (len, Vec::new());
            }
        }
    }
}

/// Whether a line is blank under IN1 (only ASCII whitespace).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r'))
}

/// If the last non-blank line of `data` is exactly the terminated-early marker, returns
/// its byte range.
fn trailing_terminated_marker(data: &[u8]) -> Option<(usize, usize)> {
    let mut end = data.len();
    while end > 0 {
        let body_end = if data[end - 1] == b'\n' { end - 1 } else { end };
        let start = memchr::memrchr(b'\n', &data[..body_end]).map_or(0, |p| p + 1);
        let line = &data[start..body_end];
        if !is_blank(line) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return (line == TERMINATED_EARLY).then_some((start, end));
        }
        end = start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(data: &[u8], block: usize, max_line: usize) -> (Vec<Block>, InputEnd) {
        let mut blocks = Vec::new();
        let end = frame_input(
            data,
            0,
            FrameConfig {
                block_bytes: block,
                max_line_bytes: max_line,
            },
            |b| {
                blocks.push(b);
                true
            },
        )
        .unwrap();
        (blocks, end)
    }

    /// Reassembles (line number, line) pairs from blocks.
    fn lines(blocks: &[Block]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for b in blocks {
            if let Some(o) = &b.oversized {
                out.push((b.first_line, format!("<oversized {}>", o.len).into_bytes()));
                continue;
            }
            for (n, line) in (b.first_line..).zip(b.data.split_inclusive(|&c| c == b'\n')) {
                out.push((n, line.strip_suffix(b"\n").unwrap_or(line).to_vec()));
            }
        }
        out
    }

    #[test]
    fn in1_blocks_hold_whole_lines_at_any_block_size() {
        let data = b"a\nbb\n\nccc\r\nd";
        for block in [1, 2, 3, 5, 8, 64] {
            let (blocks, end) = frame_all(data, block, 1000);
            let got = lines(&blocks);
            let want: Vec<(u64, Vec<u8>)> = vec![
                (1, b"a".to_vec()),
                (2, b"bb".to_vec()),
                (3, vec![]),
                (4, b"ccc\r".to_vec()),
                (5, b"d".to_vec()),
            ];
            assert_eq!(got, want, "block size {block}");
            assert_eq!(end.lines, 5);
            assert!(end.incomplete.is_none());
        }
    }

    #[test]
    fn in1_bom_stripped_only_at_start() {
        let (blocks, _) = frame_all(b"\xEF\xBB\xBFa\n\xEF\xBB\xBFb\n", 2, 100);
        let got = lines(&blocks);
        assert_eq!(got[0].1, b"a");
        assert_eq!(got[1].1, b"\xEF\xBB\xBFb");
    }

    #[test]
    fn in5_terminated_early_marker_at_end() {
        for block in [1, 4, 1000] {
            let (blocks, end) = frame_all(b"{}\nexport terminated early\n\n  \n", block, 100);
            assert_eq!(lines(&blocks), vec![(1, b"{}".to_vec())], "block {block}");
            assert!(end.incomplete.unwrap().contains("line 2"));
        }
        let (_, end) = frame_all(b"{}\r\nexport terminated early\r\n", 3, 100);
        assert!(end.incomplete.is_some());
    }

    #[test]
    fn in5_marker_in_the_middle_is_an_ordinary_line() {
        for block in [1, 4, 1000] {
            let (blocks, end) = frame_all(b"export terminated early\n{}\n", block, 100);
            assert_eq!(lines(&blocks).len(), 2);
            assert!(end.incomplete.is_none());
        }
    }

    #[test]
    fn oversized_line_is_skipped_with_its_length() {
        let mut data = b"a\n".to_vec();
        data.extend(vec![b'x'; 5000]);
        data.extend(b"\nb\n");
        let (blocks, end) = frame_all(&data, 16, 100);
        let got = lines(&blocks);
        assert_eq!(
            got,
            vec![
                (1, b"a".to_vec()),
                (2, b"<oversized 5000>".to_vec()),
                (3, b"b".to_vec())
            ]
        );
        assert_eq!(end.lines, 3);
    }

    #[test]
    fn read_error_marks_incomplete() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "eof"));
                }
                self.0 -= 1;
                buf[..3].copy_from_slice(b"{}\n");
                Ok(3)
            }
        }
        let mut blocks = 0;
        let end = frame_input(
            Failing(2),
            0,
            FrameConfig {
                block_bytes: 16,
                max_line_bytes: 100,
            },
            |_| {
                blocks += 1;
                true
            },
        )
        .unwrap();
        assert!(end.incomplete.unwrap().contains("truncated"));
        assert!(blocks >= 1);
    }
}
