//! Checkpoints, restore and exactly-once output: SIGKILL and restore with
//! `-s`, restarts inside the process, retention on cancel, restore at other
//! parallelisms with ids that continue, and the errors of a bad restore.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::RestorePoint;
use weir::completed_in;
use weir::{JobControl, JobError, RunOptions, run_job};

use crate::common::{cache_dir, graph, output_lines, q, tempdir, weir};

/// A keyed count job: datagen -> (hostile `mode`, forwarding) -> count ->
/// file sink; `extra` is added under `config:`.
pub(crate) struct CountJob<'a> {
    pub(crate) count: u64,
    pub(crate) keys: u64,
    pub(crate) rate: Option<u64>,
    pub(crate) parallelism: u32,
    pub(crate) hostile: Option<&'a str>,
    pub(crate) extra: &'a str,
    /// Keys `i mod keys` instead of spread out.
    pub(crate) sequential: bool,
    /// `execution.checkpointing.interval`.
    pub(crate) interval: &'a str,
    /// The count component (the Rust `count` if `None`).
    pub(crate) wasm: Option<&'a str>,
}

impl Default for CountJob<'_> {
    fn default() -> Self {
        CountJob {
            count: 20_000,
            keys: 500,
            rate: None,
            parallelism: 2,
            hostile: None,
            extra: "",
            sequential: false,
            interval: "100ms",
            wasm: None,
        }
    }
}

impl CountJob<'_> {
    pub(crate) fn yaml(&self, dir: &Path) -> String {
        let mut rate = self.rate.map_or(String::new(), |r| format!(", rate: {r}"));
        if self.sequential {
            rate.push_str(", sequential-keys: true");
        }
        let (hostile_op, first_edge) = match self.hostile {
            Some(config) => (
                format!(
                    "  - {{ id: hostile, uid: hostile, wasm: {}, config: {{ {config} }} }}\n",
                    q(weir_test_guests::HOSTILE)
                ),
                "  - { from: gen, to: hostile }\n  - { from: hostile, to: count, partition: hash }\n",
            ),
            None => (
                String::new(),
                "  - { from: gen, to: count, partition: hash }\n",
            ),
        };
        format!(
            r#"
name: checkpointed-count
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: {interval}
  state.checkpoints.dir: {checkpoints}
{extra}
sources:
  - {{ id: gen, type: datagen, count: {count}, keys: {keys}{rate} }}
operators:
{hostile_op}  - {{ id: count, uid: count, wasm: {wasm}, parallelism: {p} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: {p} }}
edges:
{first_edge}  - {{ from: count, to: out }}
"#,
            cache = q(&cache_dir().display().to_string()),
            checkpoints = q(&dir.join("checkpoints").display().to_string()),
            extra = self
                .extra
                .lines()
                .map(|l| format!("  {}\n", l.trim()))
                .collect::<String>(),
            count = self.count,
            keys = self.keys,
            wasm = q(self.wasm.unwrap_or(weir_test_guests::COUNT)),
            p = self.parallelism,
            interval = self.interval,
        )
    }
}

/// The committed output of the same job run without interruption (and
/// without a rate limit), sorted.
pub(crate) fn expected(count: u64, keys: u64) -> Vec<String> {
    let dir = tempdir();
    let job = CountJob {
        count,
        keys,
        ..CountJob::default()
    };
    let g = graph(&job.yaml(dir.path()), dir.path()).expect("valid spec");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("uninterrupted run");
    sorted_output(&dir.path().join("out"))
}

pub(crate) fn sorted_output(folder: &Path) -> Vec<String> {
    let mut lines = output_lines(folder);
    lines.sort();
    lines
}

pub(crate) fn hidden_files(folder: &Path) -> Vec<String> {
    std::fs::read_dir(folder)
        .expect("output folder")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// The newest completed checkpoint under `<dir>/checkpoints`, over every
/// job folder (ids continue across restores).
pub(crate) fn latest_checkpoint(dir: &Path) -> Option<(u64, PathBuf)> {
    let root = dir.join("checkpoints");
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .flat_map(|job| completed_in(&job.path()))
        .max_by_key(|(id, _)| *id)
}

pub(crate) fn spawn(job: &Path, from: Option<&Path>) -> Child {
    let mut cmd = weir();
    cmd.arg("run").arg("-q");
    if let Some(p) = from {
        cmd.arg("-s").arg(p);
    }
    cmd.arg(job)
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir")
}

/// Runs `weir run` of `job` `kills` times, each restored from the newest
/// checkpoint under `<dir>/checkpoints` (none the first time), and kills
/// each with SIGKILL after `wait.0` plus a random part of `wait.1` ms; the
/// ids of the checkpoints restored. A run that ends before its kill fails
/// the test.
pub(crate) fn kill_and_restore(
    job: &Path,
    dir: &Path,
    kills: u32,
    wait: (u64, u64),
    seed: &mut u64,
) -> Vec<u64> {
    kill_and_restore_from(job, kills, wait, seed, &|| latest_checkpoint(dir))
}

/// [`kill_and_restore`], each run restored from what `latest` finds.
pub(crate) fn kill_and_restore_from(
    job: &Path,
    kills: u32,
    wait: (u64, u64),
    seed: &mut u64,
    latest: &dyn Fn() -> Option<(u64, PathBuf)>,
) -> Vec<u64> {
    let mut restored_from = Vec::new();
    for _ in 0..kills {
        let from = latest();
        restored_from.extend(from.as_ref().map(|(id, _)| *id));
        let mut child = spawn(job, from.as_ref().map(|(_, p)| p.as_path()));
        std::thread::sleep(Duration::from_millis(wait.0 + next_random(seed) % wait.1));
        if let Some(status) = child.try_wait().expect("poll child") {
            let err = child
                .wait_with_output()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            panic!("the job ended before it was killed ({status}): {err}");
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }
    restored_from
}

/// A seed for [`next_random`] from the clock, printed so that a failing
/// kill schedule can be replayed.
pub(crate) fn kill_seed() -> u64 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill schedule seed: {seed}");
    seed
}

/// A small xorshift, so the kill points differ between runs but a failing
/// seed can be replayed (it is printed).
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn output_is_exactly_once_after_ten_sigkills_and_restores() {
    exactly_once_after_sigkills(10, "");
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_state_is_exactly_once_after_sigkills_and_restores() {
    exactly_once_after_sigkills(4, "state.backend.type: rocksdb");
}

/// Runs the checkpointed count with `extra` config, kills it with SIGKILL
/// `kills` times at random moments, restores it from its newest checkpoint
/// each time, and compares the committed output with an uninterrupted run.
fn exactly_once_after_sigkills(kills_wanted: u32, extra: &str) {
    let (count, keys) = (400_000, 2_000);
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    let rocksdb_dir = dir.path().join("rocksdb");
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(
            "{extra}\nstate.backend.rocksdb.localdir: {}",
            q(&rocksdb_dir.display().to_string())
        )
    };
    let spec = CountJob {
        count,
        keys,
        rate: Some(40_000),
        extra: &extra,
        ..CountJob::default()
    };
    std::fs::write(&job, spec.yaml(dir.path())).expect("write spec");
    let mut seed = crate::checkpoints::kill_seed();
    let restored_from = kill_and_restore(&job, dir.path(), kills_wanted, (250, 500), &mut seed);
    // Checkpoint ids continue across restores.
    assert!(
        restored_from.windows(2).all(|w| w[0] <= w[1]),
        "{restored_from:?}"
    );
    assert!(
        restored_from.len() as u32 >= kills_wanted - 2,
        "checkpoints completed: {restored_from:?}"
    );
    let (last_id, last) = latest_checkpoint(dir.path()).expect("a checkpoint");
    let backend = if extra.contains("rocksdb") {
        "rocksdb"
    } else {
        "hashmap"
    };
    let point = weir::RestorePoint::open(&last).expect("open");
    assert_eq!(
        point.metadata.backend, backend,
        "taken by the configured backend"
    );
    let out = spawn(&job, Some(&last))
        .wait_with_output()
        .expect("final run");
    assert!(
        out.status.success(),
        "restored run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(u64::from(kills_wanted) < last_id, "ids continue: {last_id}");
    if backend == "rocksdb" {
        // The killed runs' working folders were swept by the later runs,
        // and the last run removed its own.
        let left: Vec<_> = std::fs::read_dir(&rocksdb_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in the RocksDB folder: {left:?}");
    }
    let folder = dir.path().join("out");
    assert_eq!(hidden_files(&folder), Vec::<String>::new());
    assert_uninterrupted(&sorted_output(&folder), count, keys);
}

/// Asserts that `got` (sorted `key<TAB>count` lines) is the output of an
/// uninterrupted count of `count` records over `keys` keys, record for
/// record.
pub(crate) fn assert_uninterrupted(got: &[String], count: u64, keys: u64) {
    let want = expected(count, keys);
    assert_eq!(got.len(), want.len(), "records committed");
    assert!(
        got == want.as_slice(),
        "the committed output differs from an uninterrupted run"
    );
}

/// Runs `yaml` in this process until `ready` holds for the checkpoints
/// folder, then cancels it.
pub(crate) fn run_until_then_cancel(
    yaml: &str,
    dir: &Path,
    restore: Option<RestorePoint>,
    limit: Duration,
    ready: impl Fn(&Path) -> bool,
) -> Result<weir::JobSummary, JobError> {
    let g = graph(yaml, dir).expect("valid spec");
    let control = JobControl::default();
    let options = RunOptions {
        restore,
        ..RunOptions::default()
    };
    std::thread::scope(|s| {
        let h = s.spawn(|| run_job(&g, &options, &control));
        let deadline = Instant::now() + limit;
        while !ready(dir) && !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        control.cancel();
        h.join().expect("job thread")
    })
}

pub(crate) fn job_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("checkpoints"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn retained_checkpoints_restore_at_other_parallelisms_with_continuing_ids() {
    let (count, keys) = (60_000, 700);
    let dir = tempdir();
    let d = dir.path();
    let spec = |parallelism| {
        CountJob {
            count,
            keys,
            rate: Some(20_000),
            parallelism,
            extra: "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION\nstate.checkpoints.num-retained: 2",
            ..CountJob::default()
        }
        .yaml(d)
    };
    // Parallelism 2, cancelled after its third checkpoint: retained.
    let r = run_until_then_cancel(&spec(2), d, None, Duration::from_secs(60), |d| {
        latest_checkpoint(d).is_some_and(|(id, _)| id >= 3)
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let (first_id, first) = latest_checkpoint(d).expect("retained on cancel");
    assert_eq!(completed_in(&job_dirs(d)[0]).len(), 2, "num-retained 2");

    // Restored at parallelism 3 and cancelled again: its checkpoints
    // continue the ids.
    let point = RestorePoint::open(&first).expect("open checkpoint");
    let r = run_until_then_cancel(&spec(3), d, Some(point), Duration::from_secs(60), |d| {
        latest_checkpoint(d).is_some_and(|(id, _)| id >= first_id + 2)
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    let (second_id, second) = latest_checkpoint(d).expect("second checkpoint");
    assert!(second_id > first_id);
    let second_job = second.parent().expect("job dir").to_path_buf();
    let ids: Vec<u64> = completed_in(&second_job).iter().map(|c| c.0).collect();
    assert!(
        ids.iter().all(|&i| i > first_id),
        "{ids:?} after {first_id}"
    );

    // Restored at parallelism 1 and run to the end.
    let g = graph(&spec(1), d).expect("valid");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&second.join("_metadata")).expect("open")),
        ..RunOptions::default()
    };
    let summary = run_job(&g, &options, &JobControl::default()).expect("restored run");
    assert!(summary.checkpoints_completed >= 1);
    assert_eq!(sorted_output(&d.join("out")), expected(count, keys));
    assert_eq!(hidden_files(&d.join("out")), Vec::<String>::new());
}

#[test]
fn cancelling_deletes_checkpoints_unless_retained() {
    let dir = tempdir();
    let d = dir.path();
    let yaml = CountJob {
        count: 1_000_000,
        rate: Some(20_000),
        extra: "execution.checkpointing.externalized-checkpoint-retention: DELETE_ON_CANCELLATION",
        ..CountJob::default()
    }
    .yaml(d);
    let r = run_until_then_cancel(&yaml, d, None, Duration::from_secs(60), |d| {
        latest_checkpoint(d).is_some()
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    assert!(job_dirs(d).is_empty(), "{:?}", job_dirs(d));
}

/// The count job (20,000 records, 300 keys) whose guest traps at record
/// 3000 until 2 s from now, with `extra` config.
fn trapping_job(d: &Path, extra: &str) -> String {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_millis())
        + 2_000;
    let hostile = format!("mode: trap-at, value: \"3000\", before-ms: \"{before}\"");
    CountJob {
        count: 20_000,
        keys: 300,
        rate: Some(10_000),
        hostile: Some(&hostile),
        extra,
        ..CountJob::default()
    }
    .yaml(d)
}

/// Runs [`trapping_job`] with `extra` (a restart strategy that allows one
/// restart 2 s later, and checkpoints kept in memory): it restarts once
/// from its latest checkpoint, says so in its restart history, writes no
/// checkpoint files and commits its output exactly once.
pub(crate) fn restarts_once_from_memory_after_a_trap(extra: &str) {
    let dir = tempdir();
    let d = dir.path();
    let g = graph(&trapping_job(d, extra), d).expect("valid");
    let control = JobControl::default();
    let summary = run_job(&g, &RunOptions::default(), &control).expect("restarted job");
    assert_eq!(summary.restarts, 1);
    // The restart history names the cause and what the restart restored.
    let live = control.live();
    let restart = live.restart_history.first().expect("one restart");
    assert!(
        restart.cause.contains("trap at value 3000"),
        "{}",
        restart.cause
    );
    if let Some(restored) = &restart.restored {
        assert!(
            restored.id >= 1 && restored.kind == "checkpoint",
            "{restored:?}"
        );
    }
    assert_eq!(sorted_output(&d.join("out")), expected(20_000, 300));
    assert!(job_dirs(d).is_empty(), "jobmanager storage writes no files");
}

#[test]
fn a_trap_restarts_the_job_from_its_latest_checkpoint_under_fixed_delay() {
    // Under `none` the trap fails the job with its message.
    let dir = tempdir();
    let g = graph(
        &trapping_job(dir.path(), "restart-strategy.type: none"),
        dir.path(),
    )
    .expect("valid");
    let err = run_job(&g, &RunOptions::default(), &JobControl::default())
        .expect_err("the trap fails the job");
    let text = err.to_string();
    assert!(
        text.contains("hostile") && text.contains("trap at value 3000"),
        "{text}"
    );
    // Under fixed-delay it restarts (from memory: jobmanager storage) after
    // the trap's moment has passed, and the output is exactly-once.
    restarts_once_from_memory_after_a_trap(
        "restart-strategy.type: fixed-delay\nrestart-strategy.fixed-delay.attempts: 2\nrestart-strategy.fixed-delay.delay: 2s\nexecution.checkpointing.storage: jobmanager",
    );
}

/// A retained checkpoint of a small count job.
fn retained_checkpoint(d: &Path) -> PathBuf {
    let yaml = CountJob {
        count: 1_000_000,
        rate: Some(20_000),
        extra: "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
        ..CountJob::default()
    }
    .yaml(d);
    let r = run_until_then_cancel(&yaml, d, None, Duration::from_secs(60), |d| {
        latest_checkpoint(d).is_some()
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    latest_checkpoint(d).expect("retained").1
}

fn restore_cli(d: &Path, yaml: &str, from: &Path, extra: &[&str]) -> (i32, String) {
    let job = d.join("restore.yaml");
    std::fs::write(&job, yaml).expect("write");
    let out = weir()
        .arg("run")
        .arg("-q")
        .args(extra)
        .arg("-s")
        .arg(from)
        .arg(&job)
        .env("WEIR_LOG", "warn")
        .output()
        .expect("run weir");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_restore_is_refused_with_a_clear_error() {
    let dir = tempdir();
    let d = dir.path();
    let chk = retained_checkpoint(d);
    let base = CountJob::default().yaml(d);

    // A missing path.
    let (code, err) = restore_cli(d, &base, &d.join("nope/chk-9"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nope/chk-9") && err.contains("no checkpoint"),
        "{err}"
    );

    // A uid the job lacks: refused, listed, and allowed with -n.
    let renamed = base.replace("uid: count", "uid: counter-v2");
    let (code, err) = restore_cli(d, &renamed, &chk, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`count`") && err.contains("--allow-non-restored-state"),
        "{err}"
    );
    let (code, err) = restore_cli(d, &renamed, &chk, &["-n"]);
    assert_eq!(code, 0, "{err}");

    // Another state backend: refused, pointing to savepoints.
    if cfg!(feature = "rocksdb") {
        let rocks = base.replace(
            "  execution.checkpointing.interval",
            &format!(
                "  state.backend.type: rocksdb\n  state.backend.rocksdb.localdir: {}\n  execution.checkpointing.interval",
                q(&d.join("rocksdb").display().to_string())
            ),
        );
        let (code, err) = restore_cli(d, &rocks, &chk, &[]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("state.backend.type hashmap")
                && err.contains("rocksdb")
                && err.contains("savepoint"),
            "{err}"
        );
    }

    // Another max parallelism.
    let other = base.replace(
        "  execution.checkpointing.interval",
        "  pipeline.max-parallelism: 64\n  execution.checkpointing.interval",
    );
    let (code, err) = restore_cli(d, &other, &chk, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("max-parallelism 128") && err.contains("64"),
        "{err}"
    );

    // A damaged state file is named.
    let keyed = std::fs::read_dir(&chk)
        .expect("chk")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "keyed"))
        .expect("a keyed state file");
    let mut bytes = std::fs::read(&keyed).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&keyed, &bytes).expect("damage");
    let (code, err) = restore_cli(d, &base, &chk, &[]);
    assert_eq!(code, 2, "{err}");
    let name = keyed.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(err.contains(name) && err.contains("checksum"), "{err}");

    // A truncated _metadata is named.
    let meta = chk.join("_metadata");
    let text = std::fs::read(&meta).expect("read");
    std::fs::write(&meta, &text[..text.len() / 2]).expect("truncate");
    let (code, err) = restore_cli(d, &base, &chk, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("_metadata") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn weir_checkpoints_lists_retained_checkpoints_with_their_timings() {
    let dir = tempdir();
    let d = dir.path();
    let chk = retained_checkpoint(d);
    let out = weir()
        .arg("checkpoints")
        .arg(d.join("checkpoints"))
        .output()
        .expect("run weir");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = chk.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(text.contains(name), "{text}");
    for part in [
        "bytes",
        "count[2/2]",
        "sync",
        "async",
        "alignment",
        "gen[1/1]",
    ] {
        assert!(text.contains(part), "{part} missing in {text}");
    }
}

/// Copies a folder tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture").flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Restores the checked-in checkpoint `chk` of fixture `name` (whose
/// `job.yaml` counts 3000 records over 40 keys) and checks the job ends
/// with exactly the output of an uninterrupted run.
pub(crate) fn fixture_restores(name: &str, chk: &str, extra_config: &str) -> RestorePoint {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempdir();
    let d = dir.path();
    copy_tree(&fixture, d);
    let point = RestorePoint::open(&d.join(chk)).expect("fixture opens");
    let yaml = std::fs::read_to_string(d.join("job.yaml"))
        .expect("fixture job")
        .replace(
            "wasm: count.wasm",
            &format!("wasm: {}", q(weir_test_guests::COUNT)),
        )
        .replace(", rate: 1500", "")
        .replace(
            "config:\n",
            &format!(
                "config:\n  weir.sandbox.cache-dir: {}\n{extra_config}",
                q(&cache_dir().display().to_string())
            ),
        );
    let g = graph(&yaml, d).expect("valid fixture job");
    let options = RunOptions {
        restore: Some(point.clone()),
        ..RunOptions::default()
    };
    let summary = run_job(&g, &options, &JobControl::default()).expect("restored run");
    assert!(summary.checkpoints_completed >= 1);
    assert_eq!(sorted_output(&d.join("out")), expected(3000, 40));
    point
}

#[test]
fn the_checked_in_version_1_checkpoint_still_restores() {
    let point = fixture_restores("checkpoint-v1", "chk-5", "");
    assert_eq!(point.metadata.checkpoint_id, 5);
}

#[test]
fn the_checked_in_version_2_incremental_checkpoint_still_restores() {
    let localdir = tempdir();
    let point = fixture_restores(
        "checkpoint-v2-incremental",
        "checkpoints/ef1937d9987802f1cb712279f00c7cc7/chk-6",
        &format!(
            "  state.backend.rocksdb.localdir: {}\n",
            q(&localdir.path().display().to_string())
        ),
    );
    assert_eq!(point.metadata.checkpoint_id, 6);
    assert!(
        point
            .metadata
            .operator("count")
            .is_some_and(|o| o.subtasks.iter().all(|s| s.incremental.is_some())),
        "the fixture is incremental"
    );
}

#[test]
fn checkpoints_that_time_out_fail_the_job_past_the_tolerated_number() {
    // Each element takes the guest 200 ms while the source offers 20 a
    // second: a barrier always waits behind a full channel, so every
    // checkpoint outlives its 50 ms timeout.
    let yaml = |d: &Path, count: u64, tolerable: u32| {
        let extra = format!(
            "execution.checkpointing.timeout: 50ms\nexecution.checkpointing.tolerable-failed-checkpoints: {tolerable}\nrestart-strategy.type: none"
        );
        CountJob {
            count,
            keys: 5,
            rate: Some(20),
            parallelism: 1,
            hostile: Some("mode: slow, ms: \"200\""),
            extra: &extra,
            ..CountJob::default()
        }
        .yaml(d)
    };
    let dir = tempdir();
    let g = graph(&yaml(dir.path(), 100, 0), dir.path()).expect("valid");
    let err = run_job(&g, &RunOptions::default(), &JobControl::default())
        .expect_err("the first timeout fails the job");
    let text = err.to_string();
    assert!(
        text.contains("tolerable-failed-checkpoints (0)")
            && text.contains("not complete within 50 ms"),
        "{text}"
    );
    // Tolerating them, the job finishes, and its final checkpoint commits
    // the output.
    let dir = tempdir();
    let g = graph(&yaml(dir.path(), 8, 1000), dir.path()).expect("valid");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("tolerated");
    assert_eq!(output_lines(&dir.path().join("out")).len(), 8);
}
