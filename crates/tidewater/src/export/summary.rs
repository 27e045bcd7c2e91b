//! What an export reports: live counters while it runs, and per-window results.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::ledger::Manifest;
use super::windows::Window;
use crate::error::{Error, Result};
use crate::summary::RunSummary;

/// What became of a window in an export run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    /// Exported and committed by this run.
    Committed,
    /// Already committed by an earlier run of the same request (XC4).
    Skipped,
    /// Its body could not be had complete: nothing of it was committed.
    Failed,
    /// The run stopped before it.
    NotRun,
    /// A sync fetched it again and found the body it was committed from unchanged: it
    /// was left as it is.
    Unchanged,
}

/// Live counters of an export, for a progress display.
#[derive(Debug, Default)]
pub struct ExportProgress {
    /// Windows to export in this run (skipped ones excluded).
    pub windows_total: AtomicU64,
    /// Windows committed so far.
    pub windows_done: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
    /// Retries so far.
    pub retries: AtomicU64,
    /// Bytes received on the wire.
    pub bytes_received: AtomicU64,
    /// Milliseconds spent waiting for the pacing limits.
    pub rate_limit_wait_ms: AtomicU64,
}

/// One window's result in the export summary.
#[derive(Debug, Clone, Serialize)]
pub struct WindowResult {
    /// First day, `YYYY-MM-DD`.
    pub from_date: String,
    /// Last day.
    pub to_date: String,
    /// What became of it.
    pub status: WindowStatus,
    /// Requests made for it in this run.
    pub attempts: u32,
    /// Bytes received (as sent, compressed or not).
    pub bytes_received: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    /// Lines in the body.
    pub lines: u64,
    /// Events kept.
    pub events: u64,
    /// Lines rejected.
    pub rejects: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WindowResult {
    pub(crate) fn not_run(w: &Window) -> Self {
        WindowResult {
            from_date: w.from.to_string(),
            to_date: w.to.to_string(),
            status: WindowStatus::NotRun,
            attempts: 0,
            bytes_received: 0,
            bytes: 0,
            lines: 0,
            events: 0,
            rejects: 0,
            error: None,
        }
    }

    /// The window as messages name it.
    pub fn label(&self) -> String {
        if self.from_date == self.to_date {
            self.from_date.clone()
        } else {
            format!("{}..{}", self.from_date, self.to_date)
        }
    }

    /// Skipped: committed by an earlier run of the same request, whose counts it takes.
    pub(crate) fn skipped(&mut self, m: &Manifest) {
        self.status = WindowStatus::Skipped;
        self.counts_from(m);
    }

    /// Takes the counts a window was committed with (they stand if a sync finds it
    /// unchanged).
    pub(crate) fn counts_from(&mut self, m: &Manifest) {
        self.events = m.events_kept;
        self.lines = m.lines;
        self.rejects = m.rejects;
    }
}

/// What an export did: the engine's run summary plus the windows.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// Counts of the conversion (M3). `input_bytes_compressed` is the bytes received.
    #[serde(flatten)]
    pub run: RunSummary,
    /// Requests sent.
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// Seconds spent waiting for the pacing limits.
    pub rate_limit_wait_seconds: f64,
    /// Windows skipped because they were already committed.
    pub windows_skipped: u64,
    /// Per window, in window order.
    pub windows: Vec<WindowResult>,
}

impl ExportSummary {
    /// The summary of an export whose conversion gave `run`: the transfer counts from
    /// `progress` (bytes received become `input_bytes_compressed`).
    pub(crate) fn new(
        mut run: RunSummary,
        progress: &ExportProgress,
        skipped: u64,
        windows: Vec<WindowResult>,
    ) -> ExportSummary {
        run.input_bytes_compressed = progress.bytes_received.load(Ordering::Relaxed);
        ExportSummary {
            run,
            requests: progress.requests.load(Ordering::Relaxed),
            retries: progress.retries.load(Ordering::Relaxed),
            rate_limit_wait_seconds: progress.rate_limit_wait_ms.load(Ordering::Relaxed) as f64
                / 1e3,
            windows_skipped: skipped,
            windows,
        }
    }

    /// An error naming the windows that were not committed.
    pub fn check(&self) -> Result<()> {
        let failed: Vec<String> = self
            .windows
            .iter()
            .filter(|w| w.status == WindowStatus::Failed)
            .map(WindowResult::label)
            .collect();
        if failed.is_empty() {
            self.run.check()
        } else {
            Err(Error::WindowsFailed { windows: failed })
        }
    }
}
