//! Tidewater: streams Mixpanel-format event exports into partitioned Parquet or JSON.
//!
//! The engine's stages, in the order data flows through them:
//! `input` (open, gunzip, frame blocks of whole lines) → `block` (parse, filter and shape
//! one block on a rayon worker) → `merge` (names and types in input order, against the
//! `schema` registry) → `write` (Parquet, JSON, raw encoders) → `store` (stage and commit
//! windows). `run` drives them; `export` feeds them from Mixpanel's export API.
//!
//! ```no_run
//! use tidewater::{Converter, SchemaMode};
//!
//! let summary = Converter::new("warehouse")
//!     .input("events.jsonl.gz")
//!     .schema(SchemaMode::Multischema)
//!     .tz("Europe/Berlin")
//!     .run()?;
//! summary.check()?;
//! # Ok::<(), tidewater::Error>(())
//! ```

#![deny(missing_docs)]

mod block;
mod columns;
mod error;
pub mod export;
mod failpoint;
mod field;
mod input;
mod lock;
mod merge;
mod options;
mod run;
mod schema;
mod store;
mod summary;
pub mod synth;
mod validate;
mod window;
mod write;

pub use block::EventFilter;
pub use error::{Error, Result};
pub use field::Field;
pub use input::{
    expand_inputs, frame_input, gzip_reader, is_blank, open_input, Block, FrameConfig, Input,
};
pub use lock::{FileLock, LockError};
pub use options::{
    Compression, DataSource, Format, Layout, OnWhereError, Partition, RunOptions, SchemaMode,
    WriteMode,
};
pub use run::{BatchStream, Batches, Cancel, Converter, InputReport, TableBatch};
pub use store::{redact_store_error, ObjectTarget, RootLock};
pub use summary::{peak_rss_bytes, Progress, RunSummary};
pub use validate::ValidOptions;
pub use window::{WindowKey, Windowing};

/// The engine's stages one by one, for the criterion benches in `benches/` and the
/// `floor` example. Not a stable API: ETL code uses [`Converter`].
#[doc(hidden)]
pub mod stages {
    pub use crate::block::Shaper;
    pub use crate::merge::{BufferLimits, Merger, RowGroup};
    pub use crate::schema::registry::Fixed;
    pub use crate::schema::Registry;
    pub use crate::write::{parquet_properties, Encoder};
}
