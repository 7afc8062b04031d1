//! The dead-letter quarantine (`weir.dead-letter.*`): a poison record that
//! makes its operator trap on every attempt no longer restarts the job
//! without end. It is written once to the job's dead-letter file, with the
//! trap message, and skipped; the job finishes, and every other record is
//! committed exactly once (the output equals that of a job whose operator
//! drops the record). Listed over the API, in the job's exceptions, as a
//! metric and by `weir dead-letters`.

use std::path::Path;

use serde_json::{Value, json};
use weir::{JobControl, RunOptions, run_job};

use crate::api::{TOKEN, http, start_server};
use crate::checkpoints::{CountJob, sorted_output};
use crate::common::{graph, tempdir, weir};
use crate::server::wait_for;

/// The poison: datagen's record 3000, on which `trap-at` panics for good.
const POISON: &str = "mode: trap-at, value: \"3000\", before-ms: \"9223372036854775807\"";
const RESTARTS: &str = "restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 5
restart-strategy.fixed-delay.delay: 10ms";

/// The output of the same job with an operator that drops record 3000.
fn without_the_poison(count: u64, keys: u64, extra: &str) -> Vec<String> {
    let dir = tempdir();
    let job = CountJob {
        count,
        keys,
        hostile: Some("mode: drop, value: \"3000\""),
        extra,
        ..CountJob::default()
    };
    let g = graph(&job.yaml(dir.path()), dir.path()).expect("valid");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("uninterrupted run");
    sorted_output(&dir.path().join("out"))
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("dead-letter file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Runs the count job whose operator fails on record 3000 (`poison`, its
/// hostile config, failing with `message`) with the quarantine on.
fn poisoned_run(backend: &str, poison: &str, message: &str) {
    let (count, keys) = (20_000, 300);
    let dir = tempdir();
    let d = dir.path();
    let extra = format!("weir.dead-letter.enabled: true\n{RESTARTS}\n{backend}");
    let job = CountJob {
        count,
        keys,
        rate: Some(20_000),
        hostile: Some(poison),
        extra: &extra,
        ..CountJob::default()
    };
    let g = graph(&job.yaml(d), d).expect("valid");
    let control = JobControl::default();
    let summary = run_job(&g, &RunOptions::default(), &control).expect("the job finishes");
    assert!((1..=2).contains(&summary.restarts), "{}", summary.restarts);

    let file = d
        .join("dead-letters")
        .join(format!("{}.jsonl", summary.job_id));
    let dead = lines(&file);
    assert_eq!(dead.len(), 1, "quarantined once: {dead:?}");
    let r = &dead[0];
    assert_eq!(
        (r["operator"].as_str(), r["value"].as_str()),
        (Some("hostile"), Some("3000"))
    );
    assert!(
        r["message"].as_str().is_some_and(|m| m.contains(message)),
        "{r}"
    );
    assert_eq!(r["input"], "process");
    assert!(
        r["key"].as_str().is_some_and(|k| k.starts_with("key-")),
        "{r}"
    );
    assert!(r["failures"].as_u64() >= Some(1), "{r}");
    let live = control.live();
    assert_eq!(live.quarantined_count, 1);
    // Exactly once for every other record, state included.
    assert!(
        sorted_output(&d.join("out")) == without_the_poison(count, keys, backend),
        "the output differs from a run without the poison record"
    );
}

#[test]
fn a_poison_record_is_quarantined_once_and_every_other_record_committed_exactly_once() {
    poisoned_run("", POISON, "trap at value 3000");
}

#[test]
fn the_quarantine_works_on_rocksdb_too() {
    poisoned_run("state.backend.type: rocksdb", POISON, "trap at value 3000");
}

#[test]
fn a_record_on_which_the_operator_never_returns_is_quarantined_after_the_call_timeout() {
    poisoned_run(
        "weir.sandbox.call-timeout: 300ms",
        "mode: loop-at, value: \"3000\"",
        "weir.sandbox.call-timeout",
    );
}

#[test]
fn without_the_quarantine_the_poison_exhausts_the_restarts_as_in_flink() {
    let dir = tempdir();
    let d = dir.path();
    let job = CountJob {
        hostile: Some(POISON),
        extra: RESTARTS,
        ..CountJob::default()
    };
    let g = graph(&job.yaml(d), d).expect("valid");
    let err =
        run_job(&g, &RunOptions::default(), &JobControl::default()).expect_err("the job fails");
    assert!(err.to_string().contains("trap at value 3000"), "{err}");
    assert!(!d.join("dead-letters").exists());
}

#[test]
fn quarantined_records_are_listed_over_the_api_in_exceptions_metrics_and_the_cli() {
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    let wasm = std::fs::read(weir_test_guests::HOSTILE).expect("hostile.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=hostile", &wasm);
    assert_eq!(s, 201, "{v}");
    let job = json!({
        "job": {
            "name": "poisoned",
            "config": {
                "execution.checkpointing.interval": "100ms",
                "weir.dead-letter.enabled": true
            },
            "sources": [{ "id": "gen", "type": "datagen", "count": 10_000, "keys": 10, "rate": 20_000 }],
            "operators": [{ "id": "bad", "uid": "bad", "wasm": "hostile",
                "config": { "mode": "trap-at", "value": "3000", "before-ms": "9223372036854775807" } }],
            "sinks": [{ "id": "out", "type": "file", "path": "out" }],
            "edges": [
                { "from": "gen", "to": "bad" },
                { "from": "bad", "to": "out" }
            ]
        }
    });
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    let done = wait_for(60, "the job's end", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        (v["state"] != "RUNNING").then_some(v)
    });
    assert_eq!(done["state"], "FINISHED", "{done}");
    let exceptions = done["exceptions"].as_array().cloned().unwrap_or_default();
    assert!(
        exceptions.iter().any(|e| e["quarantined"] == true
            && e["exception"]
                .as_str()
                .is_some_and(|m| m.contains("trap at value 3000"))),
        "{exceptions:?}"
    );
    let (s, v) = http(port, "GET", &format!("/api/v1/jobs/{id}/dead-letters"), b"");
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["enabled"].as_bool(), v["total"].as_u64()),
        (Some(true), Some(1)),
        "{v}"
    );
    assert_eq!(v["records"][0]["value"], "3000");
    let (_, m) = http(
        port,
        "GET",
        &format!("/api/v1/jobs/{id}/metrics?get=numQuarantinedRecords"),
        b"",
    );
    assert_eq!(m, json!([{ "id": "numQuarantinedRecords", "value": "1" }]));
    // The committed output holds every record but the poison.
    let out = sorted_output(&dir.path().join("data/files/out"));
    assert_eq!(out.len(), 9_999);
    assert!(!out.iter().any(|l| l.ends_with("\t3000")));
    let cli = weir()
        .args(["dead-letters", &id])
        .env("WEIR_SERVER", format!("http://127.0.0.1:{port}"))
        .env("WEIR_TOKEN", TOKEN)
        .output()
        .expect("weir dead-letters");
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        text.contains("1 record(s) quarantined")
            && text.contains("bad[1]")
            && text.contains("value 3000"),
        "{text}"
    );
}
