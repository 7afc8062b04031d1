//! Failures a restart cannot fix end the restart loop. A restore that
//! cannot succeed (here: a file the checkpoint pre-committed was deleted
//! by hand) falls back to the previous retained checkpoint, exactly once;
//! with none left, the job fails at once with the message instead of
//! restarting for good under `exponential-delay`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir::RestorePoint;

use crate::api::{Server, http, start_server};
use crate::checkpoints::{CountJob, expected, latest_checkpoint, sorted_output, spawn};
use crate::common::tempdir;
use crate::server::wait_for;

/// Deletes one file that checkpoint `chk` pre-committed for sink `uid` in
/// `folder`, pending or already committed; returns its name.
fn delete_a_precommitted_file(chk: &Path, uid: &str, folder: &Path) -> String {
    let point = RestorePoint::open(chk).expect("checkpoint");
    let states: Vec<Value> = point
        .operator_states(uid)
        .concat()
        .iter()
        .map(|b| serde_json::from_slice(b).expect("file-sink state"))
        .collect();
    let name = states
        .iter()
        .flat_map(|s| s["pending"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .next()
        .expect("the checkpoint pre-committed a file");
    let pending = folder.join(format!(".{name}.pending"));
    let committed = folder.join(&name);
    let victim = if pending.exists() { pending } else { committed };
    std::fs::remove_file(&victim).expect("delete the pre-committed file");
    name
}

#[test]
fn a_pre_committed_file_deleted_by_hand_falls_back_to_the_previous_checkpoint_exactly_once() {
    let (count, keys) = (100_000, 100);
    let dir = tempdir();
    let (mut server, port) = start_server(dir.path());
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &wasm);
    assert_eq!(s, 201, "{v}");
    let job = json!({
        "job": {
            "name": "fallback",
            "config": {
                "execution.checkpointing.interval": "100ms",
                "state.checkpoints.num-retained": 3
            },
            "sources": [{ "id": "gen", "type": "datagen", "count": count, "keys": keys, "rate": 20_000 }],
            "operators": [{ "id": "count", "uid": "count", "wasm": "count", "parallelism": 2 }],
            "sinks": [{ "id": "out", "type": "file", "path": "out", "parallelism": 2 }],
            "edges": [
                { "from": "gen", "to": "count", "partition": "hash" },
                { "from": "count", "to": "out" }
            ]
        }
    });
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    let checkpoints = dir.path().join("data/checkpoints");
    wait_for(30, "three checkpoints", || {
        let job_dir = checkpoints.join(&id);
        (weir::completed_in(&job_dir).len() >= 3).then_some(())
    });
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reap");
    let (newest, chk) = weir::completed_in(&checkpoints.join(&id))
        .into_iter()
        .max_by_key(|(n, _)| *n)
        .expect("a retained checkpoint");
    let out = dir.path().join("data/files/out");
    let deleted = delete_a_precommitted_file(&chk, "out", &out);

    let started = Instant::now();
    let (next, port) = start_server(dir.path());
    let _server: Server = next;
    let done = wait_for(120, "the job's end", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        (v["state"] != "RUNNING").then_some(v)
    });
    assert_eq!(done["state"], "FINISHED", "{done}");
    let text = done.to_string();
    assert!(
        text.contains(&format!("checkpoint {newest} cannot be restored"))
            && text.contains(&deleted),
        "the fallback is shown: {text}"
    );
    assert_eq!(
        done["restarts"].as_u64().unwrap_or(0),
        0,
        "no restart was spent: {done}"
    );
    eprintln!(
        "fell back from checkpoint {newest} and finished in {:?}",
        started.elapsed()
    );
    assert!(
        sorted_output(&out) == expected(count, keys),
        "committed output differs from an uninterrupted run"
    );
}

/// Runs the spec at `yaml` with `weir run` until `dir` holds checkpoint
/// `n`, then SIGKILLs it; the newest checkpoint.
fn killed_after_checkpoints(yaml: &Path, dir: &Path, n: u64) -> std::path::PathBuf {
    let mut child = spawn(yaml, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while latest_checkpoint(dir).is_none_or(|(id, _)| id < n) {
        assert!(Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    latest_checkpoint(dir).expect("a checkpoint").1
}

#[test]
fn with_no_checkpoint_left_to_try_the_job_fails_at_once_with_the_message() {
    let dir = tempdir();
    let job = CountJob {
        count: 1_000_000_000,
        rate: Some(20_000),
        // Flink's default, which would restart for good.
        extra: "restart-strategy.type: exponential-delay",
        ..CountJob::default()
    };
    let yaml = dir.path().join("job.yaml");
    std::fs::write(&yaml, job.yaml(dir.path())).expect("spec");
    let chk = killed_after_checkpoints(&yaml, dir.path(), 3);
    let deleted = delete_a_precommitted_file(&chk, "out", &dir.path().join("out"));

    // Restored into a new job: it has no checkpoint of its own to fall
    // back to.
    let child = spawn(&yaml, Some(&chk));
    let out = child.wait_with_output().expect("weir run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&deleted) && err.contains("missing"),
        "the message names the file: {err}"
    );
    assert!(!err.contains("restart 1"), "no restart loop: {err}");
}

#[test]
fn a_restore_into_a_sink_pointing_at_another_folder_is_refused_unless_started_afresh() {
    let dir = tempdir();
    let job = CountJob {
        count: 1_000_000_000,
        rate: Some(20_000),
        ..CountJob::default()
    };
    let yaml = dir.path().join("job.yaml");
    std::fs::write(&yaml, job.yaml(dir.path())).expect("spec");
    let chk = killed_after_checkpoints(&yaml, dir.path(), 2);
    let old = dir.path().join("out");
    let before = std::fs::read_dir(&old).expect("out").count();

    // The same job, its sink now in `elsewhere`, which lacks the files.
    let moved = job
        .yaml(dir.path())
        .replace("path: out,", "path: elsewhere,")
        .replace("count: 1000000000", "count: 100000");
    let moved_yaml = dir.path().join("moved.yaml");
    std::fs::write(&moved_yaml, &moved).expect("spec");
    let out = spawn(&moved_yaml, Some(&chk))
        .wait_with_output()
        .expect("weir run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("sink `out`")
            && err.contains(&old.display().to_string())
            && err.contains("elsewhere"),
        "names both folders: {err}"
    );
    assert!(err.contains("weir.sink.file.allow-new-folder"), "{err}");
    let elsewhere = dir.path().join("elsewhere");
    assert!(
        !elsewhere.exists() || sorted_output(&elsewhere).is_empty(),
        "nothing written"
    );

    // Allowed: it starts the new folder afresh and finishes; the old
    // folder is left as it was.
    let afresh = moved.replace(
        "config:\n",
        "config:\n  weir.sink.file.allow-new-folder: true\n",
    );
    std::fs::write(&moved_yaml, afresh).expect("spec");
    let out = spawn(&moved_yaml, Some(&chk))
        .wait_with_output()
        .expect("weir run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want = expected(100_000, 500);
    let got = sorted_output(&elsewhere);
    assert!(!got.is_empty(), "output in the new folder");
    let mut rest = want.iter();
    assert!(
        got.iter().all(|line| rest.any(|w| w == line)),
        "the new folder holds part of the full output, nothing twice"
    );
    assert_eq!(
        std::fs::read_dir(&old).expect("out").count(),
        before,
        "old folder untouched"
    );
}
