//! Incremental checkpoints of the RocksDB backend: the `shared/` folder
//! holds exactly the files the retained checkpoints use, through a chain of
//! checkpoints, a crash in the middle of an upload, and a state of ten
//! million keys, and each of them restores to exactly-once output.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use weir::CheckpointMetadata;
use weir::RestorePoint;
use weir::completed_in;
use weir::{JobControl, JobError, RunOptions, run_job};

use crate::checkpoints::{
    CountJob, copy_tree, expected, job_dirs, latest_checkpoint, run_until_then_cancel,
    sorted_output, spawn,
};
use crate::common::{graph, q, tempdir};

/// The settings of an incremental RocksDB job working in `dir`.
fn incremental(dir: &Path, more: &str) -> String {
    format!(
        "state.backend.type: rocksdb\nstate.backend.incremental: true\nstate.backend.rocksdb.localdir: {}\n{more}",
        q(&dir.join("rocksdb").display().to_string())
    )
}

fn read_metadata(chk: &Path) -> Option<CheckpointMetadata> {
    let bytes = std::fs::read(chk.join("_metadata")).ok()?;
    CheckpointMetadata::decode(&bytes).ok()
}

/// The names in `shared/` that checkpoint `m` uses.
fn shared_of(m: &CheckpointMetadata) -> BTreeSet<String> {
    m.operators
        .iter()
        .flat_map(|o| &o.subtasks)
        .filter_map(|s| s.incremental.as_ref())
        .flat_map(|h| &h.shared)
        .map(|f| {
            f.file
                .strip_prefix("../shared/")
                .expect("a shared file")
                .to_owned()
        })
        .collect()
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that a job's checkpoint folder holds only completed checkpoints
/// and exactly the shared files they use; returns those checkpoints.
fn assert_no_orphans(job_dir: &Path) -> Vec<CheckpointMetadata> {
    let mut metas = Vec::new();
    for name in listing(job_dir) {
        if let Some(id) = name.strip_prefix("chk-") {
            let m = read_metadata(&job_dir.join(&name))
                .unwrap_or_else(|| panic!("{name} has no readable _metadata"));
            assert_eq!(m.checkpoint_id.to_string(), id);
            metas.push(m);
        }
    }
    let used: BTreeSet<String> = metas.iter().flat_map(shared_of).collect();
    assert_eq!(
        listing(&job_dir.join("shared")),
        used,
        "shared/ must hold exactly the files the completed checkpoints use"
    );
    metas
}

#[test]
fn an_incremental_chain_keeps_exactly_the_files_its_retained_checkpoints_use() {
    let (count, keys) = (400_000, 20_000);
    let dir = tempdir();
    let d = dir.path();
    let spec = |dir: &Path, rate, parallelism| {
        let extra = incremental(
            dir,
            "state.checkpoints.num-retained: 2\nexecution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
        );
        CountJob {
            count,
            keys,
            rate,
            parallelism,
            extra: &extra,
            ..CountJob::default()
        }
        .yaml(dir)
    };
    // Every checkpoint seen while the job runs, with the files it uses.
    let seen: Mutex<BTreeMap<u64, BTreeSet<String>>> = Mutex::default();
    let r = run_until_then_cancel(
        &spec(d, Some(40_000), 2),
        d,
        None,
        Duration::from_secs(60),
        |d| {
            let mut seen = seen.lock().expect("lock");
            for job in job_dirs(d) {
                for (id, chk) in completed_in(&job) {
                    if let Some(m) = read_metadata(&chk) {
                        seen.entry(id).or_insert_with(|| shared_of(&m));
                    }
                }
            }
            seen.keys().next_back().is_some_and(|&id| id >= 12)
        },
    );
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let seen = seen.into_inner().expect("lock");
    let job = &job_dirs(d)[0];
    let retained = assert_no_orphans(job);
    let ids: Vec<u64> = retained.iter().map(|m| m.checkpoint_id).collect();
    let newest = *seen.keys().next_back().expect("checkpoints");
    assert_eq!(ids.len(), 2, "num-retained 2: {ids:?}");
    assert!(ids.contains(&newest), "{ids:?} {newest}");
    assert!(
        !job.join("chk-1").exists(),
        "the oldest checkpoint is deleted"
    );
    // Files an older checkpoint uploaded are still there while a retained
    // one uses them, and deleted once none does.
    let in_use: BTreeSet<String> = retained.iter().flat_map(shared_of).collect();
    let older: BTreeSet<String> = seen
        .iter()
        .filter(|(id, _)| !ids.contains(id))
        .flat_map(|(_, files)| files.iter().cloned())
        .collect();
    assert!(
        older.iter().any(|f| in_use.contains(f)),
        "a retained checkpoint reuses files an older one uploaded"
    );
    assert!(
        older.iter().any(|f| !in_use.contains(f)),
        "files no retained checkpoint uses were deleted"
    );
    assert!(
        retained.iter().any(|m| m.checkpointed_size < m.state_size),
        "an incremental checkpoint writes less than the state: {:?}",
        retained
            .iter()
            .map(|m| (m.checkpointed_size, m.state_size))
            .collect::<Vec<_>>()
    );

    // Any retained checkpoint restores, and the job ends with exactly-once
    // output: the newest at parallelism 3 (each new instance copies its key
    // groups out of the old instances' files), and the older one, in a copy
    // of the folder as the cancelled job left it, at parallelism 1.
    let copy = tempdir();
    copy_tree(&d.join("checkpoints"), &copy.path().join("checkpoints"));
    copy_tree(&d.join("out"), &copy.path().join("out"));
    let job_name = job.file_name().expect("job folder");
    let oldest = ids.iter().min().expect("retained");
    let restore = |dir: &Path, chk: &Path, parallelism| {
        let point = RestorePoint::open(chk).expect("open");
        assert_eq!(point.metadata.backend, "rocksdb");
        let g = graph(&spec(dir, None, parallelism), dir).expect("valid spec");
        let options = RunOptions {
            restore: Some(point),
            ..RunOptions::default()
        };
        run_job(&g, &options, &JobControl::default()).expect("restored run");
        assert_eq!(
            sorted_output(&dir.join("out")),
            expected(count, keys),
            "restored from {}",
            chk.display()
        );
    };
    restore(d, &latest_checkpoint(d).expect("a checkpoint").1, 3);
    let older = copy
        .path()
        .join("checkpoints")
        .join(job_name)
        .join(format!("chk-{oldest}"));
    restore(copy.path(), &older, 1);
    // The restores left the first job's folder as it was.
    assert_eq!(assert_no_orphans(job).len(), 2);
}

/// A job folder under `<d>/checkpoints` holding a shared file that no
/// completed checkpoint uses (an upload in flight, or its leftover).
fn folder_with_unused_files(d: &Path) -> Option<PathBuf> {
    job_dirs(d).into_iter().find(|job| {
        let used: BTreeSet<String> = completed_in(job)
            .iter()
            .filter_map(|(_, chk)| read_metadata(chk))
            .flat_map(|m| shared_of(&m))
            .collect();
        listing(&job.join("shared"))
            .iter()
            .any(|f| !used.contains(f))
    })
}

#[test]
fn a_crash_in_the_middle_of_an_upload_leaves_the_previous_checkpoint_and_no_orphans() {
    let (count, keys) = (3_000_000, 200_000);
    let dir = tempdir();
    let d = dir.path();
    let extra = incremental(d, "");
    let job = d.join("job.yaml");
    let spec = CountJob {
        count,
        keys,
        rate: Some(300_000),
        parallelism: 1,
        extra: &extra,
        ..CountJob::default()
    };
    std::fs::write(&job, spec.yaml(d)).expect("write spec");
    // SIGKILL the job the moment a shared file shows up that no completed
    // checkpoint uses yet, until one such file outlives the process.
    let mut caught = None;
    for _ in 0..20 {
        let from = latest_checkpoint(d);
        let mut child = spawn(&job, from.as_ref().map(|(_, p)| p.as_path()));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no upload seen in 60 s");
            if let Some(status) = child.try_wait().expect("poll child") {
                panic!("the job ended ({status}) before it was caught uploading");
            }
            // After a first checkpoint completed, so there is one to
            // fall back to.
            if folder_with_unused_files(d).is_some() && latest_checkpoint(d).is_some() {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(folder) = folder_with_unused_files(d) {
            caught = Some(folder);
            break;
        }
    }
    let caught = caught.expect("a kill in the middle of an upload");
    // The previous checkpoint is intact and restorable; the next start
    // removes what the crash left, and the job ends exactly once.
    let (_, last) = latest_checkpoint(d).expect("a completed checkpoint before the crash");
    RestorePoint::open(&last)
        .and_then(|p| p.verify())
        .expect("the previous checkpoint is intact");
    let out = spawn(&job, Some(&last))
        .wait_with_output()
        .expect("restored run");
    assert!(
        out.status.success(),
        "restored run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for job_dir in job_dirs(d) {
        assert_no_orphans(&job_dir);
    }
    assert!(folder_with_unused_files(d).is_none(), "{caught:?}");
    assert_eq!(sorted_output(&d.join("out")), expected(count, keys));
}

#[test]
fn ten_million_keys_checkpoint_and_restore_beyond_the_block_cache() {
    let (count, keys) = (14_000_000u64, 10_000_000u64);
    let dir = tempdir();
    let d = dir.path();
    let extra = incremental(
        d,
        "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
    );
    let spec = CountJob {
        count,
        keys,
        sequential: true,
        interval: "1s",
        extra: &extra,
        ..CountJob::default()
    }
    .yaml(d);
    let entries = |m: &CheckpointMetadata| -> u64 {
        m.operators
            .iter()
            .flat_map(|o| &o.subtasks)
            .filter_map(|s| s.incremental.as_ref())
            .map(|h| h.entries)
            .sum()
    };
    // Cancelled at the first checkpoint that holds every key.
    let full = |d: &Path| {
        latest_checkpoint(d)
            .and_then(|(_, chk)| read_metadata(&chk))
            .is_some_and(|m| entries(&m) >= keys)
    };
    let r = run_until_then_cancel(&spec, d, None, Duration::from_secs(600), full);
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let (_, last) = latest_checkpoint(d).expect("a checkpoint");
    let point = RestorePoint::open(&last).expect("open");
    assert_eq!(entries(&point.metadata), keys, "one entry per key");
    assert!(
        point.metadata.state_size > 10 * (8 << 20),
        "the state ({} bytes) is far larger than the 8 MiB block cache",
        point.metadata.state_size
    );
    let g = graph(&spec, d).expect("valid spec");
    let options = RunOptions {
        restore: Some(point),
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("restored run");
    // Record i counts key i mod 10M: keys below 4M reach 2, the others 1.
    // Every (key, count) is committed exactly once over both runs.
    let mut seen = vec![0u8; keys as usize];
    let mut lines = 0u64;
    for part in listing(&d.join("out")) {
        if !part.starts_with("part-") {
            continue;
        }
        let text = std::fs::read_to_string(d.join("out").join(&part)).expect("part");
        for line in text.lines() {
            lines += 1;
            let (key, n) = line.split_once('\t').expect("key<TAB>count");
            let k: usize = key
                .strip_prefix("key-")
                .and_then(|k| k.parse().ok())
                .expect("key-<n>");
            let bit = match n {
                "1" => 1,
                "2" => 2,
                other => panic!("{key} counted {other}"),
            };
            assert_eq!(seen[k] & bit, 0, "{key} {n} committed twice");
            seen[k] |= bit;
        }
    }
    assert_eq!(lines, count);
    let twice = (count - keys) as usize;
    assert!(seen[..twice].iter().all(|&s| s == 3));
    assert!(seen[twice..].iter().all(|&s| s == 1));
}
