//! The Mixpanel `where` language (`docs/where.md` in the repository): lexer → parser →
//! syntax tree → compiler → bytecode → VM.
//!
//! ```
//! use tidewater_where::{compile, Context};
//!
//! let program = compile(r#"properties["$os"] == "Linux" and defined(properties["$city"])"#,
//!     Context::new("UTC").unwrap()).unwrap();
//! assert!(program.matches_json(r#"{"event":"a","properties":{"time":1,"$os":"Linux","$city":"Oslo"}}"#).unwrap());
//! assert!(!program.matches_json(r#"{"event":"a","properties":{"time":1,"$os":"Linux"}}"#).unwrap());
//!
//! let err = compile("properties[\"a\"] && true", Context::new("UTC").unwrap()).unwrap_err();
//! assert_eq!(err.code.as_str(), "E-LEX");
//! ```

pub mod ast;
mod compile;
mod datetime;
mod error;
mod event;
mod interp;
mod lexer;
mod number;
mod ops;
mod parser;
mod value;
mod vm;

use jiff::tz::TimeZone;

pub use error::{CompileError, ErrorCode, RuntimeError};
pub use event::EventRef;
pub use value::{List, Obj, Value};
pub use vm::Scratch;

/// What a program is compiled against: the run's clock and time zone.
#[derive(Debug, Clone)]
pub struct Context {
    /// `NOW`, in whole seconds since the Unix epoch, fixed for the whole run (F-now).
    pub now: i64,
    /// The project time zone: zone-less datetime strings are read in it (§8).
    pub tz: TimeZone,
}

impl Context {
    /// A context in the IANA zone `tz` with `NOW` taken from the clock.
    pub fn new(tz: &str) -> Result<Context, String> {
        let tz = TimeZone::get(tz).map_err(|e| format!("unknown time zone {tz:?}: {e}"))?;
        Ok(Context {
            now: jiff::Timestamp::now().as_second(),
            tz,
        })
    }
}

/// A compiled `where` expression. Cheap to share between threads.
#[derive(Debug)]
pub struct Program {
    source: String,
    ast: ast::Expr,
    code: compile::Code,
    ctx: Context,
}

/// Compiles `source` (§2.1: every syntax, identifier, arity and context error is found
/// here, before any data is read).
pub fn compile(source: &str, ctx: Context) -> Result<Program, CompileError> {
    // Parsing and constant folding recurse once per nesting level (at most 256, G12).
    // Unoptimised builds use several KiB of stack per level, more than the caller's
    // thread may have; a thread with a known stack makes the bound hold in every build.
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("tidewater-where-compile".into())
            .stack_size(64 << 20)
            .spawn_scoped(scope, || compile_on_this_stack(source, ctx))
            .map_or_else(
                |_| Err(CompileError::resources()),
                |handle| {
                    handle
                        .join()
                        .unwrap_or_else(|_| Err(CompileError::resources()))
                },
            )
    })
}

fn compile_on_this_stack(source: &str, ctx: Context) -> Result<Program, CompileError> {
    let tokens = lexer::lex(source).map_err(|e| e.with_source(source))?;
    let ast = parser::parse(&tokens).map_err(|e| e.with_source(source))?;
    let code = compile::compile(&ast, &ctx);
    Ok(Program {
        source: source.to_string(),
        ast,
        code,
        ctx,
    })
}

impl Program {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The syntax tree.
    pub fn ast(&self) -> &ast::Expr {
        &self.ast
    }

    /// The context it was compiled against.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Evaluates the program for one event.
    pub fn eval<'a>(
        &'a self,
        event: &EventRef<'a>,
        scratch: &mut Scratch,
    ) -> Result<Value<'a>, RuntimeError> {
        vm::run(&self.code, &self.ctx, event, scratch)
    }

    /// Whether the event matches: the result is the boolean `true` (T1).
    pub fn matches(
        &self,
        event: &EventRef<'_>,
        scratch: &mut Scratch,
    ) -> Result<bool, RuntimeError> {
        Ok(self.eval(event, scratch)?.is_true())
    }

    /// Evaluates with the reference tree-walking interpreter instead of the VM.
    pub fn interpret<'a>(&'a self, event: &EventRef<'a>) -> Result<Value<'a>, RuntimeError> {
        interp::eval(&self.ast, event, &self.ctx, &mut Vec::new())
    }

    /// Parses one event line and evaluates the program on it; the result rendered as by
    /// `where eval`. For tests, examples and one-off use: the engine parses lines once
    /// and calls [`Program::eval`].
    pub fn eval_json(&self, line: &str) -> Result<Result<String, RuntimeError>, String> {
        let mut parser = tidewater_event::LineParser::default();
        let mut scratch = Scratch::default();
        parser
            .parse(line.as_bytes(), |event| {
                let event = EventRef::from_event(event);
                self.eval(&event, &mut scratch)
                    .map(|v| v.render(&self.ctx.tz))
            })
            .map_err(|r| r.to_string())
    }

    /// Whether one event line matches; see [`Program::eval_json`].
    pub fn matches_json(&self, line: &str) -> Result<bool, String> {
        match self.eval_json(line)? {
            Ok(v) => Ok(v == "true"),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The tree and the bytecode, for `where explain`.
    pub fn explain(&self) -> String {
        format!(
            "expression: {}\n\ntree:\n{}\nbytecode ({} instructions, {} interned keys, {} constant sets):\n{}",
            self.source,
            self.ast.outline(),
            self.code.ops.len(),
            self.code.keys.len(),
            self.code.sets.len(),
            self.code.listing(&self.ctx)
        )
    }
}
