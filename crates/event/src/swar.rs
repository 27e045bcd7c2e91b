//! Eight bytes at a time: quotes, backslashes and control bytes found in a `u64` word
//! (SIMD within a register).

/// Whether any byte of `word` is a control character, `"` or `\` (SWAR: a byte's
/// high bit survives `(x - 0x01..) & !x` exactly when that byte of `x` is zero, or,
/// with `0x20`, below 0x20).
pub(crate) fn has_byte_to_escape(word: u64) -> bool {
    (bytes_below(word, 0x20) | quotes_or_backslashes(word)) != 0
}

/// The high bit of the first byte of `word` (in memory order) that is a quote or a
/// backslash is set, or 0 if there is none. (Bits above the first such byte may be
/// wrong: the subtraction's borrow runs upward.)
pub(crate) fn quotes_or_backslashes(word: u64) -> u64 {
    bytes_equal(word, b'"') | bytes_equal(word, b'\\')
}

pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;

/// Nonzero exactly when a byte of `word` is below `n` (at most 0x80).
pub(crate) fn bytes_below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & (ONES << 7)
}

/// Nonzero exactly when a byte of `word` equals `b`.
pub(crate) fn bytes_equal(word: u64, b: u8) -> u64 {
    bytes_below(word ^ (ONES * u64::from(b)), 1)
}
