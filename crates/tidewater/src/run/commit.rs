//! Committing windows: final files assembled from their spills, the mapping file saved,
//! then each window folder moved into place (C1, C2). Inputs that own their windows
//! (export) commit as each input ends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rayon::prelude::*;

use super::counts::RunState;
use super::encode::Sink;
use super::plan::{InputReport, OwnedWindows};
use crate::error::Result;
use crate::merge::Merger;
use crate::options::WriteMode;
use crate::schema::registry::{Fixed, Registry};
use crate::store::{Output, RejectsWriter, WindowStore};
use crate::summary::{Progress, StageTimes};
use crate::window::{WindowKey, Windowing};
use crate::write::{Encoder, Spill};

/// Turns encoded row groups into final files and commits windows (C1, C2).
pub(crate) struct Finisher<'a> {
    pub store: &'a (dyn WindowStore + Send),
    pub encoder: &'a Encoder,
    pub pool: &'a rayon::ThreadPool,
    pub fixed: Fixed,
    pub raw: bool,
    pub output: &'a Output,
    pub mode: WriteMode,
    /// Files written and windows committed, for the progress display.
    pub progress: std::sync::Arc<Progress>,
}

#[derive(Default)]
pub(crate) struct Committed {
    pub windows: u64,
    pub files: u64,
}

impl Finisher<'_> {
    /// The table name of table `t` in the store's folders; `None` for raw output.
    fn table_name<'r>(&self, registry: &'r Registry, t: u32) -> Option<&'r str> {
        (!self.raw).then(|| registry.tables[t as usize].name.as_str())
    }

    /// The folders, below the root, that committing `windows` publishes: one per table
    /// and window with rows.
    pub(crate) fn folders(
        &self,
        windows: &BTreeSet<WindowKey>,
        spills: &BTreeMap<(WindowKey, u32), Vec<Option<Spill>>>,
        registry: &Registry,
    ) -> Vec<String> {
        spills
            .keys()
            .filter(|(w, _)| windows.contains(w))
            .map(|&(w, t)| self.store.folder(self.table_name(registry, t), w))
            .collect()
    }

    /// Writes the final files of `windows` from their spills, saves the mapping file if
    /// it grew, then commits each window folder (with `manifest` beside its data). In replace mode, tables without
    /// rows in a committed window, and every table in the windows of `empty`, lose their
    /// old folders there.
    pub(crate) fn commit(
        &self,
        windows: &BTreeSet<WindowKey>,
        empty: &BTreeSet<WindowKey>,
        manifest: Option<&[u8]>,
        spills: &mut BTreeMap<(WindowKey, u32), Vec<Option<Spill>>>,
        registry: &mut Registry,
        stages: &mut StageTimes,
    ) -> Result<Committed> {
        let raw = self.raw;
        let finish_start = Instant::now();
        let jobs: Vec<_> = spills
            .iter()
            .filter(|((w, _), _)| windows.contains(w))
            .collect();
        let progress = &*self.progress;
        progress.add(&progress.files_total, jobs.len() as u64);
        self.pool.install(|| {
            jobs.par_iter().try_for_each(|((w, t), spills)| {
                let data = self.store.data(self.table_name(registry, *t), *w)?;
                let spills: Vec<Spill> = spills
                    .iter()
                    .map(|s| s.clone().expect("every dispatched row group was encoded"))
                    .collect();
                self.encoder.finish(
                    &spills,
                    &registry.tables[*t as usize].columns,
                    self.fixed,
                    &*data,
                )?;
                progress.add(&progress.files_written, 1);
                Ok(())
            })
        })?;
        stages.finish_files += finish_start.elapsed().as_secs_f64();
        if !raw && registry.changed() {
            registry.save_to(self.output)?;
            registry.mark_saved();
        }
        let commit_start = Instant::now();
        let mut done = Committed::default();
        let tables = if raw { 1 } else { registry.tables.len() as u32 };
        let table_name = |t: u32| self.table_name(registry, t);
        for w in windows {
            for t in 0..tables {
                if spills.contains_key(&(*w, t)) {
                    // The finisher wrote one data file per staged folder.
                    self.store.commit(table_name(t), *w, manifest)?;
                    done.files += 1;
                } else if self.mode == WriteMode::Replace {
                    self.store.remove(table_name(t), *w)?;
                }
            }
            done.windows += 1;
            progress.add(&progress.windows_committed, 1);
        }
        if self.mode == WriteMode::Replace {
            for w in empty.difference(windows) {
                for t in 0..tables {
                    self.store.remove(table_name(t), *w)?;
                }
            }
        }
        spills.retain(|(w, _), _| !windows.contains(w));
        stages.commit += commit_start.elapsed().as_secs_f64();
        Ok(done)
    }
}

/// An input's windows, flushed and waiting for their row groups to be encoded.
pub(crate) struct PendingCommit {
    report: InputReport,
    /// Windows the input has rows in.
    windows: BTreeSet<WindowKey>,
    /// Every window of the input's range (replace mode empties those without rows).
    all: BTreeSet<WindowKey>,
}

impl RunState {
    /// Starts committing the windows an input owns, once the input has ended: flushes
    /// the row groups of the windows it has rows in. Nothing is committed for an
    /// incomplete input: it is reported at once and `None` returned.
    pub(crate) fn begin_commit(
        &mut self,
        input: usize,
        owned: &mut OwnedWindows<'_>,
        merger: &mut Merger,
        sink: &mut Sink<'_, '_>,
        windowing: &Windowing,
    ) -> Result<Option<PendingCommit>> {
        let mut report = self.per_input.remove(&input).unwrap_or_default();
        report.input = input;
        if report.incomplete.is_some() {
            owned.owner.input_ended(report)?;
            return Ok(None);
        }
        let windows: BTreeSet<WindowKey> = self
            .window_inputs
            .iter()
            .filter(|(_, ins)| ins.contains(&input))
            .map(|(w, _)| *w)
            .collect();
        let (start, end) = owned.ranges[input];
        let mut all = BTreeSet::new();
        let mut walker = windowing.clone();
        let mut t = start;
        while t < end {
            let Some((w, next)) = walker.window_and_end(t) else {
                break;
            };
            all.insert(w);
            t = next.max(t + 1);
        }
        merger.flush_windows(&windows, &mut |g| sink.flush(g));
        Ok(Some(PendingCommit {
            report,
            windows,
            all,
        }))
    }

    /// Finishes a commit once every row group was encoded: writes the windows' files,
    /// moves them into place, commits the rejects and reports the input. Called only
    /// while no row group failed (the run loop stops on the first failure).
    pub(crate) fn finish_commit(
        &mut self,
        commit: PendingCommit,
        owned: &mut OwnedWindows<'_>,
        finisher: &Finisher<'_>,
        merger: &mut Merger,
        sink: &mut Sink<'_, '_>,
        rejects: &mut RejectsWriter,
    ) -> Result<()> {
        let PendingCommit {
            mut report,
            windows,
            all,
        } = commit;
        // The manifest goes into each window folder before its commit marker, so
        // it describes the files the commit is about to publish.
        report.windows_committed = windows.len() as u64;
        report.folders = finisher.folders(&windows, &sink.spills, &merger.registry);
        // The finisher writes one data file per folder.
        report.files_written = report.folders.len() as u64;
        let manifest = owned.owner.manifest(&report)?;
        let done = finisher.commit(
            &windows,
            &all,
            manifest.as_deref().map(str::as_bytes),
            &mut sink.spills,
            &mut merger.registry,
            &mut self.stages,
        )?;
        if let Some(path) = rejects.commit()? {
            self.summary
                .rejects_file
                .get_or_insert(path.display().to_string());
        }
        self.summary.files_written += done.files;
        self.summary.windows_committed += done.windows;
        debug_assert_eq!(
            (report.windows_committed, report.files_written),
            (done.windows, done.files)
        );
        self.committed.extend(windows);
        owned.owner.input_ended(report)
    }
}
