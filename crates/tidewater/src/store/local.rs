//! The local folder as a window store: output layout (§5), atomic window commits (C1),
//! replace and append (C2).
//!
//! Everything is first written below a staging folder inside the output root (so that
//! moves are renames on one filesystem). A window folder is assembled there complete,
//! with its commit marker ([`SideFiles`]), and then renamed into place: readers see the
//! old window or the new one, never a mix.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use std::io::{self, Write};

use super::{
    is_data_file, part_name, part_number, spill_file, window_folder, DataFile, SideFiles,
    WindowStore,
};
use crate::error::{Error, Result};
use crate::options::{Layout, WriteMode};
use crate::window::WindowKey;

/// Staging folders are named `<prefix><pid>-<use>-<nanos>` (see [`staging_path`]).
pub(super) const STAGING_PREFIX: &str = ".tidewater-staging-";

/// The folder of a staging area where a commit records what it is about to change in a
/// committed window, so that the next run can undo a commit cut short (store::root).
/// A replace writes `<n>` with the window's path below the root and where the old
/// window goes below the staging folder; an append writes `append`, the window's path,
/// where the old manifest was copied (or `-`), then the names of the parts it adds, one
/// per line.
pub(super) const JOURNAL: &str = "journal";

/// The output root of a run on the local file system, and its staging area.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    staging: PathBuf,
    layout: Layout,
    mode: WriteMode,
    raw: bool,
    extension: &'static str,
    aside_count: std::sync::atomic::AtomicU64,
    /// Folders this run made or found, which nothing removes while it runs: the
    /// parents of window folders. A multischema run stages and commits a folder per
    /// table and window (1,800 for a month of 60 events), and making their parents
    /// again each time was two to six system calls per folder.
    made_dirs: Mutex<HashSet<PathBuf>>,
}

impl LocalStore {
    /// Creates the root and a fresh staging folder, failing with a usage error when the
    /// root cannot be written.
    pub fn open(
        root: &Path,
        layout: Layout,
        mode: WriteMode,
        raw: bool,
        extension: &'static str,
    ) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::output_root(root, e))?;
        let staging = staging_path(root, "run");
        for sub in ["spill", JOURNAL] {
            fs::create_dir_all(staging.join(sub)).map_err(|e| Error::output_root(&staging, e))?;
        }
        Ok(LocalStore {
            root: root.to_path_buf(),
            staging,
            layout,
            mode,
            raw,
            extension,
            aside_count: Default::default(),
            made_dirs: Mutex::new(HashSet::from([root.to_path_buf()])),
        })
    }

    /// Makes the folders above `path` that do not exist yet, once per run each.
    fn make_parents(&self, path: &Path) -> Result<()> {
        let mut made = self.made_dirs.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .take_while(|dir| !made.contains(*dir))
            .collect();
        for dir in missing.into_iter().rev() {
            make_dir(dir)?;
            made.insert(dir.to_path_buf());
        }
        Ok(())
    }

    /// Makes the staged window folder of a table (see [`Store::staged_dir`]) and returns
    /// its path.
    pub fn make_staged_dir(&self, table: Option<&str>, window: WindowKey) -> Result<PathBuf> {
        let dir = self.staged_dir(table, window);
        self.make_parents(&dir)?;
        make_dir(&dir)?;
        Ok(dir)
    }

    fn window_rel(&self, table: Option<&str>, window: WindowKey) -> PathBuf {
        PathBuf::from(window_folder(self.layout, self.raw, table, window))
    }

    /// The staged window folder of a table (or of raw output, `table = None`).
    pub fn staged_dir(&self, table: Option<&str>, window: WindowKey) -> PathBuf {
        self.staging
            .join("data")
            .join(self.window_rel(table, window))
    }

    /// The final window folder.
    pub fn final_dir(&self, table: Option<&str>, window: WindowKey) -> PathBuf {
        self.root.join(self.window_rel(table, window))
    }

    /// File name of the n-th part in a window folder.
    pub fn part_name(&self, n: u32) -> String {
        part_name(self.raw, self.extension, n)
    }

    /// Deletes the staging folder.
    pub fn cleanup(&self) {
        let _ = fs::remove_dir_all(&self.staging);
    }
}

impl LocalStore {
    /// A fresh number for a commit's journal entry and things it moves aside, and the
    /// entry's path.
    fn next_journal_entry(&self) -> (u64, PathBuf) {
        let n = self
            .aside_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (n, self.staging.join(JOURNAL).join(n.to_string()))
    }

    /// Append mode into an existing window folder: the staged parts join the folder's
    /// under the next numbers, then the manifest replaces the folder's. Journaled
    /// first (the parts' names, and a copy of the old manifest): until the new manifest
    /// is in place, the next run in this root takes the parts out again and puts the
    /// old manifest back, so a crash never leaves a mix (store::root).
    fn append(
        &self,
        table: Option<&str>,
        window: WindowKey,
        staged: &Path,
        target: &Path,
        manifest: Option<&[u8]>,
    ) -> Result<()> {
        let mut staged_parts = list_parts(staged)?;
        staged_parts.sort();
        let first = next_part_number(target)?;
        let names: Vec<String> = (first..)
            .take(staged_parts.len())
            .map(|n| self.part_name(n))
            .collect();
        let (n, record) = self.next_journal_entry();
        let side = SideFiles::of(table);
        // The folder's manifest, under this version's name or an earlier one's; it is
        // saved under its own name, which the journal keeps for a roll-back.
        let old_manifest = side
            .manifest_names()
            .map(|name| target.join(name))
            .find(|p| p.is_file());
        let saved = match &old_manifest {
            Some(old) => {
                let name = old.file_name().unwrap_or_default();
                let saved_rel = Path::new("aside").join(n.to_string()).join(name);
                let copy = self.staging.join(&saved_rel);
                self.make_parents(&copy)?;
                fs::copy(old, &copy).map_err(|e| Error::output(&copy, e))?;
                saved_rel.display().to_string()
            }
            None => "-".to_string(),
        };
        let rel = self.window_rel(table, window);
        write_file(
            &record,
            format!("append\n{}\n{saved}\n{}\n", rel.display(), names.join("\n")).as_bytes(),
        )?;
        for (i, (part, name)) in staged_parts.iter().zip(&names).enumerate() {
            let dest = target.join(name);
            fs::rename(part, &dest).map_err(|e| Error::output(&dest, e))?;
            if i == 0 {
                crate::failpoint::crash_point("append-between-parts");
            }
        }
        if let Some(m) = manifest {
            write_file(&target.join(side.manifest), m)?;
        }
        // The new manifest is in place: the append is committed.
        let _ = fs::remove_file(&record);
        let marker = target.join(side.complete);
        if !marker.exists() {
            write_file(&marker, b"")?;
        }
        if let Some(legacy) = side.legacy() {
            for name in [legacy.manifest, legacy.complete] {
                let path = target.join(name);
                if path.exists() {
                    fs::remove_file(&path).map_err(|e| Error::output(&path, e))?;
                }
            }
        }
        Ok(())
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A fresh staging folder's path in `root` for `what` this run stages there (`run`,
/// `spool`): the next run in the root removes what a crashed run left (store::root).
pub(crate) fn staging_path(root: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    root.join(format!(
        "{STAGING_PREFIX}{}-{what}-{nanos}",
        std::process::id()
    ))
}

/// Makes the folder `dir` (its parent exists), or finds it already there.
fn make_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists || !dir.is_dir() => {
            Err(Error::output(dir, e))
        }
        _ => Ok(()),
    }
}

/// The data files (`part-*`, `export-*`) of a window folder.
pub(crate) fn list_parts(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::output(dir, e))? {
        let e = e.map_err(|e| Error::output(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if is_data_file(&name) {
            out.push(e.path());
        }
    }
    Ok(out)
}

fn next_part_number(dir: &Path) -> Result<u32> {
    Ok(list_parts(dir)?
        .iter()
        .filter_map(|p| part_number(&p.file_name()?.to_string_lossy()))
        .map(|n| n + 1)
        .max()
        .unwrap_or(0))
}

/// A window's data file in its staged folder, created at its first write.
struct StagedFile {
    path: PathBuf,
    file: Option<io::BufWriter<fs::File>>,
}

/// Output buffer of a staged file: the run writes it in large runs of spilled bytes,
/// which pass the buffer, and small pieces (a footer), which it gathers.
const STAGED_BUFFER_BYTES: usize = 1 << 20;

impl StagedFile {
    fn file(&mut self) -> io::Result<&mut io::BufWriter<fs::File>> {
        if self.file.is_none() {
            let file = fs::File::create(&self.path)?;
            self.file = Some(io::BufWriter::with_capacity(STAGED_BUFFER_BYTES, file));
        }
        Ok(self.file.as_mut().expect("created above"))
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl DataFile for StagedFile {
    fn adopt(self: Box<Self>, file: &Path) -> Result<()> {
        fs::rename(file, &self.path).map_err(|e| Error::output(&self.path, e))
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        let path = self.path.clone();
        let file = self.file().map_err(|e| Error::output(&path, e))?;
        file.flush().map_err(|e| Error::output(&path, e))
    }

    fn name(&self) -> PathBuf {
        self.path.clone()
    }
}

impl WindowStore for LocalStore {
    fn spill_path(&self, table: u32, window: WindowKey, index: u32) -> PathBuf {
        spill_file(&self.staging.join("spill"), table, window, index)
    }

    fn data<'s>(
        &'s self,
        table: Option<&str>,
        window: WindowKey,
    ) -> Result<Box<dyn DataFile + 's>> {
        let dir = self.make_staged_dir(table, window)?;
        Ok(Box::new(StagedFile {
            path: dir.join(self.part_name(0)),
            file: None,
        }))
    }

    fn folder(&self, table: Option<&str>, window: WindowKey) -> String {
        self.window_rel(table, window)
            .to_string_lossy()
            .into_owned()
    }

    /// Moves a staged window folder into place (C1, C2): its data files, then the
    /// manifest, then the commit marker. In replace mode the folder moves whole; in
    /// append mode into an existing folder, its parts join the folder's and the
    /// manifest replaces the folder's.
    fn commit(
        &self,
        table: Option<&str>,
        window: WindowKey,
        manifest: Option<&[u8]>,
    ) -> Result<()> {
        let staged = self.staged_dir(table, window);
        let target = self.final_dir(table, window);
        self.make_parents(&target)?;
        if self.mode == WriteMode::Append && target.exists() {
            return self.append(table, window, &staged, &target, manifest);
        }
        let side = SideFiles::of(table);
        if let Some(m) = manifest {
            write_file(&staged.join(side.manifest), m)?;
        }
        write_file(&staged.join(side.complete), b"")?;
        if !target.exists() {
            return fs::rename(&staged, &target).map_err(|e| Error::output(&target, e));
        }
        // Replace: the old window moves aside, then the new one in. A crash between the
        // two would leave neither, so the move aside is journaled first: the next run
        // in this root puts the old window back (store::root).
        let (n, record) = self.next_journal_entry();
        let aside_rel = Path::new("aside").join(n.to_string());
        let aside = self.staging.join(&aside_rel);
        self.make_parents(&aside)?;
        let rel = self.window_rel(table, window);
        write_file(
            &record,
            format!("{}\n{}\n", rel.display(), aside_rel.display()).as_bytes(),
        )?;
        fs::rename(&target, &aside).map_err(|e| Error::output(&target, e))?;
        crate::failpoint::crash_point("replace-between-renames");
        fs::rename(&staged, &target).map_err(|e| Error::output(&target, e))?;
        let _ = fs::remove_file(&record);
        let _ = fs::remove_dir_all(aside);
        Ok(())
    }

    fn remove(&self, table: Option<&str>, window: WindowKey) -> Result<()> {
        let target = self.final_dir(table, window);
        match fs::remove_dir_all(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::output(&target, e)),
            _ => Ok(()),
        }
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::output(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: i8) -> WindowKey {
        WindowKey {
            year: 2024,
            month: 1,
            day,
            hour: None,
        }
    }

    fn store(root: &Path, mode: WriteMode) -> LocalStore {
        LocalStore::open(root, Layout::Mixpanel, mode, false, "parquet").unwrap()
    }

    #[test]
    fn c1_windows_of_one_month_share_parents_made_once() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path(), WriteMode::Replace);
        for d in [1, 2] {
            let dir = store.make_staged_dir(Some("sign_up"), day(d)).unwrap();
            assert_eq!(dir, store.staged_dir(Some("sign_up"), day(d)));
            fs::write(dir.join(store.part_name(0)), b"data").unwrap();
            store.commit(Some("sign_up"), day(d), None).unwrap();
        }
        for d in ["01", "02"] {
            let folder = tmp.path().join("sign_up/2024/01").join(d);
            assert!(folder.join("part-00000.parquet").is_file());
            assert!(folder.join("_complete").is_file());
        }
        // Staging the same window again (a later input of the run) still works after
        // its first folder moved away.
        let again = store.make_staged_dir(Some("sign_up"), day(1)).unwrap();
        assert!(again.is_dir());
    }

    #[test]
    fn c2_replace_and_append_after_parents_were_made() {
        let tmp = tempfile::tempdir().unwrap();
        for (mode, parts) in [(WriteMode::Replace, 1), (WriteMode::Append, 2)] {
            let store = store(tmp.path(), mode);
            let mut data = store.data(Some("t"), day(3)).unwrap();
            data.write_all(b"data").unwrap();
            data.close().unwrap();
            let manifest = format!("{mode:?}");
            store
                .commit(Some("t"), day(3), Some(manifest.as_bytes()))
                .unwrap();
            let folder = tmp.path().join("t/2024/01/03");
            assert_eq!(list_parts(&folder).unwrap().len(), parts, "{mode:?}");
            // The manifest is beside the data of the window as last committed.
            let side = SideFiles::TABLE;
            assert_eq!(
                fs::read_to_string(folder.join(side.manifest)).unwrap(),
                manifest
            );
            assert!(folder.join(side.complete).is_file());
        }
    }

    #[test]
    fn c1_raw_windows_keep_mixpanels_marker_and_tables_move_earlier_markers_to_theirs() {
        let tmp = tempfile::tempdir().unwrap();
        let raw = LocalStore::open(
            tmp.path(),
            Layout::Mixpanel,
            WriteMode::Replace,
            true,
            "json.gz",
        )
        .unwrap();
        let dir = raw.make_staged_dir(None, day(1)).unwrap();
        fs::write(dir.join(raw.part_name(0)), b"data").unwrap();
        raw.commit(None, day(1), Some(b"m")).unwrap();
        let folder = tmp.path().join("2024/01/01/full_day");
        assert!(folder.join("complete").is_file());
        assert!(folder.join("manifest.json").is_file());

        // A table folder an earlier version committed, with the raw names: an append
        // commits it under the table names and takes the earlier ones away.
        let folder = tmp.path().join("t/2024/01/02");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join("part-00000.parquet"), b"old").unwrap();
        fs::write(folder.join("complete"), b"").unwrap();
        fs::write(folder.join("manifest.json"), b"old manifest").unwrap();
        let store = store(tmp.path(), WriteMode::Append);
        let dir = store.make_staged_dir(Some("t"), day(2)).unwrap();
        fs::write(dir.join(store.part_name(0)), b"new").unwrap();
        store
            .commit(Some("t"), day(2), Some(b"new manifest"))
            .unwrap();
        let mut names: Vec<String> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "_complete",
                "_manifest.json",
                "part-00000.parquet",
                "part-00001.parquet"
            ]
        );
    }

    #[test]
    fn a_file_in_the_way_of_a_folder_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store(tmp.path(), WriteMode::Replace);
        fs::write(tmp.path().join("t"), b"not a folder").unwrap();
        let dir = store.make_staged_dir(Some("t"), day(1)).unwrap();
        let err = store
            .commit(Some("t"), day(1), None)
            .unwrap_err()
            .to_string();
        assert!(dir.is_dir());
        assert!(
            err.contains(&tmp.path().join("t").display().to_string()),
            "{err}"
        );
    }
}
