//! The mock export server (export-api XM1–XM4): serves local event files as one
//! project's `/api/2.0/export` endpoint, and profile files as its Engage API
//! (`/api/2.0/engage`, export-api §5), with the real APIs' validation, rate limits and
//! streaming, plus injected faults for tests.
//!
//! At start the data is split by day (in the configured time zone) into one plain and
//! one gzip file per day in a temporary folder. A request without filters streams the
//! ready gzip files as they are (no compression per request); a filtered, limited or
//! faulted request reads the day's plain lines, filters them with the engine's own
//! filter code and compresses as it sends. Memory stays bounded whatever the size of
//! a day.

mod body;
mod config;
mod days;
mod engage;
mod fault;
mod request;
mod server;

pub use config::{MockAuth, MockConfig};
pub use days::AddedEvents;
pub use engage::MAX_PAGE_SIZE;
pub use fault::{Fault, FaultKind, FaultTrigger, FAULT_HELP};
pub use server::{MockServer, RequestRecord};
