//! Running a conversion: the builder ([`Converter`]), the driver loop and its steps.
//!
//! ```text
//! reader thread ──blocks──▶ rayon: parse → filter → shape ──▶ merge (in order) ──row groups──▶ rayon: encode
//!   (open, gunzip, frame)      one task per block                 this thread                    spill files
//!   reader.rs                                                     driver.rs, counts.rs           encode.rs
//!                                                                     │ at the end (or as each input ends)
//!                                                                     ▼
//!                                                 finish files (rayon) → mapping file → commit windows
//!                                                 commit.rs
//! ```
//!
//! Every queue is bounded: the reader blocks when too many blocks are in flight, and
//! merge waits for encoders when too many row groups are being encoded.

mod cancel;
mod commit;
mod converter;
mod counts;
mod driver;
mod encode;
mod plan;
mod pull;
mod reader;
mod warnings;

pub use cancel::Cancel;
pub use converter::{Converter, TableBatch};
pub(crate) use driver::execute_plan;
pub use plan::InputReport;
pub(crate) use plan::{Destination, OutputRoot, OwnedWindows, Plan, WindowOwner};
pub use pull::{BatchStream, Batches};
pub(crate) use reader::{Feed, LocalFeed, Opened};
