//! `weir serve` as a user relies on it: jobs that survive a SIGKILL of the
//! server with exactly-once output, paths confined to the server's roots,
//! checkpoint configuration and manual triggers, restores from a named
//! checkpoint, multipart uploads, and the API `weir run` serves.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::{
    TOKEN, app, call, cancel, count_job, error_text, get, http, request, runtime, start_server,
    submit, upload_count,
};
use crate::checkpoints::{assert_uninterrupted, sorted_output};
use crate::common::{tempdir, weir};

/// Polls `f` every 50 ms until it gives `Some`, for at most `secs`.
pub(crate) fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A metric of job `id` as a number (-1 when absent).
fn metric(port: u16, id: &str, name: &str) -> i64 {
    let (_, v) = http(
        port,
        "GET",
        &format!("/api/v1/jobs/{id}/metrics?get={name}"),
        b"",
    );
    v[0]["value"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

#[test]
fn a_server_killed_with_sigkill_resumes_its_job_exactly_once() {
    let (count, keys) = (200_000, 1_000);
    let dir = tempdir();
    let (mut server, mut port) = start_server(dir.path());
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count.wasm", &wasm);
    assert_eq!(s, 201, "{v}");
    let job = json!({
        "job": {
            "name": "resumed",
            "config": { "execution.checkpointing.interval": "100ms" },
            "sources": [{ "id": "gen", "type": "datagen", "count": count, "keys": keys, "rate": 40_000 }],
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

    // Twice: wait for checkpoints, then SIGKILL the server and start it
    // again on the same data folder.
    for round in 0..2 {
        let before = metric(port, &id, "numberOfCompletedCheckpoints").max(0);
        wait_for(30, "checkpoints", || {
            (metric(port, &id, "numberOfCompletedCheckpoints") >= before + 2).then_some(())
        });
        // A second server on the same data folder is refused.
        if round == 0 {
            let out = weir()
                .arg("--config")
                .arg(dir.path().join("weir.yaml"))
                .arg("serve")
                .output()
                .expect("second serve");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("another weir server uses this data folder"),
                "{err}"
            );
        }
        server.0.kill().expect("SIGKILL");
        server.0.wait().expect("reap");
        (server, port) = start_server(dir.path());
        let (_, v) = http(port, "GET", "/api/v1/jobs", b"");
        let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(jobs.len(), 1, "one job, not two: {v}");
        assert_eq!(jobs[0]["jid"], id.as_str());
        // It resumed from one of its own checkpoints, not from the start.
        let c = wait_for(30, "the restore", || {
            let (_, c) = http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"");
            c["latest"]["restored"].is_object().then_some(c)
        });
        assert!(
            c["latest"]["restored"]["id"].as_u64().unwrap_or(0) >= 2,
            "{c}"
        );
        assert!(
            c["latest"]["restored"]["external_path"]
                .as_str()
                .is_some_and(|p| p.contains(&id)),
            "{c}"
        );
        assert!(metric(port, &id, "lastCheckpointRestoreTimestamp") > 0);
    }
    let state = wait_for(120, "the job to finish", || {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        let st = v["state"].as_str().unwrap_or_default().to_owned();
        (st != "RUNNING").then_some(v)
    });
    assert_eq!(state["state"], "FINISHED", "{state}");
    assert_uninterrupted(
        &sorted_output(&dir.path().join("data/files/out")),
        count,
        keys,
    );
    // A finished job stays finished, and listed, after another restart,
    // even once its bundle is gone.
    let (s, v) = http(port, "DELETE", "/api/v1/bundles/count", b"");
    assert_eq!(s, 204, "a finished job's bundle may go: {v}");
    server.0.kill().expect("SIGKILL");
    server.0.wait().expect("reap");
    let (_server, port) = start_server(dir.path());
    let (_, v) = http(port, "GET", "/api/v1/jobs", b"");
    assert_eq!(v["jobs"][0]["state"], "FINISHED", "{v}");
    assert_eq!(v["jobs"][0]["name"], "resumed", "{v}");
}

#[test]
fn paths_outside_the_roots_are_refused_without_naming_host_paths() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let t = Some(TOKEN);
        upload_count(&app).await;
        let file_job = |source: &str, sink: &str| {
            json!({
                "job": {
                    "name": "paths",
                    "sources": [{ "id": "in", "type": "file", "path": source }],
                    "operators": [{ "id": "count", "wasm": "count" }],
                    "sinks": [{ "id": "out", "type": "file", "path": sink }],
                    "edges": [
                        { "from": "in", "to": "count", "partition": "hash" },
                        { "from": "count", "to": "out" }
                    ]
                }
            })
        };
        let mut with_savepoint = count_job("sp", 10);
        with_savepoint["savepointPath"] = json!("../../etc");
        let mut absolute_savepoint = count_job("sp", 10);
        absolute_savepoint["savepointPath"] = json!("/etc");
        let mut missing_savepoint = count_job("sp", 10);
        missing_savepoint["savepointPath"] = json!("nope/chk-1");
        let mut checkpoint_dir = count_job("cp", 10);
        checkpoint_dir["job"]["config"] = json!({ "state.checkpoints.dir": "/tmp" });
        let cases = [
            (file_job("../in.txt", "out"), "sources[0].path"),
            (file_job("/etc/passwd", "out"), "sources[0].path"),
            (file_job("in.txt", "../../out"), "sinks[0].path"),
            (file_job("in.txt", "/tmp/out"), "sinks[0].path"),
            (with_savepoint, "savepointPath"),
            (absolute_savepoint, "savepointPath"),
            (missing_savepoint, "savepointPath"),
            (checkpoint_dir, "config.state.checkpoints.dir"),
        ];
        let host = dir.path().display().to_string();
        for (job, field) in cases {
            let (s, v) = submit(&app, &job).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{field}: {v}");
            let e = error_text(&v);
            assert!(e.contains(field), "{field}: {e}");
            assert!(!e.contains(&host), "leaks a host path: {e}");
        }
        let (_, v) = call(&app, "GET", "/api/v1/jobs", t, Vec::new()).await;
        assert_eq!(v["jobs"], json!([]), "nothing half-created");
        let left = std::fs::read_dir(dir.path().join("jobs")).map_or(0, |d| d.count());
        assert_eq!(left, 0, "no job record left behind");
        assert!(!dir.path().join("files/out").exists());
    });
}

#[test]
fn checkpoints_are_configured_triggered_and_restored_from_over_the_api() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let t = Some(TOKEN);
        upload_count(&app).await;

        // A job without checkpoints: its config says so, a trigger is refused.
        let (_, v) = submit(&app, &count_job("plain", 10_000_000)).await;
        let plain = v["jobid"].as_str().expect("jobid").to_owned();
        let (s, v) = get(&app, &format!("/api/v1/jobs/{plain}/checkpoints/config")).await;
        assert_eq!((s, &v["enabled"]), (StatusCode::OK, &json!(false)), "{v}");
        let uri = format!("/api/v1/jobs/{plain}/checkpoints");
        let (s, v) = call(&app, "POST", &uri, t, Vec::new()).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(error_text(&v).contains("execution.checkpointing.interval"), "{v}");
        cancel(&app, &plain).await;

        // The config reports the state backend the job runs on.
        let mut rocks = count_job("rocks", 10_000_000);
        rocks["job"]["config"] = json!({
            "execution.checkpointing.interval": "1h",
            "state.backend.type": "rocksdb",
        });
        let (s, v) = submit(&app, &rocks).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let rocks = v["jobid"].as_str().expect("jobid").to_owned();
        let (_, c) = get(&app, &format!("/api/v1/jobs/{rocks}/checkpoints/config")).await;
        assert_eq!(c["state_backend"], "rocksdb", "{c}");
        cancel(&app, &rocks).await;

        // A job that checkpoints once an hour: only the manual trigger
        // makes one.
        let mut hourly = count_job("hourly", 10_000_000);
        hourly["job"]["config"] = json!({
            "execution.checkpointing.interval": "1h",
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "state.checkpoints.num-retained": 3,
        });
        let (s, v) = submit(&app, &hourly).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let id = v["jobid"].as_str().expect("jobid").to_owned();
        let (_, c) = get(&app, &format!("/api/v1/jobs/{id}/checkpoints/config")).await;
        assert_eq!(c["interval"], 3_600_000, "{c}");
        assert_eq!(c["mode"], "exactly_once");
        assert_eq!(c["externalization"]["delete_on_cancellation"], false);
        assert_eq!(c["num_retained"], 3);
        assert_eq!(c["state_backend"], "hashmap", "{c}");
        let uri = format!("/api/v1/jobs/{id}/checkpoints");
        let (s, v) = call(&app, "POST", &uri, t, Vec::new()).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let stats = loop {
            let (_, v) = get(&app, &uri).await;
            if v["counts"]["completed"] == 1 {
                break v;
            }
            assert!(Instant::now() < deadline, "no checkpoint: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let latest = &stats["latest"]["completed"];
        assert_eq!(latest["id"], 1, "{stats}");
        assert_eq!(stats["counts"]["failed"], 0);
        assert!(latest["trigger_timestamp"].as_i64().unwrap_or(0) > 0, "{stats}");
        let subtasks = latest["subtasks"].as_array().expect("per-subtask times");
        assert_eq!(subtasks.len(), 3, "gen, count, out: {stats}");
        for s in subtasks {
            for k in ["sync_duration", "async_duration", "alignment_duration"] {
                assert!(s[k].as_f64().is_some(), "{k}: {s}");
            }
        }
        let path = latest["external_path"].as_str().expect("path").to_owned();
        let (_, m) = get(&app, &format!(
            "/api/v1/jobs/{id}/metrics?get=numberOfFailedCheckpoints,lastCheckpointRestoreTimestamp,totalNumberOfCheckpoints"
        ))
        .await;
        assert_eq!(m, json!([
            { "id": "numberOfFailedCheckpoints", "value": "0" },
            { "id": "lastCheckpointRestoreTimestamp", "value": "-1" },
            { "id": "totalNumberOfCheckpoints", "value": "1" },
        ]));
        cancel(&app, &id).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, v) = get(&app, &format!("/api/v1/jobs/{id}")).await;
            if v["state"] == "CANCELED" {
                break;
            }
            assert!(Instant::now() < deadline, "not cancelled: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(std::path::Path::new(&path).join("_metadata").is_file(), "retained");

        // A new job starts from that checkpoint, named by its path.
        let mut restored = hourly;
        restored["savepointPath"] = json!(path);
        let (s, v) = submit(&app, &restored).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let id2 = v["jobid"].as_str().expect("jobid").to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        let c = loop {
            let (_, c) = get(&app, &format!("/api/v1/jobs/{id2}/checkpoints")).await;
            if c["latest"]["restored"].is_object() {
                break c;
            }
            assert!(Instant::now() < deadline, "not restored: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(c["latest"]["restored"]["id"], 1, "{c}");
        assert_eq!(c["latest"]["restored"]["external_path"], path.as_str());
        assert_eq!(c["counts"]["restored"], 1);
        let (_, m) = get(&app, &format!(
            "/api/v1/jobs/{id2}/metrics?get=lastCheckpointRestoreTimestamp"
        ))
        .await;
        let ts: i64 = m[0]["value"].as_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        assert!(ts > 0, "{m}");
        cancel(&app, &id2).await;
    });
}

#[test]
fn a_bundle_can_be_uploaded_as_multipart_form_data() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
        let boundary = "weirboundary1234";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"count.wasm\"\r\nContent-Type: application/wasm\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&wasm);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/api/v1/bundles")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(axum::body::Body::from(body))
            .expect("request");
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let resp = app.clone().oneshot(request).await.expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(v["name"], "count");
        // A form without a file is refused.
        let (s, v) = call(
            &app,
            "POST",
            "/api/v1/bundles",
            Some(TOKEN),
            format!("--{boundary}--\r\n").into_bytes(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    });
}

#[test]
fn weir_run_serves_the_api_for_its_job_while_it_runs() {
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        format!(
            "name: local-api\nconfig:\n  weir.sandbox.cache-dir: {}\nsources:\n  - {{ id: gen, type: datagen, count: 100000000, keys: 100, rate: 20000 }}\noperators:\n  - {{ id: count, uid: count, wasm: {} }}\nsinks:\n  - {{ id: out, type: discard }}\nedges:\n  - {{ from: gen, to: count, partition: hash }}\n  - {{ from: count, to: out }}\n",
            crate::common::q(&crate::common::cache_dir().display().to_string()),
            crate::common::q(weir_test_guests::COUNT)
        ),
    )
    .expect("job");
    let mut child = weir()
        .arg("run")
        .arg(&job)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let line = loop {
        let l = lines.next().expect("weir run exited").expect("line");
        if l.starts_with("REST API: ") {
            break l;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    // REST API: http://127.0.0.1:PORT/api/v1/jobs/ID (Authorization: Bearer TOKEN)
    let url = line["REST API: http://".len()..]
        .split_whitespace()
        .next()
        .expect("url")
        .to_owned();
    let (addr, path) = url.split_once('/').expect("path");
    let token = line
        .rsplit("Bearer ")
        .next()
        .expect("token")
        .trim_end_matches(')');
    let send = |method: &str, path: &str| request(addr, Some(token), method, path, b"");
    let path = format!("/{path}");
    let (status, resp) = wait_for(30, "records in the job detail", || {
        let r = send("GET", &path);
        r.1.contains("\"read-records\":").then_some(r)
    });
    assert_eq!(status, 200, "{resp}");
    assert!(resp.contains("\"state\":\"RUNNING\""), "{resp}");
    assert!(resp.contains("\"name\":\"local-api\""), "{resp}");
    let (unauthorized, body) = request(addr, None, "GET", &path, b"");
    assert_eq!(unauthorized, 401, "{body}");
    // Cancelling over the API ends the process.
    let (status, resp) = send("PATCH", &format!("{path}?mode=cancel"));
    assert_eq!(status, 202, "{resp}");
    let status = wait_for(30, "weir run to exit", || child.try_wait().expect("poll"));
    assert!(!status.success(), "a cancelled job is not a success");
}

#[test]
fn parallelism_is_overridden_per_node_or_by_default() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        upload_count(&app).await;
        let mut job = count_job("overrides", 10_000_000);
        job["parallelism"] = json!(2);
        job["parallelismOverrides"] = json!({ "count": 3 });
        let (s, v) = submit(&app, &job).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let id = v["jobid"].as_str().expect("jobid").to_owned();
        let (_, d) = get(&app, &format!("/api/v1/jobs/{id}")).await;
        let p: Vec<u64> = d["vertices"]
            .as_array()
            .expect("vertices")
            .iter()
            .filter_map(|v| v["parallelism"].as_u64())
            .collect();
        assert_eq!(p, vec![2, 3, 2], "{d}");
        cancel(&app, &id).await;
        let mut job = count_job("overrides", 10);
        job["parallelismOverrides"] = json!({ "cuont": 3 });
        let (s, v) = submit(&app, &job).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(error_text(&v).contains("parallelismOverrides.cuont"), "{v}");
    });
}

#[test]
fn job_answers_are_rendered_once_per_cache_ttl() {
    runtime().block_on(async {
        let dir = tempdir();
        let mut c = crate::common::config();
        c.server.cache_ttl = Duration::from_secs(3600);
        let state = weir::AppState::new(&c, dir.path(), TOKEN.to_owned(), false).expect("state");
        let app = weir::router(std::sync::Arc::new(state));
        let t = Some(TOKEN);
        upload_count(&app).await;
        let (_, v) = submit(&app, &count_job("cached", 10_000_000)).await;
        let id = v["jobid"].as_str().expect("jobid").to_owned();
        let (_, first) = get(&app, &format!("/api/v1/jobs/{id}")).await;
        // Records flow (Prometheus is never cached) ...
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, prom) = call(&app, "GET", "/metrics", t, Vec::new()).await;
            let text = prom.as_str().unwrap_or_default().to_owned();
            let sink_in = text
                .lines()
                .find(|l| {
                    l.starts_with("weir_taskmanager_job_task_operator_numRecordsIn{")
                        && l.contains("operator_name=\"out\"")
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if sink_in > 0 {
                break;
            }
            assert!(Instant::now() < deadline, "no records: {text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // ... but the detail answer is the one rendered first.
        let (_, again) = get(&app, &format!("/api/v1/jobs/{id}")).await;
        assert_eq!(first, again);
        cancel(&app, &id).await;
    });
}
