//! A run's counters and its IN5 bookkeeping: which inputs fed which windows, which
//! inputs ended early.

use std::collections::{BTreeMap, BTreeSet};

use super::plan::InputReport;
use crate::block::shape::ShapedBlock;
use crate::error::{Error, Result};
use crate::input::frame::InputEnd;
use crate::merge::{Merger, RowGroup};
use crate::store::RejectsWriter;
use crate::summary::{IncompleteInput, Progress, RunSummary, StageTimes};
use crate::window::WindowKey;

/// Counters and IN5 bookkeeping of a run.
#[derive(Default)]
pub(crate) struct RunState {
    pub summary: RunSummary,
    pub stages: StageTimes,
    pub window_inputs: BTreeMap<WindowKey, BTreeSet<usize>>,
    pub incomplete: Vec<(usize, String)>,
    /// Windows committed while the run went on (inputs that own their windows).
    pub committed: BTreeSet<WindowKey>,
    /// Per-input counts (inputs that own their windows).
    pub per_input: BTreeMap<usize, InputReport>,
    /// Names of events the whitelist dropped, sampled (see [`ShapedBlock::unlisted`]).
    pub unlisted: BTreeSet<String>,
}

/// At most this many unlisted names are kept for the warning.
const UNLISTED_KEPT: usize = 200;

impl RunState {
    pub fn end_input(&mut self, end: InputEnd, names: &[String]) {
        self.summary.lines_read += end.lines;
        self.summary.input_bytes_uncompressed += end.bytes;
        let report = self.per_input.entry(end.input).or_default();
        report.lines = end.lines;
        report.bytes = end.bytes;
        report.incomplete = end.incomplete.clone();
        if let Some(reason) = end.incomplete {
            self.summary.incomplete_inputs.push(IncompleteInput {
                input: names[end.input].clone(),
                reason: reason.clone(),
            });
            self.incomplete.push((end.input, reason));
        }
    }

    pub fn merge_block(
        &mut self,
        block: ShapedBlock,
        merger: &mut Merger,
        rejects: &mut RejectsWriter,
        progress: &Progress,
        input_names: &[String],
        flush: &mut impl FnMut(RowGroup),
    ) -> Result<()> {
        self.summary.events_kept += block.kept;
        self.summary.events_filtered += block.filtered;
        self.summary.events_rejected += block.rejects.len() as u64;
        self.summary.where_errors += block.where_errors;
        for name in block.unlisted {
            if self.unlisted.len() < UNLISTED_KEPT {
                self.unlisted.insert(name);
            }
        }
        let report = self.per_input.entry(block.input).or_default();
        report.events_kept += block.kept;
        report.events_filtered += block.filtered;
        report.events_rejected += block.rejects.len() as u64;
        if let Some(f) = block.where_failure {
            return Err(Error::Where {
                input: input_names[block.input].clone(),
                line: f.line,
                insert_id: f.insert_id,
                message: f.message,
            });
        }
        progress.add(&progress.events, block.kept);
        progress.add(&progress.lines, block.lines);
        for r in &block.rejects {
            rejects.write(r)?;
        }
        for table in block.tables {
            for (w, _) in &table.parts {
                self.window_inputs
                    .entry(*w)
                    .or_default()
                    .insert(block.input);
            }
            merger.add(table, flush);
        }
        Ok(())
    }
}
