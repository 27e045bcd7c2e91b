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
use crate::schema::registry::Registry;
use crate::store::{Output, RejectsWriter, WindowStore};
use crate::summary::{Progress, StageTimes};
use crate::window::{WindowKey, Windowing};
use crate::write::{Encoder, FileInProgress};

/// Turns encoded row groups into final files and commits windows (C1, C2).
pub(crate) struct Finisher<'a> {
    pub store: &'a (dyn WindowStore + Send),
    pub encoder: &'a Encoder,
    pub pool: &'a rayon::ThreadPool,
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

impl<'a> Finisher<'a> {
    /// The table name of table `t` in the store's folders; `None` for raw output.
    fn table_name<'r>(&self, registry: &'r Registry, t: u32) -> Option<&'r str> {
        (!self.raw).then(|| registry.tables[t as usize].name.as_str())
    }

    /// The folders, below the root, that committing `windows` publishes: one per table
    /// and window with rows.
    pub(crate) fn folders(
        &self,
        windows: &BTreeSet<WindowKey>,
        files: &BTreeMap<(WindowKey, u32), FileInProgress<'_>>,
        registry: &Registry,
    ) -> Vec<String> {
        files
            .keys()
            .filter(|(w, _)| windows.contains(w))
            .map(|&(w, t)| self.store.folder(self.table_name(registry, t), w))
            .collect()
    }

    /// Writes the rest of the data files of `windows`, saves the mapping file if it
    /// grew, then commits each window folder (with `manifest` beside its data). In
    /// replace mode, tables without rows in a committed window, and every table in the
    /// windows of `empty`, lose their old folders there.
    pub(crate) fn commit(
        &self,
        windows: &BTreeSet<WindowKey>,
        empty: &BTreeSet<WindowKey>,
        manifest: Option<&[u8]>,
        files: &mut BTreeMap<(WindowKey, u32), FileInProgress<'a>>,
        registry: &mut Registry,
        stages: &mut StageTimes,
    ) -> Result<Committed> {
        let raw = self.raw;
        let finish_start = Instant::now();
        let keys: BTreeSet<(WindowKey, u32)> = files
            .keys()
            .filter(|(w, _)| windows.contains(w))
            .copied()
            .collect();
        let jobs: Vec<_> = keys
            .iter()
            .map(|k| (*k, files.remove(k).expect("listed")))
            .collect();
        let progress = &*self.progress;
        progress.add(&progress.files_total, jobs.len() as u64);
        let store = self.store;
        let columns_of = |t: u32| &registry.tables[t as usize].columns;
        self.pool.install(|| {
            jobs.into_par_iter().try_for_each(|((w, t), file)| {
                let open = |table: Option<&str>| store.data(table, w);
                file.finish(self.encoder, columns_of(t), &open)?;
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
                if keys.contains(&(*w, t)) {
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
    pub(crate) fn finish_commit<'a>(
        &mut self,
        commit: PendingCommit,
        owned: &mut OwnedWindows<'_>,
        finisher: &Finisher<'a>,
        merger: &mut Merger,
        sink: &mut Sink<'a, '_>,
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
        report.folders = finisher.folders(&windows, &sink.files, &merger.registry);
        // The finisher writes one data file per folder.
        report.files_written = report.folders.len() as u64;
        let manifest = owned.owner.manifest(&report)?;
        let done = finisher.commit(
            &windows,
            &all,
            manifest.as_deref().map(str::as_bytes),
            &mut sink.files,
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
