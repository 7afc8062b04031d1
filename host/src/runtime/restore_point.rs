//! Which retained checkpoint a restart restores from: the newest intact
//! one, past damaged ones, and one whose storage does not answer now is
//! tried anyway (a passing failure is not damage).

use std::sync::Mutex;

use crate::checkpoint::coordinator::CompletedCheckpoint;
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::retention::newest_intact;

/// Whether `point`'s storage does not answer (a passing failure).
pub(super) fn unreachable(point: Option<&RestorePoint>) -> bool {
    point.is_some_and(|p| p.reader.reachable().is_err())
}

/// The newest retained checkpoint whose files are intact; a damaged one is
/// logged and skipped in favour of the one before it.
pub(super) fn latest_valid(completed: &Mutex<Vec<CompletedCheckpoint>>) -> Option<RestorePoint> {
    let completed = completed.lock().unwrap_or_else(|p| p.into_inner());
    let mut chosen = None;
    newest_intact(&completed, |c| {
        let point = RestorePoint {
            metadata: c.metadata.clone(),
            reader: c.reader.clone(),
            path: c.path.clone(),
            dropped: Default::default(),
            prepared: true,
        };
        match point.verify() {
            Ok(()) => {
                chosen = Some(point);
                true
            }
            Err(e) if unreachable(Some(&point)) => {
                tracing::warn!(
                    "checkpoint {} cannot be read now ({e}); restoring from it anyway",
                    c.metadata.checkpoint_id
                );
                chosen = Some(point);
                true
            }
            Err(e) => {
                tracing::error!(
                    "checkpoint {} is damaged ({e}); falling back to the previous retained checkpoint",
                    c.metadata.checkpoint_id
                );
                false
            }
        }
    });
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::CheckpointMetadata;
    use crate::checkpoint::storage::CheckpointDir;
    use crate::keygroup::KeyGroupRange;
    use crate::state::{HashMapBackend, snapshot};
    use crate::timers::TimerService;
    use std::sync::Arc;

    /// A completed checkpoint `id` in `dir` with one keyed state file.
    fn checkpoint(dir: &std::path::Path, id: u64) -> CompletedCheckpoint {
        let chk = dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(&chk).expect("mkdir");
        let backend = HashMapBackend::new(KeyGroupRange { start: 0, end: 127 });
        let snap = snapshot::encode(&backend, &TimerService::default(), 128);
        std::fs::write(chk.join("s.keyed"), &snap.bytes).expect("write");
        let keyed = Some(snap.handle("s.keyed".into()));
        let metadata = CheckpointMetadata::one_subtask(id, "hashmap", "count", keyed, None);
        CompletedCheckpoint {
            metadata,
            path: chk.display().to_string(),
            reader: Arc::new(CheckpointDir(chk)),
            claimed: None,
        }
    }

    #[test]
    fn automatic_recovery_falls_back_past_a_damaged_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let completed = Mutex::new(vec![checkpoint(dir.path(), 7), checkpoint(dir.path(), 8)]);
        let chosen = latest_valid(&completed).expect("a valid checkpoint");
        assert_eq!(chosen.metadata.checkpoint_id, 8);
        // Damage the newest: its state file goes missing.
        std::fs::remove_file(dir.path().join("chk-8/s.keyed")).expect("remove");
        let chosen = latest_valid(&completed).expect("falls back");
        assert_eq!(chosen.metadata.checkpoint_id, 7);
        std::fs::write(dir.path().join("chk-7/s.keyed"), b"junk").expect("damage");
        assert!(latest_valid(&completed).is_none());
    }
}
