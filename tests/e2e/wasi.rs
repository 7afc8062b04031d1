//! A component may import all of WASI 0.2, as language runtimes' do, and
//! finds nothing behind it: files, sockets and name lookups fail with
//! errors the guest catches, the environment and stdin are empty, a sleep
//! returns at once, stdout and stderr are lines in the job's log, and
//! `exit` fails the task. The `wasi-prober` guest reports what it saw.

use std::net::TcpListener;

use weir::{GuestFailureKind, JobError, TaskFailure};

use crate::common::{output_lines, q, run, tempdir, weir};

fn prober_job(mode: &str, extra: &str) -> String {
    format!(
        r#"
name: wasi-{mode}
config:
  weir.sandbox.call-timeout: 500ms
sources:
  - {{ id: gen, type: datagen, count: 3, keys: 3 }}
operators:
  - id: prober
    uid: prober-uid
    wasm: {wasm}
    config: {{ mode: {mode}{extra} }}
sinks:
  - {{ id: out, type: file, path: out }}
edges:
  - {{ from: gen, to: prober, partition: hash }}
  - {{ from: prober, to: out, partition: forward }}
"#,
        wasm = q(weir_test_guests::WASI_PROBER),
    )
}

/// Runs the prober in `mode`; the findings it wrote, one per element.
fn findings(mode: &str, extra: &str) -> Vec<String> {
    let dir = tempdir();
    run(&prober_job(mode, extra), dir.path())
        .unwrap_or_else(|e| panic!("mode {mode}: the job failed: {e}"));
    let lines = output_lines(&dir.path().join("out"));
    assert_eq!(lines.len(), 3, "mode {mode}: {lines:?}");
    lines
}

/// Every finding of `mode` contains `expected`.
fn assert_found(mode: &str, extra: &str, expected: &str) {
    for line in findings(mode, extra) {
        assert!(line.contains(expected), "mode {mode}: {line}");
    }
}

#[test]
fn files_sockets_and_name_lookups_fail_inside_the_guest_and_the_job_goes_on() {
    assert_found("read-file", "", "error:");
    assert_found("write-file", "", "error:");
    assert_found("lookup", ", host: localhost", "error:");
    // Something listens, and still no connection is made.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    assert_found("connect", &format!(", addr: '{addr}'"), "error:");
    assert!(
        listener.accept().is_err(),
        "the guest reached a socket of the host"
    );
}

#[test]
fn the_environment_and_stdin_are_empty_and_a_sleep_returns_at_once() {
    assert_found("env", "", "0 variables, 0 arguments");
    assert_found("stdin", "", "stdin gave 0 bytes");
    // An hour's sleep returns: the job ends, with each element's finding.
    assert_found("sleep", "", "slept");
}

#[test]
fn a_guest_waiting_for_time_to_pass_hits_the_call_timeout() {
    let dir = tempdir();
    let err = run(&prober_job("sleep-loop", ""), dir.path())
        .expect_err("a guest sleeping in a loop must time out");
    match &err {
        JobError::Task { cause, .. } => match cause.as_ref() {
            TaskFailure::Guest(g) => assert!(
                matches!(g.kind, GuestFailureKind::Timeout(_)),
                "{:?}",
                g.kind
            ),
            other => panic!("expected a guest failure, got {other}"),
        },
        other => panic!("expected a guest failure, got {other:?}"),
    }
}

#[test]
fn exit_fails_the_task_naming_its_status() {
    let dir = tempdir();
    let err = run(&prober_job("exit", ""), dir.path()).expect_err("exit must fail the task");
    let msg = err.to_string();
    // WASI 0.2's exit knows success and failure only: 3 arrives as 1.
    assert!(msg.contains("called exit (status 1)"), "{msg}");
    assert!(msg.contains("uid `prober-uid`"), "{msg}");
}

#[test]
fn stdout_and_stderr_are_lines_in_the_jobs_log_tagged_with_the_operator() {
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, prober_job("print", "")).expect("write spec");
    let out = weir()
        .arg("run")
        .arg(&job)
        .env("WEIR_LOG", "info")
        .output()
        .expect("run weir");
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    for stream in ["stdout", "stderr"] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("prober says hello on {stream}")))
            .unwrap_or_else(|| panic!("no {stream} line in the log:\n{log}"));
        assert!(line.contains("prober-uid"), "{line}");
    }
    // Nothing reached the process's own stdout.
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("prober says"),
        "{out:?}"
    );
}
