//! Which checkpoints a job keeps, and which one it restores from: pure
//! decisions, made once here and used by `weir run`, `weir serve` and the
//! coordinator alike. The callers read the facts (folder listings,
//! `_metadata` files, whether a checkpoint's files are intact) and do the
//! deleting.
//!
//! Flink's rules: `state.checkpoints.num-retained` completed checkpoints
//! are kept while a job runs; a finished job's checkpoints are deleted
//! under every retention policy; a cancelled job keeps them only with
//! `RETAIN_ON_CANCELLATION`; a failed job keeps them.

use crate::config::Retention;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Its input ended and its final checkpoint completed.
    Finished,
    /// A user cancelled it.
    Cancelled,
    /// It failed and its restart strategy gave up.
    Failed,
}

impl JobEnd {
    /// The word for it in messages.
    pub fn name(self) -> &'static str {
        match self {
            JobEnd::Finished => "finished",
            JobEnd::Cancelled => "cancelled",
            JobEnd::Failed => "failed",
        }
    }
}

/// Whether a job that ended as `end` deletes its checkpoints under
/// `retention`.
pub fn discard_on_end(retention: Retention, end: JobEnd) -> bool {
    match end {
        JobEnd::Finished => true,
        JobEnd::Cancelled => retention != Retention::RetainOnCancellation,
        JobEnd::Failed => false,
    }
}

/// How many of `count` completed checkpoints (oldest first) are beyond
/// `num_retained` and go, oldest first. At least one is always kept.
pub fn beyond_retained(count: usize, num_retained: u32) -> usize {
    count.saturating_sub(num_retained.max(1) as usize)
}

/// Why a starting job removes a completed checkpoint of its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// It is newer than the checkpoint the job restores from (a restore
    /// from an older checkpoint of the same job abandons the newer ones,
    /// which would otherwise stand in for it on a restart).
    NewerThanRestored,
    /// It is beyond `num-retained`.
    BeyondRetained,
}

/// What a starting job keeps of the completed checkpoints `ids` found in
/// its folder (ascending): the ids it keeps (ascending) and those it
/// removes with the reason. The checkpoint it restores from, `restored`,
/// is never removed.
pub fn on_start(
    ids: &[u64],
    num_retained: u32,
    restored: Option<u64>,
) -> (Vec<u64>, Vec<(u64, Removal)>) {
    let mut removed = Vec::new();
    let candidates: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&id| match restored {
            Some(k) if id > k => {
                removed.push((id, Removal::NewerThanRestored));
                false
            }
            _ => true,
        })
        .collect();
    let first_kept = beyond_retained(candidates.len(), num_retained);
    let mut kept = Vec::new();
    for (i, id) in candidates.into_iter().enumerate() {
        if i < first_kept && Some(id) != restored {
            removed.push((id, Removal::BeyondRetained));
        } else {
            kept.push(id);
        }
    }
    (kept, removed)
}

/// The checkpoint to restore from after a failure: the newest of
/// `completed` (oldest first) that `intact` accepts. A damaged one is
/// skipped in favour of the one before it.
pub fn newest_intact<T>(completed: &[T], mut intact: impl FnMut(&T) -> bool) -> Option<&T> {
    completed.iter().rev().find(|c| intact(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_jobs_always_discard_failed_ones_never_cancelled_ones_by_policy() {
        for r in [
            Retention::RetainOnCancellation,
            Retention::DeleteOnCancellation,
            Retention::NoExternalizedCheckpoints,
        ] {
            assert!(discard_on_end(r, JobEnd::Finished), "{r:?}");
            assert!(!discard_on_end(r, JobEnd::Failed), "{r:?}");
        }
        assert!(!discard_on_end(
            Retention::RetainOnCancellation,
            JobEnd::Cancelled
        ));
        assert!(discard_on_end(
            Retention::DeleteOnCancellation,
            JobEnd::Cancelled
        ));
        assert!(discard_on_end(
            Retention::NoExternalizedCheckpoints,
            JobEnd::Cancelled
        ));
    }

    #[test]
    fn beyond_retained_keeps_the_newest_and_at_least_one() {
        assert_eq!(beyond_retained(0, 1), 0);
        assert_eq!(beyond_retained(1, 1), 0);
        assert_eq!(beyond_retained(3, 1), 2);
        assert_eq!(beyond_retained(3, 2), 1);
        assert_eq!(beyond_retained(3, 5), 0);
        assert_eq!(beyond_retained(3, 0), 2, "zero still keeps one");
    }

    #[test]
    fn a_start_keeps_the_newest_retained_and_never_the_restored_one_goes() {
        let (kept, removed) = on_start(&[3, 4, 5, 6], 2, None);
        assert_eq!(kept, vec![5, 6]);
        assert_eq!(
            removed,
            vec![(3, Removal::BeyondRetained), (4, Removal::BeyondRetained)]
        );
        // Restoring 3 of this job: 4..6 are newer and go, 3 stays although
        // it is beyond the retained count among what is left.
        let (kept, removed) = on_start(&[1, 2, 3, 4, 5, 6], 1, Some(3));
        assert_eq!(kept, vec![3]);
        assert!(removed.contains(&(6, Removal::NewerThanRestored)));
        assert!(removed.contains(&(4, Removal::NewerThanRestored)));
        assert!(removed.contains(&(1, Removal::BeyondRetained)));
        assert!(removed.contains(&(2, Removal::BeyondRetained)));
        assert_eq!(removed.len(), 5);
        // The restored one is kept even when older ones are kept too.
        let (kept, _) = on_start(&[1, 2, 3], 2, Some(1));
        assert_eq!(kept, vec![1]);
        let (kept, removed) = on_start(&[], 3, Some(9));
        assert!(kept.is_empty() && removed.is_empty());
    }

    #[test]
    fn restore_falls_back_past_damaged_checkpoints() {
        let completed = [7u64, 8, 9];
        assert_eq!(newest_intact(&completed, |_| true), Some(&9));
        assert_eq!(newest_intact(&completed, |&c| c != 9), Some(&8));
        assert_eq!(newest_intact(&completed, |&c| c == 7), Some(&7));
        assert_eq!(newest_intact(&completed, |_| false), None);
        assert_eq!(newest_intact::<u64>(&[], |_| true), None);
    }
}
