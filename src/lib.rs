//! Tidewater: streams Mixpanel-format event exports into partitioned Parquet or JSON.
pub mod columns;
pub mod decode;
pub mod error;
pub mod export;
pub mod filter;
pub mod frame;
pub mod gen;
pub mod merge;
pub mod mock;
pub mod naming;
pub mod options;
pub mod parse;
pub mod pipeline;
pub mod registry;
pub mod shape;
pub mod source;
pub mod store;
pub mod summary;
pub mod wherelang;
pub mod window;
pub mod write;

pub use error::{Error, Result};
pub use options::{
    Compression, Format, Layout, OnWhereError, Partition, RunOptions, SchemaMode, WriteMode,
};
pub use pipeline::{Converter, TableBatch};
pub use summary::{Progress, RunSummary};
