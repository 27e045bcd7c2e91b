//! What an export does around each window's commit: the manifest that goes beside the
//! window's data, the window's result, and its ledger record last (XC4).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::feed::Downloads;
use super::ledger::{Ledger, Manifest, ManifestRequest, MANIFEST_VERSION};
use super::summary::{ExportProgress, WindowResult, WindowStatus};
use super::windows::Window;
use crate::error::Result;
use crate::run::{InputReport, WindowOwner};

/// The windows of an export run, as the engine commits them (input `k` is window
/// `windows[todo[k]]`).
pub(crate) struct ExportOwner<'a> {
    pub windows: &'a [Window],
    pub todo: &'a [usize],
    pub results: &'a mut [WindowResult],
    /// The request of each input's window, for its manifest.
    pub requests: Vec<ManifestRequest>,
    pub downloads: &'a Downloads,
    pub ledger: &'a dyn Ledger,
    pub progress: &'a ExportProgress,
    /// Manifests written beside committed data, by input, for the ledger.
    pub manifests: BTreeMap<usize, Manifest>,
}

impl WindowOwner for ExportOwner<'_> {
    fn manifest(&mut self, report: &InputReport) -> Result<Option<String>> {
        let (verified, attempts) = self.downloads.body(report.input).unwrap_or_default();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            request: self.requests[report.input].clone(),
            attempts,
            bytes_received: verified.bytes_received,
            bytes: verified.bytes,
            sha256: verified.sha256,
            gzip: verified.gzip,
            lines: report.lines,
            events_kept: report.events_kept,
            events_filtered: report.events_filtered,
            rejects: report.events_rejected,
            files_written: report.files_written,
            folders: report.folders.clone(),
            committed_at: jiff::Timestamp::now().to_string(),
        };
        let text = manifest.text();
        self.manifests.insert(report.input, manifest);
        Ok(Some(text))
    }

    fn input_ended(&mut self, report: InputReport) -> Result<()> {
        let w = &self.windows[self.todo[report.input]];
        let r = &mut self.results[self.todo[report.input]];
        if self.downloads.unchanged(report.input) {
            // A sync found the committed body unchanged: the window stays as it is,
            // with the counts it was committed with.
            if let Some((_, attempts)) = self.downloads.body(report.input) {
                r.attempts = attempts;
            }
            r.status = WindowStatus::Unchanged;
            return Ok(());
        }
        r.lines = report.lines;
        r.bytes = report.bytes;
        r.events = report.events_kept;
        r.rejects = report.events_rejected;
        if let Some((verified, attempts)) = self.downloads.body(report.input) {
            r.attempts = attempts;
            r.bytes_received = verified.bytes_received;
        }
        if let Some(why) = report.incomplete {
            r.status = WindowStatus::Failed;
            r.error = Some(why);
            tracing::warn!(window = %w.label(), "window {} failed: {}", w.label(), r.error.as_deref().unwrap_or("?"));
            return Ok(());
        }
        // The ledger record goes last: a window counts as done only once it exists.
        if let Some(manifest) = self.manifests.remove(&report.input) {
            self.ledger.record(&w.ledger_name(), &manifest)?;
        }
        r.status = WindowStatus::Committed;
        self.progress.windows_done.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            window = %w.label(),
            "window {} committed: {} events in {} files",
            w.label(),
            report.events_kept,
            report.files_written
        );
        Ok(())
    }
}
