//! Never lose a window, never let two runs corrupt one root: a crash in the middle of a
//! replace commit, resume that verifies what it skips, and the lock on an output root.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::export::{convert, export_command, generated, mock, same_environment};
use crate::util::*;
use tidewater::RootLock;

/// The export command's 20 days, of which the data fills the first 3, exported into
/// `<dir>/out` from a mock server: the data, the server and the output root.
fn exported(dir: &Path) -> (PathBuf, tidewater_mock::MockServer, PathBuf) {
    let data = generated(dir, 900, 3);
    let server = mock(&data, |_| {});
    let out = dir.join("out");
    let first = export_command(&out, server.url(), &["--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    (data, server, out)
}

/// C1/C2: `kill -9` between moving the old window aside and moving the new one in.
/// The next run puts the old window back before it resumes: nothing is missing.
#[test]
fn c1_a_crash_between_the_renames_of_a_replace_loses_no_window() {
    let dir = tempfile::tempdir().unwrap();
    let (data, server, out) = exported(dir.path());
    assert_eq!(committed_folders(&out), 3);

    let crashed = export_command(&out, server.url(), &["--quiet", "--refetch"])
        .env("TIDEWATER_FAILPOINT", "replace-between-renames")
        .output()
        .unwrap();
    assert_eq!(crashed.status.code(), None, "aborted at the crash point");
    assert_eq!(
        committed_folders(&out),
        2,
        "one window was moved aside when it crashed"
    );

    let resumed = export_command(&out, server.url(), &["--json"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("restored window"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(summary["windows_skipped"], 20, "{summary}");
    assert_same_data_in_range(&out, &data);
}

/// Window folders with a commit marker (staging folders left by a crash aside).
fn committed_folders(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tidewater") {
                continue;
            }
            if e.path().is_dir() {
                stack.push(e.path());
            } else if name == "_complete" || name == "complete" {
                count += 1;
            }
        }
    }
    count
}

/// The export's data files are the converted data of its three days, byte for byte.
fn assert_same_data_in_range(out: &Path, data: &Path) {
    let reference = out.with_file_name("reference");
    convert(data, &reference, tidewater::RunOptions::default());
    let in_range = |k: &String| {
        !k.starts_with(".tidewater/")
            && !k.ends_with("manifest.json")
            && (k.starts_with("schema/")
                || ["2024/01/01/", "2024/01/02/", "2024/01/03/"]
                    .iter()
                    .any(|d| k.contains(d)))
    };
    let got: Vec<_> = tree(out).into_iter().filter(|(k, _)| in_range(k)).collect();
    let want: Vec<_> = tree(&reference)
        .into_iter()
        .filter(|(k, _)| in_range(k))
        .collect();
    assert_eq!(
        got.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        want.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert!(got == want, "same bytes");
}

/// XC4: resume skips a window only when what its record lists is still there; it says
/// what it exports again and why.
#[test]
fn xc4_resume_verifies_what_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    let (data, server, out) = exported(dir.path());
    std::fs::remove_file(out.join("mp_master_event/2024/01/01/_complete")).unwrap();
    std::fs::remove_dir_all(out.join("mp_master_event/2024/01/02")).unwrap();
    let again = export_command(&out, server.url(), &["--json"])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    for day in ["2024-01-01", "2024-01-02"] {
        assert!(
            stderr.contains(&format!("window {day} was committed, but")),
            "{stderr}"
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["windows_skipped"], 18, "{summary}");
    assert_same_data_in_range(&out, &data);
}

/// Two runs into one root: the second fails at once, naming the holder; a lock left by
/// a run that crashed is taken over.
#[test]
fn a_run_holds_its_output_root_exclusively() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let convert = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tidewater"))
            .current_dir(fixtures())
            .args(["convert", "events-sample.jsonl.gz", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let held = RootLock::acquire(&out).unwrap();
    let refused = convert(&out);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("is in use by another run")
            && stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert!(!out.join("mp_master_event").exists(), "nothing written");
    drop(held);

    // A crashed holder: its note is still in the file, but nobody holds the lock.
    std::fs::write(
        out.join(".tidewater/lock"),
        "pid 999999 on elsewhere, since then",
    )
    .unwrap();
    let taken = convert(&out);
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(String::from_utf8_lossy(&taken.stderr).contains("ended without releasing it"));
    assert!(out.join("mp_master_event").exists());
    assert_eq!(std::fs::read(out.join(".tidewater/lock")).unwrap(), b"");
}

/// A local write that fails while a body is spooled (here: a file size limit, as a full
/// disk would) stops the run with exit 1 naming the path, without retrying the window.
#[test]
fn a_spool_that_cannot_be_written_stops_the_export_without_spending_requests() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated(dir.path(), 20_000, 2);
    let server = mock(&data, |_| {});
    let out = dir.path().join("out");
    let export = export_command(&out, server.url(), &["--concurrency", "1"]);
    // Files beyond 100 KiB cannot be written; SIGXFSZ ignored, so writes fail with EFBIG.
    let mut limited = Command::new("bash");
    limited
        .arg("-c")
        .arg("ulimit -f 200; trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(export.get_program())
        .args(export.get_args());
    same_environment(&mut limited, &export);
    let output = limited.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write output")
            && stderr.contains("spool")
            && stderr.contains(".body: File too large"),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert_eq!(server.requests().len(), 1, "one request, not retried");
}

/// C1/C2 in append mode: a crash after some parts joined a committed window but before
/// its new manifest: the next run in the root takes those parts out again.
#[test]
fn c2_a_crash_in_the_middle_of_an_append_leaves_the_window_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (data, server, out) = exported(dir.path());
    let before: Vec<_> = tree(&out)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".tidewater/"))
        .collect();
    let crashed = export_command(
        &out,
        server.url(),
        &["--quiet", "--refetch", "--mode", "append"],
    )
    .env("TIDEWATER_FAILPOINT", "append-between-parts")
    .output()
    .unwrap();
    assert_eq!(crashed.status.code(), None, "aborted at the crash point");
    assert!(
        out.join("mp_master_event/2024/01/01/part-00001.parquet")
            .exists(),
        "a part joined the window when it crashed"
    );
    // Any next run in the root recovers first; this one resumes and skips every day.
    let resumed = export_command(&out, server.url(), &["--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("took out of window"), "{stderr}");
    let after: Vec<_> = tree(&out)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".tidewater/"))
        .collect();
    assert!(after == before, "the window is as it was");
    assert_same_data_in_range(&out, &data);
}
