//! The stack VM that runs compiled `where` programs, once per event.

use std::borrow::Cow;
use std::sync::Arc;

use crate::compile::{Code, Op};
use crate::event::EventRef;
use crate::ops;
use crate::value::{List, Value};
use crate::{Context, RuntimeError};

/// Buffers reused from one evaluation to the next: one per worker thread.
#[derive(Default)]
pub struct Scratch {
    stack: Vec<Value<'static>>,
    cache: Vec<Option<Value<'static>>>,
    vars: Vec<Value<'static>>,
}

/// Reuses a vector's allocation for values of another lifetime. The vector is emptied
/// first, so no value outlives its borrow; `collect` on a mapped `into_iter` of the same
/// element layout reuses the allocation in place.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector is empty"))
        .collect()
}

/// A constant of the program as a value borrowing from it.
fn reborrow<'a>(v: &'a Value<'static>) -> Value<'a> {
    match v {
        Value::Str(s) => Value::Str(Cow::Borrowed(s.as_ref())),
        other => other.clone(),
    }
}

struct Machine<'a, 'p> {
    code: &'a Code,
    ctx: &'p Context,
    event: &'p EventRef<'a>,
    stack: Vec<Value<'a>>,
    cache: Vec<Option<Value<'a>>>,
    vars: Vec<Value<'a>>,
}

/// Runs `code` for one event.
pub fn run<'a>(
    code: &'a Code,
    ctx: &Context,
    event: &EventRef<'a>,
    scratch: &mut Scratch,
) -> Result<Value<'a>, RuntimeError> {
    let mut m = Machine {
        code,
        ctx,
        event,
        stack: recycle(std::mem::take(&mut scratch.stack)),
        cache: recycle(std::mem::take(&mut scratch.cache)),
        vars: recycle(std::mem::take(&mut scratch.vars)),
    };
    m.cache.resize(code.keys.len(), None);
    m.vars.resize(code.slots, Value::Undef);
    let result = m.exec(0, code.ops.len()).map(|()| {
        m.stack
            .pop()
            .expect("a program leaves its result on the stack")
    });
    scratch.stack = recycle(m.stack);
    scratch.cache = recycle(m.cache);
    scratch.vars = recycle(m.vars);
    result
}

impl<'a> Machine<'a, '_> {
    fn pop(&mut self) -> Value<'a> {
        self.stack.pop().expect("the compiler balances the stack")
    }

    /// Executes instructions `start..end`, which leave one value on the stack.
    fn exec(&mut self, start: usize, end: usize) -> Result<(), RuntimeError> {
        let code = self.code;
        let tz = &self.ctx.tz;
        let mut pc = start;
        while pc < end {
            match code.ops[pc] {
                Op::Const(i) => self.stack.push(reborrow(&code.consts[i as usize])),
                Op::Prop(k) => {
                    let k = k as usize;
                    let v = match &self.cache[k] {
                        Some(v) => v.clone(),
                        None => {
                            let v = self.event.property(&code.keys[k], tz);
                            self.cache[k] = Some(v.clone());
                            v
                        }
                    };
                    self.stack.push(v);
                }
                Op::EventName => self.stack.push(Value::Str(Cow::Borrowed(self.event.name))),
                Op::Var(slot) => {
                    let v = self.vars[slot as usize].clone();
                    self.stack.push(v);
                }
                Op::Index(i) => {
                    let x = self.pop();
                    self.stack.push(ops::index(&x, &code.strings[i as usize]));
                }
                Op::MakeList(n) => {
                    let base = self.stack.len() - n as usize;
                    let items: Arc<[Value<'a>]> = self.stack.drain(base..).collect();
                    self.stack.push(Value::List(List::Owned(items)));
                }
                Op::Unary(op) => {
                    let x = self.pop();
                    self.stack.push(match op {
                        crate::ast::UnOp::Neg => ops::negate(&x),
                        crate::ast::UnOp::Not => ops::not(&x),
                    });
                }
                Op::Binary(op) => {
                    let b = self.pop();
                    let a = self.pop();
                    self.stack.push(ops::binary(op, &a, &b, tz));
                }
                Op::InSet(i) => {
                    let x = self.pop();
                    let found = code.sets[i as usize].contains(&x, self.ctx);
                    self.stack.push(Value::Bool(found));
                }
                Op::Call(f, n) => {
                    let base = self.stack.len() - n as usize;
                    let v = ops::call(f, &self.stack[base..], tz);
                    self.stack.truncate(base);
                    self.stack.push(v);
                }
                Op::StringOr(target) => {
                    let x = self.pop();
                    let s = ops::to_string(&x, tz);
                    if !matches!(s, Value::Undef | Value::Null) {
                        self.stack.push(s);
                        pc = target as usize;
                        continue;
                    }
                }
                Op::AndTest(target) => {
                    let x = self.pop();
                    if !ops::logical(&x, "and")? {
                        self.stack.push(Value::Bool(false));
                        pc = target as usize;
                        continue;
                    }
                }
                Op::OrTest(target) => {
                    let x = self.pop();
                    if ops::logical(&x, "or")? {
                        self.stack.push(Value::Bool(true));
                        pc = target as usize;
                        continue;
                    }
                }
                Op::Logical(is_and) => {
                    let x = self.pop();
                    let b = ops::logical(&x, if is_and { "and" } else { "or" })?;
                    self.stack.push(Value::Bool(b));
                }
                Op::Quant {
                    all,
                    slot,
                    end: body_end,
                } => {
                    let list = self.pop();
                    let answer = match list {
                        Value::List(items) => {
                            let slot = slot as usize;
                            let saved = std::mem::replace(&mut self.vars[slot], Value::Undef);
                            let mut answer = all;
                            for item in items.items() {
                                self.vars[slot] = item;
                                self.exec(pc + 1, body_end as usize)?;
                                if self.pop().is_true() != all {
                                    answer = !all;
                                    break;
                                }
                            }
                            self.vars[slot] = saved;
                            Value::Bool(answer)
                        }
                        _ => Value::Undef,
                    };
                    self.stack.push(answer);
                    pc = body_end as usize;
                    continue;
                }
                Op::Raise(i) => return Err(code.errors[i as usize].clone()),
            }
            pc += 1;
        }
        Ok(())
    }
}
