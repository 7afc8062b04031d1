//! Nothing a user submitted is lost to another submission or to a crash of
//! `weir serve`: a bundle uploaded again under its name keeps the running
//! job on its version, a sink folder belongs to one job at a time, a
//! submission with a job id is idempotent, and a restore source in another
//! job's folder is pinned (a resume without it fails, never restarting
//! from scratch).

use serde_json::{Value, json};

use crate::api::{Server, http, start_server};
use crate::cancel::cancel;
use crate::checkpoints::{expected, sorted_output};
use crate::common::tempdir;
use crate::server::wait_for;

/// A count job over datagen into file sink folder `out`, checkpointing
/// every 100 ms.
pub(crate) fn count_job(name: &str, count: u64, rate: u64, out: &str) -> Value {
    json!({
        "job": {
            "name": name,
            "config": { "execution.checkpointing.interval": "100ms" },
            "sources": [{ "id": "gen", "type": "datagen", "count": count, "keys": 100, "rate": rate }],
            "operators": [{ "id": "count", "uid": "count", "wasm": "count" }],
            "sinks": [{ "id": "out", "type": "file", "path": out }],
            "edges": [
                { "from": "gen", "to": "count", "partition": "hash" },
                { "from": "count", "to": "out" }
            ]
        }
    })
}

fn upload(port: u16, name: &str, path: &str) -> Value {
    let wasm = std::fs::read(path).expect("component");
    let (s, v) = http(port, "POST", &format!("/api/v1/bundles?name={name}"), &wasm);
    assert_eq!(s, 201, "{v}");
    v
}

fn submit(port: u16, job: &Value) -> String {
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    v["jobid"].as_str().expect("jobid").to_owned()
}

fn state(port: u16, id: &str) -> Value {
    http(port, "GET", &format!("/api/v1/jobs/{id}"), b"").1
}

fn checkpoints(port: u16, id: &str) -> Value {
    http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"").1
}

/// Waits until job `id` completed a checkpoint; returns its path.
fn a_checkpoint(port: u16, id: &str) -> String {
    wait_for(30, "a checkpoint", || {
        let c = checkpoints(port, id);
        c["latest"]["completed"]["external_path"]
            .as_str()
            .map(str::to_owned)
    })
}

fn sigkill_and_restart(server: &mut Server, dir: &std::path::Path) -> u16 {
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reap");
    let (next, port) = start_server(dir);
    *server = next;
    port
}

#[test]
fn a_bundle_uploaded_again_keeps_the_running_job_on_its_version_through_a_sigkill() {
    let dir = tempdir();
    let (mut server, port) = start_server(dir.path());
    let first = upload(port, "count", weir_test_guests::COUNT);
    let id = submit(port, &count_job("versions", 1_000_000_000, 20_000, "out"));
    a_checkpoint(port, &id);
    // Another component under the same name: a second version.
    let second = upload(port, "count", weir_test_guests::SUBTASK_COUNT);
    assert_eq!(
        (first["version"].as_u64(), second["version"].as_u64()),
        (Some(1), Some(2))
    );
    assert_ne!(first["id"], second["id"]);
    let (_, list) = http(port, "GET", "/api/v1/bundles", b"");
    let versions = list["bundles"].as_array().expect("bundles");
    assert_eq!(versions.len(), 2, "{list}");
    let used = versions
        .iter()
        .find(|b| b["id"] == first["id"])
        .expect("v1");
    assert_eq!(used["jobs"], json!([id]), "the job uses version 1: {list}");
    let (s, v) = http(port, "DELETE", "/api/v1/bundles/count", b"");
    assert_eq!(s, 409, "a name one of whose versions runs stays: {v}");

    let port = sigkill_and_restart(&mut server, dir.path());
    let c = wait_for(30, "the resume", || {
        let c = checkpoints(port, &id);
        c["latest"]["restored"].is_object().then_some(c)
    });
    assert!(c["latest"]["restored"]["id"].as_u64() >= Some(1), "{c}");
    assert_eq!(state(port, &id)["state"], "RUNNING");
    let (_, list) = http(port, "GET", "/api/v1/bundles", b"");
    let used = list["bundles"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == first["id"]).cloned())
        .expect("version 1 is kept");
    assert_eq!(used["jobs"], json!([id]), "resumed on version 1: {list}");
    // Deleting version 2 alone, by id, is allowed; the job runs on.
    let v2 = second["id"].as_str().expect("id");
    let (s, v) = http(port, "DELETE", &format!("/api/v1/bundles/{v2}"), b"");
    assert_eq!(s, 204, "{v}");
    let (s, _) = cancel(port, &id);
    assert_eq!(s, 202);
}

#[test]
fn a_sink_folder_belongs_to_one_job_at_a_time() {
    let (count, rate) = (60_000, 20_000);
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    upload(port, "count", weir_test_guests::COUNT);
    let first = submit(port, &count_job("first", count, rate, "shared-out"));
    a_checkpoint(port, &first);
    // The same folder, spelled another way (absolute).
    let spelled = dir.path().join("data/files/./shared-out");
    let spelled = spelled.to_str().expect("utf-8 path");
    let (s, v) = http(
        port,
        "POST",
        "/api/v1/jobs",
        count_job("second", count, rate, spelled)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(s, 409, "{v}");
    let text = v.to_string();
    assert!(
        text.contains(&first) && text.contains("shared-out"),
        "{text}"
    );
    let done = wait_for(60, "the first job's end", || {
        let v = state(port, &first);
        (v["state"] != "RUNNING").then_some(v)
    });
    assert_eq!(done["state"], "FINISHED", "{done}");
    let out = dir.path().join("data/files/shared-out");
    assert_eq!(sorted_output(&out), expected(count, 100), "intact");
    // Once it ended, the folder is free.
    let second = submit(port, &count_job("second", 10, rate, "shared-out"));
    let done = wait_for(60, "the second job's end", || {
        let v = state(port, &second);
        (v["state"] != "RUNNING").then_some(v)
    });
    assert_eq!(done["state"], "FINISHED", "{done}");
}

#[test]
fn a_submission_with_a_job_id_is_idempotent() {
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    upload(port, "count", weir_test_guests::COUNT);
    let id = "0123456789abcdef0123456789abcdef";
    let mut job = count_job("once", 1_000_000_000, 1_000, "once-out");
    job["jobId"] = json!(id);
    assert_eq!(submit(port, &job), id);
    assert_eq!(submit(port, &job), id, "a retry answers the same job");
    // Also once the bundle name points at a newer version: the retry is
    // the same request as the client sent it.
    upload(port, "count", weir_test_guests::SUBTASK_COUNT);
    assert_eq!(submit(port, &job), id, "a retry after a re-upload");
    let (_, list) = http(port, "GET", "/api/v1/jobs", b"");
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(1), "{list}");
    let mut other = count_job("other", 5, 1_000, "other-out");
    other["jobId"] = json!(id);
    let (s, v) = http(port, "POST", "/api/v1/jobs", other.to_string().as_bytes());
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("different request"), "{v}");
    other["jobId"] = json!("../../etc");
    let (s, v) = http(port, "POST", "/api/v1/jobs", other.to_string().as_bytes());
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("32 lowercase hex"), "{v}");
}

#[test]
fn a_restore_source_in_another_jobs_folder_is_pinned_and_a_resume_never_starts_afresh() {
    let dir = tempdir();
    let (mut server, port) = start_server(dir.path());
    upload(port, "count", weir_test_guests::COUNT);
    let mut source = count_job("source", 1_000_000_000, 20_000, "source-out");
    source["job"]["config"]["execution.checkpointing.externalized-checkpoint-retention"] =
        json!("RETAIN_ON_CANCELLATION");
    let first = submit(port, &source);
    a_checkpoint(port, &first);
    let (s, _) = cancel(port, &first);
    assert_eq!(s, 202);
    wait_for(30, "the cancel", || {
        (state(port, &first)["state"] == "CANCELED").then_some(())
    });
    // A job that restores from the checkpoint the source retained (found
    // on disk: older ones are subsumed, also while the source stops), into
    // its sink folder, and takes no checkpoints of its own.
    let retained = dir.path().join("data/checkpoints").join(&first);
    let (path, id) = wait_for(30, "a submission from the retained checkpoint", || {
        let (_, path) = weir::completed_in(&retained)
            .into_iter()
            .max_by_key(|(n, _)| *n)?;
        let path = path.display().to_string();
        let mut job = count_job("restored", 1_000_000_000, 20_000, "source-out");
        job["job"]["config"] = json!({});
        job["savepointPath"] = json!(path);
        let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
        (s == 202).then(|| (path, v["jobid"].as_str().expect("jobid").to_owned()))
    });
    wait_for(30, "the restore", || {
        checkpoints(port, &id)["latest"]["restored"]
            .is_object()
            .then_some(())
    });
    // The source job's retention deletes its folder; the server crashes.
    let source_dir = std::path::Path::new(&path).parent().expect("job folder");
    std::fs::remove_dir_all(source_dir).expect("delete the source job's checkpoints");
    let port = sigkill_and_restart(&mut server, dir.path());
    let c = wait_for(30, "the resume from the pin", || {
        let c = checkpoints(port, &id);
        c["latest"]["restored"].is_object().then_some(c)
    });
    assert_eq!(state(port, &id)["state"], "RUNNING", "{c}");

    // Without the pin too, the resume fails, saying why.
    let pin = dir
        .path()
        .join("data/checkpoints")
        .join(&id)
        .join("restore-source");
    assert!(pin.is_dir(), "pinned in {}", pin.display());
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reap");
    std::fs::remove_dir_all(&pin).expect("delete the pin");
    let (_server, port) = start_server(dir.path());
    let v = state(port, &id);
    assert_eq!(v["state"], "FAILED", "{v}");
    assert!(v.to_string().contains("restore source is gone"), "{v}");
}
