//! The `where` language against its spec, case by case, and property tests of the
//! compiler and VM against the reference interpreter.

mod cases;
mod props;
