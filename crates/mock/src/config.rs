//! How a mock server is configured: its data, address, credentials, limits and faults.

use crate::fault::Fault;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jiff::civil::Date;

/// Who may call the server.
#[derive(Clone, PartialEq, Eq)]
pub enum MockAuth {
    /// Any credentials (or none) are accepted.
    Open,
    /// A project API secret as the Basic user name.
    Secret(String),
    /// A service account; requests must carry the project id.
    ServiceAccount {
        /// User name.
        username: String,
        /// Secret.
        secret: String,
    },
}

impl std::fmt::Debug for MockAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MockAuth::Open => "Open",
            MockAuth::Secret(_) => "Secret(<redacted>)",
            MockAuth::ServiceAccount { .. } => "ServiceAccount(<redacted>)",
        })
    }
}

/// Configuration of a mock server.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Event files or folders (output-format IN6).
    pub data: Vec<PathBuf>,
    /// Profile files or folders the Engage API serves (one Engage result per line).
    pub profiles: Vec<PathBuf>,
    /// Address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The project's id; requests that name another project get 400.
    pub project_id: Option<u64>,
    /// Who may call.
    pub auth: MockAuth,
    /// "Today" for the `to_date` check (default: today in `tz`).
    pub today: Option<Date>,
    /// Time zone of the project's days.
    pub tz: String,
    /// Request limits (X8 by default): at most N accepted requests in any period.
    pub limits: Vec<(u32, Duration)>,
    /// Requests served at once before 429.
    pub max_concurrent: usize,
    /// Limits of the Engage API (the Query API's: 60 per hour by default).
    pub engage_limits: Vec<(u32, Duration)>,
    /// Engage requests served at once before 429 (5 by default).
    pub engage_max_concurrent: usize,
    /// Injected faults.
    pub faults: Vec<Fault>,
    /// Seed of the generator behind probabilistic faults.
    pub fault_seed: u64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            data: Vec::new(),
            profiles: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            project_id: None,
            auth: MockAuth::Open,
            today: None,
            tz: "UTC".into(),
            limits: vec![(3, Duration::from_secs(1)), (60, Duration::from_secs(3600))],
            max_concurrent: 100,
            engage_limits: vec![(60, Duration::from_secs(3600))],
            engage_max_concurrent: 5,
            faults: Vec::new(),
            fault_seed: 1,
        }
    }
}
