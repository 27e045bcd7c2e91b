//! Compile errors (where-language §10) and the runtime error of B3.

use std::fmt;

/// The error codes of where-language §10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Invalid character, unterminated string, bad escape, lone surrogate, overflow.
    Lex,
    /// The grammar does not match (G1, G3, G4, G6).
    Syntax,
    /// Unknown identifier, function or accessor; reserved lambda variable (G7, G8, G11).
    Ident,
    /// Wrong number of arguments (G7).
    Arity,
    /// `user[...]` or `behaviors[...]` in an event export (G8, G9).
    Context,
    /// Empty expression (G10).
    Empty,
    /// Nesting deeper than 256 levels (G12).
    Depth,
}

impl ErrorCode {
    /// The code as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Lex => "E-LEX",
            ErrorCode::Syntax => "E-SYNTAX",
            ErrorCode::Ident => "E-IDENT",
            ErrorCode::Arity => "E-ARITY",
            ErrorCode::Context => "E-CONTEXT",
            ErrorCode::Empty => "E-EMPTY",
            ErrorCode::Depth => "E-DEPTH",
        }
    }
}

/// A `where` expression that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The error code.
    pub code: ErrorCode,
    /// Byte offset of the fault in the expression.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// The expression's line holding the fault and a caret line under it, filled in by
    /// [`super::compile`].
    pub excerpt: String,
}

impl CompileError {
    pub(crate) fn new(code: ErrorCode, offset: usize, message: String) -> Self {
        CompileError {
            code,
            offset,
            message,
            excerpt: String::new(),
        }
    }

    /// The compiler could not run (its thread could not be started or died): reported as
    /// a depth error, the only resource limit the language has.
    pub(crate) fn resources() -> Self {
        CompileError::new(
            ErrorCode::Depth,
            0,
            "the compiler ran out of resources (cannot start its thread)".into(),
        )
    }

    /// Adds the line of `src` holding the fault and a caret under it.
    pub(crate) fn with_source(mut self, src: &str) -> Self {
        let offset = self.offset.min(src.len());
        let line_start = src[..offset].rfind('\n').map_or(0, |p| p + 1);
        let line_end = src[offset..].find('\n').map_or(src.len(), |p| offset + p);
        let line = src[line_start..line_end].trim_end_matches('\r');
        // Tabs and control characters would shift the caret: show them as spaces.
        let shown: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let column = src[line_start..offset].chars().count();
        self.excerpt = format!("  {shown}\n  {}^", " ".repeat(column));
        self
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.code.as_str(),
            self.offset,
            self.message
        )?;
        if !self.excerpt.is_empty() {
            write!(f, "\n{}", self.excerpt)?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}

/// B3: an `and`/`or` operand that is not boolean, undefined or null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError {
    /// `and` or `or`.
    pub operator: &'static str,
    /// The operand's type (`number`, `string`, `list`, `object`, `datetime`).
    pub operand: &'static str,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "E-LOGIC-TYPE: `{}` got a {} operand (only boolean, undefined and null are allowed; \
             wrap it in boolean(...) or compare it explicitly)",
            self.operator, self.operand
        )
    }
}

impl std::error::Error for RuntimeError {}
