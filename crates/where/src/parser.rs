//! Parser: tokens → syntax tree (where-language §4, §5), by precedence climbing.
//!
//! Recursion happens once per nesting level (parentheses, lists, calls, prefix
//! operators), which G12 bounds at 256; chains of binary operators are loops, and the
//! tree height they build is bounded separately, so nothing downstream (compiler,
//! interpreter, drop) can overflow the stack on any input.

use crate::ast::{BinOp, Expr, Func, Kind, Literal, UnOp};
use crate::error::{CompileError, ErrorCode};
use crate::lexer::{Tok, Token};

/// G12: the deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// The tallest tree accepted. Long operator chains such as `a + b + c + ...` nest to the
/// left without any parenthesis; beyond this they are rejected with `E-DEPTH` too.
pub const MAX_HEIGHT: usize = 1024;

/// Words that cannot name a lambda variable (L4).
const RESERVED: [&str; 26] = [
    "and",
    "or",
    "not",
    "in",
    "true",
    "false",
    "null",
    "undefined",
    "now",
    "properties",
    "event",
    "user",
    "behaviors",
    "defined",
    "boolean",
    "number",
    "string",
    "datetime",
    "list",
    "floor",
    "round",
    "ceil",
    "has_prefix",
    "has_suffix",
    "any",
    "all",
];

/// Formula functions of the sibling custom-property language that `where` lacks (Q6).
const FORMULA_ONLY: [&str; 9] = [
    "lower",
    "upper",
    "regex_match",
    "len",
    "split",
    "if",
    "datedif",
    "contains",
    "now",
];

/// Operator levels, lowest first (G2).
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const NEG: u8 = 7;

/// Parses a token list ending in `Eof` into a tree.
pub fn parse(tokens: &[Token]) -> Result<Expr, CompileError> {
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        scopes: Vec::new(),
        next_slot: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(CompileError::new(
            ErrorCode::Empty,
            0,
            "empty expression (omit the filter to keep every event)".to_string(),
        ));
    }
    let (expr, _) = p.expr(OR)?;
    if p.peek() != &Tok::Eof {
        return Err(p.error_here(format!(
            "unexpected {} after a complete expression (missing operator?)",
            describe(p.peek())
        )));
    }
    Ok(expr)
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: usize,
    /// Lambda variables in scope, innermost last: (lower-cased name, slot).
    scopes: Vec<(String, u32)>,
    next_slot: u32,
}

/// A parsed node and the height of its tree.
type Parsed = (Expr, usize);

fn is_word(tok: &Tok, word: &str) -> bool {
    matches!(tok, Tok::Ident(w) if w.eq_ignore_ascii_case(word))
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Str(s) => format!("string {}", crate::ast::quote(s)),
        Tok::Num(n) => format!("number {}", crate::number::number_text(*n)),
        Tok::Ident(w) => format!("`{w}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::EqEq => "`==`".into(),
        Tok::Eq => "`=`".into(),
        Tok::Ne => "`!=`".into(),
        Tok::Lt => "`<`".into(),
        Tok::Le => "`<=`".into(),
        Tok::Gt => "`>`".into(),
        Tok::Ge => "`>=`".into(),
        Tok::Plus => "`+`".into(),
        Tok::Minus => "`-`".into(),
        Tok::Star => "`*`".into(),
        Tok::Slash => "`/`".into(),
        Tok::Percent => "`%`".into(),
        Tok::Eof => "end of expression".into(),
    }
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        let i = (self.pos + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos].offset
    }

    fn bump(&mut self) -> &'t Token {
        let t = &self.tokens[self.pos];
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, message: String) -> CompileError {
        CompileError::new(ErrorCode::Syntax, self.offset(), message)
    }

    fn expect(&mut self, tok: Tok, context: &str) -> Result<(), CompileError> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.error_here(format!(
                "expected {} {context}, found {}",
                describe(&tok),
                describe(self.peek())
            )))
        }
    }

    /// Enters one nesting level (G12).
    fn enter(&mut self, offset: usize) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CompileError::new(
                ErrorCode::Depth,
                offset,
                format!("expression nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn node(kind: Kind, offset: usize, height: usize) -> Result<Parsed, CompileError> {
        if height > MAX_HEIGHT {
            return Err(CompileError::new(
                ErrorCode::Depth,
                offset,
                format!(
                    "expression too long: more than {MAX_HEIGHT} chained operators (use `in [...]` for long lists of alternatives)"
                ),
            ));
        }
        Ok((Expr { kind, offset }, height))
    }

    /// The infix operator at the cursor and its level, if any.
    fn infix(&self) -> Result<Option<(u8, Option<BinOp>)>, CompileError> {
        let op = match self.peek() {
            Tok::Ident(w) if w.eq_ignore_ascii_case("or") => (OR, None),
            Tok::Ident(w) if w.eq_ignore_ascii_case("and") => (AND, None),
            Tok::Ident(w) if w.eq_ignore_ascii_case("in") => (CMP, Some(BinOp::In)),
            Tok::Ident(w) if w.eq_ignore_ascii_case("not") => {
                if is_word(self.peek_at(1), "in") {
                    (CMP, Some(BinOp::NotIn))
                } else {
                    return Err(self.error_here(
                        "`not` after an operand must be followed by `in` (G4); to negate, write `not` before the operand".to_string(),
                    ));
                }
            }
            Tok::EqEq | Tok::Eq => (CMP, Some(BinOp::Eq)),
            Tok::Ne => (CMP, Some(BinOp::Ne)),
            Tok::Lt => (CMP, Some(BinOp::Lt)),
            Tok::Le => (CMP, Some(BinOp::Le)),
            Tok::Gt => (CMP, Some(BinOp::Gt)),
            Tok::Ge => (CMP, Some(BinOp::Ge)),
            Tok::Plus => (ADD, Some(BinOp::Add)),
            Tok::Minus => (ADD, Some(BinOp::Sub)),
            Tok::Star => (MUL, Some(BinOp::Mul)),
            Tok::Slash => (MUL, Some(BinOp::Div)),
            Tok::Percent => (MUL, Some(BinOp::Mod)),
            _ => return Ok(None),
        };
        Ok(Some(op))
    }

    /// Parses an expression whose operators all bind at `min` or tighter.
    fn expr(&mut self, min: u8) -> Result<Parsed, CompileError> {
        let (mut lhs, mut height) = self.prefix()?;
        let mut after_comparison = false;
        while let Some((level, op)) = self.infix()? {
            if level < min {
                break;
            }
            let offset = lhs.offset;
            match op {
                None => {
                    // `and` / `or`: one n-ary node for the whole chain.
                    let mut items = vec![lhs];
                    while matches!(self.infix()?, Some((l, None)) if l == level) {
                        self.bump();
                        let (rhs, h) = self.expr(level + 1)?;
                        height = height.max(h);
                        items.push(rhs);
                    }
                    let kind = if level == OR {
                        Kind::Or(items)
                    } else {
                        Kind::And(items)
                    };
                    (lhs, height) = Self::node(kind, offset, height + 1)?;
                    after_comparison = false;
                }
                Some(op) => {
                    if level == CMP && after_comparison {
                        return Err(self.error_here(
                            "comparisons do not chain (G3): join them with `and`, or add parentheses".to_string(),
                        ));
                    }
                    self.bump();
                    if op == BinOp::NotIn {
                        self.bump();
                    }
                    let (rhs, h) = self.expr(level + 1)?;
                    let kind = Kind::Binary(op, Box::new(lhs), Box::new(rhs));
                    (lhs, height) = Self::node(kind, offset, height.max(h) + 1)?;
                    after_comparison = level == CMP;
                }
            }
        }
        Ok((lhs, height))
    }

    fn prefix(&mut self) -> Result<Parsed, CompileError> {
        let offset = self.offset();
        let (op, level) = match self.peek() {
            Tok::Minus => (UnOp::Neg, NEG),
            t if is_word(t, "not") => (UnOp::Not, NOT),
            _ => return self.postfix(),
        };
        self.bump();
        self.enter(offset)?;
        let (operand, h) = self.expr(level)?;
        self.leave();
        Self::node(Kind::Unary(op, Box::new(operand)), offset, h + 1)
    }

    /// A primary followed by any `["key"]` indexes (V3).
    fn postfix(&mut self) -> Result<Parsed, CompileError> {
        let (mut e, mut h) = self.primary()?;
        while *self.peek() == Tok::LBracket {
            self.bump();
            let key = self.string_key("an index")?;
            let offset = e.offset;
            (e, h) = Self::node(Kind::Index(Box::new(e), key), offset, h + 1)?;
        }
        Ok((e, h))
    }

    /// The `"key"]` of an accessor or index, after its `[`.
    fn string_key(&mut self, what: &str) -> Result<String, CompileError> {
        let Tok::Str(key) = self.peek().clone() else {
            return Err(self.error_here(format!(
                "the key of {what} must be a string literal such as [\"$browser\"] (G8), found {}",
                describe(self.peek())
            )));
        };
        self.bump();
        self.expect(Tok::RBracket, &format!("to close {what}"))?;
        Ok(key)
    }

    fn primary(&mut self) -> Result<Parsed, CompileError> {
        let token = self.bump();
        let offset = token.offset;
        let leaf = |kind| Self::node(kind, offset, 1);
        match &token.tok {
            Tok::Str(s) => leaf(Kind::Lit(Literal::Str(s.clone()))),
            Tok::Num(n) => leaf(Kind::Lit(Literal::Num(*n))),
            Tok::LParen => {
                self.enter(offset)?;
                let (e, h) = self.expr(OR)?;
                self.expect(Tok::RParen, "to close the parenthesis")?;
                self.leave();
                Ok((e, h))
            }
            Tok::LBracket => {
                self.enter(offset)?;
                let (items, h) = self.items(Tok::RBracket, "list")?;
                self.leave();
                Self::node(Kind::List(items), offset, h + 1)
            }
            Tok::Ident(word) => self.word(word, offset),
            Tok::Eof => Err(CompileError::new(
                ErrorCode::Syntax,
                offset,
                "unexpected end of expression: expected an operand".to_string(),
            )),
            other => Err(CompileError::new(
                ErrorCode::Syntax,
                offset,
                format!("expected an operand, found {}", describe(other)),
            )),
        }
    }

    /// Comma-separated expressions up to `close` (G6: no trailing comma).
    fn items(&mut self, close: Tok, what: &str) -> Result<(Vec<Expr>, usize), CompileError> {
        let mut items = Vec::new();
        let mut height = 0;
        if *self.peek() == close {
            self.bump();
            return Ok((items, height));
        }
        loop {
            let (e, h) = self.expr(OR)?;
            height = height.max(h);
            items.push(e);
            if *self.peek() == Tok::Comma {
                self.bump();
                if *self.peek() == close {
                    return Err(self.error_here(format!("trailing comma in {what} (G6)")));
                }
                continue;
            }
            self.expect(close.clone(), &format!("or `,` in {what}"))?;
            return Ok((items, height));
        }
    }

    fn word(&mut self, word: &str, offset: usize) -> Result<Parsed, CompileError> {
        let lower = word.to_ascii_lowercase();
        let leaf = |kind| Self::node(kind, offset, 1);
        match lower.as_str() {
            "true" => return leaf(Kind::Lit(Literal::Bool(true))),
            "false" => return leaf(Kind::Lit(Literal::Bool(false))),
            "null" => return leaf(Kind::Lit(Literal::Null)),
            "undefined" => return leaf(Kind::Lit(Literal::Undefined)),
            "now" => {
                if *self.peek() == Tok::LParen {
                    return Err(self.error_here(
                        "NOW is a keyword, not a function: write NOW without parentheses"
                            .to_string(),
                    ));
                }
                return leaf(Kind::Now);
            }
            "properties" | "event" => {
                self.expect(Tok::LBracket, &format!("after `{word}` (write {word}[\"name\"])"))?;
                let key = self.string_key(&format!("`{word}[...]`"))?;
                return leaf(if lower == "properties" {
                    Kind::Prop(key)
                } else {
                    Kind::Event(key)
                });
            }
            "user" | "behaviors" => {
                return Err(CompileError::new(
                    ErrorCode::Context,
                    offset,
                    format!(
                        "`{word}[...]` is not available when filtering events: export lines carry only event properties (G9)"
                    ),
                ))
            }
            "and" | "or" | "in" => {
                return Err(CompileError::new(
                    ErrorCode::Syntax,
                    offset,
                    format!("expected an operand, found `{word}`"),
                ))
            }
            "any" | "all" => return self.quantifier(lower == "all", word, offset),
            _ => {}
        }
        if let Some((func, min, max)) = Func::lookup(word) {
            if *self.peek() != Tok::LParen {
                return Err(self.error_here(format!("`{word}` is a function: write {word}(...)")));
            }
            self.bump();
            self.enter(offset)?;
            let (args, h) = self.items(Tok::RParen, &format!("the arguments of {word}"))?;
            self.leave();
            if args.len() < min || args.len() > max {
                let wanted = if min == max {
                    format!("{min}")
                } else {
                    format!("{min} or {max}")
                };
                return Err(CompileError::new(
                    ErrorCode::Arity,
                    offset,
                    format!(
                        "{} takes {wanted} argument{}, got {}",
                        func.name(),
                        if max == 1 { "" } else { "s" },
                        args.len()
                    ),
                ));
            }
            return Self::node(Kind::Call(func, args), offset, h + 1);
        }
        if let Some((_, slot)) = self.scopes.iter().rev().find(|(n, _)| *n == lower) {
            return leaf(Kind::Var(*slot, word.to_string()));
        }
        let message = if *self.peek() == Tok::LParen {
            if FORMULA_ONLY.contains(&lower.as_str()) {
                format!("unknown function `{word}`: it belongs to custom-property formulas, not to `where` (Q6)")
            } else {
                format!("unknown function `{word}`")
            }
        } else if lower == "contains" {
            "unknown identifier `contains`: write \"text\" in properties[\"name\"]".to_string()
        } else {
            format!(
                "unknown identifier `{word}` (properties are written properties[\"{word}\"]; bare names are only lambda variables of any/all)"
            )
        };
        Err(CompileError::new(ErrorCode::Ident, offset, message))
    }

    /// `any(X, list, pred)` / `all(X, list, pred)` (F-any, G7).
    fn quantifier(&mut self, all: bool, word: &str, offset: usize) -> Result<Parsed, CompileError> {
        self.expect(Tok::LParen, &format!("after `{word}`"))?;
        self.enter(offset)?;
        let arity = |got: usize| {
            CompileError::new(
                ErrorCode::Arity,
                offset,
                format!("{word} takes 3 arguments (variable, list, condition), got {got}"),
            )
        };
        let var_token = self.bump();
        let var = match &var_token.tok {
            Tok::RParen => return Err(arity(0)),
            Tok::Ident(v) if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(v)) => {
                return Err(CompileError::new(
                    ErrorCode::Ident,
                    var_token.offset,
                    format!("`{v}` is a reserved word and cannot name the variable of {word}"),
                ))
            }
            Tok::Ident(v) => v.clone(),
            other => {
                return Err(CompileError::new(
                    ErrorCode::Syntax,
                    var_token.offset,
                    format!(
                        "the first argument of {word} must be a variable name, found {}",
                        describe(other)
                    ),
                ))
            }
        };
        if *self.peek() == Tok::RParen {
            return Err(arity(1));
        }
        self.expect(Tok::Comma, &format!("after the variable of {word}"))?;
        let (list, h1) = self.expr(OR)?;
        if *self.peek() == Tok::RParen {
            return Err(arity(2));
        }
        self.expect(Tok::Comma, &format!("after the list of {word}"))?;
        let slot = self.next_slot;
        self.next_slot += 1;
        self.scopes.push((var.to_ascii_lowercase(), slot));
        let (pred, h2) = self.expr(OR)?;
        self.scopes.pop();
        if *self.peek() == Tok::Comma {
            self.bump();
            let (extra, _) = self.items(Tok::RParen, &format!("the arguments of {word}"))?;
            return Err(arity(3 + extra.len()));
        }
        self.expect(Tok::RParen, &format!("to close {word}(...)"))?;
        self.leave();
        let kind = Kind::Quant {
            all,
            slot,
            var,
            list: Box::new(list),
            pred: Box::new(pred),
        };
        Self::node(kind, offset, h1.max(h2) + 1)
    }
}
