//! `weir serve` with its checkpoints and savepoints roots in S3 (a moto
//! server of its own, `scripts/s3`): a job's checkpoints go to the bucket
//! and a server killed with SIGKILL resumes the job from them, exactly
//! once; savepoints go to the bucket, restore a new job and are disposed
//! of there; locations outside the roots are refused.

use serde_json::{Value, json};

use crate::api::{TOKEN, http, start_server_under};
use crate::checkpoints::{assert_uninterrupted, sorted_output};
use crate::common::tempdir;
use crate::s3::{KEY, S3Server, SECRET};
use crate::server::wait_for;

/// The job's checkpoint statistics, once `ready` says they hold what the
/// test waits for.
fn checkpoints_when(port: u16, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wait_for(60, what, || {
        let (_, c) = http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"");
        ready(&c).then_some(c)
    })
}

/// Starts the operation `POST path` with `body` and waits until it
/// completes; its `operation` (a `location` or a `failure-cause`).
fn operation(port: u16, path: &str, body: &Value) -> Value {
    let (s, v) = http(port, "POST", path, body.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let trigger = v["request-id"].as_str().expect("request-id");
    crate::savepoints::completed(port, &format!("{path}/{trigger}"))
}

/// Submits the counting job `name` (restored from `from` if given); its id.
fn submit(port: u16, name: &str, count: u64, from: Option<&str>) -> String {
    let mut job = json!({
        "job": {
            "name": name,
            "config": { "execution.checkpointing.interval": "100ms" },
            "sources": [{ "id": "gen", "type": "datagen", "count": count, "keys": 1_000, "rate": 40_000 }],
            "operators": [{ "id": "count", "uid": "count", "wasm": "count", "parallelism": 2 }],
            "sinks": [{ "id": "out", "type": "file", "path": name, "parallelism": 2 }],
            "edges": [
                { "from": "gen", "to": "count", "partition": "hash" },
                { "from": "count", "to": "out" }
            ]
        }
    });
    if let Some(from) = from {
        job["savepointPath"] = json!(from);
    }
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    v["jobid"].as_str().expect("jobid").to_owned()
}

#[test]
fn a_server_keeps_checkpoints_and_savepoints_in_a_bucket() {
    let count = 200_000;
    let s3 = S3Server::start();
    s3.bucket("weir-checkpoints");
    s3.bucket("weir-savepoints");
    let dir = tempdir();
    // A root in a bucket that does not exist stops the server at its
    // start, naming the bucket and not the secret.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "rest.port: 0\nweir.server.data-dir: {:?}\nweir.server.token: {TOKEN}\nstate.checkpoints.dir: s3://no-such-bucket/jobs\n{}",
            dir.path().join("bad").display().to_string(),
            s3.yaml(KEY, SECRET)
        ),
    )
    .expect("config");
    let err = crate::api::serve_refused(&bad);
    assert!(
        err.contains("no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    let extra = format!(
        "state.checkpoints.dir: s3://weir-checkpoints/jobs\nexecution.checkpointing.savepoint-dir: s3://weir-savepoints/sp\n{}",
        s3.yaml(KEY, SECRET)
    );
    let (mut first, port) = start_server_under(dir.path(), &[], &extra);
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count.wasm", &wasm);
    assert_eq!(s, 201, "{v}");
    let id = submit(port, "first", count, None);
    let in_bucket = format!("s3://weir-checkpoints/jobs/{id}/chk-");
    checkpoints_when(port, &id, "a checkpoint in the bucket", |c| {
        c["latest"]["completed"]["external_path"]
            .as_str()
            .is_some_and(|p| p.starts_with(&in_bucket))
    });

    // Savepoints go under the savepoints root, which a target outside it
    // cannot leave.
    for outside in [
        "s3://weir-savepoints/other",
        "s3://weir-checkpoints/jobs",
        "/tmp",
    ] {
        let (s, v) = http(
            port,
            "POST",
            &format!("/api/v1/jobs/{id}/savepoints"),
            json!({ "targetDirectory": outside }).to_string().as_bytes(),
        );
        assert_eq!(s, 400, "{outside}: {v}");
        assert!(v.to_string().contains("outside the savepoints root"), "{v}");
    }
    let done = operation(
        port,
        &format!("/api/v1/jobs/{id}/savepoints"),
        &json!({ "targetDirectory": "manual" }),
    );
    let location = done["location"].as_str().unwrap_or_default().to_owned();
    assert!(
        location.starts_with("s3://weir-savepoints/sp/manual/savepoint-"),
        "{done}"
    );

    // SIGKILL: the server started again resumes the job from its newest
    // checkpoint in the bucket, and the job's output is exactly once.
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("reap");
    let (_second, port) = start_server_under(dir.path(), &[], &extra);
    let c = checkpoints_when(port, &id, "the restore", |c| {
        c["latest"]["restored"].is_object()
    });
    assert!(
        c["latest"]["restored"]["external_path"]
            .as_str()
            .is_some_and(|p| p.starts_with(&in_bucket)),
        "{c}"
    );
    let state = wait_for(120, "the job to finish", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        (v["state"] != "RUNNING").then_some(v)
    });
    assert_eq!(state["state"], "FINISHED", "{state}");
    assert_uninterrupted(
        &sorted_output(&dir.path().join("data/files/first")),
        count,
        1_000,
    );
    // A finished job's checkpoints are deleted from the bucket.
    let bucket = s3.open("weir-checkpoints");
    let left: Vec<String> = bucket
        .list(&format!("jobs/{id}"))
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(
        left.iter().all(|k| !k.contains("/chk-")),
        "checkpoints left: {left:?}"
    );

    // A new job restores from the savepoint in the bucket.
    let second = submit(port, "second", count, Some(&location));
    let c = checkpoints_when(port, &second, "the restore", |c| {
        c["latest"]["restored"].is_object()
    });
    assert_eq!(
        c["latest"]["restored"]["external_path"],
        location.as_str(),
        "{c}"
    );
    let (s, v) = http(
        port,
        "PATCH",
        &format!("/api/v1/jobs/{second}?mode=cancel"),
        b"",
    );
    assert_eq!(s, 202, "{v}");

    // The server lists it, with the job that wrote it.
    let (_, v) = http(port, "GET", &format!("/api/v1/savepoints?job={id}"), b"");
    assert_eq!(v["savepoints"][0]["path"], location.as_str(), "{v}");
    // Disposed of over the API: nothing of it is left in the bucket, and
    // the server no longer lists it.
    let done = operation(
        port,
        "/api/v1/savepoint-disposal",
        &json!({ "savepointPath": &location }),
    );
    assert!(done["failure-cause"].is_null(), "{done}");
    let key = location.trim_start_matches("s3://weir-savepoints/");
    let savepoints = s3.open("weir-savepoints");
    assert!(savepoints.list(key).expect("list").is_empty(), "{key}");
    let (_, v) = http(port, "GET", "/api/v1/savepoints", b"");
    assert!(!v.to_string().contains(&location), "still listed: {v}");
}

#[test]
fn a_server_that_crashed_after_a_stop_finds_the_stop_in_the_bucket() {
    let s3 = S3Server::start();
    s3.bucket("weir-checkpoints");
    let dir = tempdir();
    let extra = format!(
        "state.checkpoints.dir: s3://weir-checkpoints/jobs\n{}",
        s3.yaml(KEY, SECRET)
    );
    let (first, port) = start_server_under(dir.path(), &[], &extra);
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count.wasm", &wasm);
    assert_eq!(s, 201, "{v}");
    let id = submit(port, "stopped", 100_000_000, None);
    checkpoints_when(port, &id, "a checkpoint", |c| {
        c["latest"]["completed"].is_object()
    });
    let (s, v) = http(
        port,
        "POST",
        &format!("/api/v1/jobs/{id}/stop"),
        br#"{"triggerId": "s"}"#,
    );
    assert_eq!(s, 202, "{v}");
    let state = wait_for(60, "the job to finish", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        (v["state"] == "FINISHED").then_some(v)
    });
    let (_, op) = http(port, "GET", &format!("/api/v1/jobs/{id}/savepoints/s"), b"");
    let location = op["operation"]["location"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!location.is_empty(), "{op} {state}");
    drop(first);
    // The crash window: the stop completed (its marker is in the bucket)
    // but the job's record still says RUNNING.
    crate::savepoints::record_as_running(dir.path(), &id);
    let bucket = s3.open("weir-checkpoints");
    bucket
        .put(&format!("jobs/{id}/_stopped"), location.into_bytes())
        .expect("marker");
    let (_second, port) = start_server_under(dir.path(), &[], &extra);
    let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
    assert_eq!(
        v["state"], "FINISHED",
        "the stopped job does not run again: {v}"
    );
    let left = bucket.list(&format!("jobs/{id}")).expect("list");
    assert!(left.is_empty(), "its folder is discarded: {left:?}");
}
