//! A plain tree-walking interpreter of the syntax tree: the reference the VM is checked
//! against, and the evaluator of constant subtrees at compile time.
//!
//! It shares the value semantics of [`super::value`] with the VM but nothing of its
//! machinery: no folding, no interning or caching of keys, no precomputed sets, no jumps.

use crate::ast::{Expr, Kind, Literal, UnOp};
use crate::event::EventRef;
use crate::ops;
use crate::value::{List, Value};
use crate::{Context, RuntimeError};
use std::borrow::Cow;
use std::sync::Arc;

/// Evaluates `expr` for `event`. `vars` holds the lambda variables by slot.
pub fn eval<'a>(
    expr: &'a Expr,
    event: &EventRef<'a>,
    ctx: &Context,
    vars: &mut Vec<Value<'a>>,
) -> Result<Value<'a>, RuntimeError> {
    let tz = &ctx.tz;
    Ok(match &expr.kind {
        Kind::Lit(l) => match l {
            Literal::Str(s) => Value::Str(Cow::Borrowed(s)),
            Literal::Num(n) => Value::Num(*n),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Null => Value::Null,
            Literal::Undefined => Value::Undef,
        },
        Kind::Now => Value::Num(ctx.now as f64),
        Kind::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for e in items {
                out.push(eval(e, event, ctx, vars)?);
            }
            Value::List(List::Owned(Arc::from(out)))
        }
        Kind::Prop(k) => event.property(k, tz),
        Kind::Event(k) => event.event_field(k, tz),
        Kind::Var(slot, _) => vars.get(*slot as usize).cloned().unwrap_or(Value::Undef),
        Kind::Index(e, k) => ops::index(&eval(e, event, ctx, vars)?, k),
        Kind::Unary(op, e) => {
            let v = eval(e, event, ctx, vars)?;
            match op {
                UnOp::Neg => ops::negate(&v),
                UnOp::Not => ops::not(&v),
            }
        }
        Kind::Binary(op, a, b) => {
            let a = eval(a, event, ctx, vars)?;
            let b = eval(b, event, ctx, vars)?;
            ops::binary(*op, &a, &b, tz)
        }
        Kind::And(items) => {
            for e in items {
                if !ops::logical(&eval(e, event, ctx, vars)?, "and")? {
                    return Ok(Value::Bool(false));
                }
            }
            Value::Bool(true)
        }
        Kind::Or(items) => {
            for e in items {
                if ops::logical(&eval(e, event, ctx, vars)?, "or")? {
                    return Ok(Value::Bool(true));
                }
            }
            Value::Bool(false)
        }
        Kind::Call(crate::ast::Func::String, args) if args.len() == 2 => {
            let s = ops::to_string(&eval(&args[0], event, ctx, vars)?, tz);
            match s {
                Value::Undef | Value::Null => eval(&args[1], event, ctx, vars)?,
                s => s,
            }
        }
        Kind::Call(f, args) => {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(eval(a, event, ctx, vars)?);
            }
            ops::call(*f, &values, tz)
        }
        Kind::Quant {
            all,
            slot,
            list,
            pred,
            ..
        } => {
            let Value::List(items) = eval(list, event, ctx, vars)? else {
                return Ok(Value::Undef);
            };
            let slot = *slot as usize;
            if vars.len() <= slot {
                vars.resize(slot + 1, Value::Undef);
            }
            let saved = vars[slot].clone();
            let mut answer = *all;
            for item in items.items() {
                vars[slot] = item;
                let satisfied = eval(pred, event, ctx, vars)?.is_true();
                if satisfied != *all {
                    answer = !*all;
                    break;
                }
            }
            vars[slot] = saved;
            Value::Bool(answer)
        }
    })
}
