//! The parts of Tidewater's pipeline service (the README's `tidewater serve`) that
//! stand on their own: the state store with its versioned migrations (P41), the window
//! ledger of each pipeline (P10, P19), the rate budget of each project, persisted so
//! that a restart does not reset it (P12), and the schedule that says which windows are
//! due when (P10, P11) on a clock that tests simulate (P21), secrets sealed at rest
//! (P40) and the REST API's keys, kept hashed (P28).
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use tidewater_service::StateStore;
//!
//! let store = StateStore::open(&dir.path().join("state.db"))?;
//! assert_eq!(store.schema_version()?, tidewater_service::SCHEMA_VERSION);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod api;
mod clock;
pub mod destination;
pub mod model;
mod ops;
pub mod rules;
mod schedule;
mod scheduler;
mod secrets;
mod service;
mod store;
mod worker;

pub use clock::{Clock, SimulatedClock, SystemClock};
pub use ops::ApiError;
pub use schedule::{Frequency, Schedule, ScheduleError, ScheduledWindow, DEFAULT_DELAY};
pub use secrets::{same_secret, SecretBox, SecretError, KEY_ENV};
pub use service::{Metrics, Service, ServiceConfig};
pub use store::{
    ApiKeyGrant, ApiKeys, CreateRefused, ProjectBudget, ProjectFacts, RunEnd, RunFilter,
    StateStore, StoreError, WindowLedger, SCHEMA_VERSION,
};
