//! The syntax tree of a `where` expression, and its readable form for `where explain`.

use std::fmt::{self, Write};

/// A node and the byte offset where its text starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: Kind,
    pub offset: usize,
}

/// Literal constants of the language.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Undefined,
}

/// The kinds of nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Lit(Literal),
    /// `NOW` (F-now).
    Now,
    /// `[e1, e2, ...]` (G6).
    List(Vec<Expr>),
    /// `properties["k"]` (V2, V2a).
    Prop(String),
    /// `event["k"]` (F-event).
    Event(String),
    /// A lambda variable of an enclosing `any`/`all`: its slot and its name.
    Var(u32, String),
    /// `x["k"]` (V3).
    Index(Box<Expr>, String),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a and b and ...`, evaluated left to right with short-circuit (B1–B4).
    And(Vec<Expr>),
    /// `a or b or ...`.
    Or(Vec<Expr>),
    Call(Func, Vec<Expr>),
    /// `any(X, list, pred)` / `all(...)`: the variable's slot and name.
    Quant {
        all: bool,
        slot: u32,
        var: String,
        list: Box<Expr>,
        pred: Box<Expr>,
    },
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
}

/// Binary operators other than `and`/`or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
        }
    }
}

/// Built-in functions (§7), dispatched through one table so that new ones need no
/// grammar changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Defined,
    Boolean,
    Number,
    String,
    Datetime,
    List,
    Floor,
    Round,
    Ceil,
    HasPrefix,
    HasSuffix,
}

impl Func {
    /// Name, minimum and maximum argument count (G7).
    pub const TABLE: [(&'static str, Func, usize, usize); 11] = [
        ("defined", Func::Defined, 1, 1),
        ("boolean", Func::Boolean, 1, 1),
        ("number", Func::Number, 1, 1),
        ("string", Func::String, 1, 2),
        ("datetime", Func::Datetime, 1, 1),
        ("list", Func::List, 1, 1),
        ("floor", Func::Floor, 1, 1),
        ("round", Func::Round, 1, 1),
        ("ceil", Func::Ceil, 1, 1),
        ("has_prefix", Func::HasPrefix, 2, 2),
        ("has_suffix", Func::HasSuffix, 2, 2),
    ];

    /// Looks a function up by name, case-insensitively (L4).
    pub fn lookup(name: &str) -> Option<(Func, usize, usize)> {
        Self::TABLE
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .map(|&(_, f, min, max)| (f, min, max))
    }

    pub fn name(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(_, f, ..)| *f == self)
            .map(|(n, ..)| *n)
            .expect("every function is in the table")
    }
}

impl Expr {
    /// Whether the value is the same for every event: no property, event or lambda
    /// variable is read below this node.
    pub fn is_constant(&self) -> bool {
        match &self.kind {
            Kind::Lit(_) | Kind::Now => true,
            Kind::Prop(_) | Kind::Event(_) | Kind::Var(..) | Kind::Quant { .. } => false,
            Kind::List(items) | Kind::And(items) | Kind::Or(items) | Kind::Call(_, items) => {
                items.iter().all(Expr::is_constant)
            }
            Kind::Index(e, _) | Kind::Unary(_, e) => e.is_constant(),
            Kind::Binary(_, a, b) => a.is_constant() && b.is_constant(),
        }
    }

    /// The tree as an indented outline, one node per line.
    pub fn outline(&self) -> String {
        let mut out = String::new();
        self.outline_into(&mut out, 0);
        out
    }

    fn outline_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let children: Vec<&Expr> = match &self.kind {
            Kind::Lit(l) => {
                let _ = writeln!(out, "{pad}{l}");
                return;
            }
            Kind::Now => {
                let _ = writeln!(out, "{pad}NOW");
                return;
            }
            Kind::Prop(k) => {
                let _ = writeln!(out, "{pad}properties[{}]", quote(k));
                return;
            }
            Kind::Event(k) => {
                let _ = writeln!(out, "{pad}event[{}]", quote(k));
                return;
            }
            Kind::Var(slot, name) => {
                let _ = writeln!(out, "{pad}var {name} (slot {slot})");
                return;
            }
            Kind::List(items) => {
                let _ = writeln!(out, "{pad}list ({} items)", items.len());
                items.iter().collect()
            }
            Kind::Index(e, k) => {
                let _ = writeln!(out, "{pad}index [{}]", quote(k));
                vec![e]
            }
            Kind::Unary(op, e) => {
                let _ = writeln!(
                    out,
                    "{pad}{}",
                    if *op == UnOp::Neg { "negate" } else { "not" }
                );
                vec![e]
            }
            Kind::Binary(op, a, b) => {
                let _ = writeln!(out, "{pad}{}", op.symbol());
                vec![a, b]
            }
            Kind::And(items) => {
                let _ = writeln!(out, "{pad}and");
                items.iter().collect()
            }
            Kind::Or(items) => {
                let _ = writeln!(out, "{pad}or");
                items.iter().collect()
            }
            Kind::Call(f, args) => {
                let _ = writeln!(out, "{pad}{}()", f.name());
                args.iter().collect()
            }
            Kind::Quant {
                all,
                slot,
                var,
                list,
                pred,
            } => {
                let name = if *all { "all" } else { "any" };
                let _ = writeln!(out, "{pad}{name} {var} (slot {slot})");
                vec![list, pred]
            }
        };
        for child in children {
            child.outline_into(out, depth + 1);
        }
    }
}

/// A string as a JSON-style quoted literal.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => f.write_str(&quote(s)),
            Literal::Num(n) => f.write_str(&crate::number::number_text(*n)),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Null => f.write_str("null"),
            Literal::Undefined => f.write_str("undefined"),
        }
    }
}
