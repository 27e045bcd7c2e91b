//! Tidewater: streams Mixpanel-format event exports into partitioned Parquet or JSON.
pub mod decode;
pub mod error;
pub mod filter;
pub mod frame;
pub mod naming;
pub mod options;
pub mod parse;
pub mod source;
pub mod window;
