//! Committing windows on an object store, where nothing can be renamed: the order of
//! the objects is the commit (C1, C2).
//!
//! 1. Data objects are uploaded under their final keys while they are encoded.
//! 2. The manifest (`_manifest.json` in a table's window, `manifest.json` in a raw
//!    one: [`SideFiles`]) is put, listing the folder's data objects in
//!    `files` (an export's manifest gains the list; a convert writes one only when the
//!    folder held objects before).
//! 3. The empty commit marker (`_complete`, raw: `complete`) is put last: the window is
//!    committed.
//! 4. Replaced objects are deleted.
//!
//! A folder with a manifest that lists `files` consists of those files; a folder
//! without one consists of all its data objects (a fresh commit, where nothing else was
//! ever uploaded). A replacement into a committed folder that has no such manifest
//! first writes one listing the old files, then uploads the new ones under new names.
//! So a reader that follows the marker and the manifest sees the old window or the new
//! one, never a mix, and a crash at any step leaves the committed window as it was:
//! the next run's objects replace what the crashed one left.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::PutMode;

use super::{LeaseLock, ObjectRoot, Upload};
use crate::error::{Error, Result};
use crate::options::{Layout, WriteMode};
use crate::store::{
    is_data_file, part_name, part_number, spill_file, window_folder, DataFile, SideFiles,
    WindowStore,
};
use crate::window::WindowKey;

/// What a window folder held when the run started, and what this run puts there.
#[derive(Debug, Clone, Default)]
struct Folder {
    /// Data objects that make up the committed window now.
    live: Vec<String>,
    /// Data objects of no committed window (left by a run that crashed).
    leftovers: Vec<String>,
    committed: bool,
    /// The manifest there, when it lists `files`.
    governed: bool,
    /// The name of this run's data object.
    new_name: Option<String>,
    /// Side files under an earlier version's names, removed at the next commit.
    legacy: Vec<String>,
}

/// The window store of an object-storage output.
pub(crate) struct ObjectWindows {
    root: Arc<ObjectRoot>,
    lease: Option<Arc<LeaseLock>>,
    layout: Layout,
    mode: WriteMode,
    raw: bool,
    extension: &'static str,
    /// Every folder's object names when the run started (one listing of the root).
    names: HashMap<String, Vec<String>>,
    /// What the folders this run touches hold (their manifests read at first touch),
    /// then this run's decisions.
    folders: Mutex<HashMap<String, Folder>>,
    /// Local folder of this run's spills.
    spills: PathBuf,
}

impl ObjectWindows {
    /// The store for `root`, whose objects are listed once here.
    pub(crate) fn open(
        root: Arc<ObjectRoot>,
        lease: Option<Arc<LeaseLock>>,
        layout: Layout,
        mode: WriteMode,
        raw: bool,
        extension: &'static str,
    ) -> Result<Self> {
        let mut names: HashMap<String, Vec<String>> = HashMap::new();
        for rel in root.list("")? {
            if let Some((folder, name)) = rel.rsplit_once('/') {
                names
                    .entry(folder.to_string())
                    .or_default()
                    .push(name.to_string());
            }
        }
        let spills = root.scratch().join(format!("spill-{}", std::process::id()));
        std::fs::create_dir_all(&spills).map_err(|e| Error::output_root(&spills, e))?;
        Ok(ObjectWindows {
            spills,
            root,
            lease,
            layout,
            mode,
            raw,
            extension,
            names,
            folders: Mutex::default(),
        })
    }

    fn rel(&self, table: Option<&str>, window: WindowKey) -> String {
        window_folder(self.layout, self.raw, table, window)
    }

    fn part_name(&self, n: u32) -> String {
        part_name(self.raw, self.extension, n)
    }

    fn side(&self) -> SideFiles {
        if self.raw {
            SideFiles::RAW
        } else {
            SideFiles::TABLE
        }
    }

    /// Runs `f` on what `folder` holds, reading it (its manifest) at the first touch.
    fn with_folder<T>(&self, folder: &str, f: impl FnOnce(&mut Folder) -> Result<T>) -> Result<T> {
        let mut folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        let state = match folders.entry(folder.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let names = self.names.get(folder).map_or(&[][..], Vec::as_slice);
                e.insert(read_folder(&self.root, folder, names, self.side())?)
            }
        };
        f(state)
    }

    /// Decides the name of this run's data object in `folder`: the first number in a
    /// folder without a committed window, the next free one in a committed folder
    /// (whose files stay readable until the commit), which is first pinned by a
    /// manifest when it has none.
    fn plan(&self, folder: &str) -> Result<String> {
        self.with_folder(folder, |state| self.plan_in(folder, state))
    }

    fn plan_in(&self, folder: &str, state: &mut Folder) -> Result<String> {
        if let Some(name) = &state.new_name {
            return Ok(name.clone());
        }
        let name = if !state.committed {
            self.part_name(0)
        } else {
            if !state.governed {
                let pin = manifest_with_files(None, &state.live);
                self.root
                    .write(&format!("{folder}/{}", self.side().manifest), pin)?;
                state.governed = true;
            }
            let next = state
                .live
                .iter()
                .chain(&state.leftovers)
                .filter_map(|n| part_number(n))
                .max()
                .map_or(0, |n| n + 1);
            self.part_name(next)
        };
        state.new_name = Some(name.clone());
        Ok(name)
    }

    fn check_lease(&self) -> Result<()> {
        self.lease.as_ref().map_or(Ok(()), |l| l.check())
    }
}

/// Reads what a folder holds: its data objects, its commit marker, and whether its
/// manifest lists the files.
fn read_folder(
    root: &ObjectRoot,
    folder: &str,
    names: &[String],
    side: SideFiles,
) -> Result<Folder> {
    let parts: Vec<String> = names.iter().filter(|n| is_data_file(n)).cloned().collect();
    let committed = names.iter().any(|n| side.is_complete(n));
    // This version's manifest, else an earlier version's.
    let manifest = side.manifest_names().find(|m| names.iter().any(|n| n == m));
    let listed = match manifest {
        Some(name) => root
            .read(&format!("{folder}/{name}"))?
            .and_then(|b| files_of(&b)),
        None => None,
    };
    let (live, leftovers) = match (&listed, committed) {
        (_, false) => (Vec::new(), parts),
        (None, true) => (parts, Vec::new()),
        (Some(files), true) => parts.into_iter().partition(|p| files.contains(p)),
    };
    Ok(Folder {
        live,
        leftovers,
        committed,
        governed: listed.is_some() && committed,
        new_name: None,
        legacy: names
            .iter()
            .filter(|n| side.is_legacy(n))
            .cloned()
            .collect(),
    })
}

/// The `files` a manifest lists, if it lists them.
fn files_of(manifest: &[u8]) -> Option<BTreeSet<String>> {
    let value: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let files = value.get("files")?.as_array()?;
    Some(
        files
            .iter()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect(),
    )
}

/// `manifest` (an export's, or none) with the list of the folder's data files.
fn manifest_with_files(manifest: Option<&[u8]>, files: &[String]) -> Bytes {
    let mut value = manifest
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(m).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    value["files"] = serde_json::json!(files);
    let mut text = serde_json::to_vec_pretty(&value).expect("a manifest serializes");
    text.push(b'\n');
    Bytes::from(text)
}

impl WindowStore for ObjectWindows {
    fn spill_path(&self, table: u32, window: WindowKey, index: u32) -> PathBuf {
        spill_file(&self.spills, table, window, index)
    }

    fn data<'s>(
        &'s self,
        table: Option<&str>,
        window: WindowKey,
    ) -> Result<Box<dyn DataFile + 's>> {
        self.check_lease()?;
        let folder = self.rel(table, window);
        let name = self.plan(&folder)?;
        Ok(Box::new(Upload::new(
            &self.root,
            &format!("{folder}/{name}"),
        )))
    }

    fn part_bytes(&self) -> Option<u64> {
        Some(super::upload::PART_BYTES as u64)
    }

    fn folder(&self, table: Option<&str>, window: WindowKey) -> String {
        self.rel(table, window)
    }

    fn commit(
        &self,
        table: Option<&str>,
        window: WindowKey,
        manifest: Option<&[u8]>,
    ) -> Result<()> {
        self.check_lease()?;
        let folder = self.rel(table, window);
        let state = self.with_folder(&folder, |state| Ok(state.clone()))?;
        let new = state
            .new_name
            .clone()
            .expect("a window's data object is written before its commit");
        let appending = self.mode == WriteMode::Append && state.committed;
        let mut files: Vec<String> = if appending {
            state.live.clone()
        } else {
            Vec::new()
        };
        files.push(new.clone());
        // A fresh folder needs no list (all its data objects are the window) unless it
        // is an export's, whose manifest always says what it committed.
        let had_objects = state.committed || !state.leftovers.is_empty();
        let side = self.side();
        if manifest.is_some() || had_objects {
            self.root.write(
                &format!("{folder}/{}", side.manifest),
                manifest_with_files(manifest, &files),
            )?;
        }
        if !state.committed {
            // Create-if-absent: of two runs that both found the window uncommitted
            // (whose leases overlapped), only one commits it.
            let marker = format!("{folder}/{}", side.complete);
            match self.root.put(&marker, Bytes::new(), PutMode::Create) {
                Err(Error::Output { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    return Err(Error::output(
                        self.root.url_of(&marker),
                        std::io::Error::other(
                            "another run committed this window meanwhile; this run commits nothing more",
                        ),
                    ));
                }
                other => other?,
            };
        } else if state.legacy.iter().any(|n| side.is_complete(n)) {
            // Committed by an earlier version, under its marker: this version's goes
            // first, so that the folder never looks uncommitted.
            self.root
                .write(&format!("{folder}/{}", side.complete), Vec::new())?;
        }
        let mut gone: Vec<&String> = state.leftovers.iter().filter(|n| **n != new).collect();
        if !appending {
            gone.extend(state.live.iter().filter(|n| **n != new));
        }
        gone.extend(&state.legacy);
        for name in gone {
            self.root.delete(&format!("{folder}/{name}"))?;
        }
        let mut folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        folders.insert(
            folder,
            Folder {
                live: files,
                leftovers: Vec::new(),
                committed: true,
                governed: manifest.is_some() || had_objects,
                new_name: None,
                legacy: Vec::new(),
            },
        );
        Ok(())
    }

    fn remove(&self, table: Option<&str>, window: WindowKey) -> Result<()> {
        self.check_lease()?;
        let folder = self.rel(table, window);
        let touched = self
            .folders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&folder);
        if !touched && !self.names.contains_key(&folder) {
            return Ok(()); // nothing there
        }
        // The folder is empty from here on, for this run's later windows too.
        let state = self.with_folder(&folder, |state| Ok(std::mem::take(state)))?;
        // Uncommitted first, so that no reader follows a marker to missing files.
        let side = self.side();
        self.root.delete(&format!("{folder}/{}", side.complete))?;
        self.root.delete(&format!("{folder}/{}", side.manifest))?;
        for name in state
            .legacy
            .iter()
            .chain(&state.live)
            .chain(&state.leftovers)
        {
            self.root.delete(&format!("{folder}/{name}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectTarget;
    use object_store::path::Path as Key;

    fn root() -> Arc<ObjectRoot> {
        let store = Arc::new(object_store::memory::InMemory::new());
        let target = ObjectTarget::new(store, "memory:///out", Key::from("out"));
        Arc::new(ObjectRoot::open(&target, &[]).unwrap())
    }

    fn windows(root: &Arc<ObjectRoot>, mode: WriteMode) -> ObjectWindows {
        ObjectWindows::open(root.clone(), None, Layout::Mixpanel, mode, false, "parquet").unwrap()
    }

    fn day() -> WindowKey {
        WindowKey {
            year: 2024,
            month: 1,
            day: 2,
            hour: None,
        }
    }

    fn put(w: &ObjectWindows, bytes: &'static [u8]) {
        let mut data = w.data(Some("t"), day()).unwrap();
        data.write_all(bytes).unwrap();
        data.close().unwrap();
    }

    fn names(root: &ObjectRoot) -> Vec<String> {
        let mut names = root.list("t").unwrap();
        names.sort();
        names
    }

    #[test]
    fn c1_two_runs_that_found_a_window_uncommitted_cannot_both_commit_it() {
        let root = root();
        let (a, b) = (
            windows(&root, WriteMode::Replace),
            windows(&root, WriteMode::Replace),
        );
        put(&a, b"a");
        put(&b, b"b");
        a.commit(Some("t"), day(), None).unwrap();
        let e = b.commit(Some("t"), day(), None).unwrap_err().to_string();
        assert!(e.contains("another run committed this window"), "{e}");
        assert!(e.contains("memory:///out/t/2024/01/02/_complete"), "{e}");
    }

    #[test]
    fn c2_a_replacement_pins_the_old_files_then_lists_the_new_ones_then_deletes_the_old() {
        let root = root();
        let first = windows(&root, WriteMode::Replace);
        put(&first, b"old");
        first.commit(Some("t"), day(), None).unwrap();
        // A fresh commit: the data and the marker, no manifest.
        assert_eq!(
            names(&root),
            ["t/2024/01/02/_complete", "t/2024/01/02/part-00000.parquet"]
        );
        let second = windows(&root, WriteMode::Replace);
        put(&second, b"new");
        // Before the commit, a manifest lists the old file, which is still there.
        let pinned = root.read("t/2024/01/02/_manifest.json").unwrap().unwrap();
        assert_eq!(
            files_of(&pinned).unwrap(),
            ["part-00000.parquet".to_string()].into()
        );
        assert!(names(&root).contains(&"t/2024/01/02/part-00001.parquet".to_string()));
        second.commit(Some("t"), day(), None).unwrap();
        let listed = root.read("t/2024/01/02/_manifest.json").unwrap().unwrap();
        assert_eq!(
            files_of(&listed).unwrap(),
            ["part-00001.parquet".to_string()].into()
        );
        assert_eq!(
            names(&root),
            [
                "t/2024/01/02/_complete",
                "t/2024/01/02/_manifest.json",
                "t/2024/01/02/part-00001.parquet"
            ]
        );
        // Append keeps the listed files and adds its own.
        let third = windows(&root, WriteMode::Append);
        put(&third, b"more");
        third.commit(Some("t"), day(), None).unwrap();
        let listed = root.read("t/2024/01/02/_manifest.json").unwrap().unwrap();
        assert_eq!(
            files_of(&listed).unwrap(),
            [
                "part-00001.parquet".to_string(),
                "part-00002.parquet".to_string()
            ]
            .into()
        );
    }

    #[test]
    fn c2_a_window_an_earlier_version_committed_is_replaced_under_this_versions_names() {
        let root = root();
        // Table windows were once committed with the raw names.
        root.write("t/2024/01/02/part-00000.parquet", b"old".to_vec())
            .unwrap();
        root.write(
            "t/2024/01/02/manifest.json",
            manifest_with_files(None, &["part-00000.parquet".into()]),
        )
        .unwrap();
        root.write("t/2024/01/02/complete", Vec::new()).unwrap();
        let w = windows(&root, WriteMode::Replace);
        put(&w, b"new");
        // Still governed by the old manifest: no pin of this version's was needed.
        assert!(root.read("t/2024/01/02/_manifest.json").unwrap().is_none());
        w.commit(Some("t"), day(), None).unwrap();
        assert_eq!(
            names(&root),
            [
                "t/2024/01/02/_complete",
                "t/2024/01/02/_manifest.json",
                "t/2024/01/02/part-00001.parquet"
            ]
        );
    }

    #[test]
    fn c1_objects_a_crashed_run_left_in_an_uncommitted_window_are_replaced() {
        let root = root();
        root.write("t/2024/01/02/part-00000.parquet", b"stale".to_vec())
            .unwrap();
        root.write("t/2024/01/02/part-00003.parquet", b"stale".to_vec())
            .unwrap();
        let w = windows(&root, WriteMode::Replace);
        put(&w, b"fresh");
        w.commit(Some("t"), day(), None).unwrap();
        assert_eq!(
            root.read("t/2024/01/02/part-00000.parquet")
                .unwrap()
                .unwrap(),
            Bytes::from_static(b"fresh")
        );
        let listed = root.read("t/2024/01/02/_manifest.json").unwrap().unwrap();
        assert_eq!(
            files_of(&listed).unwrap(),
            ["part-00000.parquet".to_string()].into()
        );
        assert!(!names(&root).contains(&"t/2024/01/02/part-00003.parquet".to_string()));
    }
}
