//! The working folders of embedded state backends: one per job under the
//! configured root (`state.backend.rocksdb.localdir`), claimed with a lock
//! file `<job-id>.lock` that the job's process holds while it runs. A
//! process killed with SIGKILL cannot remove its folder, but its lock dies
//! with it: the next job to claim a folder under the same root removes
//! every folder whose lock nobody holds, so nothing is left behind for long.
//! A lock file is locked under a temporary name and then renamed into
//! place, so a `<job-id>.lock` nobody holds is always a dead job's.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temporary lock file younger than this is left alone by the sweep: its
/// owner may be between creating and locking it.
const GRACE: Duration = Duration::from_secs(10);

/// Creates `root` readable by this user only, and refuses one that
/// belongs to another user (who could read or replace the state in it).
fn private_root(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    let meta = std::fs::symlink_metadata(root)?;
    if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "the state working folder {} is not a folder of this user; set state.backend.rocksdb.localdir to one",
            root.display()
        )));
    }
    Ok(())
}

/// A job's claimed working folder; dropping it removes the folder.
#[derive(Debug)]
pub struct JobFolder {
    path: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl JobFolder {
    /// Claims `<root>/<job_id>` for this process and sweeps the folders of
    /// jobs whose process is gone.
    pub fn claim(root: &Path, job_id: &str) -> std::io::Result<Self> {
        private_root(root)?;
        let lock_path = root.join(format!("{job_id}.lock"));
        if lock_path.exists() {
            // A restarted job id (a resumed server job) takes over its
            // folder if its old process is gone.
            let old = File::options().write(true).open(&lock_path)?;
            if old.try_lock().is_err() {
                return Err(std::io::Error::other(format!(
                    "the working folder of job {job_id} is in use by another process"
                )));
            }
        }
        let tmp = root.join(format!(".{job_id}.lock.tmp-{}", std::process::id()));
        let lock = File::create(&tmp)?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => std::io::Error::other("lock file busy"),
            std::fs::TryLockError::Error(e) => e,
        })?;
        std::fs::rename(&tmp, &lock_path)?;
        let path = root.join(job_id);
        std::fs::create_dir_all(&path)?;
        sweep(root, job_id);
        Ok(JobFolder {
            path,
            lock_path,
            _lock: lock,
        })
    }

    /// The folder.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for JobFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes the folder and lock file of every job under `root` but `own`
/// whose lock no process holds.
fn sweep(root: &Path, own: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let unheld = || {
            File::options()
                .write(true)
                .open(entry.path())
                .is_ok_and(|f| f.try_lock().is_ok())
        };
        if name.starts_with('.') && name.contains(".lock.tmp-") {
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < GRACE);
            if !young && unheld() {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        let Some(job) = name.strip_suffix(".lock") else {
            continue;
        };
        if job != own && unheld() {
            tracing::info!("removing the working folder of job {job}, whose process is gone");
            let _ = std::fs::remove_dir_all(root.join(job));
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path) {
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(old))
            .expect("age the lock file");
    }

    #[test]
    fn folders_of_dead_jobs_are_swept_and_live_ones_kept() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        // A live job in this process: its lock is held.
        let live = JobFolder::claim(root, "live").expect("claim");
        // A job whose process died: folder and lock file, nobody holding it.
        std::fs::create_dir_all(root.join("dead/0-count-0.db")).expect("mkdir");
        File::create(root.join("dead.lock")).expect("lock file");
        // Temporary lock files: one just created (its owner may be about to
        // lock it), one left by a process that died long ago.
        File::create(root.join(".new.lock.tmp-1")).expect("tmp");
        File::create(root.join(".old.lock.tmp-2")).expect("tmp");
        age(&root.join(".old.lock.tmp-2"));

        let next = JobFolder::claim(root, "next").expect("claim");
        assert!(!root.join("dead").exists() && !root.join("dead.lock").exists());
        assert!(live.path().exists() && root.join(".new.lock.tmp-1").exists());
        assert!(!root.join(".old.lock.tmp-2").exists());
        assert!(
            JobFolder::claim(root, "live").is_err(),
            "held by its process"
        );
        drop(next);
        assert!(!root.join("next").exists() && !root.join("next.lock").exists());
        drop(live);
    }

    #[test]
    fn a_new_root_is_private_and_a_file_in_its_place_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("work");
        let job = JobFolder::claim(&root, "job").expect("claim");
        let mode = std::fs::metadata(&root).expect("root").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(job);
        let file = t.path().join("file");
        std::fs::write(&file, b"x").expect("file");
        assert!(JobFolder::claim(&file, "job").is_err());
    }
}
