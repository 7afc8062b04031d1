//! Cancelling a job on a real `weir serve`: a cancel stops a guest call
//! that never returns (the call timeout is far away), and cancels racing
//! job ends leave every job in the terminal state the cancel's answer
//! promised, with its output committed exactly once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::{http, start_server_under};
use crate::checkpoints::{expected, sorted_output};
use crate::common::tempdir;
use crate::server::wait_for;

/// The job's state, once it is terminal.
fn ended(port: u16, id: &str, secs: u64) -> Value {
    wait_for(secs, "the job to end", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        matches!(
            v["state"].as_str(),
            Some("FINISHED" | "FAILED" | "CANCELED")
        )
        .then_some(v)
    })
}

/// Whether every line of `part` is in `whole` at least as often (both
/// sorted).
fn is_part_of(part: &[String], whole: &[String]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|line| rest.any(|w| w == line))
}

fn submit(port: u16, job: &Value) -> String {
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    v["jobid"].as_str().expect("jobid").to_owned()
}

/// Asks the server on `port` to cancel job `id`; its answer.
pub(crate) fn cancel(port: u16, id: &str) -> (u16, Value) {
    http(
        port,
        "PATCH",
        &format!("/api/v1/jobs/{id}?mode=cancel"),
        b"",
    )
}

#[test]
fn a_cancel_stops_a_guest_call_that_loops_at_once() {
    let dir = tempdir();
    // A call may run ten minutes on this server: only the cancel can stop
    // the loop.
    let (_server, port) = start_server_under(dir.path(), &[], "weir.sandbox.call-timeout: 10min\n");
    let wasm = std::fs::read(weir_test_guests::HOSTILE).expect("hostile.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=hostile", &wasm);
    assert_eq!(s, 201, "{v}");
    let job = json!({
        "job": {
            "name": "loops",
            "sources": [{ "id": "gen", "type": "datagen", "count": 1000, "keys": 10 }],
            "operators": [{ "id": "bad", "uid": "bad", "wasm": "hostile", "config": { "mode": "loop" } }],
            "sinks": [{ "id": "out", "type": "discard" }],
            "edges": [
                { "from": "gen", "to": "bad", "partition": "hash" },
                { "from": "bad", "to": "out" }
            ]
        }
    });
    let id = submit(port, &job);
    // Until the guest is inside its loop: the source has sent records.
    wait_for(30, "records to reach the guest", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        let sent = v["vertices"][0]["metrics"]["write-records"].as_u64();
        (sent.unwrap_or(0) > 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let (s, v) = cancel(port, &id);
    assert_eq!(s, 202, "{v}");
    let v = ended(port, &id, 30);
    eprintln!("cancelled a looping guest in {:?}", asked.elapsed());
    assert_eq!(v["state"], "CANCELED", "{v}");
    // The server goes on: a second cancel is refused, naming the state.
    let (s, v) = cancel(port, &id);
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("CANCELED"), "{v}");
}

#[test]
fn cancels_racing_job_ends_leave_every_job_in_the_state_its_answer_promised() {
    let (count, keys) = (2_000, 20);
    let dir = tempdir();
    let (_server, port) = start_server_under(dir.path(), &[], "");
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &wasm);
    assert_eq!(s, 201, "{v}");
    let mut jobs = Vec::new();
    for i in 0..50u64 {
        let job = json!({
            "job": {
                "name": format!("race-{i}"),
                "config": { "execution.checkpointing.interval": "100ms" },
                "sources": [{ "id": "gen", "type": "datagen", "count": count, "keys": keys, "rate": 40_000 }],
                "operators": [{ "id": "count", "uid": "count", "wasm": "count" }],
                "sinks": [{ "id": "out", "type": "file", "path": format!("out-{i}") }],
                "edges": [
                    { "from": "gen", "to": "count", "partition": "hash" },
                    { "from": "count", "to": "out" }
                ]
            }
        });
        let id = submit(port, &job);
        // From at once to well after the job's end (about 50 ms of input).
        std::thread::sleep(Duration::from_millis(i * 4));
        let (s, v) = cancel(port, &id);
        jobs.push((i, id, s, v));
    }
    let want = expected(count, keys);
    let (mut cancelled, mut finished) = (0, 0);
    for (i, id, status, answer) in jobs {
        let v = ended(port, &id, 60);
        let folder = dir.path().join(format!("data/files/out-{i}"));
        let output = if folder.exists() {
            sorted_output(&folder)
        } else {
            Vec::new()
        };
        match status {
            202 => {
                assert_eq!(v["state"], "CANCELED", "job {i}: cancel accepted: {v}");
                cancelled += 1;
            }
            409 => {
                assert_eq!(v["state"], "FINISHED", "job {i}: {answer} {v}");
                assert!(answer.to_string().contains("FINISHED"), "{answer}");
                finished += 1;
            }
            other => panic!("job {i}: cancel answered {other}: {answer}"),
        }
        // Exactly once: what a cancelled job committed (its completed
        // checkpoints) is part of the full output, with nothing twice.
        assert!(
            is_part_of(&output, &want),
            "job {i} ({}): {} of {} lines",
            v["state"],
            output.len(),
            want.len()
        );
        if v["state"] == "FINISHED" {
            assert_eq!(output, want, "job {i} finished with all its output");
        }
    }
    eprintln!("{cancelled} cancelled, {finished} finished before the cancel");
}
