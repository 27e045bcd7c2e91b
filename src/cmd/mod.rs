//! One module per subcommand, each with its clap arguments and a `run`.

pub mod bench;
pub mod convert;
pub mod export;
pub mod gen;
pub mod mock;
pub mod serve;
pub mod where_expr;
