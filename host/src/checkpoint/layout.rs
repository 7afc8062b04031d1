//! Every path of a job's checkpoint folder, built and parsed in one place:
//!
//! ```text
//! <state.checkpoints.dir>/<job-id>/chk-<n>/_metadata
//! <state.checkpoints.dir>/<job-id>/chk-<n>/<node>-<uid>-<subtask>.keyed
//! <state.checkpoints.dir>/<job-id>/chk-<n>/<node>-<uid>-<subtask>.channel
//! <state.checkpoints.dir>/<job-id>/shared/<instance>-<n>.sst
//! <state.checkpoints.dir>/<job-id>/taskowned/
//! <state.checkpoints.dir>/<job-id>/.lock
//! <state.checkpoints.dir>/<job-id>/_stopped     (names the savepoint that stopped the job)
//! ```

use std::path::{Path, PathBuf};

use crate::state::incremental::SHARED_PREFIX;

/// The name of a checkpoint's metadata file.
pub const METADATA_FILE: &str = "_metadata";
/// The temporary name `_metadata` is written under before its rename.
pub const METADATA_IN_PROGRESS: &str = "_metadata.inprogress";
/// The folder of files shared by incremental checkpoints.
pub const SHARED_DIR: &str = "shared";
/// The folder of files owned by tasks rather than checkpoints.
pub const TASKOWNED_DIR: &str = "taskowned";
/// The lock file a running job holds on its folder.
pub const LOCK_FILE: &str = ".lock";
/// Written when a stop with savepoint completed, before the sinks commit:
/// names the savepoint, so that a server that crashes before it records
/// the job as FINISHED does not run the stopped job again.
pub const STOPPED_FILE: &str = "_stopped";

/// The folder of one job's checkpoints and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointLayout {
    job_dir: PathBuf,
}

impl CheckpointLayout {
    /// The folder of job `job_id` under `root` (`state.checkpoints.dir`).
    pub fn new(root: &Path, job_id: &str) -> Self {
        CheckpointLayout {
            job_dir: root.join(job_id),
        }
    }

    /// The layout of an existing job folder.
    pub fn of_job_dir(job_dir: &Path) -> Self {
        CheckpointLayout {
            job_dir: job_dir.to_path_buf(),
        }
    }

    /// `<job-id>/`.
    pub fn job_dir(&self) -> &Path {
        &self.job_dir
    }

    /// `<job-id>/chk-<id>/`.
    pub fn checkpoint(&self, id: u64) -> PathBuf {
        self.job_dir.join(checkpoint_folder_name(id))
    }

    /// `<job-id>/shared/`.
    pub fn shared(&self) -> PathBuf {
        self.job_dir.join(SHARED_DIR)
    }

    /// `<job-id>/.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.job_dir.join(LOCK_FILE)
    }
}

/// The name of checkpoint `id`'s folder: `chk-<id>`.
pub fn checkpoint_folder_name(id: u64) -> String {
    format!("chk-{id}")
}

/// The checkpoint id of a folder named `chk-<id>`.
pub fn parse_checkpoint_folder(name: &str) -> Option<u64> {
    name.strip_prefix("chk-")?.parse().ok()
}

/// `<dir>/_metadata`.
pub fn metadata_in(dir: &Path) -> PathBuf {
    dir.join(METADATA_FILE)
}

/// Whether a folder name is a job id (32 hex digits), as the folders under
/// `state.checkpoints.dir` are.
pub fn is_job_folder_name(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How `_metadata` refers to shared file `name`: `../shared/<name>`.
pub fn shared_reference(name: &str) -> String {
    format!("{SHARED_PREFIX}{name}")
}

/// The file name of a subtask's keyed state in a checkpoint folder:
/// `<node>-<uid>-<subtask>.keyed`, the uid reduced to safe characters.
pub fn keyed_file_name(node: usize, uid: &str, subtask: u32) -> String {
    format!("{node}-{}-{subtask}.keyed", safe_uid(uid))
}

/// The name of a subtask's channel-state file (in-flight records of an
/// unaligned checkpoint) in a checkpoint folder.
pub fn channel_file_name(node: usize, uid: &str, subtask: u32) -> String {
    format!("{node}-{}-{subtask}.channel", safe_uid(uid))
}

/// What a savepoint prefixes its copies of sink `uid`'s files with:
/// `sink-<uid>-` (a restore finds them by uid, whatever the node's index).
pub fn sink_copy_prefix(uid: &str) -> String {
    format!("sink-{}-", safe_uid(uid))
}

/// A uid reduced to characters safe in a file name (at most 64).
fn safe_uid(uid: &str) -> String {
    uid.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_flinks_and_parse_back() {
        let l = CheckpointLayout::new(Path::new("/cp"), "ab");
        assert_eq!(l.checkpoint(7), PathBuf::from("/cp/ab/chk-7"));
        assert_eq!(l.shared(), PathBuf::from("/cp/ab/shared"));
        assert_eq!(l.lock_file(), PathBuf::from("/cp/ab/.lock"));
        assert_eq!(parse_checkpoint_folder("chk-12"), Some(12));
        assert_eq!(parse_checkpoint_folder("chk-x"), None);
        assert_eq!(parse_checkpoint_folder("savepoint-1"), None);
        assert_eq!(shared_reference("i-1.sst"), "../shared/i-1.sst");
        assert!(is_job_folder_name("0123456789abcdef0123456789ABCDEF"));
        assert!(!is_job_folder_name("shared"));
    }

    /// The keyed file names are part of the checkpoint format: old
    /// checkpoints name their files this way.
    #[test]
    fn keyed_file_names_are_stable() {
        assert_eq!(keyed_file_name(2, "count", 1), "2-count-1.keyed");
        assert_eq!(keyed_file_name(0, "a b/c", 0), "0-a_b_c-0.keyed");
        assert_eq!(sink_copy_prefix("out/1"), "sink-out_1-");
    }
}
