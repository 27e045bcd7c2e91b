//! Compiler: syntax tree → bytecode for the stack VM of [`super::vm`] (§11).
//!
//! - Constant subtrees are folded by the reference interpreter. A constant subtree that
//!   raises B3 becomes a `Raise` at its place, so the error still happens exactly when
//!   the subtree is evaluated (`false and (1 or true)` is `false`, `x and (1 or true)`
//!   fails only when `x` is true).
//! - `and`/`or` become conditional jumps (B4).
//! - Property keys are interned: each distinct key gets a slot that the VM looks up at
//!   most once per event.
//! - `x in [constants]` uses a precomputed set.

use std::fmt::Write;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::ast::{BinOp, Expr, Func, Kind, UnOp};
use crate::event::EventRef;
use crate::interp;
use crate::ops;
use crate::value::Value;
use crate::{datetime, Context, RuntimeError};

/// One instruction. Jump targets are absolute instruction indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Push constant `i`.
    Const(u32),
    /// Push `properties[key i]`.
    Prop(u32),
    /// Push the event's name (`event["$event_name"]`).
    EventName,
    /// Push lambda variable `slot`.
    Var(u32),
    /// Pop `x`, push `x[string constant i]`.
    Index(u32),
    /// Pop `n` values, push them as a list.
    MakeList(u32),
    Unary(UnOp),
    /// Pop `b`, pop `a`, push `a op b` (arithmetic, comparison, `in`).
    Binary(BinOp),
    /// Pop `x`, push `x in set i`.
    InSet(u32),
    /// Pop the function's arguments, push its result.
    Call(Func, u8),
    /// `string(x, d)`: pop `x`; if `string(x)` is defined and not null, push it and jump.
    StringOr(u32),
    /// `and`: pop a logical operand; unless it is true, push `false` and jump.
    AndTest(u32),
    /// `or`: pop a logical operand; if it is true, push `true` and jump.
    OrTest(u32),
    /// Pop the last operand of an `and` (`true`) or `or` (`false`), push it as a boolean.
    Logical(bool),
    /// Pop a list; run the body (up to `end`) per element with the element in `slot`;
    /// push the answer of `any` (`all: false`) or `all`; continue at `end`.
    Quant {
        all: bool,
        slot: u32,
        end: u32,
    },
    /// Fail with runtime error `i` (a folded constant subtree that raises B3).
    Raise(u32),
}

/// Membership in a constant list, with the semantics of `value::contains`.
#[derive(Debug, Default)]
pub struct ConstSet {
    strings: FxHashSet<Box<str>>,
    /// Canonical bits of numbers (`-0` as `0`).
    numbers: FxHashSet<u64>,
    bools: [bool; 2],
    null: bool,
    undefined: bool,
    times: FxHashSet<i64>,
    /// Datetimes of the string and number elements, for datetime needles (C5).
    coerced_times: FxHashSet<i64>,
    /// Lists and objects, compared one by one (E5).
    others: Vec<Value<'static>>,
}

fn number_key(n: f64) -> u64 {
    if n == 0.0 {
        0
    } else {
        n.to_bits()
    }
}

impl ConstSet {
    fn new(items: &[Value<'static>], ctx: &Context) -> ConstSet {
        let mut set = ConstSet::default();
        for v in items {
            match v {
                Value::Str(s) => {
                    set.strings.insert(s.as_ref().into());
                    if let Some(t) = datetime::parse(s, &ctx.tz) {
                        set.coerced_times.insert(t);
                    }
                }
                Value::Num(n) => {
                    set.numbers.insert(number_key(*n));
                    if let Some(t) = datetime::from_number(*n) {
                        set.coerced_times.insert(t);
                    }
                }
                Value::Bool(b) => set.bools[usize::from(*b)] = true,
                Value::Null => set.null = true,
                Value::Undef => set.undefined = true,
                Value::Time(t) => {
                    set.times.insert(*t);
                }
                Value::List(_) | Value::Obj(_) => set.others.push(v.clone()),
            }
        }
        set
    }

    /// `x == e` for some element `e`.
    fn has_element(&self, x: &Value<'_>, ctx: &Context) -> bool {
        match x {
            Value::Str(s) => {
                self.strings.contains(s.as_ref())
                    || (!self.times.is_empty()
                        && datetime::parse(s, &ctx.tz).is_some_and(|t| self.times.contains(&t)))
            }
            Value::Num(n) => {
                self.numbers.contains(&number_key(*n))
                    || (!self.times.is_empty()
                        && datetime::from_number(*n).is_some_and(|t| self.times.contains(&t)))
            }
            Value::Bool(b) => self.bools[usize::from(*b)],
            Value::Null => self.null,
            Value::Undef => self.undefined,
            Value::Time(t) => self.times.contains(t) || self.coerced_times.contains(t),
            Value::List(_) | Value::Obj(_) => self.others.iter().any(|e| ops::equal(x, e, &ctx.tz)),
        }
    }

    /// `x in [elements]` (I2, I3).
    pub fn contains(&self, x: &Value<'_>, ctx: &Context) -> bool {
        match x {
            Value::List(items) => items.items().any(|i| self.has_element(&i, ctx)),
            _ => self.has_element(x, ctx),
        }
    }
}

/// The compiled form of an expression.
#[derive(Debug, Default)]
pub struct Code {
    pub ops: Vec<Op>,
    pub consts: Vec<Value<'static>>,
    pub keys: Vec<Box<str>>,
    pub strings: Vec<Box<str>>,
    pub sets: Vec<ConstSet>,
    pub errors: Vec<RuntimeError>,
    /// Number of lambda variable slots.
    pub slots: usize,
}

struct Compiler<'c> {
    ctx: &'c Context,
    code: Code,
    key_ids: FxHashMap<String, u32>,
}

/// Compiles a parsed expression.
pub fn compile(expr: &Expr, ctx: &Context) -> Code {
    let mut c = Compiler {
        ctx,
        code: Code::default(),
        key_ids: FxHashMap::default(),
    };
    c.expr(expr);
    c.code
}

impl Compiler<'_> {
    fn emit(&mut self, op: Op) -> usize {
        self.code.ops.push(op);
        self.code.ops.len() - 1
    }

    fn here(&self) -> u32 {
        self.code.ops.len() as u32
    }

    fn patch(&mut self, at: usize) {
        let target = self.here();
        match &mut self.code.ops[at] {
            Op::AndTest(t) | Op::OrTest(t) | Op::StringOr(t) => *t = target,
            Op::Quant { end, .. } => *end = target,
            _ => unreachable!("only jumps are patched"),
        }
    }

    fn constant(&mut self, v: Value<'static>) {
        let i = self.code.consts.len() as u32;
        self.code.consts.push(v);
        self.emit(Op::Const(i));
    }

    fn key(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.key_ids.get(key) {
            return id;
        }
        let id = self.code.keys.len() as u32;
        self.code.keys.push(key.into());
        self.key_ids.insert(key.to_string(), id);
        id
    }

    /// Evaluates a constant subtree once, now.
    fn fold(&mut self, expr: &Expr) -> Result<Value<'static>, RuntimeError> {
        let mut vars = Vec::new();
        interp::eval(expr, &EventRef::empty(), self.ctx, &mut vars).map(Value::into_static)
    }

    fn expr(&mut self, expr: &Expr) {
        if expr.is_constant() {
            match self.fold(expr) {
                Ok(v) => self.constant(v),
                Err(e) => {
                    let i = self.code.errors.len() as u32;
                    self.code.errors.push(e);
                    self.emit(Op::Raise(i));
                }
            }
            return;
        }
        match &expr.kind {
            Kind::Lit(_) | Kind::Now => unreachable!("literals are constant"),
            Kind::List(items) => {
                for e in items {
                    self.expr(e);
                }
                self.emit(Op::MakeList(items.len() as u32));
            }
            Kind::Prop(k) => {
                let id = self.key(k);
                self.emit(Op::Prop(id));
            }
            Kind::Event(k) => match k.as_str() {
                "$time" | "time" => {
                    let id = self.key("$time");
                    self.emit(Op::Prop(id));
                }
                "$distinct_id" | "distinct_id" => {
                    let id = self.key("distinct_id");
                    self.emit(Op::Prop(id));
                }
                "$event_name" | "name" => {
                    self.emit(Op::EventName);
                }
                _ => self.constant(Value::Undef),
            },
            Kind::Var(slot, _) => {
                self.emit(Op::Var(*slot));
            }
            Kind::Index(e, k) => {
                self.expr(e);
                let i = self.code.strings.len() as u32;
                self.code.strings.push(k.as_str().into());
                self.emit(Op::Index(i));
            }
            Kind::Unary(op, e) => {
                self.expr(e);
                self.emit(Op::Unary(*op));
            }
            Kind::Binary(op, a, b) => {
                self.expr(a);
                let set = match (op, &b.kind) {
                    (BinOp::In | BinOp::NotIn, Kind::List(_)) if b.is_constant() => {
                        match self.fold(b) {
                            Ok(Value::List(items)) => Some(items.items().collect::<Vec<_>>()),
                            _ => None, // an element raises: evaluate it in place
                        }
                    }
                    _ => None,
                };
                match set {
                    Some(items) => {
                        let i = self.code.sets.len() as u32;
                        self.code.sets.push(ConstSet::new(&items, self.ctx));
                        self.emit(Op::InSet(i));
                        if *op == BinOp::NotIn {
                            self.emit(Op::Unary(UnOp::Not));
                        }
                    }
                    None => {
                        self.expr(b);
                        self.emit(Op::Binary(*op));
                    }
                }
            }
            Kind::And(items) | Kind::Or(items) => {
                let is_and = matches!(expr.kind, Kind::And(_));
                let mut jumps = Vec::new();
                let (last, init) = items.split_last().expect("a chain has two or more items");
                for e in init {
                    self.expr(e);
                    jumps.push(self.emit(if is_and {
                        Op::AndTest(0)
                    } else {
                        Op::OrTest(0)
                    }));
                }
                self.expr(last);
                self.emit(Op::Logical(is_and));
                for j in jumps {
                    self.patch(j);
                }
            }
            Kind::Call(Func::String, args) if args.len() == 2 => {
                self.expr(&args[0]);
                let j = self.emit(Op::StringOr(0));
                self.expr(&args[1]);
                self.patch(j);
            }
            Kind::Call(f, args) => {
                for a in args {
                    self.expr(a);
                }
                self.emit(Op::Call(*f, args.len() as u8));
            }
            Kind::Quant {
                all,
                slot,
                list,
                pred,
                ..
            } => {
                self.code.slots = self.code.slots.max(*slot as usize + 1);
                self.expr(list);
                let q = self.emit(Op::Quant {
                    all: *all,
                    slot: *slot,
                    end: 0,
                });
                self.expr(pred);
                self.patch(q);
            }
        }
    }
}

impl Code {
    /// A readable listing of the bytecode, one instruction per line.
    pub fn listing(&self, ctx: &Context) -> String {
        let mut out = String::new();
        for (pc, op) in self.ops.iter().enumerate() {
            let _ = write!(out, "{pc:4}  ");
            let _ = match *op {
                Op::Const(i) => writeln!(
                    out,
                    "const      {}",
                    self.consts[i as usize].render(&ctx.tz)
                ),
                Op::Prop(i) => writeln!(
                    out,
                    "prop       properties[{}]  (key #{i}, looked up once per event)",
                    crate::ast::quote(&self.keys[i as usize])
                ),
                Op::EventName => writeln!(out, "event_name"),
                Op::Var(s) => writeln!(out, "var        slot {s}"),
                Op::Index(i) => writeln!(
                    out,
                    "index      [{}]",
                    crate::ast::quote(&self.strings[i as usize])
                ),
                Op::MakeList(n) => writeln!(out, "make_list  {n}"),
                Op::Unary(UnOp::Neg) => writeln!(out, "negate"),
                Op::Unary(UnOp::Not) => writeln!(out, "not"),
                Op::Binary(op) => writeln!(out, "binary     {}", op.symbol()),
                Op::InSet(i) => {
                    let s = &self.sets[i as usize];
                    let n = s.strings.len()
                        + s.numbers.len()
                        + s.times.len()
                        + s.others.len()
                        + s.bools.iter().filter(|b| **b).count()
                        + usize::from(s.null)
                        + usize::from(s.undefined);
                    writeln!(out, "in_set     #{i} ({n} distinct constants, hashed)")
                }
                Op::Call(f, n) => writeln!(out, "call       {}/{n}", f.name()),
                Op::StringOr(t) => writeln!(
                    out,
                    "string_or  → {t}  (default evaluated only when needed)"
                ),
                Op::AndTest(t) => writeln!(
                    out,
                    "and_test   → {t}  (false/undefined/null: push false, jump)"
                ),
                Op::OrTest(t) => writeln!(out, "or_test    → {t}  (true: push true, jump)"),
                Op::Logical(true) => writeln!(out, "to_bool    and"),
                Op::Logical(false) => writeln!(out, "to_bool    or"),
                Op::Quant { all, slot, end } => writeln!(
                    out,
                    "{}        slot {slot}, body {}..{end}",
                    if all { "all" } else { "any" },
                    pc + 1
                ),
                Op::Raise(i) => writeln!(out, "raise      {}", self.errors[i as usize]),
            };
        }
        out
    }
}
