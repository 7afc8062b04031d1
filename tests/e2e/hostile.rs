//! Guests that misbehave fail their job with an error that names the
//! operator uid, the subtask and the cause, and the process goes on: after
//! each, a good job runs in the same process.

use weir::{GuestFailureKind, SandboxError};
use weir::{JobError, TaskFailure};

use crate::common::{q, run, run_cli, tempdir};

fn job(wasm: &str, mode: &str, parallelism: u32) -> String {
    format!(
        r#"
name: hostile-{mode}
config:
  weir.sandbox.call-timeout: 300ms
  weir.sandbox.memory-limit: 32mb
  weir.state.max-bytes: 8mb
sources:
  - {{ id: gen, type: datagen, count: 100, keys: 10 }}
operators:
  - id: bad
    uid: bad-uid
    wasm: {wasm}
    parallelism: {parallelism}
    config: {{ mode: {mode} }}
sinks:
  - {{ id: out, type: discard }}
edges:
  - {{ from: gen, to: bad, partition: hash }}
  - {{ from: bad, to: out, partition: rebalance }}
"#,
        wasm = q(wasm),
    )
}

/// A good job runs to its end in this process.
fn good_job_still_runs() {
    let dir = tempdir();
    let summary = run(&job(weir_test_guests::COUNT, "ok", 2), dir.path())
        .expect("a good job runs after a hostile one");
    assert_eq!(
        summary.node("bad").map(|n| n.metrics.records_out),
        Some(100)
    );
}

fn guest_failure(mode: &str) -> (JobError, String) {
    let dir = tempdir();
    let err = run(&job(weir_test_guests::HOSTILE, mode, 2), dir.path())
        .expect_err("hostile guest must fail");
    let msg = err.to_string();
    (err, msg)
}

fn assert_task_failure(
    err: &JobError,
    msg: &str,
    expected: impl Fn(&GuestFailureKind) -> bool,
    call: &str,
) {
    match err {
        JobError::Task {
            node,
            uid,
            subtask,
            parallelism,
            cause,
            ..
        } => {
            let TaskFailure::Guest(g) = cause.as_ref() else {
                panic!("expected a guest failure, got {cause}");
            };
            assert_eq!(node, "bad");
            assert_eq!(uid, "bad-uid");
            assert!(*subtask < 2 && *parallelism == 2);
            assert!(expected(&g.kind), "unexpected failure kind {:?}", g.kind);
            assert_eq!(g.call, call);
        }
        other => panic!("expected a guest failure, got {other:?}"),
    }
    assert!(msg.contains("uid `bad-uid`"), "{msg}");
    assert!(
        msg.contains("subtask 1/2") || msg.contains("subtask 2/2"),
        "{msg}"
    );
}

#[test]
fn an_infinite_loop_hits_the_call_timeout() {
    let (err, msg) = guest_failure("loop");
    assert_task_failure(
        &err,
        &msg,
        |k| matches!(k, GuestFailureKind::Timeout(_)),
        "process",
    );
    assert!(msg.contains("call timeout of 300ms"), "{msg}");
    good_job_still_runs();
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let (err, msg) = guest_failure("bomb");
    assert_task_failure(
        &err,
        &msg,
        |k| matches!(k, GuestFailureKind::OutOfMemory(_)),
        "process",
    );
    assert!(msg.contains("memory limit of 32 MiB"), "{msg}");
    good_job_still_runs();
}

#[test]
fn a_guest_hoarding_state_in_the_host_hits_the_state_limit() {
    let (err, msg) = guest_failure("hoard");
    assert_task_failure(&err, &msg, |k| *k == GuestFailureKind::Trap, "process");
    assert!(
        msg.contains("exceeds its limit of 8 MiB (weir.state.max-bytes)"),
        "{msg}"
    );
    good_job_still_runs();
}

#[test]
fn a_guest_hoarding_state_in_rocksdb_stops_at_the_state_limit() {
    let dir = tempdir();
    let spec = job(weir_test_guests::HOSTILE, "hoard", 1)
        .replace("config:\n", "config:\n  state.backend.type: rocksdb\n");
    let err = run(&spec, dir.path()).expect_err("the hoard stops");
    let msg = err.to_string();
    assert!(
        msg.contains("exceeds its limit of 8 MiB (weir.state.max-bytes)"),
        "{msg}"
    );
    good_job_still_runs();
}

#[test]
fn guest_calls_into_the_host_are_bounded_in_bytes() {
    let (err, msg) = guest_failure("timer-hog");
    assert_task_failure(&err, &msg, |k| *k == GuestFailureKind::Trap, "process");
    assert!(
        msg.contains("a timer namespace of 1048576 bytes (at most 4096)"),
        "{msg}"
    );
    // 65,536 timers take longer than the usual 300 ms call timeout.
    let dir = tempdir();
    let flood = job(weir_test_guests::HOSTILE, "timer-flood", 1).replace("300ms", "60s");
    let msg = run(&flood, dir.path()).expect_err("fails").to_string();
    assert!(
        msg.contains("timers of one subtask would hold more than 256 MiB"),
        "{msg}"
    );
    let (_, msg) = guest_failure("metric-name");
    assert!(
        msg.contains("a metric name of 1048576 bytes (at most 256)"),
        "{msg}"
    );
    good_job_still_runs();
}

#[test]
fn a_guest_that_floods_the_log_is_rate_limited_and_its_job_finishes() {
    let dir = tempdir();
    let spec = dir.path().join("job.yaml");
    let flood = job(weir_test_guests::HOSTILE, "log-flood", 1).replace("300ms", "60s");
    std::fs::write(&spec, flood).expect("spec");
    let out = crate::common::weir()
        .args(["run", "-q"])
        .arg(&spec)
        .env("WEIR_LOG", "info")
        .output()
        .expect("weir run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = stderr
        .lines()
        .filter(|l| l.contains("hostile guest: line"))
        .count();
    // 100 elements of 10,000 lines each: at most 100 a second get through.
    assert!(lines < 100_000, "{lines} guest lines logged");
    assert!(stderr.contains("guest log lines dropped"), "{stderr}");
}

#[test]
fn a_trap_in_process_reports_the_panic_message() {
    let (err, msg) = guest_failure("trap");
    assert_task_failure(&err, &msg, |k| *k == GuestFailureKind::Trap, "process");
    assert!(msg.contains("hostile guest: trap in process"), "{msg}");
    good_job_still_runs();
}

#[test]
fn a_trap_in_open_reports_the_panic_message() {
    let (err, msg) = guest_failure("trap-open");
    assert_task_failure(&err, &msg, |k| *k == GuestFailureKind::Trap, "open");
    assert!(msg.contains("hostile guest: trap in open"), "{msg}");
    good_job_still_runs();
}

#[test]
fn an_error_from_open_is_a_config_error() {
    let (err, msg) = guest_failure("open-error");
    assert_task_failure(&err, &msg, |k| *k == GuestFailureKind::OpenFailed, "open");
    assert!(msg.contains("hostile guest: bad config"), "{msg}");
    good_job_still_runs();
}

fn component_error(bytes: &[u8]) -> SandboxError {
    let dir = tempdir();
    let wasm = dir.path().join("bad.wasm");
    std::fs::write(&wasm, bytes).expect("write");
    match run(&job(&wasm.display().to_string(), "ok", 1), dir.path()) {
        Err(JobError::Component { node, error }) => {
            assert_eq!(node, "bad");
            error
        }
        other => panic!("expected the component to be refused, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_webassembly_is_refused_before_the_job_starts() {
    let e = component_error(b"this is not wasm at all");
    assert!(matches!(e, SandboxError::NotWasm { .. }), "{e}");
    good_job_still_runs();
}

#[test]
fn a_core_module_is_refused_with_a_hint() {
    // The smallest core module: magic and version 1.
    let e = component_error(b"\0asm\x01\0\0\0");
    assert!(matches!(e, SandboxError::CoreModule { .. }), "{e}");
    assert!(e.to_string().contains("wasm32-wasip2"), "{e}");
    good_job_still_runs();
}

#[test]
fn a_truncated_component_is_refused() {
    let bytes = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let e = component_error(&bytes[..bytes.len() / 2]);
    assert!(matches!(e, SandboxError::Invalid { .. }), "{e}");
    good_job_still_runs();
}

#[test]
fn a_component_missing_exports_is_refused_naming_them() {
    let bytes = std::fs::read(weir_test_guests::MISSING_EXPORT).expect("missing-export.wasm");
    let e = component_error(&bytes);
    match &e {
        SandboxError::MissingExports { missing, .. } => {
            assert_eq!(
                missing,
                &[
                    "weir:operator/handler@0.2.0#process",
                    "weir:operator/handler@0.2.0#process-second",
                    "weir:operator/handler@0.2.0#on-timer",
                    "weir:operator/handler@0.2.0#close"
                ]
            );
        }
        other => panic!("expected missing exports, got {other}"),
    }
    assert!(
        e.to_string()
            .contains("missing export(s) weir:operator/handler@0.2.0#process"),
        "{e}"
    );
    good_job_still_runs();
}

#[test]
fn the_cli_reports_a_trap_with_uid_and_subtask_and_exits_non_zero() {
    let dir = tempdir();
    let out = run_cli(&job(weir_test_guests::HOSTILE, "trap", 2), dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("operator `bad` (uid `bad-uid`), subtask"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hostile guest: trap in process"),
        "{stderr}"
    );
}

#[test]
fn a_refused_component_leaves_nothing_in_the_compile_cache() {
    let dir = tempdir();
    let config = weir::Config {
        cache_dir: dir.path().join("cache"),
        ..weir::Config::default()
    };
    let sandbox = weir::Sandbox::new(&config).expect("sandbox");
    let artifacts = || -> usize {
        std::fs::read_dir(dir.path().join("cache"))
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    };
    let refused = sandbox.load(std::path::Path::new(weir_test_guests::MISSING_EXPORT));
    assert!(refused.is_err());
    assert_eq!(artifacts(), 0, "a refused component was cached");
    sandbox
        .load(std::path::Path::new(weir_test_guests::COUNT))
        .expect("count loads");
    assert_eq!(artifacts(), 2, "the artifact and its checksum");
}
