//! Per-block work on a rayon worker: each line parsed and validated, filtered by the
//! event whitelist and `where` (`filter`), and the kept events turned into block-local
//! sparse columns per table and window (`shape`). Workers make no naming decisions.

pub(crate) mod filter;
mod rows;
pub(crate) mod shape;

pub use filter::EventFilter;
pub(crate) use rows::Rows;
pub use shape::Shaper;
