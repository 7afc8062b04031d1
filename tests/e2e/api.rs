//! The REST API of `weir serve`: every handler through the router without
//! a socket (tower's `oneshot`), and the whole path over a real socket
//! against a `weir serve` process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weir::{AppState, router};

use crate::common::{config, tempdir, weir};

pub(crate) const TOKEN: &str = "test-token-0123456789";

pub(crate) fn app(dir: &std::path::Path) -> axum::Router {
    let state = AppState::new(&config(), dir, TOKEN.to_owned(), true).expect("state");
    router(Arc::new(state))
}

pub(crate) async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// Uploads the `count` guest as bundle `count`.
pub(crate) async fn upload_count(app: &axum::Router) {
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = call(
        app,
        "POST",
        "/api/v1/bundles?name=count.wasm",
        Some(TOKEN),
        wasm,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// Submits `job` (a submit request); the status and the answer.
pub(crate) async fn submit(app: &axum::Router, job: &Value) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        "/api/v1/jobs",
        Some(TOKEN),
        job.to_string().into_bytes(),
    )
    .await
}

/// `GET uri` with the token.
pub(crate) async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    call(app, "GET", uri, Some(TOKEN), Vec::new()).await
}

/// Asks to cancel job `id`.
pub(crate) async fn cancel(app: &axum::Router, id: &str) {
    let uri = format!("/api/v1/jobs/{id}?mode=cancel");
    let (s, v) = call(app, "PATCH", &uri, Some(TOKEN), Vec::new()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

pub(crate) fn error_text(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_owned()
}

pub(crate) fn count_job(name: &str, count: u64) -> Value {
    json!({
        "job": {
            "name": name,
            "sources": [{ "id": "gen", "type": "datagen", "count": count, "keys": 50, "rate": 20000 }],
            "operators": [{ "id": "count", "uid": "count", "wasm": "count" }],
            "sinks": [{ "id": "out", "type": "discard" }],
            "edges": [
                { "from": "gen", "to": "count", "partition": "hash" },
                { "from": "count", "to": "out" }
            ]
        }
    })
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

#[test]
fn every_request_needs_the_token() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        for (method, uri) in [
            ("GET", "/api/v1/jobs"),
            ("GET", "/api/v1/bundles"),
            ("POST", "/api/v1/jobs"),
            ("GET", "/nope"),
        ] {
            let (s, v) = call(&app, method, uri, None, Vec::new()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri}");
            assert!(error_text(&v).contains("bearer token"), "{v}");
            let (s, _) = call(
                &app,
                method,
                uri,
                Some("wrong-token-0123456789"),
                Vec::new(),
            )
            .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
    });
}

#[test]
fn bundles_are_checked_stored_listed_and_deleted() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let t = Some(TOKEN);
        // Not wasm, the wrong world, no name: 400, nothing stored.
        let (s, v) = call(
            &app,
            "POST",
            "/api/v1/bundles?name=x.wasm",
            t,
            b"not wasm".to_vec(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(error_text(&v), "x is not a WebAssembly file", "{v}");
        let partial = std::fs::read(weir_test_guests::MISSING_EXPORT).expect("guest");
        let (s, v) = call(
            &app,
            "POST",
            "/api/v1/bundles?name=partial.wasm",
            t,
            partial,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(error_text(&v).contains("missing export(s)"), "{v}");
        let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
        let (s, _) = call(&app, "POST", "/api/v1/bundles", t, count.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, v) = call(&app, "GET", "/api/v1/bundles", t, Vec::new()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["bundles"], json!([]));
        // A good one.
        let (s, v) = call(&app, "POST", "/api/v1/bundles?name=count.wasm", t, count).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["name"], "count");
        assert_eq!(v["id"].as_str().map(str::len), Some(64));
        let (_, v) = call(&app, "GET", "/api/v1/bundles", t, Vec::new()).await;
        assert_eq!(v["bundles"].as_array().map(Vec::len), Some(1));
        let (s, _) = call(&app, "DELETE", "/api/v1/bundles/count", t, Vec::new()).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = call(&app, "DELETE", "/api/v1/bundles/count", t, Vec::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    });
}

#[test]
fn an_oversized_upload_is_refused() {
    runtime().block_on(async {
        let dir = tempdir();
        let mut c = config();
        c.server.max_upload = 1024;
        let state = AppState::new(&c, dir.path(), TOKEN.to_owned(), true).expect("state");
        let app = router(Arc::new(state));
        let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
        let (s, _) = call(
            &app,
            "POST",
            "/api/v1/bundles?name=count.wasm",
            Some(TOKEN),
            count,
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let (_, v) = call(&app, "GET", "/api/v1/bundles", Some(TOKEN), Vec::new()).await;
        assert_eq!(v["bundles"], json!([]));
    });
}

#[test]
fn jobs_are_submitted_inspected_and_cancelled() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let t = Some(TOKEN);
        let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
        call(&app, "POST", "/api/v1/bundles?name=count.wasm", t, count).await;

        // Bad requests: malformed JSON, an unknown bundle, a bad spec.
        let (s, v) = call(&app, "POST", "/api/v1/jobs", t, b"{not json".to_vec()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(error_text(&v).contains("malformed job request"), "{v}");
        let submit = |job: Value| {
            call(
                &app,
                "POST",
                "/api/v1/jobs",
                t,
                job.to_string().into_bytes(),
            )
        };
        let mut job = count_job("j", 1000);
        job["job"]["operators"][0]["wasm"] = json!("counter");
        let (s, v) = submit(job).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            error_text(&v).contains("operators[0].wasm: unknown operator bundle \"counter\""),
            "{v}"
        );
        let mut job = count_job("j", 1000);
        job["job"]["edges"][0]["to"] = json!("cuont");
        let (s, v) = submit(job).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            error_text(&v).contains("edges[0].to: unknown node `cuont`"),
            "{v}"
        );
        let (_, v) = call(&app, "GET", "/api/v1/jobs", t, Vec::new()).await;
        assert_eq!(v["jobs"], json!([]), "nothing half-created");
        let job_dirs = std::fs::read_dir(dir.path().join("jobs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(job_dirs, 0, "no job folder left behind");

        // A long job: submitted, running, its records flow, cancelled.
        let (s, v) = submit(count_job("long", 10_000_000)).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let id = v["jobid"].as_str().expect("jobid").to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = call(&app, "GET", &format!("/api/v1/jobs/{id}"), t, Vec::new()).await;
            assert_eq!(s, StatusCode::OK);
            assert_eq!(v["state"], "RUNNING", "{v}");
            let counted = v["vertices"][1]["metrics"]["read-records"]
                .as_u64()
                .unwrap_or(0);
            if counted > 0 {
                assert_eq!(v["vertices"][1]["kind"], "operator");
                assert_eq!(v["plan"]["edges"][0]["partition"], "hash");
                break;
            }
            assert!(Instant::now() < deadline, "no records flowed: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The overview, the bundles' users and the recorded spec.
        let (_, v) = call(&app, "GET", "/api/v1/jobs", t, Vec::new()).await;
        assert_eq!(v["jobs"][0]["parallelism"], 1, "{v}");
        assert_eq!(v["jobs"][0]["restarts"], 0, "{v}");
        let (_, v) = call(&app, "GET", "/api/v1/bundles", t, Vec::new()).await;
        assert_eq!(v["bundles"][0]["jobs"], json!([id]), "{v}");
        let (s, v) = call(
            &app,
            "GET",
            &format!("/api/v1/jobs/{id}/spec"),
            t,
            Vec::new(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["job"]["name"], "long", "{v}");
        let wasm = v["job"]["operators"][0]["wasm"]
            .as_str()
            .unwrap_or_default();
        assert!(wasm.starts_with("sha256:"), "{v}");
        // A bundle in use cannot be deleted.
        let (s, v) = call(&app, "DELETE", "/api/v1/bundles/count", t, Vec::new()).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        let (s, _) = call(
            &app,
            "PATCH",
            &format!("/api/v1/jobs/{id}?mode=cancel"),
            t,
            Vec::new(),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, v) = call(&app, "GET", "/api/v1/jobs", t, Vec::new()).await;
            if v["jobs"][0]["state"] == "CANCELED" {
                assert_eq!(v["jobs"][0]["jid"], id.as_str());
                break;
            }
            assert!(Instant::now() < deadline, "not cancelled: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (s, _) = call(&app, "GET", "/api/v1/jobs/nope", t, Vec::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = call(
            &app,
            "PATCH",
            &format!("/api/v1/jobs/{id}?mode=explode"),
            t,
            Vec::new(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    });
}

/// One request to the server on `port` with the test token; the status
/// and the body as JSON.
pub(crate) fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let (status, text) = http_text(port, method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The same, with the body as text.
pub(crate) fn http_text(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    request(
        &format!("127.0.0.1:{port}"),
        Some(TOKEN),
        method,
        path,
        body,
    )
}

/// One request over a real connection (ureq) to `addr` (`host:port`),
/// with the bearer token if given; the status and the body as text.
pub(crate) fn request(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(body.to_vec()).expect("request");
    let mut resp = agent.run(req).expect("request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

/// Runs `weir --config CFG serve`, which must fail at its start; its
/// stderr.
pub(crate) fn serve_refused(cfg: &std::path::Path) -> String {
    let out = weir()
        .arg("--config")
        .arg(cfg)
        .arg("serve")
        .output()
        .expect("weir serve");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    err
}

/// A `weir serve` child, killed when dropped, and the lines of its log
/// so far.
pub(crate) struct Server(
    pub(crate) Child,
    pub(crate) Arc<std::sync::Mutex<Vec<String>>>,
);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `weir serve` on a free port; returns it and its port.
pub(crate) fn start_server(dir: &std::path::Path) -> (Server, u16) {
    start_server_under(dir, &[], "")
}

/// Starts `weir serve` as the last argument of command `wrap` (e.g.
/// `prlimit --nofile=...`), or directly if it is empty, with `extra` lines
/// of configuration (which may name its own `weir.sandbox.cache-dir`).
pub(crate) fn start_server_under(
    dir: &std::path::Path,
    wrap: &[&str],
    extra: &str,
) -> (Server, u16) {
    let cfg = dir.join("weir.yaml");
    std::fs::write(
        &cfg,
        format!(
            "rest.port: 0\nweir.server.data-dir: {:?}\nweir.server.token: {TOKEN}\n{cache}{extra}",
            dir.join("data").display().to_string(),
            cache = if extra.contains("weir.sandbox.cache-dir:") {
                String::new()
            } else {
                format!(
                    "weir.sandbox.cache-dir: {:?}\n",
                    crate::common::cache_dir().display().to_string()
                )
            },
        ),
    )
    .expect("config");
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(env!("CARGO_BIN_EXE_weir"));
            c
        }
        None => weir(),
    };
    let mut child = cmd
        .arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env("WEIR_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start weir serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("serve exited").expect("line");
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.trim().parse::<u16>().expect("port");
        }
    };
    // Keep draining stderr so the server never blocks on it.
    let log: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    (Server(child, log), port)
}

#[test]
fn upload_submit_list_and_cancel_over_a_real_socket() {
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    let count = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count.wasm", &count);
    assert_eq!(s, 201, "{v}");
    let mut job = count_job("socket", 10_000_000);
    job["job"]["config"] = json!({ "execution.checkpointing.interval": "100ms" });
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    let (_, v) = http(port, "GET", "/api/v1/jobs", b"");
    assert_eq!(v["jobs"][0]["state"], "RUNNING", "listed: {v}");

    // Records flow to the sink.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = http(port, "GET", &format!("/api/v1/jobs/{id}"), b"");
        if v["vertices"][2]["metrics"]["read-records"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no records reached the sink: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Checkpoints complete, and the newest one's folder is what the job's
    // metrics and Prometheus name.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metric = format!(
        "/api/v1/jobs/{id}/metrics?get=numberOfCompletedCheckpoints,lastCheckpointExternalPath"
    );
    loop {
        let (s, v) = http(port, "GET", &metric, b"");
        assert_eq!(s, 200, "{v}");
        let done: u64 = v[0]["value"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let path = v[1]["value"].as_str().unwrap_or_default().to_owned();
        if done >= 2 {
            let chk = std::path::Path::new(&path);
            let newest = chk
                .parent()
                .map(weir::completed_in)
                .and_then(|c| c.first().map(|(_, p)| p.clone()));
            let (_, prom) = http_text(port, "GET", "/metrics", b"");
            if newest.as_deref() == Some(chk) && prom.contains(&format!("path=\"{path}\"")) {
                assert!(chk.join("_metadata").is_file());
                let completed = prom.lines().find(|l| {
                    l.starts_with("weir_jobmanager_job_numberOfCompletedCheckpoints{")
                        && l.contains(&format!("job_id=\"{id}\""))
                });
                assert!(completed.is_some(), "{prom}");
                let (_, c) = http(port, "GET", &format!("/api/v1/jobs/{id}/checkpoints"), b"");
                assert!(c["counts"]["completed"].as_u64().unwrap_or(0) >= 2, "{c}");
                assert_eq!(c["latest"]["completed"]["external_path"], path.as_str());
                crate::reporters::promtool_accepts(&prom);
                break;
            }
        }
        assert!(Instant::now() < deadline, "no matching checkpoint: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, v) = http(
        port,
        "GET",
        &format!("/api/v1/jobs/{id}/metrics?get=nope"),
        b"",
    );
    assert_eq!(s, 400, "{v}");

    // Cancel, and the list shows it.
    let (s, _) = http(
        port,
        "PATCH",
        &format!("/api/v1/jobs/{id}?mode=cancel"),
        b"",
    );
    assert_eq!(s, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = http(port, "GET", "/api/v1/jobs", b"");
        if v["jobs"][0]["state"] == "CANCELED" {
            break;
        }
        assert!(Instant::now() < deadline, "not cancelled: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a CLI verb against the server on `port`.
fn cli(port: u16, args: &[&str]) -> (bool, String, String) {
    let out = weir()
        .args(args)
        .env("WEIR_SERVER", format!("http://127.0.0.1:{port}"))
        .env("WEIR_TOKEN", TOKEN)
        .output()
        .expect("run weir");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_verbs_talk_to_the_server() {
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    let (ok, out, err) = cli(port, &["upload", weir_test_guests::COUNT]);
    assert!(ok, "{err}");
    assert!(out.starts_with("uploaded count ("), "{out}");
    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "name: cli-job\nconfig:\n  execution.checkpointing.interval: 100ms\nsources:\n  - { id: gen, type: datagen, count: 10000000, keys: 100, rate: 20000 }\noperators:\n  - { id: count, uid: count, wasm: count }\nsinks:\n  - { id: out, type: discard }\nedges:\n  - { from: gen, to: count, partition: hash }\n  - { from: count, to: out }\n",
    )
    .expect("write job");
    let (ok, out, err) = cli(port, &["submit", &job.display().to_string(), "--json"]);
    assert!(ok, "{err}");
    let id = serde_json::from_str::<Value>(&out).expect("json")["jobid"]
        .as_str()
        .expect("jobid")
        .to_owned();
    let (ok, out, _) = cli(port, &["list"]);
    assert!(
        ok && out.contains(&id) && out.contains("RUNNING") && out.contains("cli-job"),
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out, err) = cli(port, &["checkpoints", &id, "--json"]);
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).expect("json");
        if v["counts"]["completed"].as_u64().unwrap_or(0) >= 1 {
            let (_, table, _) = cli(port, &["checkpoints", &id]);
            assert!(
                table.contains("completed:") && table.contains("chk-"),
                "{table}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no checkpoint: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, out, err) = cli(port, &["cancel", &id]);
    assert!(ok && out.contains(&id), "{err}");

    // `weir run --server` uploads the spec's components and submits it.
    let local = dir.path().join("local.yaml");
    std::fs::write(
        &local,
        std::fs::read_to_string(&job).expect("job").replace(
            "wasm: count",
            &format!("wasm: {}", crate::common::q(weir_test_guests::COUNT)),
        ),
    )
    .expect("write");
    let out = weir()
        .args(["run", "--server", &format!("http://127.0.0.1:{port}")])
        .arg(&local)
        .env("WEIR_TOKEN", TOKEN)
        .output()
        .expect("weir run --server");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.starts_with("submitted job "),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote_id = text.trim().trim_start_matches("submitted job ").to_owned();
    let (_, out, _) = cli(port, &["list"]);
    assert!(out.contains(&remote_id), "{out}");
    cli(port, &["cancel", &remote_id]);
    // Errors are the server's message, with a failing exit code.
    let (ok, _, err) = cli(port, &["cancel", "nope"]);
    assert!(!ok && err.contains("404: no job \"nope\""), "{err}");
    let (ok, _, err) = cli(
        port,
        &["submit", &job.display().to_string(), "-s", "nope/chk-1"],
    );
    assert!(
        !ok && err.contains("400: savepointPath:")
            && !err.contains(&dir.path().display().to_string()),
        "{err}"
    );
    let (ok, _, err) = cli(port, &["upload", &job.display().to_string()]);
    assert!(
        !ok && err.contains("400") && err.contains("not a WebAssembly file"),
        "{err}"
    );
}

#[test]
fn the_openapi_document_describes_every_route() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let (s, _) = call(&app, "GET", "/api/v1/openapi.json", None, Vec::new()).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "behind the token like the rest"
        );
        let (s, doc) = call(&app, "GET", "/api/v1/openapi.json", Some(TOKEN), Vec::new()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{doc}"
        );
        for (method, path) in [
            ("post", "/api/v1/bundles"),
            ("get", "/api/v1/bundles"),
            ("delete", "/api/v1/bundles/{bundle}"),
            ("post", "/api/v1/jobs"),
            ("get", "/api/v1/jobs"),
            ("get", "/api/v1/jobs/{id}"),
            ("patch", "/api/v1/jobs/{id}"),
            ("get", "/api/v1/jobs/{id}/checkpoints"),
            ("post", "/api/v1/jobs/{id}/checkpoints"),
            ("get", "/api/v1/jobs/{id}/checkpoints/config"),
            ("get", "/api/v1/jobs/{id}/metrics"),
            ("get", "/metrics"),
            ("get", "/api/v1/openapi.json"),
            ("post", "/api/v1/jobs/{id}/savepoints"),
            ("get", "/api/v1/jobs/{id}/savepoints/{triggerId}"),
            ("post", "/api/v1/jobs/{id}/stop"),
            ("post", "/api/v1/savepoint-disposal"),
            ("get", "/api/v1/savepoint-disposal/{triggerId}"),
            ("get", "/api/v1/savepoints"),
            ("post", "/api/v1/jobs/dry-run"),
            ("get", "/api/v1/jobs/{id}/checkpoints/retained"),
            ("get", "/api/v1/jobs/{id}/spec"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(op["responses"].is_object(), "{method} {path}: no responses");
            // The route the document names exists in the router.
            let uri = path
                .replace("{bundle}", "count")
                .replace("{id}", "0123")
                .replace("{triggerId}", "t");
            let (s, v) = call(&app, &method.to_uppercase(), &uri, Some(TOKEN), Vec::new()).await;
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(error_text(&v), "no such resource", "{method} {path}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(
            doc["components"]["schemas"]["SubmitRequest"]["properties"]["savepointPath"]
                .is_object(),
            "{}",
            doc["components"]
        );
    });
}

#[test]
fn the_dashboard_page_loads_without_a_token_but_no_data_does() {
    runtime().block_on(async {
        let dir = tempdir();
        let app = app(dir.path());
        let resp = app
            .clone()
            .oneshot(
                Request::builder()
                    .uri("/")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            header("content-type").starts_with("text/html"),
            "{}",
            header("content-type")
        );
        assert_eq!(header("cache-control"), "no-cache");
        let (s, _) = call(&app, "GET", "/assets/no-such-file.js", None, Vec::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = call(&app, "GET", "/assets/../../token", None, Vec::new()).await;
        assert_ne!(s, StatusCode::OK, "nothing outside the dashboard's files");
        let (s, _) = call(&app, "GET", "/api/v1/jobs", None, Vec::new()).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "the data still needs the token"
        );
    });
}
