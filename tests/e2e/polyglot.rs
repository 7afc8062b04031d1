//! Operators in Python and JavaScript (built by `scripts/componentize-py`
//! and `scripts/componentize-js` with the SDKs in `guest-sdk/python` and
//! `guest-sdk/js`): their counts are exactly once through SIGKILLs and
//! restores, and their state and the Rust count's are the same bytes, so
//! a checkpoint of any restores into the others and the counts go on;
//! hostile guests in both are contained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use weir::{JobControl, RestorePoint, RunOptions, run_job};

use crate::checkpoints::{
    CountJob, assert_uninterrupted, kill_and_restore, latest_checkpoint, run_until_then_cancel,
    sorted_output, spawn,
};
use crate::common::{graph, tempdir};

/// The component of the Python operator in folder `dir` of the
/// repository (`operators/count-py`), built with `scripts/componentize-py`.
pub(crate) fn python_operator(dir: &str) -> String {
    component_of(dir, "componentize-py", "guest-sdk/python/weir_sdk")
}

/// The component of the JavaScript operator in folder `dir` of the
/// repository (`operators/count-js`), built with `scripts/componentize-js`.
pub(crate) fn javascript_operator(dir: &str) -> String {
    component_of(dir, "componentize-js", "guest-sdk/js")
}

/// The component of the operator in folder `dir`, built by
/// `scripts/<script>` with the SDK in `sdk`, once per content of its
/// sources (the operator, the SDK, the WIT world, the script) into the
/// tests' temporary folder.
fn component_of(dir: &str, script: &str, sdk: &str) -> String {
    /// Per folder, its component once built (a lock per folder, so that
    /// two folders build at once and one folder builds once).
    type Built = Arc<Mutex<Option<PathBuf>>>;
    static BUILT: OnceLock<Mutex<HashMap<String, Built>>> = OnceLock::new();
    let slot = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(dir.to_owned())
        .or_default()
        .clone();
    let mut built = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.as_ref() {
        return path.display().to_string();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = root.join(dir);
    let name = dir.rsplit('/').next().unwrap_or(dir);
    let hash = content_hash(&[
        &src,
        &root.join(sdk),
        &root.join("wit"),
        &root.join("scripts").join(script),
    ]);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("polyglot-operators")
        .join(format!("{name}-{hash:016x}.wasm"));
    if !out.is_file() {
        let status = Command::new(root.join("scripts").join(script))
            .arg(&src)
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("scripts/{script}: {e}"));
        assert!(status.success(), "building {dir} failed");
    }
    *built = Some(out.clone());
    out.display().to_string()
}

/// A hash of the names and contents of the files under `paths`.
fn content_hash(paths: &[&Path]) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    fn walk(p: &Path, files: &mut Vec<PathBuf>) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), files);
            }
        } else if p.extension().is_none_or(|x| x != "pyc")
            && !p.components().any(|c| c.as_os_str() == "node_modules")
        {
            files.push(p.to_owned());
        }
    }
    let mut files = Vec::new();
    for p in paths {
        walk(p, &mut files);
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for f in files {
        f.file_name().hash(&mut h);
        std::fs::read(&f).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

#[test]
fn the_python_count_is_exactly_once_through_sigkills_and_restores() {
    exactly_once_through_sigkills(&python_operator("operators/count-py"));
}

#[test]
fn the_javascript_count_is_exactly_once_through_sigkills_and_restores() {
    exactly_once_through_sigkills(&javascript_operator("operators/count-js"));
}

/// The count component `wasm` is SIGKILLed and restored four times; its
/// committed output equals an uninterrupted Rust count's.
fn exactly_once_through_sigkills(wasm: &str) {
    let (count, keys) = (150_000, 500);
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    let spec = CountJob {
        count,
        keys,
        rate: Some(10_000),
        wasm: Some(wasm),
        ..CountJob::default()
    };
    std::fs::write(&job, spec.yaml(dir.path())).expect("write spec");
    let mut seed = crate::checkpoints::kill_seed();
    // Compiled into the cache first: a kill during a first start's compile
    // would leave nothing cached, and no run would reach a checkpoint.
    weir::Sandbox::new(&crate::common::config())
        .and_then(|s| s.load(Path::new(wasm)))
        .expect("the component compiles");
    let restored_from = kill_and_restore(&job, dir.path(), 4, (1_500, 1_000), &mut seed);
    assert!(restored_from.len() >= 2, "checkpoints: {restored_from:?}");
    let (_, last) = latest_checkpoint(dir.path()).expect("a checkpoint");
    let out = spawn(&job, Some(&last))
        .wait_with_output()
        .expect("final run");
    assert!(
        out.status.success(),
        "restored run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Rust count's uninterrupted output, record for record.
    assert_uninterrupted(&sorted_output(&dir.path().join("out")), count, keys);
}

/// Runs the count with `first` until it completed a checkpoint, restores
/// that checkpoint into the count with `second` (same uid and state), runs
/// it to the end, and compares the whole output with an uninterrupted
/// count.
fn counts_go_on_across_languages(first: &str, second: &str) {
    let (count, keys) = (30_000, 300);
    let dir = tempdir();
    let job = |wasm| {
        CountJob {
            count,
            keys,
            rate: Some(10_000),
            wasm: Some(wasm),
            extra: "execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION",
            ..CountJob::default()
        }
        .yaml(dir.path())
    };
    let _ = run_until_then_cancel(
        &job(first),
        dir.path(),
        None,
        Duration::from_secs(120),
        |d| latest_checkpoint(d).is_some_and(|(id, _)| id >= 3),
    );
    let (_, last) = latest_checkpoint(dir.path()).expect("a checkpoint of the first run");
    let options = RunOptions {
        restore: Some(RestorePoint::open(&last).expect("open the checkpoint")),
        ..RunOptions::default()
    };
    let g = graph(&job(second), dir.path()).expect("spec");
    run_job(&g, &options, &JobControl::default())
        .expect("the second language's count restores and runs to the end");
    assert_uninterrupted(&sorted_output(&dir.path().join("out")), count, keys);
}

#[test]
fn a_rust_counts_checkpoint_restores_into_the_python_count() {
    counts_go_on_across_languages(
        weir_test_guests::COUNT,
        &python_operator("operators/count-py"),
    );
}

#[test]
fn a_python_counts_checkpoint_restores_into_the_rust_count() {
    counts_go_on_across_languages(
        &python_operator("operators/count-py"),
        weir_test_guests::COUNT,
    );
}

#[test]
fn a_rust_counts_checkpoint_restores_into_the_javascript_count() {
    counts_go_on_across_languages(
        weir_test_guests::COUNT,
        &javascript_operator("operators/count-js"),
    );
}

#[test]
fn a_javascript_counts_checkpoint_restores_into_the_rust_count() {
    counts_go_on_across_languages(
        &javascript_operator("operators/count-js"),
        weir_test_guests::COUNT,
    );
}

#[test]
fn a_javascript_counts_checkpoint_restores_into_the_python_count() {
    counts_go_on_across_languages(
        &javascript_operator("operators/count-js"),
        &python_operator("operators/count-py"),
    );
}

/// A job of the hostile Python operator in `mode` (config `extra` added),
/// 50 records over 5 keys, its output in `out`.
fn hostile_python_job(mode: &str, extra: &str) -> String {
    format!(
        r#"
name: hostile-python-{mode}
config:
  weir.sandbox.cache-dir: {cache}
  weir.sandbox.call-timeout: 2s
  weir.sandbox.memory-limit: 128mb
sources:
  - {{ id: gen, type: datagen, count: 50, keys: 5 }}
operators:
  - id: py
    uid: py-uid
    wasm: {wasm}
    config: {{ mode: {mode}{extra} }}
sinks:
  - {{ id: out, type: file, path: out }}
edges:
  - {{ from: gen, to: py, partition: hash }}
  - {{ from: py, to: out, partition: forward }}
"#,
        cache = crate::common::q(&crate::common::cache_dir().display().to_string()),
        wasm = crate::common::q(&python_operator("tests/guests/hostile-py")),
    )
}

/// The failure of the hostile Python operator in `mode`, as text.
fn python_failure(mode: &str) -> String {
    let dir = tempdir();
    let err = crate::common::run(&hostile_python_job(mode, ""), dir.path())
        .expect_err("the hostile guest must fail its job");
    let msg = err.to_string();
    assert!(msg.contains("uid `py-uid`"), "{msg}");
    msg
}

/// What the hostile Python operator in `mode` emitted: one line per record.
fn python_findings(mode: &str, extra: &str) -> Vec<String> {
    let dir = tempdir();
    crate::common::run(&hostile_python_job(mode, extra), dir.path())
        .unwrap_or_else(|e| panic!("mode {mode}: {e}"));
    let lines = crate::common::output_lines(&dir.path().join("out"));
    assert_eq!(lines.len(), 50, "{lines:?}");
    lines
}

#[test]
fn hostile_python_is_contained_and_the_host_goes_on() {
    let msg = python_failure("loop");
    assert!(msg.contains("call timeout of 2s"), "{msg}");
    let msg = python_failure("bomb");
    assert!(msg.contains("memory limit of 128 MiB"), "{msg}");
    // An uncaught exception traps, and its report on stderr explains it.
    let msg = python_failure("raise");
    assert!(
        msg.contains("KeyError: 'hostile python: no such key'"),
        "{msg}"
    );
}

#[test]
fn python_files_sockets_and_sleep_fail_or_return_inside_the_guest() {
    for line in python_findings("read-file", "") {
        assert!(line.contains("error: "), "{line}");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    for line in python_findings("connect", &format!(", addr: '{addr}'")) {
        assert!(line.contains("error: "), "{line}");
    }
    assert!(listener.accept().is_err(), "the guest reached the host");
    // A minute's sleep returns at once, well inside the 2 s call timeout.
    for line in python_findings("sleep", "") {
        assert!(line.contains("slept"), "{line}");
    }
}

#[test]
fn the_python_tokenize_feeds_the_rust_count() {
    let dir = tempdir();
    let input = dir.path().join("lines.txt");
    std::fs::write(&input, "Hello world, don't STOP!\nhello again\n").expect("input");
    let yaml = format!(
        r#"
name: python-wordcount
config:
  weir.sandbox.cache-dir: {cache}
sources:
  - {{ id: lines, type: file, path: {input} }}
operators:
  - {{ id: tokenize, uid: tokenize, wasm: {tokenize} }}
  - {{ id: count, uid: count, wasm: {count} }}
sinks:
  - {{ id: out, type: file, path: out }}
edges:
  - {{ from: lines, to: tokenize }}
  - {{ from: tokenize, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
        cache = crate::common::q(&crate::common::cache_dir().display().to_string()),
        input = crate::common::q(&input.display().to_string()),
        tokenize = crate::common::q(&python_operator("operators/tokenize-py")),
        count = crate::common::q(weir_test_guests::COUNT),
    );
    crate::common::run(&yaml, dir.path()).expect("the job runs");
    let last = crate::common::last_values(&sorted_output(&dir.path().join("out")));
    let want: Vec<(&str, &str)> = vec![
        ("again", "1"),
        ("don't", "1"),
        ("hello", "2"),
        ("stop", "1"),
        ("world", "1"),
    ];
    let got: Vec<(&str, &str)> = last.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, want);
}

/// The failure of the hostile JavaScript operator in `mode`, as text.
fn javascript_failure(mode: &str) -> String {
    let dir = tempdir();
    let yaml = hostile_python_job(mode, "").replace(
        &python_operator("tests/guests/hostile-py"),
        &javascript_operator("tests/guests/hostile-js"),
    );
    let err =
        crate::common::run(&yaml, dir.path()).expect_err("the hostile guest must fail its job");
    let msg = err.to_string();
    assert!(msg.contains("uid `py-uid`"), "{msg}");
    msg
}

#[test]
fn hostile_javascript_is_contained_and_the_host_goes_on() {
    let msg = javascript_failure("loop");
    assert!(msg.contains("call timeout of 2s"), "{msg}");
    // Waiting for the clock can only spin: the same timeout.
    let msg = javascript_failure("wait");
    assert!(msg.contains("call timeout of 2s"), "{msg}");
    let msg = javascript_failure("bomb");
    assert!(msg.contains("memory limit of 128 MiB"), "{msg}");
    let msg = javascript_failure("throw");
    assert!(msg.contains("hostile javascript: no such key"), "{msg}");
    // fetch throws an error that says why; uncaught, it fails the task
    // with that message.
    let msg = javascript_failure("fetch");
    assert!(msg.contains("trapped in `process`"), "{msg}");
    assert!(msg.contains("fetch is not available"), "{msg}");
    // Caught, the operator goes on.
    let dir = tempdir();
    let yaml = hostile_python_job("fetch-caught", "").replace(
        &python_operator("tests/guests/hostile-py"),
        &javascript_operator("tests/guests/hostile-js"),
    );
    crate::common::run(&yaml, dir.path()).expect("a caught fetch error");
    let lines = crate::common::output_lines(&dir.path().join("out"));
    assert_eq!(lines.len(), 50, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("error: weir-sdk: fetch is not available")),
        "{lines:?}"
    );
    // The host goes on: a good job runs.
    python_findings("ok", "");
}

#[test]
fn an_uploaded_python_component_is_compiled_once_and_a_bad_one_is_refused_before_compiling() {
    use crate::api::{Server, count_job, http, start_server_under};
    let dir = tempdir();
    let extra = format!(
        "weir.sandbox.cache-dir: {:?}\n",
        dir.path().join("components").display().to_string()
    );
    let wasm = std::fs::read(python_operator("operators/count-py")).expect("count-py");
    let compiles = |server: &Server| {
        let log = server.1.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter(|l| l.contains("compiled a component"))
            .count()
    };
    let compile_of = |port: u16| {
        let (_, list) = http(port, "GET", "/api/v1/bundles", b"");
        list["bundles"][0]["compile"].clone()
    };
    {
        let (server, port) = start_server_under(dir.path(), &[], &extra);
        // Answered before its compile, which follows in the background.
        let (s, v) = http(port, "POST", "/api/v1/bundles?name=count-py.wasm", &wasm);
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["compile"]["state"], "compiling", "{v}");
        // A job submitted meanwhile waits for that compile rather than
        // compiling the component beside it.
        let mut job = count_job("py", 1_000);
        job["job"]["operators"][0]["wasm"] = json!("count-py");
        let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
        assert_eq!(s, 202, "{v}");
        let compile = crate::server::wait_for(120, "the compile", || {
            let c = compile_of(port);
            (c["state"] != "compiling").then_some(c)
        });
        assert_eq!(compile["state"], "ready", "{compile}");
        // What it cost: seconds and memory, measured.
        assert!(
            compile["seconds"].as_f64().is_some_and(|s| s > 0.0),
            "{compile}"
        );
        assert!(
            compile["memory-mib"].as_f64().is_some_and(|m| m > 0.0),
            "{compile}"
        );
        let id = v["jobid"].as_str().expect("jobid").to_owned();
        crate::server::wait_for(120, "the job to finish", || {
            let (_, j) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
            (j["state"] == "FINISHED").then_some(())
        });
        assert_eq!(
            compiles(&server),
            1,
            "{:?}",
            server.1.lock().map(|l| l.clone())
        );
    }
    // A server started again takes the same component from its cache: its
    // bundle is ready without a compile, and ready at once on an upload.
    let (server, port) = start_server_under(dir.path(), &[], &extra);
    assert_eq!(compile_of(port)["state"], "ready");
    let (s, v) = http(
        port,
        "POST",
        "/api/v1/bundles?name=count-py-again.wasm",
        &wasm,
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["compile"]["state"], "ready", "{v}");
    // A component importing what the sandbox does not link is refused by
    // its names, before anything is compiled. The smallest such
    // component: an empty instance type, and an import of it.
    let name = b"wasi:http/outgoing-handler@0.2.0";
    let mut bad = b"\0asm\x0d\0\x01\0".to_vec();
    bad.extend([
        7,
        3,
        1,
        0x42,
        0,
        10,
        name.len() as u8 + 5,
        1,
        0,
        name.len() as u8,
    ]);
    bad.extend(name);
    bad.extend([5, 0]);
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=bad.wasm", &bad);
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("wasi:http/outgoing-handler"), "{v}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        compiles(&server),
        0,
        "{:?}",
        server.1.lock().map(|l| l.clone())
    );
}
