//! A server's savepoints: the asynchronous operations that take, stop with
//! or dispose of them (polled by trigger id, as Flink's REST API does,
//! kept for `rest.async.store-duration`), and the index of the savepoints
//! the server wrote, kept crash-safe in `<data-dir>/savepoints.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::checkpoint::fs::{StorageError, io_err, sync_dir, write_durably};

/// Version of the savepoint index format.
pub const SAVEPOINT_INDEX_VERSION: u32 = 1;

/// How an asynchronous operation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Still running.
    InProgress,
    /// Done; for a savepoint, where it is.
    Completed(Option<String>),
    /// Failed, and why.
    Failed(String),
}

/// The operations of a server by (scope, trigger id): a retried trigger
/// with the same id finds its first one.
#[derive(Debug, Default)]
pub struct Operations {
    /// By (scope, trigger id).
    ops: Mutex<HashMap<(String, String), Tracked>>,
}

/// One operation as [`Operations`] keeps it.
#[derive(Debug)]
struct Tracked {
    /// When it last changed.
    changed: Instant,
    /// How it stands.
    op: Operation,
    /// Whether a client has read its outcome.
    read: bool,
}

impl Tracked {
    fn new(op: Operation) -> Self {
        Tracked {
            changed: Instant::now(),
            op,
            read: false,
        }
    }
}

impl Operations {
    /// Registers trigger `id` in `scope` (a job id, or `disposal`); `false`
    /// if it is known already (a retry: nothing new is started).
    pub fn start(&self, scope: &str, id: &str, keep: Duration) -> bool {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.retain(|_, t| t.op == Operation::InProgress || t.changed.elapsed() < keep);
        let key = (scope.to_owned(), id.to_owned());
        if ops.contains_key(&key) {
            return false;
        }
        ops.insert(key, Tracked::new(Operation::InProgress));
        true
    }

    /// Records how trigger `id` in `scope` ended.
    pub fn finish(&self, scope: &str, id: &str, outcome: Operation) {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.insert((scope.to_owned(), id.to_owned()), Tracked::new(outcome));
    }

    /// How trigger `id` in `scope` stands (an outcome counts as read).
    pub fn get(&self, scope: &str, id: &str) -> Option<Operation> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let t = ops.get_mut(&(scope.to_owned(), id.to_owned()))?;
        t.read |= t.op != Operation::InProgress;
        Some(t.op.clone())
    }

    /// Whether an operation is still in progress, or ended within
    /// `recent` and no client has read its outcome yet (`weir run` keeps
    /// its API up for it).
    pub fn unread(&self, recent: Duration) -> bool {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.values()
            .any(|t| !t.read && (t.op == Operation::InProgress || t.changed.elapsed() < recent))
    }
}

/// A savepoint the server wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavepointEntry {
    /// Its folder.
    pub path: String,
    /// The job that took it.
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// Its checkpoint id.
    pub checkpoint_id: u64,
    /// When it completed (ms since the Unix epoch).
    pub timestamp: i64,
    /// Bytes of state.
    pub size: u64,
    /// `CANONICAL` or `NATIVE`.
    pub format: String,
    /// Per operator uid, the SHA-256 of its component.
    pub components: Vec<(String, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    savepoints: Vec<SavepointEntry>,
}

/// The savepoints a server wrote; on disk only for a durable server.
#[derive(Debug)]
pub struct SavepointIndex {
    file: Option<PathBuf>,
    entries: Mutex<Vec<SavepointEntry>>,
}

impl SavepointIndex {
    /// The index in `<data_dir>/savepoints.json` (`None`: in memory only).
    /// Entries whose folder is gone are dropped.
    pub fn open(data_dir: Option<&Path>) -> Self {
        let file = data_dir.map(|d| d.join("savepoints.json"));
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| match serde_json::from_slice::<IndexFile>(&b) {
                Ok(i) if i.version == SAVEPOINT_INDEX_VERSION => Some(i.savepoints),
                Ok(i) => {
                    tracing::warn!("savepoint index version {} is not read", i.version);
                    None
                }
                Err(e) => {
                    tracing::warn!("savepoint index unreadable: {e}");
                    None
                }
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|e| still_there(&e.path))
            .collect();
        SavepointIndex {
            file,
            entries: Mutex::new(entries),
        }
    }

    /// Adds a savepoint and writes the index.
    pub fn add(&self, entry: SavepointEntry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.push(entry);
        self.save(&entries);
    }

    /// Forgets the savepoint at `path` (disposed of).
    pub fn remove(&self, path: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|e| e.path != path);
        self.save(&entries);
    }

    /// The savepoints, oldest first; of job `job` only if given.
    pub fn list(&self, job: Option<&str>) -> Vec<SavepointEntry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // A folder deleted meanwhile (a claimed savepoint, a disposal by
        // hand) is not listed.
        entries
            .iter()
            .filter(|e| job.is_none_or(|j| e.job_id == j) && still_there(&e.path))
            .cloned()
            .collect()
    }

    fn save(&self, entries: &[SavepointEntry]) {
        let Some(file) = &self.file else {
            return;
        };
        let index = IndexFile {
            version: SAVEPOINT_INDEX_VERSION,
            savepoints: entries.to_vec(),
        };
        if let Err(e) = write_atomically(file, &index) {
            tracing::error!("cannot write the savepoint index: {e}");
        }
    }
}

/// Whether the savepoint at `path` is still there. One in a bucket is
/// taken as there: asking the bucket on every listing would cost a round
/// trip per savepoint, so one deleted there by other means stays listed
/// until it is disposed of through Weir.
fn still_there(path: &str) -> bool {
    let path = Path::new(path);
    crate::config::ObjectUri::of(path).is_some() || path.is_dir()
}

/// Writes `value` as JSON to `file` through a temporary file, fsync and
/// rename, so a crash leaves the old or the new index.
fn write_atomically(file: &Path, value: &impl Serialize) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StorageError {
        path: file.display().to_string(),
        message: e.to_string(),
    })?;
    let tmp = file.with_extension("json.tmp");
    write_durably(&tmp, &bytes)?;
    std::fs::rename(&tmp, file).map_err(|e| io_err(file, e))?;
    if let Some(dir) = file.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_trigger_finds_its_first_operation() {
        let ops = Operations::default();
        assert!(ops.start("job", "t1", Duration::from_secs(60)));
        assert!(!ops.start("job", "t1", Duration::from_secs(60)));
        assert_eq!(ops.get("job", "t1"), Some(Operation::InProgress));
        ops.finish("job", "t1", Operation::Completed(Some("/sp".into())));
        assert_eq!(
            ops.get("job", "t1"),
            Some(Operation::Completed(Some("/sp".into())))
        );
        assert_eq!(ops.get("other", "t1"), None);
    }

    #[test]
    fn the_index_survives_a_restart_and_forgets_disposed_savepoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sp = dir.path().join("savepoint-abc");
        std::fs::create_dir_all(&sp).expect("mkdir");
        let entry = SavepointEntry {
            path: sp.display().to_string(),
            job_id: "j".into(),
            job_name: "n".into(),
            checkpoint_id: 3,
            timestamp: 1,
            size: 2,
            format: "CANONICAL".into(),
            components: vec![("count".into(), "ab".into())],
        };
        SavepointIndex::open(Some(dir.path())).add(entry.clone());
        let again = SavepointIndex::open(Some(dir.path()));
        assert_eq!(again.list(Some("j")), vec![entry.clone()]);
        assert!(again.list(Some("k")).is_empty());
        std::fs::remove_dir(&sp).expect("rm");
        assert!(SavepointIndex::open(Some(dir.path())).list(None).is_empty());
    }
}
