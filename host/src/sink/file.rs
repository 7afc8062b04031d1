//! The `file` sink: one folder, part files per subtask.
//!
//! Without checkpoints, subtask i writes `part-<i>` (replacing it).
//!
//! With checkpoints it is exactly-once by two-phase commit. On disk:
//!
//! ```text
//! <folder>/part-<subtask>-<n>                  committed: complete, never changes again
//! <folder>/.part-<subtask>-<n>.inprogress      being written
//! <folder>/.part-<subtask>-<n>.pending         pre-committed, waiting for its checkpoint
//! ```
//!
//! Records go to the in-progress file. On a checkpoint barrier the sink
//! flushes and fsyncs it and renames it to `.pending` (pre-commit); the
//! checkpoint records the pending names in the sink's operator state. When
//! the checkpoint is complete (its `_metadata` is durable) the coordinator
//! renames them to `part-<subtask>-<n>` (commit). Readers that ignore
//! hidden files (names starting with `.`), as Flink's and Hadoop's readers
//! do, never see uncommitted data. On restore, the files the restored
//! checkpoint pre-committed are committed (again: a rename that already
//! happened is skipped) and every other hidden part file is deleted, so
//! the records after the checkpoint, which the job replays, are written
//! once. A job started without a restore empties the folder's part files.
//!
//! A savepoint keeps its own copy (a hard link where it can) of every file
//! it names ([`preserve`]): a job that restarts from an older checkpoint
//! deletes or rewrites those names in the folder, so a later restore from
//! the savepoint installs its copies instead.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::folder::SinkDir;
use super::{Copies, SinkError, SinkWriter, TransactionalSink, write_lines};
use crate::channel::Batch;

/// The operator state of one transactional file-sink subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSinkState {
    /// The subtask.
    pub subtask: u32,
    /// The next part number it would have used.
    pub next_part: u64,
    /// Part files pre-committed and not known to be committed.
    pub pending: Vec<String>,
    /// The folder they were written to, made absolute (absent in
    /// snapshots written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> SinkError {
    SinkError::Failed(format!("{}: {e}", path.display()))
}

pub(super) fn hidden(folder: &Path, name: &str, suffix: &str) -> PathBuf {
    folder.join(hidden_name(name, suffix))
}

/// The hidden name of part `name` in state `suffix`: `.<name>.<suffix>`.
fn hidden_name(name: &str, suffix: &str) -> String {
    format!(".{name}.{suffix}")
}

/// The two-phase-commit side of a [`FileSink`].
#[derive(Debug)]
struct Transaction {
    /// The newest checkpoint the task said is complete.
    completed: u64,
    /// The next part number.
    next: u64,
    /// Pre-committed files with their checkpoint id.
    pending: Vec<(u64, String)>,
}

/// Lines in part files of a folder.
#[derive(Debug)]
pub struct FileSink {
    dir: std::sync::Arc<SinkDir>,
    subtask: u32,
    /// The open file, its name (without dots and suffix) and its path.
    current: Option<(BufWriter<File>, String, PathBuf)>,
    /// Transactional (checkpoints on).
    txn: Option<Transaction>,
}

impl FileSink {
    /// Creates (or truncates) `<folder>/part-<subtask>`; `root`: see
    /// [`SinkDir::open`].
    pub fn create(folder: &Path, subtask: u32, root: Option<&Path>) -> Result<Self, SinkError> {
        let dir = std::sync::Arc::new(SinkDir::open(folder, root).map_err(SinkError::Failed)?);
        let name = format!("part-{subtask}");
        let path = folder.join(&name);
        let f = dir.create(&name).map_err(SinkError::Failed)?;
        Ok(FileSink {
            dir,
            subtask,
            current: Some((BufWriter::with_capacity(256 * 1024, f), name, path)),
            txn: None,
        })
    }

    /// A two-phase-commit writer in the sink's folder `dir`, whose part
    /// numbers start at `first_part`.
    pub fn transactional(
        dir: std::sync::Arc<SinkDir>,
        subtask: u32,
        first_part: u64,
    ) -> Result<Self, SinkError> {
        Ok(FileSink {
            dir,
            subtask,
            current: None,
            txn: Some(Transaction {
                completed: 0,
                next: first_part,
                pending: Vec::new(),
            }),
        })
    }

    fn open_next(&mut self) -> Result<(), SinkError> {
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        let name = format!("part-{}-{}", self.subtask, txn.next);
        txn.next += 1;
        let file = hidden_name(&name, "inprogress");
        let f = self.dir.create(&file).map_err(SinkError::Failed)?;
        let path = self.dir.path().join(file);
        self.current = Some((BufWriter::with_capacity(256 * 1024, f), name, path));
        Ok(())
    }

    /// Flushes and fsyncs the open file and closes it; its name.
    fn close_current(&mut self) -> Result<Option<(String, PathBuf)>, SinkError> {
        let Some((mut w, name, path)) = self.current.take() else {
            return Ok(None);
        };
        w.flush().map_err(|e| err(&path, e))?;
        w.get_ref().sync_all().map_err(|e| err(&path, e))?;
        Ok(Some((name, path)))
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if self.current.is_none() {
            self.open_next()?;
        }
        match self.current.as_mut() {
            Some((w, _, _)) => write_lines(w, batch),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.txn.is_some() {
            // The final snapshot pre-commits what is left.
            return Ok(());
        }
        if let Some((w, _, path)) = self.current.as_mut() {
            w.flush().map_err(|e| err(path, e))?;
            w.get_ref().sync_all().map_err(|e| err(path, e))?;
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, id: u64) {
        if let Some(txn) = self.txn.as_mut() {
            txn.completed = txn.completed.max(id);
        }
    }

    fn pre_commit(&mut self, id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        if self.txn.is_none() {
            self.finish()?;
            return Ok(Vec::new());
        }
        let closed = self.close_current()?;
        let folder = self.dir.path().to_path_buf();
        let subtask = self.subtask;
        let Some(txn) = self.txn.as_mut() else {
            return Ok(Vec::new());
        };
        if let Some((name, _)) = closed {
            let (from, to) = (
                hidden_name(&name, "inprogress"),
                hidden_name(&name, "pending"),
            );
            self.dir.rename(&from, &to).map_err(SinkError::Failed)?;
            // The rename is what the checkpoint records: durable first.
            self.dir.sync().map_err(SinkError::Failed)?;
            txn.pending.push((id, name));
        }
        // Files of completed checkpoints are committed by now.
        let done = txn.completed;
        txn.pending.retain(|(c, _)| *c > done);
        let state = FileSinkState {
            subtask,
            next_part: txn.next,
            pending: txn.pending.iter().map(|(_, n)| n.clone()).collect(),
            folder: Some(absolute(&folder).display().to_string()),
        };
        let bytes = serde_json::to_vec(&state).map_err(|e| SinkError::Failed(e.to_string()))?;
        Ok(vec![bytes])
    }
}

/// Reads the sinks' states from a checkpoint, refusing a pending name that
/// is not one the sink writes (`part-<subtask>-<n>`): a damaged or hostile
/// checkpoint must not make a commit rename files outside the folder.
pub(super) fn parse_states(states: &[Vec<u8>]) -> Result<Vec<FileSinkState>, String> {
    let parsed: Vec<FileSinkState> = states
        .iter()
        .map(|b| serde_json::from_slice(b).map_err(|e| format!("unreadable file-sink state: {e}")))
        .collect::<Result<_, _>>()?;
    for state in &parsed {
        if let Some(bad) = state.pending.iter().find(|n| !is_part_name(n)) {
            return Err(format!(
                "file-sink state names {bad:?}, which is not a part file of the sink's folder"
            ));
        }
    }
    Ok(parsed)
}

/// Checks the sink's states in a snapshot (see [`parse_states`]).
pub(crate) fn check_states(states: &[Vec<u8>]) -> Result<(), String> {
    parse_states(states).map(drop)
}

/// `folder`, through links and made absolute where it exists.
pub(super) fn absolute(folder: &Path) -> PathBuf {
    folder
        .canonicalize()
        .unwrap_or_else(|_| std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf()))
}

/// Whether `name` is a part file name the sink writes: `part-<u32>-<u64>`.
fn is_part_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("part-") else {
        return false;
    };
    let Some((subtask, n)) = rest.split_once('-') else {
        return false;
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    digits(subtask) && digits(n) && subtask.parse::<u32>().is_ok() && n.parse::<u64>().is_ok()
}

/// The two-phase-commit side of a `file` sink node: its folder, opened
/// once (for an attempt) and shared by its writers and its commits, so all
/// of them act on the folder the attempt opened.
#[derive(Debug, Clone)]
pub struct FileSinkCommitter {
    dir: std::sync::Arc<SinkDir>,
}

impl FileSinkCommitter {
    /// Opens `folder`, beneath `root` if given (a server's files root).
    pub fn open(folder: &Path, root: Option<&Path>) -> Result<Self, SinkError> {
        let dir = SinkDir::open(folder, root).map_err(SinkError::Failed)?;
        Ok(FileSinkCommitter {
            dir: std::sync::Arc::new(dir),
        })
    }
}

impl TransactionalSink for FileSinkCommitter {
    fn recover(
        &self,
        restored: Option<&[Vec<u8>]>,
        copies: Option<&Copies<'_>>,
    ) -> Result<u64, SinkError> {
        recover_subtasks(&self.dir, restored, copies, None)
    }

    fn preserve(&self, states: &[Vec<u8>], copies: &Copies<'_>) -> Result<(), SinkError> {
        preserve(&self.dir, states, copies).map_err(SinkError::Failed)
    }

    fn begin(&self, subtask: u32, first: u64) -> Result<Box<dyn SinkWriter>, SinkError> {
        Ok(Box::new(FileSink::transactional(
            self.dir.clone(),
            subtask,
            first,
        )?))
    }

    fn commit(&self, states: &[Vec<u8>]) -> Result<(), SinkError> {
        commit_parsed(
            &self.dir,
            &parse_states(states).map_err(SinkError::Failed)?,
            None,
        )
    }

    fn recover_subtask(
        &self,
        subtask: u32,
        restored: Option<&[Vec<u8>]>,
    ) -> Result<u64, SinkError> {
        recover_subtasks(&self.dir, restored, None, Some(subtask))
    }
}

/// Keeps in `copies` a copy of every file the sink subtasks' `states`
/// name, pending or already committed: what a savepoint needs to restore
/// them whatever happens to the folder later.
pub fn preserve(dir: &SinkDir, states: &[Vec<u8>], copies: &Copies<'_>) -> Result<(), String> {
    for state in parse_states(states)? {
        for name in &state.pending {
            let pending = hidden_name(name, "pending");
            let src = if dir.exists(&pending) {
                pending.as_str()
            } else {
                name.as_str()
            };
            let dst = copies.path(name);
            if !dst.exists() {
                dir.link_out(src, &dst)?;
            }
        }
    }
    Ok(())
}

/// Commits the files sink subtasks pre-committed (their operator states in
/// a completed checkpoint): renames each `.pending` file to its part name.
/// A file already renamed is skipped, so committing twice is harmless.
/// Where `copies` (a savepoint's) holds a file, its copy is installed
/// instead: the folder may hold another file of that name by now.
fn commit_parsed(
    dir: &SinkDir,
    states: &[FileSinkState],
    copies: Option<&Copies<'_>>,
) -> Result<(), SinkError> {
    let mut renamed = false;
    for state in states {
        for name in &state.pending {
            let from = hidden_name(name, "pending");
            let copy = copies.map(|c| c.path(name)).filter(|p| p.is_file());
            if let Some(copy) = copy {
                let staged = hidden_name(name, "restoring");
                let _ = dir.remove(&staged);
                dir.link_in(&copy, &staged).map_err(SinkError::Failed)?;
                dir.rename(&staged, name).map_err(SinkError::Failed)?;
                renamed = true;
            } else if dir.exists(&from) {
                dir.rename(&from, name).map_err(SinkError::Failed)?;
                renamed = true;
            } else if !dir.exists(name) {
                return Err(SinkError::MissingPrecommitted(
                    dir.path().join(&from).display().to_string(),
                ));
            }
        }
    }
    if renamed {
        dir.sync().map_err(SinkError::Failed)?;
    }
    Ok(())
}

/// Prepares a transactional sink's folder before its subtasks start, and
/// returns the part number they start from; the files of subtask `only`
/// alone (all subtasks if `None`), which is what a region failover does
/// while the sink's other subtasks keep writing.
///
/// `restored` holds the sink's operator states in the checkpoint restored
/// from. Its pre-committed files are committed; every uncommitted file is
/// deleted; and so is every committed file written after that checkpoint
/// (part numbers only grow, so those are the files of subtask `s` numbered
/// from its `next_part` on). So restoring any retained checkpoint, even an
/// older one, leaves the folder exactly as that checkpoint saw it, and the
/// replayed records are written once. `None` (a fresh start) removes every
/// part file.
pub fn recover_subtasks(
    dir: &SinkDir,
    restored: Option<&[Vec<u8>]>,
    copies: Option<&Copies<'_>>,
    only: Option<u32>,
) -> Result<u64, SinkError> {
    let mine = |s: &FileSinkState| only.is_none_or(|o| s.subtask == o);
    // Every subtask's part numbers: a subtask without state of its own
    // (restored at another parallelism) keeps the files below the highest
    // and numbers its new ones from there, as a full recovery does.
    let all = match restored {
        Some(s) => parse_states(s).map_err(SinkError::Failed)?,
        None => Vec::new(),
    };
    let all_next = all.iter().map(|st| st.next_part).max().unwrap_or(0);
    let states: Vec<FileSinkState> = all.into_iter().filter(mine).collect();
    commit_parsed(dir, &states, copies)?;
    let of_subtask = |name: &str| -> bool {
        let part = name.trim_start_matches('.');
        let subtask = part
            .strip_prefix("part-")
            .and_then(|r| r.split_once('-'))
            .and_then(|(s, _)| s.parse::<u32>().ok());
        only.is_none_or(|o| subtask == Some(o))
    };
    let next = states
        .iter()
        .map(|s| s.next_part)
        .max()
        .unwrap_or(0)
        .max(all_next);
    let written_after = |name: &str| -> bool {
        let Some((subtask, n)) = name
            .strip_prefix("part-")
            .and_then(|r| r.split_once('-'))
            .and_then(|(s, n)| Some((s.parse::<u32>().ok()?, n.parse::<u64>().ok()?)))
        else {
            return false;
        };
        let threshold = states
            .iter()
            .find(|s| s.subtask == subtask)
            .map_or(next, |s| s.next_part);
        n >= threshold
    };
    for name in dir.names().map_err(SinkError::Failed)? {
        let name = name.as_str();
        let remove = of_subtask(name)
            && (name.starts_with(".part-")
                || (name.starts_with("part-") && (restored.is_none() || written_after(name))));
        if remove {
            dir.remove(name).map_err(SinkError::Failed)?;
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_part_names_are_taken_from_a_checkpoint() {
        assert!(is_part_name("part-0-12") && is_part_name("part-4294967295-0"));
        for bad in [
            "/etc/passwd",
            "../x",
            "part-0-1/../../x",
            "part--1",
            "part-0-",
            "part-a-1",
            "part-4294967296-0",
        ] {
            assert!(!is_part_name(bad), "{bad}");
        }
        let hostile = state(0, 3, &["/tmp/elsewhere"]);
        assert!(parse_states(&[hostile]).is_err());
    }

    fn state(subtask: u32, next_part: u64, pending: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&FileSinkState {
            subtask,
            next_part,
            pending: pending.iter().map(|s| (*s).to_owned()).collect(),
            folder: None,
        })
        .expect("json")
    }

    fn open(d: &Path) -> SinkDir {
        SinkDir::open(d, None).expect("open")
    }

    fn recover(d: &Path, r: Option<&[Vec<u8>]>, c: Option<&Copies<'_>>) -> Result<u64, String> {
        recover_subtasks(&open(d), r, c, None).map_err(|e| e.to_string())
    }

    fn commit(d: &Path, states: &[Vec<u8>], c: Option<&Copies<'_>>) -> Result<(), String> {
        commit_parsed(&open(d), &parse_states(states)?, c).map_err(|e| e.to_string())
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn recovery_commits_the_checkpoints_files_and_removes_later_and_uncommitted_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for f in [
            "part-0-0",
            "part-0-1",
            ".part-0-2.pending",
            ".part-0-3.inprogress",
            "part-1-0",
            "part-1-1", // committed by a later checkpoint
            "part-2-4", // a subtask the checkpoint did not have
        ] {
            std::fs::write(d.join(f), f).expect("write");
        }
        let restored = vec![state(0, 3, &["part-0-2"]), state(1, 1, &[])];
        let next = recover(d, Some(&restored), None).expect("recover");
        assert_eq!(next, 3);
        assert_eq!(
            names(d),
            vec!["part-0-0", "part-0-1", "part-0-2", "part-1-0"]
        );
        // Committing again is harmless.
        commit(d, &restored, None).expect("commit twice");
        // A fresh start empties the folder.
        assert_eq!(recover(d, None, None).expect("fresh"), 0);
        assert!(names(d).is_empty());
    }

    #[test]
    fn a_region_recovery_touches_only_its_subtasks_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for f in [
            "part-0-0",
            ".part-0-1.inprogress", // subtask 0 keeps writing
            "part-1-0",
            ".part-1-1.pending",
            ".part-1-2.inprogress",
            "part-2-0", // a subtask the checkpoint did not have
        ] {
            std::fs::write(d.join(f), f).expect("write");
        }
        let restored = vec![state(0, 1, &[]), state(1, 2, &["part-1-1"])];
        let next = recover_subtasks(&open(d), Some(&restored), None, Some(1)).expect("recover");
        assert_eq!(next, 2);
        assert_eq!(
            names(d),
            vec![
                ".part-0-1.inprogress",
                "part-0-0",
                "part-1-0",
                "part-1-1",
                "part-2-0"
            ]
        );
        // Without a state of its own, a subtask keeps its files below the
        // highest part number and numbers new ones from there.
        let next = recover_subtasks(&open(d), Some(&restored), None, Some(2)).expect("recover");
        assert_eq!(next, 2);
        assert!(names(d).contains(&"part-2-0".to_owned()));
    }

    #[test]
    fn a_savepoints_copies_survive_a_restart_from_an_older_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (d, sp) = (dir.path().join("out"), dir.path().join("sp"));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::create_dir_all(&sp).expect("mkdir");
        std::fs::write(d.join("part-0-0"), "a").expect("write");
        std::fs::write(d.join(".part-0-1.pending"), "savepoint's").expect("write");
        let savepoint = vec![state(0, 2, &["part-0-1"])];
        let copies = Copies {
            dir: &sp,
            prefix: "sink-out-",
        };
        preserve(&open(&d), &savepoint, &copies).expect("preserve");
        // A restart from the checkpoint before the savepoint drops its
        // pending file, and the replay writes another file of that name.
        let older = vec![state(0, 1, &[])];
        recover(&d, Some(&older), None).expect("older");
        std::fs::write(d.join("part-0-1"), "replayed").expect("write");
        std::fs::write(d.join("part-0-2"), "later").expect("write");
        // The restore from the savepoint installs its own copy.
        let next = recover(&d, Some(&savepoint), Some(&copies)).expect("from savepoint");
        assert_eq!(next, 2);
        assert_eq!(names(&d), vec!["part-0-0", "part-0-1"]);
        assert_eq!(
            std::fs::read_to_string(d.join("part-0-1")).expect("read"),
            "savepoint's"
        );
    }
}
