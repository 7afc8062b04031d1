//! Savepoints: stop with savepoint and restore at the same and another
//! parallelism, on the other backend and after moving the folder, each
//! exactly once; an intermediate savepoint commits nothing itself; claim
//! modes; operator version changes; bad savepoints refused with clear
//! errors; the checked-in canonical savepoint fixture.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir::{
    CheckpointMetadata, ClaimMode, JobControl, JobError, JobGraph, JobSummary, RestorePoint,
    RunOptions, SavepointDone, SavepointFormat, StopMode, run_job,
};

use crate::checkpoints::{CountJob, copy_tree, expected, hidden_files, sorted_output};
use crate::common::{graph, q, tempdir, weir};

/// A job running on a thread of its own.
pub(crate) struct Running {
    pub(crate) graph: JobGraph,
    pub(crate) control: Arc<JobControl>,
    pub(crate) thread: JoinHandle<Result<JobSummary, JobError>>,
}

pub(crate) fn start(yaml: &str, dir: &Path) -> Running {
    let g = graph(yaml, dir).expect("valid spec");
    let control = Arc::new(JobControl::default());
    let (c, g2) = (control.clone(), g.clone());
    let thread = std::thread::spawn(move || run_job(&g2, &RunOptions::default(), &c));
    Running {
        graph: g,
        control,
        thread,
    }
}

impl Running {
    /// Waits until `n` checkpoints completed.
    fn wait_checkpoints(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.control.live().completed_count < n {
            assert!(Instant::now() < deadline, "no checkpoint completed");
            assert!(!self.thread.is_finished(), "the job ended early");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `more` records more than now reached the sink `out`.
    pub(crate) fn wait_sink_records(&self, more: u64) {
        let out = self.graph.nodes.iter().position(|n| n.id == "out");
        let sink_in = || {
            let live = self.control.live();
            out.and_then(|n| live.metrics.get(n)).map_or(0, |tasks| {
                tasks.iter().map(|t| t.snapshot().records_in).sum::<u64>()
            })
        };
        let target = sink_in() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while sink_in() < target {
            assert!(Instant::now() < deadline, "no records reached the sink");
            assert!(!self.thread.is_finished(), "the job ended early");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Takes a savepoint (or stops with one) into `target`.
    pub(crate) fn savepoint(
        &self,
        target: &Path,
        format: SavepointFormat,
        stop: Option<StopMode>,
    ) -> Result<SavepointDone, String> {
        let rx = self
            .control
            .request_savepoint(&self.graph, Some(target), format, stop)
            .map_err(|e| e.to_string())?;
        rx.recv_timeout(Duration::from_secs(120))
            .map_err(|e| format!("no outcome: {e}"))?
    }
}

/// The count job, rate-limited so that it is still running when stopped.
fn slow_job(dir: &Path, count: u64, keys: u64, extra: &str) -> String {
    CountJob {
        count,
        keys,
        rate: Some(20_000),
        extra,
        ..CountJob::default()
    }
    .yaml(dir)
}

/// Runs the count job (no rate limit) in `dir` from `from` to its end, with
/// `out` holding what the stopped job committed; the sorted output.
fn restore_and_finish(
    dir: &Path,
    committed: &Path,
    from: &Path,
    job: CountJob<'_>,
    claim: ClaimMode,
) -> Vec<String> {
    copy_tree(committed, &dir.join("out"));
    let g = graph(&job.yaml(dir), dir).expect("valid spec");
    let options = RunOptions {
        restore: Some(RestorePoint::open(from).expect("savepoint opens")),
        claim_mode: claim,
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("restored run");
    sorted_output(&dir.join("out"))
}

#[test]
fn stop_with_savepoint_restores_exactly_once_at_other_parallelisms_backends_and_places() {
    let (count, keys) = (60_000, 600);
    let dir = tempdir();
    let d = dir.path();
    let job = start(&slow_job(d, count, keys, ""), d);
    job.wait_checkpoints(1);
    let sp = job
        .savepoint(
            &d.join("savepoints"),
            SavepointFormat::Canonical,
            Some(StopMode { drain: false }),
        )
        .expect("stop with savepoint");
    let summary = job
        .thread
        .join()
        .expect("thread")
        .expect("the job ends FINISHED");
    assert!(summary.checkpoints.iter().any(|c| c.is_savepoint));
    let path = PathBuf::from(&sp.path);
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(name.starts_with("savepoint-"), "{name}");
    // Stopped midway, its output committed: no pending file is left.
    let committed = d.join("out");
    assert!(
        hidden_files(&committed)
            .iter()
            .all(|n| !n.ends_with(".pending"))
    );
    let stopped_at = sorted_output(&committed).len();
    assert!(
        stopped_at > 0 && stopped_at < count as usize,
        "{stopped_at}"
    );
    let want = expected(count, keys);

    // (a) same parallelism, (b) another, (c) the other backend.
    for (p, extra) in [(2, ""), (3, ""), (1, "state.backend.type: rocksdb")] {
        let other = tempdir();
        let job = CountJob {
            count,
            keys,
            parallelism: p,
            extra,
            ..CountJob::default()
        };
        let got = restore_and_finish(other.path(), &committed, &path, job, ClaimMode::NoClaim);
        assert_eq!(got, want, "restored at parallelism {p} {extra}");
    }
    // (d) after moving the folder elsewhere; NO_CLAIM leaves it alone.
    let moved_dir = tempdir();
    let moved = moved_dir.path().join("moved-savepoint");
    std::fs::rename(&path, &moved).expect("move");
    let other = tempdir();
    let job = CountJob {
        count,
        keys,
        ..CountJob::default()
    };
    let got = restore_and_finish(other.path(), &committed, &moved, job, ClaimMode::NoClaim);
    assert_eq!(got, want, "restored from the moved folder");
    assert!(
        moved.join("_metadata").is_file(),
        "NO_CLAIM never deletes it"
    );
}

#[test]
fn an_intermediate_savepoint_commits_nothing_itself_and_restores_exactly_once() {
    let (count, keys) = (60_000, 300);
    let dir = tempdir();
    let d = dir.path();
    // Checkpoints only when asked for: nothing commits behind the test's back.
    let yaml = CountJob {
        count,
        keys,
        rate: Some(20_000),
        interval: "1h",
        ..CountJob::default()
    }
    .yaml(d);
    let job = start(&yaml, d);
    std::thread::sleep(Duration::from_millis(300));
    assert!(job.control.request_checkpoint(&job.graph));
    job.wait_checkpoints(1);
    // Records reach the sink after the checkpoint, so the savepoint has
    // files of its own to pre-commit.
    job.wait_sink_records(1_000);
    let sp = job
        .savepoint(&d.join("sp"), SavepointFormat::Canonical, None)
        .expect("savepoint");
    // The sink files the savepoint pre-committed are still pending.
    let meta = std::fs::read(Path::new(&sp.path).join("_metadata")).expect("_metadata");
    let meta = CheckpointMetadata::decode(&meta).expect("decodes");
    assert_eq!(meta.kind, "savepoint");
    let pending: Vec<String> = meta
        .operator("out")
        .expect("sink state")
        .subtasks
        .iter()
        .flat_map(|s| &s.operator_state)
        .flat_map(|b| {
            let v: serde_json::Value = serde_json::from_slice(b).expect("sink state");
            v["pending"].as_array().cloned().unwrap_or_default()
        })
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert!(!pending.is_empty(), "the savepoint pre-committed files");
    for name in &pending {
        assert!(
            d.join("out").join(format!(".{name}.pending")).is_file(),
            "{name} is not committed"
        );
        assert!(
            !d.join("out").join(name).exists(),
            "{name} was committed by the savepoint"
        );
    }
    job.control.cancel();
    let _ = job.thread.join();
    let other = tempdir();
    let restored = CountJob {
        count,
        keys,
        ..CountJob::default()
    };
    let got = restore_and_finish(
        other.path(),
        &d.join("out"),
        Path::new(&sp.path),
        restored,
        ClaimMode::NoClaim,
    );
    assert_eq!(got, expected(count, keys));
}

#[test]
fn native_savepoints_and_claim_modes_with_incremental_rocksdb() {
    let (count, keys) = (60_000, 600);
    let dir = tempdir();
    let d = dir.path();
    let rocks = "state.backend.type: rocksdb\nstate.backend.incremental: true";
    let job = start(&slow_job(d, count, keys, rocks), d);
    job.wait_checkpoints(1);
    let sp = job
        .savepoint(
            &d.join("sp"),
            SavepointFormat::Native,
            Some(StopMode { drain: false }),
        )
        .expect("native stop");
    job.thread.join().expect("thread").expect("finished");
    let path = PathBuf::from(&sp.path);
    let meta = CheckpointMetadata::decode(&std::fs::read(path.join("_metadata")).expect("read"))
        .expect("decodes");
    assert_eq!(meta.savepoint_format.as_deref(), Some("NATIVE"));
    let handles: Vec<_> = meta
        .operator("count")
        .expect("count")
        .subtasks
        .iter()
        .filter_map(|s| s.incremental.as_ref())
        .collect();
    assert!(!handles.is_empty(), "RocksDB's own files");
    assert!(
        handles.iter().all(|h| h.shared.is_empty()),
        "a native savepoint is self-contained: nothing in shared/"
    );
    // A native savepoint does not restore on the other backend.
    let g = graph(&CountJob::default().yaml(d), d).expect("spec");
    let point = RestorePoint::open(&path).expect("opens");
    let e = point.check(&g, false).expect_err("hashmap refused");
    assert!(e.to_string().contains("canonical savepoint"), "{e}");

    // NO_CLAIM: once the first checkpoint after the restore exists, the
    // snapshot can go and the job's own checkpoint still restores.
    let copy_dir = tempdir();
    let copy = copy_dir.path().join("sp-copy");
    copy_tree(&path, &copy);
    let committed = d.join("out");
    let no_claim = tempdir();
    let job = CountJob {
        count,
        keys,
        extra: "state.backend.type: rocksdb\nstate.backend.incremental: true\nexecution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
        rate: Some(20_000),
        ..CountJob::default()
    };
    copy_tree(&committed, &no_claim.path().join("out"));
    let g = graph(&job.yaml(no_claim.path()), no_claim.path()).expect("spec");
    let control = Arc::new(JobControl::default());
    let options = RunOptions {
        restore: Some(RestorePoint::open(&copy).expect("opens")),
        ..RunOptions::default()
    };
    let (c, g2) = (control.clone(), g.clone());
    let t = std::thread::spawn(move || run_job(&g2, &options, &c));
    let deadline = Instant::now() + Duration::from_secs(60);
    while control.live().completed_count < 1 {
        assert!(
            Instant::now() < deadline && !t.is_finished(),
            "no checkpoint"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    control.cancel();
    let _ = t.join();
    std::fs::remove_dir_all(&copy).expect("delete the restored snapshot");
    let (_, chk) = crate::checkpoints::latest_checkpoint(no_claim.path()).expect("a checkpoint");
    let finish = tempdir();
    let got = restore_and_finish(
        finish.path(),
        &no_claim.path().join("out"),
        &chk,
        CountJob {
            count,
            keys,
            extra: rocks,
            ..CountJob::default()
        },
        ClaimMode::NoClaim,
    );
    assert_eq!(
        got,
        expected(count, keys),
        "restored without the original snapshot"
    );

    // CLAIM: the job owns the snapshot and deletes it once subsumed.
    let claim = tempdir();
    let got = restore_and_finish(
        claim.path(),
        &committed,
        &path,
        CountJob {
            count,
            keys,
            extra: rocks,
            ..CountJob::default()
        },
        ClaimMode::Claim,
    );
    assert_eq!(got, expected(count, keys));
    assert!(
        !path.exists(),
        "the claimed savepoint is deleted once subsumed"
    );
}

/// Starts `weir run spec` and reads from its stderr where its API is:
/// the child, the address, the job id and the token.
pub(crate) fn spawn_with_api(spec: &Path) -> (std::process::Child, String, String, String) {
    let mut cmd = weir();
    cmd.arg("run").arg(spec);
    let run = crate::common::spawn_with_api(cmd);
    (run.child, run.addr, run.id, run.token)
}

/// Copies the canonical savepoint fixture (`savepoint/`, `out/`,
/// `job.yaml`) into `d`, its job running `wasm` without a rate limit and
/// with the shared component cache; returns the job's spec.
fn fixture_job(d: &Path, wasm: &str) -> String {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/savepoint-v3-canonical");
    copy_tree(&fixture, d);
    let yaml = std::fs::read_to_string(d.join("job.yaml"))
        .expect("job")
        .replace("wasm: count.wasm", &format!("wasm: {}", q(wasm)))
        .replace(", rate: 1500", "")
        .replace(
            "config:\n",
            &format!(
                "config:\n  weir.sandbox.cache-dir: {}\n",
                q(&crate::common::cache_dir().display().to_string())
            ),
        );
    std::fs::write(d.join("job.yaml"), &yaml).expect("spec");
    yaml
}

/// `count.wasm` with a custom section appended: another component (another
/// hash) with the same code and states, as a rebuilt operator would be.
fn rebuilt_count(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let name = b"weir-test-rebuild";
    let payload = b"v2";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let p = dir.join("count-v2.wasm");
    std::fs::write(&p, bytes).expect("write");
    p
}

#[test]
fn a_new_operator_version_restores_its_state_and_a_changed_state_is_refused_before_start() {
    let (count, keys) = (40_000, 200);
    let dir = tempdir();
    let d = dir.path();
    let job = start(&slow_job(d, count, keys, ""), d);
    job.wait_checkpoints(1);
    let sp = job
        .savepoint(
            &d.join("sp"),
            SavepointFormat::Canonical,
            Some(StopMode { drain: false }),
        )
        .expect("stop");
    job.thread.join().expect("thread").expect("finished");
    let path = PathBuf::from(&sp.path);
    let v2 = rebuilt_count(d);

    // The new component: counts continue; the dry run names both hashes.
    let other = tempdir();
    let o = other.path();
    let yaml = CountJob {
        count,
        keys,
        ..CountJob::default()
    }
    .yaml(o)
    .replace(&q(weir_test_guests::COUNT), &q(&v2.display().to_string()));
    std::fs::write(o.join("job.yaml"), &yaml).expect("spec");
    let dry = weir()
        .args(["run", "--dry-run", "-s"])
        .arg(&path)
        .arg(o.join("job.yaml"))
        .output()
        .expect("dry run");
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        text.contains("changed-component") && text.contains("restorable"),
        "{text}"
    );
    assert!(text.contains("parallelism 2 -> 2"), "{text}");
    copy_tree(&d.join("out"), &o.join("out"));
    let g = graph(&yaml, o).expect("spec");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&path).expect("opens")),
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("new version restores");
    assert_eq!(sorted_output(&o.join("out")), expected(count, keys));

    // A component that declares the state `count` as a list instead of a
    // value: refused before start, naming the uid, the state and the
    // change; the dry run says the same and exits 2.
    let as_list = yaml.replace(
        &q(&v2.display().to_string()),
        &q(weir_test_guests::COUNT_LIST),
    );
    std::fs::write(o.join("list.yaml"), &as_list).expect("spec");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&path).expect("opens")),
        ..RunOptions::default()
    };
    let g = graph(&as_list, o).expect("spec");
    let err = run_job(&g, &options, &JobControl::default()).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(
            "`count`: state `count` was a value state and is declared as a list state now"
        ),
        "{msg}"
    );
    let dry = weir()
        .args(["run", "--dry-run", "-s"])
        .arg(&path)
        .arg(o.join("list.yaml"))
        .output()
        .expect("dry run");
    let text = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(dry.status.code(), Some(2), "{text}");
    assert!(
        text.contains("refused") && text.contains("declared as a list state now"),
        "{text}"
    );
}

#[test]
fn bad_savepoints_are_refused_with_clear_errors_and_nothing_lost() {
    let dir = tempdir();
    let d = dir.path();
    // Without checkpointing, or without a target, a savepoint is refused.
    let g = graph(
        &CountJob::default()
            .yaml(d)
            .replace("interval: 100ms", "interval: none"),
        d,
    )
    .expect("spec");
    let control = JobControl::default();
    let e = control
        .request_savepoint(&g, Some(d), SavepointFormat::Canonical, None)
        .expect_err("no checkpointing");
    assert!(
        e.to_string().contains("execution.checkpointing.interval"),
        "{e}"
    );
    let g = graph(&CountJob::default().yaml(d), d).expect("spec");
    let e = control
        .request_savepoint(&g, None, SavepointFormat::Canonical, None)
        .expect_err("no target");
    assert!(
        e.to_string()
            .contains("execution.checkpointing.savepoint-dir"),
        "{e}"
    );

    // A real savepoint to damage.
    let job = start(&slow_job(d, 40_000, 100, ""), d);
    job.wait_checkpoints(1);
    let sp = job
        .savepoint(
            &d.join("sp"),
            SavepointFormat::Canonical,
            Some(StopMode { drain: false }),
        )
        .expect("stop");
    let (graph, control) = (job.graph.clone(), job.control.clone());
    job.thread.join().expect("thread").expect("finished");
    // Once the job has ended, a savepoint is refused at once (it would
    // otherwise wait forever for a coordinator).
    let e = control
        .request_savepoint(&graph, Some(d), SavepointFormat::Canonical, None)
        .expect_err("ended");
    assert_eq!(e, weir::SavepointRefused::NotRunning);
    let path = PathBuf::from(&sp.path);
    let spec = d.join("job.yaml");
    std::fs::write(&spec, CountJob::default().yaml(d)).expect("spec");
    let refused = |from: &Path, needle: &str| {
        let out = weir()
            .args(["run", "-q", "-s"])
            .arg(from)
            .arg(&spec)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "wanted {needle:?} in: {err}");
    };
    refused(&d.join("no-such-savepoint"), "no checkpoint there");
    let copy = |name: &str| {
        let p = d.join(name);
        copy_tree(&path, &p);
        p
    };
    let truncated = copy("truncated");
    let meta = std::fs::read(truncated.join("_metadata")).expect("read");
    std::fs::write(truncated.join("_metadata"), &meta[..meta.len() / 2]).expect("write");
    refused(&truncated, "truncated");
    let missing = copy("missing");
    let keyed = std::fs::read_dir(&missing)
        .expect("ls")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".keyed"))
        .expect("a state file")
        .path();
    std::fs::remove_file(&keyed).expect("rm");
    refused(&missing, "No such file");
    let damaged = copy("damaged");
    let keyed = damaged.join(keyed.file_name().expect("name"));
    let mut bytes = std::fs::read(&keyed).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&keyed, bytes).expect("write");
    refused(&damaged, "checksum");

    // Disposing of something that is not a savepoint deletes nothing; a
    // savepoint goes whole.
    let out = weir()
        .args(["savepoint", "--dispose"])
        .arg(d.join("out"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not a savepoint"),
        "{err}"
    );
    assert!(!sorted_output(&d.join("out")).is_empty(), "nothing deleted");
    let out = weir()
        .args(["savepoint", "--dispose"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!path.exists(), "disposed of");
}

#[test]
fn the_checked_in_canonical_savepoint_still_restores() {
    let point = crate::checkpoints::fixture_restores(
        "savepoint-v3-canonical",
        "savepoint",
        "  state.backend.type: rocksdb\n",
    );
    assert_eq!(point.metadata.kind, "savepoint");
    assert_eq!(
        point.metadata.backend, "hashmap",
        "taken on the other backend"
    );
    assert_eq!(
        point.metadata.savepoint_format.as_deref(),
        Some("CANONICAL")
    );
}

/// Polls operation `path` on the server until it completes.
pub(crate) fn completed(port: u16, path: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = crate::api::http(port, "GET", path, b"");
        assert_eq!(s, 200, "{v}");
        if v["status"]["id"] == "COMPLETED" {
            return v["operation"].clone();
        }
        assert!(Instant::now() < deadline, "{path} never completed: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn savepoints_over_the_api_trigger_poll_stop_list_and_dispose() {
    use crate::api::{count_job, http, start_server};
    use serde_json::json;
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count.wasm", &count);
    assert_eq!(s, 201, "{v}");
    let mut job = count_job("savepointed", 100_000_000);
    job["job"]["config"] = json!({ "execution.checkpointing.interval": "100ms" });
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"");
        if v["counts"]["completed"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sp = format!("/api/v1/jobs/{id}/savepoints");

    // A target outside the savepoints root is refused without host paths.
    let (s, v) = http(port, "POST", &sp, br#"{"targetDirectory": "/etc"}"#);
    assert_eq!(s, 400, "{v}");
    assert!(
        !v.to_string().contains(&*dir.path().to_string_lossy()),
        "{v}"
    );

    // A client-supplied trigger id makes a retry safe.
    let body = br#"{"triggerId": "first", "formatType": "CANONICAL", "targetDirectory": "mine"}"#;
    let (s, v) = http(port, "POST", &sp, body);
    assert_eq!((s, &v["request-id"]), (202, &json!("first")), "{v}");
    let (s, v) = http(port, "POST", &sp, body);
    assert_eq!(
        (s, &v["request-id"]),
        (202, &json!("first")),
        "a retry: {v}"
    );
    let op = completed(port, &format!("{sp}/first"));
    let location = op["location"].as_str().expect("location").to_owned();
    assert!(
        Path::new(&location).join("_metadata").is_file(),
        "{location}"
    );
    assert!(
        location.contains("/savepoints/mine/savepoint-"),
        "{location}"
    );
    // Statistics answers are reused for weir.server.cache-ttl.
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"");
        if v["latest"]["savepoint"]["external_path"] == json!(location) {
            break v;
        }
        assert!(Instant::now() < deadline, "no latest savepoint: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        v["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|c| c["is_savepoint"] == true),
        "{v}"
    );
    let (_, v) = http(port, "GET", &format!("/api/v1/savepoints?job={id}"), b"");
    let listed = &v["savepoints"][0];
    assert_eq!(listed["path"], json!(location), "{v}");
    assert_eq!(listed["format"], "CANONICAL");
    assert_eq!(listed["components"][0][0], "count", "{v}");

    // The dry run of a restore from it.
    let mut dry = count_job("restored", 1_000);
    dry["savepointPath"] = json!(location);
    let (s, v) = http(
        port,
        "POST",
        "/api/v1/jobs/dry-run",
        dry.to_string().as_bytes(),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["restorable"], true, "{v}");
    assert_eq!(v["operators"][0]["verdict"], "matched", "{v}");

    // The retained checkpoints on disk, to recover from.
    let (_, v) = http(
        port,
        "GET",
        &format!("/api/v1/jobs/{id}/checkpoints/retained"),
        b"",
    );
    let first = &v["checkpoints"][0];
    assert!(first["id"].as_u64().is_some_and(|i| i >= 1), "{v}");
    assert!(
        Path::new(first["path"].as_str().expect("path"))
            .join("_metadata")
            .is_file()
    );

    // Two stops at once: one stops the job, the other fails with a cause.
    let stop = format!("/api/v1/jobs/{id}/stop");
    let (s1, v1) = http(port, "POST", &stop, br#"{"triggerId": "s1"}"#);
    let (s2, v2) = http(port, "POST", &stop, br#"{"triggerId": "s2"}"#);
    assert_eq!(s1, 202, "{v1}");
    let a = completed(port, &format!("{sp}/s1"));
    if s2 == 409 {
        // The first stop ended the job before the second arrived (a
        // small state's savepoint takes milliseconds): refused with why.
        assert!(v2.to_string().contains("not running"), "{v2}");
        assert!(a["location"].is_string(), "{a}");
    } else {
        assert_eq!(s2, 202, "{v2}");
        let b = completed(port, &format!("{sp}/s2"));
        let outcomes = [a["location"].is_string(), b["location"].is_string()];
        assert_eq!(outcomes.iter().filter(|x| **x).count(), 1, "{a} {b}");
        let failed = if outcomes[0] { &b } else { &a };
        assert!(failed["failure-cause"]["message"].is_string(), "{failed}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        if v["state"] == "FINISHED" {
            break;
        }
        assert!(Instant::now() < deadline, "not finished: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A trigger on a finished job is refused.
    let (s, v) = http(port, "POST", &sp, b"");
    assert_eq!(s, 409, "{v}");

    // Disposal: a folder that is not a savepoint is refused, deleting
    // nothing; the savepoint goes whole and leaves the list.
    let not_one = dir.path().join("data/savepoints/not-one");
    std::fs::create_dir_all(&not_one).expect("mkdir");
    std::fs::write(not_one.join("keep"), b"x").expect("write");
    let (s, v) = http(
        port,
        "POST",
        "/api/v1/savepoint-disposal",
        br#"{"savepointPath": "not-one", "triggerId": "d0"}"#,
    );
    assert_eq!(s, 202, "{v}");
    let op = completed(port, "/api/v1/savepoint-disposal/d0");
    assert!(
        op["failure-cause"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a savepoint")),
        "{op}"
    );
    assert!(not_one.join("keep").is_file());
    let body = json!({ "savepointPath": location, "triggerId": "d1" });
    let (s, _) = http(
        port,
        "POST",
        "/api/v1/savepoint-disposal",
        body.to_string().as_bytes(),
    );
    assert_eq!(s, 202);
    let op = completed(port, "/api/v1/savepoint-disposal/d1");
    assert!(op["failure-cause"].is_null(), "{op}");
    assert!(!Path::new(&location).exists());
    let (_, v) = http(port, "GET", &format!("/api/v1/savepoints?job={id}"), b"");
    assert_eq!(
        v["savepoints"].as_array().map(Vec::len),
        Some(1),
        "the stop's savepoint is left: {v}"
    );
}

#[test]
fn stop_with_drain_fires_the_pending_event_time_windows() {
    let dir = tempdir();
    let d = dir.path();
    let yaml = format!(
        r#"
name: drained-windows
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: checkpoints
sources:
  - {{ id: gen, type: datagen, count: 100000000, keys: 7, rate: 20000, timestamp-step-ms: 1, out-of-orderness-ms: 0 }}
operators:
  - {{ id: sum, uid: window-sum, wasm: {wasm}, parallelism: 2, config: {{ size-ms: 1000 }} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: 2 }}
edges:
  - {{ from: gen, to: sum, partition: hash }}
  - {{ from: sum, to: out }}
"#,
        cache = q(&crate::common::cache_dir().display().to_string()),
        wasm = q(weir_test_guests::WINDOW_SUM),
    );
    let job = start(&yaml, d);
    job.wait_checkpoints(2);
    job.savepoint(
        &d.join("sp"),
        SavepointFormat::Canonical,
        Some(StopMode { drain: true }),
    )
    .expect("stop with drain");
    let summary = job.thread.join().expect("thread").expect("FINISHED");
    let read = summary.node("gen").expect("gen").metrics.records_out;
    assert!(read > 0 && read < 100_000_000, "{read}");
    // Every element read (values 0..read, timestamps = values) is in a
    // window that fired: the sums add up to 0 + 1 + ... + (read - 1), and
    // the window holding the last element is there.
    let lines = crate::common::output_lines(&d.join("out"));
    let mut total: u64 = 0;
    let mut last_end = 0;
    for l in &lines {
        let f: Vec<&str> = l.split('\t').collect();
        assert_eq!(f.len(), 4, "{l}");
        last_end = last_end.max(f[2].parse::<u64>().expect("end"));
        total += f[3].parse::<u64>().expect("sum");
    }
    assert_eq!(
        total,
        read * (read - 1) / 2,
        "every element read was summed"
    );
    assert!(
        last_end >= read,
        "the last window ({last_end}) holds element {}",
        read - 1
    );
}

#[test]
fn weir_run_takes_savepoints_and_stops_through_the_api_it_serves() {
    let dir = tempdir();
    let d = dir.path();
    let spec = d.join("job.yaml");
    std::fs::write(&spec, slow_job(d, 200_000, 500, "")).expect("spec");
    let (mut child, addr, id, token) = spawn_with_api(&spec);
    std::thread::sleep(Duration::from_millis(500));
    let cli = |args: &[&str]| {
        let out = weir()
            .args(args)
            .args(["--server", &format!("http://{addr}"), "--token", &token])
            .output()
            .expect("weir");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let sp_dir = d.join("sp").display().to_string();
    let first = cli(&["savepoint", &id, &sp_dir]);
    assert!(Path::new(&first).join("_metadata").is_file(), "{first}");
    let listed = cli(&["savepoints", &id]);
    assert!(listed.contains(&first), "{listed}");
    let stopped = cli(&["stop", &id, "--savepoint-path", &sp_dir]);
    assert!(Path::new(&stopped).join("_metadata").is_file(), "{stopped}");
    let status = child.wait().expect("wait");
    assert!(status.success(), "the stopped job ends FINISHED");
    let committed = sorted_output(&d.join("out"));
    assert!(!committed.is_empty() && committed.len() < 200_000);
    // Resumed from the stop's savepoint, it finishes exactly once.
    crate::common::run_restored(&spec, Path::new(&stopped));
    assert_eq!(sorted_output(&d.join("out")), expected(200_000, 500));
}

#[test]
fn a_sigkill_while_a_savepoint_is_written_leaves_no_partial_savepoint() {
    let (count, keys) = (2_500_000, 1_000_000);
    let dir = tempdir();
    let d = dir.path();
    let job = |rate: Option<u64>| CountJob {
        count,
        keys,
        rate,
        sequential: true,
        interval: "500ms",
        ..CountJob::default()
    };
    let spec = d.join("job.yaml");
    std::fs::write(&spec, job(Some(500_000)).yaml(d)).expect("spec");
    let target = d.join("sp");
    let partial = |t: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(t)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".savepoint-"))
            })
            .collect()
    };
    let mut killed_midway = false;
    for _attempt in 0..5 {
        let (mut child, addr, id, token) = spawn_with_api(&spec);
        // Wait for a large state and a completed checkpoint.
        while crate::checkpoints::latest_checkpoint(d).is_none_or(|(id, _)| id < 3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let body = serde_json::json!({ "targetDirectory": target.display().to_string() });
        let (s, v) = crate::api::request(
            &addr,
            Some(&token),
            "POST",
            &format!("/api/v1/jobs/{id}/savepoints"),
            body.to_string().as_bytes(),
        );
        assert_eq!(s, 202, "{v}");
        // Kill the moment the first state file of the savepoint is there.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let written = partial(&target).iter().any(|p| {
                std::fs::read_dir(p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".keyed"))
            });
            if written || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        if !partial(&target).is_empty() {
            killed_midway = true;
            break;
        }
        // The savepoint completed before the kill: try again.
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_dir_all(d.join("checkpoints"));
        let _ = std::fs::remove_dir_all(d.join("out"));
    }
    assert!(killed_midway, "never caught the savepoint midway");
    // Restart from the latest checkpoint: the partial savepoint goes, and
    // the output is exactly once.
    let (_, chk) = crate::checkpoints::latest_checkpoint(d).expect("a checkpoint");
    std::fs::write(&spec, job(None).yaml(d)).expect("spec");
    crate::common::run_restored(&spec, &chk);
    assert!(partial(&target).is_empty(), "{:?}", partial(&target));
    let uninterrupted = tempdir();
    let g = graph(&job(None).yaml(uninterrupted.path()), uninterrupted.path()).expect("spec");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("run");
    assert_eq!(
        sorted_output(&d.join("out")),
        sorted_output(&uninterrupted.path().join("out"))
    );
}

#[test]
fn a_failed_savepoint_leaves_the_job_running_and_no_folder() {
    let dir = tempdir();
    let d = dir.path();
    // Each element takes the guest 200 ms while the source offers 20 a
    // second: a barrier waits behind a full channel and a savepoint
    // outlives its 50 ms timeout, however many checkpoint failures the job
    // tolerates (none).
    let extra = "execution.checkpointing.timeout: 50ms\nexecution.checkpointing.tolerable-failed-checkpoints: 0\nrestart-strategy.type: none";
    let yaml = CountJob {
        count: 1_000,
        keys: 5,
        rate: Some(20),
        parallelism: 1,
        hostile: Some("mode: slow, ms: \"200\""),
        extra,
        interval: "1h",
        ..CountJob::default()
    }
    .yaml(d);
    let job = start(&yaml, d);
    std::thread::sleep(Duration::from_millis(500));
    let target = d.join("sp");
    let e = job
        .savepoint(
            &target,
            SavepointFormat::Canonical,
            Some(StopMode { drain: false }),
        )
        .expect_err("times out");
    assert!(e.contains("not complete within 50 ms"), "{e}");
    // A target that cannot be created fails too, before any barrier.
    std::fs::write(d.join("a-file"), b"x").expect("write");
    let e = job
        .savepoint(&d.join("a-file/sp"), SavepointFormat::Canonical, None)
        .expect_err("cannot create");
    assert!(e.contains("cannot create the savepoint folder"), "{e}");
    // The job still runs, and its source reads on after the failed stop.
    let read = || job.control.live().metrics[0][0].snapshot().records_out;
    let before = read();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read() <= before {
        assert!(Instant::now() < deadline, "the source did not read on");
        assert!(!job.thread.is_finished(), "the job ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let live = job.control.live();
    assert!(
        live.failed_checkpoints
            .iter()
            .any(|f| f.reason.starts_with("savepoint:")),
        "{:?}",
        live.failed_checkpoints
    );
    let leftovers: Vec<_> = std::fs::read_dir(&target)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    job.control.cancel();
    assert!(matches!(
        job.thread.join().expect("thread"),
        Err(JobError::Cancelled)
    ));
}

#[test]
fn state_the_new_component_does_not_declare_is_refused_or_dropped_with_n() {
    // The fixture holds uid `count` with the value state `count`; the job
    // runs another component under that uid, declaring other states.
    let dir = tempdir();
    let d = dir.path();
    let yaml = fixture_job(d, weir_test_guests::STATE_KINDS);
    let dry = |extra: &[&str]| {
        let out = weir()
            .args(["run", "--dry-run", "-s"])
            .arg(d.join("savepoint"))
            .args(extra)
            .arg(d.join("job.yaml"))
            .output()
            .expect("dry run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = dry(&[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("state `count` (value) is not declared by the new component"),
        "{text}"
    );
    let (code, text) = dry(&["-n"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("drops state count") && text.contains("new state seen"),
        "{text}"
    );
    // Restored with -n, the job runs with the state dropped.
    let g = graph(&yaml, d).expect("spec");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&d.join("savepoint")).expect("opens")),
        allow_non_restored_state: true,
        ..RunOptions::default()
    };
    let summary = run_job(&g, &options, &JobControl::default()).expect("runs with -n");
    assert!(summary.checkpoints_completed >= 1);
    let options = RunOptions {
        restore: Some(RestorePoint::open(&d.join("savepoint")).expect("opens")),
        ..RunOptions::default()
    };
    let e = run_job(&g, &options, &JobControl::default()).expect_err("refused without -n");
    assert!(e.to_string().contains("pass -n"), "{e}");
}

#[test]
fn a_retained_checkpoint_of_another_job_restores_in_both_claim_modes() {
    let (count, keys) = (60_000, 300);
    let dir = tempdir();
    let d = dir.path();
    let yaml = CountJob {
        count,
        keys,
        rate: Some(20_000),
        extra: "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
        ..CountJob::default()
    }
    .yaml(d);
    let job = start(&yaml, d);
    job.wait_checkpoints(2);
    job.control.cancel();
    let _ = job.thread.join();
    let (_, chk) = crate::checkpoints::latest_checkpoint(d).expect("retained");
    let committed = d.join("out");
    let finish = |claim| {
        let other = tempdir();
        let job = CountJob {
            count,
            keys,
            ..CountJob::default()
        };
        let got = restore_and_finish(other.path(), &committed, &chk, job, claim);
        assert_eq!(got, expected(count, keys), "{claim:?}");
    };
    // NO_CLAIM leaves the other job's checkpoint as it was.
    finish(ClaimMode::NoClaim);
    assert!(chk.join("_metadata").is_file());
    // CLAIM: the new job owns it and deletes it once its own checkpoints
    // subsume it.
    finish(ClaimMode::Claim);
    assert!(!chk.exists(), "{} is still there", chk.display());
}

#[test]
fn the_recovery_and_savepoint_keys_are_read_under_flinks_old_names_too() {
    // `execution.savepoint.path` (alias of execution.state-recovery.path)
    // in weir.yaml starts `weir run` from the fixture savepoint.
    let dir = tempdir();
    let d = dir.path();
    fixture_job(d, weir_test_guests::COUNT);
    let config = d.join("weir.yaml");
    std::fs::write(
        &config,
        format!(
            "execution.savepoint.path: {}\nexecution.savepoint-restore-mode: NO_CLAIM\nweir.progress.interval: 0ms\n",
            q(&d.join("savepoint").display().to_string())
        ),
    )
    .expect("config");
    let out = weir()
        .arg("--config")
        .arg(&config)
        .args(["run", "-q"])
        .arg(d.join("job.yaml"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sorted_output(&d.join("out")), expected(3000, 40));
    assert!(d.join("savepoint/_metadata").is_file(), "NO_CLAIM keeps it");

    // `state.savepoints.dir` (alias of execution.checkpointing.savepoint-dir)
    // is where a savepoint without a target goes.
    let run_dir = tempdir();
    let r = run_dir.path();
    let job = start(
        &slow_job(r, 40_000, 100, "state.savepoints.dir: default-savepoints"),
        r,
    );
    job.wait_checkpoints(1);
    let rx = job
        .control
        .request_savepoint(
            &job.graph,
            None,
            SavepointFormat::Canonical,
            Some(StopMode { drain: false }),
        )
        .expect("a target from the configuration");
    let done = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("outcome")
        .expect("savepoint");
    assert!(
        Path::new(&done.path)
            .starts_with(r.join("default-savepoints").canonicalize().expect("dir")),
        "{}",
        done.path
    );
    job.thread.join().expect("thread").expect("finished");
}

#[test]
fn an_intermediate_savepoint_restores_exactly_once_after_a_run_from_an_older_checkpoint() {
    // The reviewer's case: after savepoint S the job goes on from the
    // checkpoint before S (a restart), which drops S's pending sink files
    // and writes other files under their names; S must still restore
    // exactly the output it saw.
    let (count, keys) = (60_000, 300);
    let dir = tempdir();
    let d = dir.path();
    let job = |rate| CountJob {
        count,
        keys,
        rate,
        interval: "1h",
        extra: "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
        ..CountJob::default()
    };
    let running = start(&job(Some(20_000)).yaml(d), d);
    std::thread::sleep(Duration::from_millis(300));
    assert!(running.control.request_checkpoint(&running.graph));
    running.wait_checkpoints(1);
    std::thread::sleep(Duration::from_millis(300));
    let sp = running
        .savepoint(&d.join("sp"), SavepointFormat::Canonical, None)
        .expect("savepoint");
    running.control.cancel();
    let _ = running.thread.join();
    let (_, older) = crate::checkpoints::latest_checkpoint(d).expect("the checkpoint before");
    let g = graph(&job(None).yaml(d), d).expect("spec");
    let run_from = |from: &Path| {
        let options = RunOptions {
            restore: Some(RestorePoint::open(from).expect("opens")),
            ..RunOptions::default()
        };
        run_job(&g, &options, &JobControl::default()).expect("restored run");
    };
    run_from(&older);
    run_from(Path::new(&sp.path));
    assert_eq!(sorted_output(&d.join("out")), expected(count, keys));
}

/// Rewrites the record of job `id` of the server in `dir` as RUNNING, as
/// a server that crashed before it recorded the job's end left it.
pub(crate) fn record_as_running(dir: &Path, id: &str) {
    let record = dir.join("data/jobs").join(id).join("job.json");
    let mut r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("json");
    r["state"] = serde_json::json!("RUNNING");
    r["endTime"] = serde_json::Value::Null;
    std::fs::write(&record, r.to_string()).expect("write");
}

#[test]
fn a_server_that_crashed_after_a_stop_ends_the_job_finished_instead_of_running_it_again() {
    use crate::api::{count_job, http, start_server};
    use serde_json::json;
    let dir = tempdir();
    let d = dir.path();
    let (server, port) = start_server(d);
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, _) = http(port, "POST", "/api/v1/bundles?name=count.wasm", &count);
    assert_eq!(s, 201);
    let mut job = count_job("stopped", 100_000_000);
    job["job"]["config"] = json!({ "execution.checkpointing.interval": "100ms" });
    let (_, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    std::thread::sleep(Duration::from_millis(500));
    let (s, v) = http(
        port,
        "POST",
        &format!("/api/v1/jobs/{id}/stop"),
        br#"{"triggerId": "s"}"#,
    );
    assert_eq!(s, 202, "{v}");
    let op = completed(port, &format!("/api/v1/jobs/{id}/savepoints/s"));
    let location = op["location"].as_str().expect("location").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", &format!("/api/v1/jobs/{id}"), b"").1["state"] != "FINISHED" {
        assert!(Instant::now() < deadline, "not finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    // The crash window: the stop completed (its marker written) but the
    // record still says RUNNING.
    record_as_running(d, &id);
    let job_dir = d.join("data/checkpoints").join(&id);
    std::fs::create_dir_all(&job_dir).expect("mkdir");
    std::fs::write(job_dir.join("_stopped"), &location).expect("marker");
    let (_server, port) = start_server(d);
    let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
    assert_eq!(
        v["state"], "FINISHED",
        "the stopped job does not run again: {v}"
    );
    assert!(
        !job_dir.exists(),
        "its checkpoints are discarded as for a finished job"
    );
}
