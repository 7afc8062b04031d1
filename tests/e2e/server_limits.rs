//! A server that clients cannot exhaust: 2,000 idle connections against a
//! `weir serve` limited to 1,024 file descriptors, while a job runs. The
//! job's checkpoints keep completing and authorized requests are answered
//! within seconds (before the accept loop was bounded, the server ran out
//! of descriptors, stopped accepting, and its jobs could no longer open
//! checkpoint files).

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{count_job, http, start_server_under};
use crate::common::tempdir;

/// Uploads `count` to the server on `port` and submits an endless count
/// job named `name` with job `config`; its id.
fn running_count_job(port: u16, name: &str, config: Value) -> String {
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = crate::api::http(port, "POST", "/api/v1/bundles?name=count", &count);
    assert_eq!(s, 201, "{v}");
    let mut job = count_job(name, 1_000_000_000);
    job["job"]["config"] = config;
    let (s, v) = crate::api::http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    v["jobid"].as_str().expect("jobid").to_owned()
}

/// An authorized request, if it is answered within `patience`.
fn answered(port: u16, path: &str, patience: Duration) -> Option<(u16, Value)> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(http(port, "GET", &path, b""));
    });
    rx.recv_timeout(patience).ok()
}

fn completed(port: u16, id: &str) -> u64 {
    let (s, v) = answered(
        port,
        &format!("/api/v1/jobs/{id}/checkpoints"),
        Duration::from_secs(5),
    )
    .expect("the API answers within 5 s");
    assert_eq!(s, 200, "{v}");
    v["counts"]["completed"].as_u64().expect("completed")
}

#[test]
fn two_thousand_idle_connections_neither_starve_the_api_nor_the_job() {
    let dir = tempdir();
    let (_server, port) = start_server_under(dir.path(), &["prlimit", "--nofile=1024:1024"], "");
    let id = running_count_job(
        port,
        "busy",
        json!({ "execution.checkpointing.interval": "100ms" }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while completed(port, &id) < 2 {
        assert!(Instant::now() < deadline, "no checkpoint before the flood");
        std::thread::sleep(Duration::from_millis(50));
    }

    // 2,000 connections that never send a byte, held open by the client
    // (which may use as many descriptors as its hard limit allows).
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, raised);
    let mut idle = Vec::with_capacity(2000);
    for _ in 0..2000 {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    let before = completed(port, &id);
    std::thread::sleep(Duration::from_secs(2));
    let after = completed(port, &id);
    assert!(after > before, "checkpoints stopped: {before} then {after}");
    let (s, v) = answered(port, &format!("/api/v1/jobs/{id}"), Duration::from_secs(5))
        .expect("the job detail within 5 s");
    assert_eq!((s, v["state"].as_str()), (200, Some("RUNNING")), "{v}");
    drop(idle);
}

#[test]
fn a_job_may_lower_the_servers_limits_but_never_raise_them() {
    let dir = tempdir();
    let limits = "weir.sandbox.call-timeout: 5s\nweir.sandbox.memory-limit: 64mb\nweir.server.max-subtasks: 8\n";
    let (_server, port) = start_server_under(dir.path(), &[], limits);
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &count);
    assert_eq!(s, 201, "{v}");
    let submit = |config: Value, parallelism: u32| {
        let mut job = count_job("limited", 1_000);
        job["job"]["config"] = config;
        job["parallelism"] = json!(parallelism);
        http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes())
    };
    let (s, v) = submit(
        json!({
            "weir.sandbox.call-timeout": "1h",
            "weir.sandbox.memory-limit": "4gb",
            "execution.checkpointing.interval": "10ms",
            "state.checkpoints.num-retained": "50",
        }),
        5,
    );
    assert_eq!(s, 400, "{v}");
    let text = v.to_string();
    for says in [
        "config.weir.sandbox.call-timeout: asks for 3600000ms; the server allows at most 5000ms",
        "config.weir.sandbox.memory-limit: asks for 4294967296 bytes; the server allows at most 67108864 bytes",
        "config.execution.checkpointing.interval: asks for 10ms; the server allows at least 100ms",
        "config.state.checkpoints.num-retained: asks for 50; the server allows at most 10",
        "parallelism: asks for 15 subtasks; the server allows at most 8",
    ] {
        assert!(text.contains(says), "{says:?} not in {text}");
    }
    let (_, jobs) = http(port, "GET", "/api/v1/jobs", b"");
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(0), "{jobs}");
    // Lower limits are the job's to take.
    let (s, v) = submit(
        json!({ "weir.sandbox.call-timeout": "1s", "weir.sandbox.memory-limit": "32mb" }),
        2,
    );
    assert_eq!(s, 202, "{v}");
}

#[test]
fn uploads_beyond_the_concurrency_limit_are_answered_503_until_one_ends() {
    use std::io::Write;
    let dir = tempdir();
    let (_server, port) =
        start_server_under(dir.path(), &[], "weir.server.max-concurrent-uploads: 1\n");
    // An upload whose body never finishes holds the only permit.
    let open_slow = || {
        let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            slow,
            "POST /api/v1/bundles?name=slow HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Length: 1000000\r\n\r\n\0asm",
            crate::api::TOKEN
        )
        .expect("write");
        slow.flush().expect("flush");
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .expect("timeout");
        slow
    };
    let mut slow = open_slow();
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &count);
        if s == 503 {
            assert!(v.to_string().contains("max-concurrent-uploads"), "{v}");
            break;
        }
        // The slow upload may not have reached its handler yet, or (on a
        // busy machine) reached it while this upload held the permit, and
        // was refused itself: then it is sent again.
        let mut answer = [0u8; 64];
        if matches!(std::io::Read::read(&mut slow, &mut answer), Ok(n) if n > 0) {
            slow = open_slow();
        }
        assert!(Instant::now() < deadline, "never refused: {s} {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &count);
        if s == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the permit was not given back: {s} {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `bytes` (a component) with a custom section named `weir-test` holding
/// `tag` appended: the same component, under a hash no cache has seen.
fn unique_component(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"weir-test";
    let payload: Vec<u8> = [&[name.len() as u8][..], name, tag.as_bytes()].concat();
    assert!(payload.len() < 128, "one-byte LEB128 size");
    [bytes, &[0u8, payload.len() as u8][..], &payload].concat()
}

#[test]
fn a_compile_past_the_compile_timeout_is_reported_late_and_then_how_it_ended() {
    let dir = tempdir();
    let (server, port) = start_server_under(dir.path(), &[], "weir.server.compile-timeout: 1ms\n");
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    // Never compiled before, so it cannot be a cache hit.
    let tag = format!("{:?}", Instant::now());
    let wasm = unique_component(&count, &tag);
    // Answered once checked and stored; the compile comes after.
    let (s, v) = crate::api::http(port, "POST", "/api/v1/bundles?name=count", &wasm);
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["compile"]["state"], "compiling", "{v}");
    // Past the limit it is said to be late (and shown failed meanwhile)...
    crate::server::wait_for(30, "the late compile's log line", || {
        let log = server.1.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .any(|l| l.contains("took longer than weir.server.compile-timeout"))
            .then_some(())
    });
    // ...and once it ends, how it went replaces that: a job may use it.
    let compile = crate::server::wait_for(30, "the compile to end", || {
        let (_, list) = crate::api::http(port, "GET", "/api/v1/bundles", b"");
        let compile = list["bundles"][0]["compile"].clone();
        (compile["state"] == "ready").then_some(compile)
    });
    assert!(compile["seconds"].as_f64().is_some(), "{compile}");
    let (s, v) = crate::api::http(
        port,
        "POST",
        "/api/v1/jobs",
        count_job("late", 100).to_string().as_bytes(),
    );
    assert_eq!(s, 202, "{v}");
}

#[test]
fn a_servers_rocksdb_working_folders_live_in_its_private_data_folder() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let (_server, port) = start_server_under(dir.path(), &[], "");
    let id = running_count_job(
        port,
        "on-rocksdb",
        json!({ "state.backend.type": "rocksdb" }),
    );
    let root = dir.path().join("data/rocksdb");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !root.join(&id).is_dir() {
        assert!(
            Instant::now() < deadline,
            "no working folder under {}",
            root.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mode = std::fs::metadata(&root).expect("root").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

fn hostile_job(name: &str, mode: &str, parallelism: u32) -> Value {
    json!({
        "job": {
            "name": name,
            "sources": [{ "id": "gen", "type": "datagen", "count": 1_000_000_000, "keys": 50, "rate": 1000 }],
            "operators": [{ "id": "bad", "uid": "bad", "wasm": "hostile",
                "parallelism": parallelism, "config": { "mode": mode } }],
            "sinks": [{ "id": "out", "type": "discard" }],
            "edges": [
                { "from": "gen", "to": "bad", "partition": "hash" },
                { "from": "bad", "to": "out", "partition": "rebalance" }
            ]
        }
    })
}

fn state_of(port: u16, id: &str) -> String {
    let (_, v) = crate::api::http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
    v["state"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn memory_budgets_refuse_what_does_not_fit_and_a_memory_bomb_fails_alone() {
    let dir = tempdir();
    let (_server, port) = start_server_under(dir.path(), &[], "weir.server.memory-budget: 3gb\n");
    for (name, path) in [
        ("count", weir_test_guests::COUNT),
        ("hostile", weir_test_guests::HOSTILE),
    ] {
        let wasm = std::fs::read(path).expect("component");
        let (s, v) = crate::api::http(port, "POST", &format!("/api/v1/bundles?name={name}"), &wasm);
        assert_eq!(s, 201, "{v}");
    }
    let submit =
        |job: &Value| crate::api::http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    // 64 subtasks of 128 MiB guests: more than the whole budget.
    let (s, v) = submit(&hostile_job("bomb-64", "bomb", 64));
    assert_eq!(s, 400, "{v}");
    let text = v.to_string();
    assert!(
        text.contains("the job may use up to") && text.contains("guest memory 8192 MiB"),
        "{text}"
    );
    // Two count jobs of about 1.2 GiB fit in 3 GiB; a third does not.
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        let (s, v) = submit(&count_job(name, 1_000_000_000));
        assert_eq!(s, 202, "{v}");
        ids.push(v["jobid"].as_str().expect("jobid").to_owned());
    }
    let (s, v) = submit(&count_job("c", 1_000_000_000));
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("the running jobs leave"), "{v}");
    // Once one ends, a memory bomb fits its budget, and fails alone.
    let (s, _) = crate::cancel::cancel(port, &ids[1]);
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while state_of(port, &ids[1]) != "CANCELED" {
        assert!(Instant::now() < deadline, "not cancelled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, v) = submit(&hostile_job("bomb-1", "bomb", 1));
    assert_eq!(s, 202, "{v}");
    let bomb = v["jobid"].as_str().expect("jobid").to_owned();
    while state_of(port, &bomb) == "RUNNING" {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "the bomb runs on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, v) = crate::api::http(port, "GET", &format!("/api/v1/jobs/{bomb}"), b"");
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(v.to_string().contains("exceeded its memory limit"), "{v}");
    assert_eq!(state_of(port, &ids[0]), "RUNNING", "the other job runs on");
}
