//! Lexer: `where` text → tokens with byte offsets (where-language §3, L1–L5).

use crate::error::{CompileError, ErrorCode};

/// A token kind. Identifiers keep their original spelling; keywords are recognised
/// case-insensitively by the parser (L4).
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Str(String),
    Num(f64),
    Ident(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    EqEq,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Eof,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub offset: usize,
}

impl Tok {
    /// Whether this token ends an operand, which makes a following `-` binary (L3a).
    fn ends_operand(&self) -> bool {
        match self {
            Tok::Str(_) | Tok::Num(_) | Tok::RParen | Tok::RBracket => true,
            // Keyword operators (`and`, `or`, `not`, `in`) start an operand; every other
            // word ends one (literal keywords, `NOW`, lambda variables).
            Tok::Ident(w) => !["and", "or", "not", "in"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)),
            _ => false,
        }
    }
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub fn lex(src: &str) -> Result<Vec<Token>, CompileError> {
    let bytes = src.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let simple = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => Some((Tok::LParen, 1)),
            b')' => Some((Tok::RParen, 1)),
            b'[' => Some((Tok::LBracket, 1)),
            b']' => Some((Tok::RBracket, 1)),
            b',' => Some((Tok::Comma, 1)),
            b'+' => Some((Tok::Plus, 1)),
            b'*' => Some((Tok::Star, 1)),
            b'/' => Some((Tok::Slash, 1)),
            b'%' => Some((Tok::Percent, 1)),
            b'=' if bytes.get(i + 1) == Some(&b'=') => Some((Tok::EqEq, 2)),
            b'=' => Some((Tok::Eq, 1)),
            b'!' if bytes.get(i + 1) == Some(&b'=') => Some((Tok::Ne, 2)),
            b'<' if bytes.get(i + 1) == Some(&b'=') => Some((Tok::Le, 2)),
            b'<' => Some((Tok::Lt, 1)),
            b'>' if bytes.get(i + 1) == Some(&b'=') => Some((Tok::Ge, 2)),
            b'>' => Some((Tok::Gt, 1)),
            _ => None,
        };
        if let Some((tok, len)) = simple {
            tokens.push(Token { tok, offset: start });
            i += len;
            continue;
        }
        let tok = match c {
            b'"' | b'\'' => {
                let (s, end) = lex_string(src, i)?;
                i = end;
                Tok::Str(s)
            }
            b'-' => {
                let unary_literal = bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                    && !tokens.last().is_some_and(|t| t.tok.ends_operand());
                if unary_literal {
                    let (n, end) = lex_number(src, i + 1, true)?;
                    i = end;
                    Tok::Num(n)
                } else {
                    i += 1;
                    Tok::Minus
                }
            }
            b'0'..=b'9' => {
                let (n, end) = lex_number(src, i, false)?;
                i = end;
                Tok::Num(n)
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(src[start..i].to_string())
            }
            _ => {
                let ch = src[i..].chars().next().expect("i is on a char boundary");
                let hint = match ch {
                    '&' | '|' => " (write `and` / `or`)",
                    '!' => " (write `not`, or `!=`)",
                    '.' => " (write properties[\"name\"] or x[\"key\"])",
                    '$' => " (property names are strings: properties[\"$name\"])",
                    _ => "",
                };
                return Err(CompileError::new(
                    ErrorCode::Lex,
                    start,
                    format!("invalid character {ch:?}{hint}"),
                ));
            }
        };
        tokens.push(Token { tok, offset: start });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        offset: src.len(),
    });
    Ok(tokens)
}

/// Lexes a numeric literal starting at `i` (L3); `negative` when a `-` came before.
fn lex_number(src: &str, i: usize, negative: bool) -> Result<(f64, usize), CompileError> {
    let b = src.as_bytes();
    let digits = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let start = if negative { i - 1 } else { i };
    let mut j = digits(i);
    if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        j = digits(j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(b.get(k), Some(b'+' | b'-')) {
            k += 1;
        }
        if b.get(k).is_some_and(u8::is_ascii_digit) {
            j = digits(k);
        } else {
            return Err(CompileError::new(
                ErrorCode::Lex,
                start,
                "malformed number: the exponent needs digits".to_string(),
            ));
        }
    }
    // `1_000`, `0x10`, `5.`: a number glued to a word character or a dot is an error.
    if let Some(&next) = b.get(j) {
        if next.is_ascii_alphanumeric() || next == b'_' || next == b'.' {
            return Err(CompileError::new(
                ErrorCode::Lex,
                j,
                format!(
                    "invalid character {:?} in number",
                    src[j..].chars().next().unwrap_or('?')
                ),
            ));
        }
    }
    let n: f64 = src[start..j]
        .parse()
        .map_err(|_| CompileError::new(ErrorCode::Lex, start, "malformed number".to_string()))?;
    if !n.is_finite() {
        return Err(CompileError::new(
            ErrorCode::Lex,
            start,
            "number out of range (overflows a double)".to_string(),
        ));
    }
    Ok((n, j))
}

/// Lexes a string literal starting at its opening quote (L2).
fn lex_string(src: &str, open: usize) -> Result<(String, usize), CompileError> {
    let b = src.as_bytes();
    let quote = b[open];
    let mut out = String::new();
    let mut i = open + 1;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(CompileError::new(
                ErrorCode::Lex,
                open,
                "unterminated string".to_string(),
            ));
        };
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != b'\\' {
            let ch = src[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let esc = b.get(i + 1).copied();
        let simple = match esc {
            Some(b'"') => Some('"'),
            Some(b'\'') => Some('\''),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'b') => Some('\u{8}'),
            Some(b'f') => Some('\u{c}'),
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            i += 2;
            continue;
        }
        if esc != Some(b'u') {
            let shown = src[i + 1..]
                .chars()
                .next()
                .map_or_else(|| "end of input".to_string(), |c| format!("\\{c}"));
            return Err(CompileError::new(
                ErrorCode::Lex,
                i,
                format!("invalid escape {shown} in string"),
            ));
        }
        let unit = hex4(src, i)?;
        i += 6;
        let ch = if (0xD800..0xDC00).contains(&unit) {
            let low = if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') {
                Some(hex4(src, i)?)
            } else {
                None
            };
            match low {
                Some(low) if (0xDC00..0xE000).contains(&low) => {
                    i += 6;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                }
                _ => None,
            }
        } else {
            char::from_u32(unit)
        };
        match ch {
            Some(ch) => out.push(ch),
            None => {
                return Err(CompileError::new(
                    ErrorCode::Lex,
                    i - 6,
                    "lone surrogate in \\u escape (write a pair: \\uD83C\\uDF89)".to_string(),
                ))
            }
        }
    }
}

/// Reads the four hex digits of a `\uXXXX` escape at `i` (the backslash).
fn hex4(src: &str, i: usize) -> Result<u32, CompileError> {
    src.get(i + 2..i + 6)
        .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| {
            CompileError::new(
                ErrorCode::Lex,
                i,
                "invalid \\u escape: expected four hex digits".to_string(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn l3a_minus_is_literal_only_where_an_operand_starts() {
        assert_eq!(toks("-1"), [Tok::Num(-1.0), Tok::Eof]);
        assert_eq!(
            toks("a -1"),
            [Tok::Ident("a".into()), Tok::Minus, Tok::Num(1.0), Tok::Eof]
        );
        assert_eq!(
            toks("(-2)"),
            [Tok::LParen, Tok::Num(-2.0), Tok::RParen, Tok::Eof]
        );
        assert_eq!(
            toks("NOT -2"),
            [Tok::Ident("NOT".into()), Tok::Num(-2.0), Tok::Eof]
        );
        assert_eq!(toks("- 2"), [Tok::Minus, Tok::Num(2.0), Tok::Eof]);
    }

    #[test]
    fn l3_number_forms() {
        assert_eq!(toks("1.5e3"), [Tok::Num(1500.0), Tok::Eof]);
        for bad in [".5", "5.", "0x10", "1_000", "1.5.2", "1e999", "1e", "1ea"] {
            let e = lex(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Lex, "{bad}");
        }
    }

    #[test]
    fn l2_escapes() {
        assert_eq!(
            toks(r#""a\"b\n\u00e9\uD83C\uDF89" 'q\'s'"#),
            [
                Tok::Str("a\"b\né🎉".into()),
                Tok::Str("q's".into()),
                Tok::Eof
            ]
        );
        for bad in [r#""abc"#, r#""\x""#, r#""\uD83C""#, r#""\u12""#, r#""\"#] {
            assert_eq!(lex(bad).unwrap_err().code, ErrorCode::Lex, "{bad}");
        }
    }

    #[test]
    fn l5_invalid_characters_and_offsets() {
        let e = lex("properties[\"a\"] && true").unwrap_err();
        assert_eq!((e.code, e.offset), (ErrorCode::Lex, 16));
        assert_eq!(
            toks("a===b"),
            [
                Tok::Ident("a".into()),
                Tok::EqEq,
                Tok::Eq,
                Tok::Ident("b".into()),
                Tok::Eof
            ]
        );
    }
}
