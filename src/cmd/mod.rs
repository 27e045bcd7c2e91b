//! One module per subcommand.

pub mod export;
pub mod where_expr;
