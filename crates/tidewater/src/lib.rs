//! Tidewater: streams Mixpanel-format event exports into partitioned Parquet or JSON.
//!
//! The engine's stages, in the order data flows through them:
//! `input` (open, gunzip, frame blocks of whole lines) → `block` (parse, filter and shape
//! one block on a rayon worker) → `merge` (names and types in input order, against the
//! `schema` registry) → `write` (Parquet, JSON, raw encoders) → `store` (stage and commit
//! windows). `run` drives them; `export` feeds them from Mixpanel's export API.
//!
//! # Files
//!
//! [`Converter`] turns inputs (paths, byte buffers or any `Read`) into the output tree:
//!
//! ```
//! use tidewater::{Converter, SchemaMode};
//!
//! # let dir = tempfile::tempdir()?;
//! let events = br#"{"event":"Sign Up","properties":{"time":1704067200,"distinct_id":"u1","plan":"pro"}}
//! {"event":"Purchase","properties":{"time":1704070800,"distinct_id":"u1","amount":9.5}}"#;
//! let summary = Converter::new(dir.path())
//!     .input_bytes("events", &events[..])
//!     .schema(SchemaMode::Multischema)
//!     .run()?;
//! summary.check()?; // an error if an input was incomplete
//! assert_eq!(summary.files_written, 2);
//! assert!(dir.path().join("purchase/2024/01/01/part-00000.parquet").is_file());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Batches
//!
//! [`Converter::batches`] gives the row groups as Arrow record batches instead of files,
//! with the table's full schema ([`TableBatch::table_schema`]); the run stays a bounded
//! number of batches ahead of the caller, and dropping the iterator cancels it.
//! [`Converter::batch_stream`] is the same as a `futures` stream for async callers.
//!
//! ```
//! # let events = br#"{"event":"A","properties":{"time":1704067200,"x":1}}"#;
//! let mut batches = tidewater::Converter::new("unused")
//!     .input_bytes("events", &events[..])
//!     .batches(4)?;
//! for batch in batches.by_ref() {
//!     let batch = batch?;
//!     println!("{} {}: {} rows", batch.table, batch.window, batch.batch.num_rows());
//!     assert_eq!(batch.table_schema.field(0).name(), "time");
//! }
//! assert_eq!(batches.summary().unwrap().events_kept, 1);
//! # Ok::<(), tidewater::Error>(())
//! ```
//!
//! # Filter
//!
//! A Mixpanel `where` expression, compiled once when the run starts, and an event list:
//!
//! ```
//! # let events = br#"{"event":"A","properties":{"time":1704067200,"amount":12}}
//! # {"event":"A","properties":{"time":1704067201,"amount":3}}
//! # {"event":"B","properties":{"time":1704067202,"amount":50}}"#;
//! let summary = tidewater::Converter::new("unused")
//!     .input_bytes("events", &events[..])
//!     .events(["A"])
//!     .where_expr(r#"properties["amount"] > 10"#)
//!     .run_batches(|_| Ok(()))?;
//! assert_eq!((summary.events_kept, summary.events_filtered), (1, 2));
//! # Ok::<(), tidewater::Error>(())
//! ```
//!
//! # Export
//!
//! [`export::Exporter`] fetches days from Mixpanel's export API (retried, paced,
//! verified) and converts them as they arrive; a re-run skips the days already
//! committed. Here a stand-in for the API on loopback serves one day:
//!
//! ```
//! use tidewater::export::{Credentials, Exporter};
//! # use std::io::{Read, Write};
//! # let dir = tempfile::tempdir()?;
//! # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! # let api = format!("http://{}", listener.local_addr()?);
//! # std::thread::spawn(move || {
//! #     let (mut socket, _) = listener.accept().unwrap();
//! #     let mut request = [0u8; 8192];
//! #     let _ = socket.read(&mut request).unwrap();
//! #     let body = "{\"event\":\"A\",\"properties\":{\"time\":1704067200,\"distinct_id\":\"u1\"}}\n";
//! #     write!(socket, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).unwrap();
//! # });
//!
//! let credentials = Credentials::ApiSecret("secret".into()); // or Credentials::from_env()
//! let summary = Exporter::new(dir.path(), credentials, "2024-01-01", "2024-01-01")?
//!     .base_url(&api) // default: https://data.mixpanel.com
//!     .run()?;
//! assert_eq!((summary.run.events_kept, summary.run.windows_committed), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
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
