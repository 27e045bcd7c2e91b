//! Export from the Mixpanel export API (`specs/export-api.md`) through the same engine
//! as `convert`.
//!
//! ```text
//! tokio: windows ──paced, ≤ concurrency──▶ HTTP GET ──verify, spool──▶ results (any order)
//!   pace.rs           feed.rs               client.rs   verify.rs          │
//!                                                                          │
//! engine reader: takes spooled windows in window order ◀────────────────────┘
//!   → frame → parse/filter/shape → merge → write → data, manifest, commit marker → ledger
//!                                                    owner.rs                    ledger.rs
//! ```
//!
//! Each window is one request and one unit of commit (XC1). A window's output and its
//! manifest (beside each window's commit marker, and in the ledger,
//! `<root>/.tidewater/export/<from>[_<to>].json`) are written only after its body was
//! verified complete and fully converted; a re-run skips windows the ledger holds for
//! the same request (XC4).

mod client;

pub use client::retry_after;
mod credentials;
mod exporter;
mod feed;
mod ledger;
mod owner;
mod pace;
mod people;
mod summary;
mod tuning;
mod verify;
mod windows;

pub use credentials::{region_base_url, Credentials, ENV_API_SECRET, ENV_SECRET, ENV_USERNAME};
pub use exporter::{check_range, Exporter};
pub use ledger::{FileLedger, Ledger, Manifest, ManifestRequest};
pub use pace::{
    budget_horizon, parse_duration, parse_rate, take_slot, wait_for_slot, Pacer, RateBudget,
};
pub use people::{engage_base_url, engage_pace, PeopleExporter, DEFAULT_PAGE_SIZE};
pub use summary::{ExportProgress, ExportSummary, WindowResult, WindowStatus};
pub use tuning::Tuning;
