//! Names and types of tables and columns (output-format §4): the cleaning and collision
//! rules (`naming`) and the registry that applies them in input order and persists them
//! as the mapping file (`registry`).

pub(crate) mod naming;
pub(crate) mod registry;

pub use registry::Registry;
