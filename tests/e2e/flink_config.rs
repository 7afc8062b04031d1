//! A Flink user's configuration as written: Flink 1.x backend names mean
//! what Flink gave them, checkpoint and savepoint locations are URIs (a
//! scheme Weir does not store to is refused and creates nothing), and
//! `weir cancel -s` takes a savepoint before it cancels.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::request;
use crate::checkpoints::{CountJob, expected, latest_checkpoint, sorted_output};
use crate::common::{entries, graph, tempdir, weir};

/// The lines the documents Weir is built from teach Flink users.
const FLINK_BLOCK: &str = "state.backend: filesystem
state.checkpoints.dir: hdfs://namenode/flink/checkpoints
state.savepoints.dir: hdfs://namenode/flink/savepoints
state.backend.incremental: true
restart-strategy: fixed-delay
restart-strategy.fixed-delay.attempts: 3
restart-strategy.fixed-delay.delay: 10 s
restart-strategy.exponential-delay.max-backoff: 2 min
";

/// The count job of `job` without its own checkpoint folder and interval,
/// so that `weir.yaml` sets them.
fn job_without_checkpoint_keys(job: &CountJob<'_>, dir: &Path) -> String {
    job.yaml(dir)
        .lines()
        .filter(|l| {
            !l.contains("state.checkpoints.dir:")
                && !l.contains("execution.checkpointing.interval:")
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `weir` with `args` in `dir`: the exit code and stderr.
fn weir_in(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = weir()
        .current_dir(dir)
        .args(args)
        .env("WEIR_LOG", "info")
        .output()
        .expect("weir");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`weir_in`] with no `AWS_*` variable set.
fn weir_in_without_aws(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut cmd = weir();
    cmd.current_dir(dir).args(args).env("WEIR_LOG", "info");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        cmd.env_remove(k);
    }
    let out = cmd.output().expect("weir");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flinks_block_with_hdfs_or_s3_locations_is_refused_and_creates_no_folder() {
    let dir = tempdir();
    let d = dir.path();
    let job = CountJob::default();
    std::fs::write(d.join("job.yaml"), job_without_checkpoint_keys(&job, d)).expect("job");
    let before = {
        std::fs::write(d.join("weir.yaml"), FLINK_BLOCK).expect("weir.yaml");
        entries(d)
    };
    // Pasted as weir.yaml: refused at start, naming the key and scheme.
    let (code, err) = weir_in(d, &["--config", "weir.yaml", "run", "job.yaml"]);
    assert_ne!(code, 0, "{err}");
    for part in ["state.checkpoints.dir", "scheme `hdfs`", "file://"] {
        assert!(err.contains(part), "{part}: {err}");
    }
    // An s3:// checkpoint folder is object storage: without credentials
    // the job does not start, naming the keys to set.
    let s3 = FLINK_BLOCK
        .replace("hdfs://namenode/flink/checkpoints", "s3://bucket/flink/")
        .replace("hdfs://namenode/flink/savepoints", "savepoints")
        + "execution.checkpointing.interval: 100ms\n";
    std::fs::write(d.join("weir.yaml"), &s3).expect("weir.yaml");
    let (code, err) = weir_in_without_aws(d, &["--config", "weir.yaml", "run", "job.yaml"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("s3://bucket/flink") && err.contains("s3.access-key"),
        "{err}"
    );
    // The savepoint folder alone, with local checkpoints.
    let sp_only = FLINK_BLOCK.replace("hdfs://namenode/flink/checkpoints", "checkpoints");
    std::fs::write(d.join("weir.yaml"), &sp_only).expect("weir.yaml");
    let (code, err) = weir_in(d, &["--config", "weir.yaml", "validate", "job.yaml"]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("state.savepoints.dir") && err.contains("scheme `hdfs`"),
        "{err}"
    );
    // From here on weir.yaml (read from the working folder) is local.
    let local = sp_only.replace("hdfs://namenode/flink/savepoints", "savepoints");
    std::fs::write(d.join("weir.yaml"), &local).expect("weir.yaml");
    // In a job's own config, and a bare `hdfs:` that could pass for a
    // relative folder.
    for (location, scheme) in [
        ("hdfs://namenode/flink/checkpoints", "hdfs"),
        ("gs://bucket/cp", "gs"),
        ("hdfs:", "hdfs"),
    ] {
        let spec = job
            .yaml(d)
            .replace(&d.join("checkpoints").display().to_string(), location);
        std::fs::write(d.join("uri.yaml"), spec).expect("spec");
        let (code, err) = weir_in(d, &["run", "uri.yaml"]);
        assert_eq!(code, 2, "{location}: {err}");
        assert!(
            err.contains("config.state.checkpoints.dir")
                && err.contains(&format!("scheme `{scheme}`")),
            "{location}: {err}"
        );
    }
    // A restore path given with -s.
    let (code, err) = weir_in(
        d,
        &[
            "--config",
            "weir.yaml",
            "run",
            "-s",
            "hdfs://namenode/flink/checkpoints/x/chk-225",
            "job.yaml",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("-s: scheme `hdfs`"), "{err}");
    let mut after = entries(d);
    after.retain(|n| n != "uri.yaml");
    assert_eq!(after, before, "no local folder was created");
}

#[test]
fn flinks_block_with_local_folders_runs_as_flink_means_it_and_restores_after_sigkill() {
    let (count, keys) = (150_000, 500);
    let dir = tempdir();
    let d = dir.path();
    let block = FLINK_BLOCK
        .replace(
            "hdfs://namenode/flink/checkpoints",
            &format!("file://{}", d.join("flink/checkpoints").display()),
        )
        .replace("hdfs://namenode/flink/savepoints", "flink/savepoints");
    std::fs::write(
        d.join("weir.yaml"),
        format!("{block}execution.checkpointing.interval: 100ms\n"),
    )
    .expect("weir.yaml");
    let job = CountJob {
        count,
        keys,
        rate: Some(15_000),
        ..CountJob::default()
    };
    std::fs::write(d.join("job.yaml"), job_without_checkpoint_keys(&job, d)).expect("job");

    // The typed meaning of each line.
    let c = weir::Config::load(Some(&d.join("weir.yaml"))).expect("loads");
    assert_eq!(c.backend.kind.name(), "hashmap");
    assert!(c.backend.incremental);
    assert_eq!(format!("{:?}", c.checkpoint.storage), "Filesystem");
    assert_eq!(c.checkpoint.dir, d.join("flink/checkpoints"));
    assert_eq!(
        c.checkpoint.savepoint_dir,
        Some(PathBuf::from("flink/savepoints"))
    );
    assert_eq!(
        weir::RestartStrategy::from_config(&c),
        weir::RestartStrategy::FixedDelay {
            attempts: 3,
            delay: Duration::from_secs(10)
        }
    );
    assert_eq!(c.restart.max_backoff, Duration::from_secs(120));

    // Run: the log says what the old name stands for, the job's
    // configuration over the API says the same, and chk-<n> folders
    // appear under the configured folder.
    let mut cmd = weir();
    cmd.current_dir(d)
        .args(["--config", "weir.yaml", "run", "job.yaml"]);
    let crate::common::RunWithApi {
        mut child,
        log,
        addr,
        id,
        token,
    } = crate::common::spawn_with_api(cmd);
    assert!(
        log.iter().any(|l| l.contains(
            "state.backend: filesystem (Flink's FsStateBackend) stands for state.backend.type: hashmap, execution.checkpointing.storage: filesystem"
        )),
        "{log:#?}"
    );
    let (status, text) = request(
        &addr,
        Some(&token),
        "GET",
        &format!("/api/v1/jobs/{id}/config"),
        b"",
    );
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["state-backend"], "hashmap", "{v}");
    assert_eq!(v["checkpoint-storage"], "filesystem", "{v}");
    assert_eq!(
        v["execution-config"]["restart-strategy"],
        "Restart with fixed delay (10000 ms). #3 restart attempts.",
        "{v}"
    );
    assert_eq!(
        v["execution-config"]["restart-strategy-config"]["attempts"], 3,
        "{v}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let chk = loop {
        if let Some((3.., path)) = latest_checkpoint(&d.join("flink")) {
            break path;
        }
        assert!(
            Instant::now() < deadline,
            "no chk-<n> under flink/checkpoints"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the job ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        chk.starts_with(d.join("flink/checkpoints")),
        "{}",
        chk.display()
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let (code, err) = weir_in(
        d,
        &[
            "--config",
            "weir.yaml",
            "run",
            "-q",
            "-s",
            &chk.display().to_string(),
            "job.yaml",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(sorted_output(&d.join("out")), expected(count, keys));
}

#[test]
fn state_backend_jobmanager_keeps_checkpoints_in_memory_and_restarts_from_them_after_a_trap() {
    let extra = "state.backend: jobmanager\nrestart-strategy: fixed-delay\nrestart-strategy.fixed-delay.attempts: 2\nrestart-strategy.fixed-delay.delay: 2 s";
    let dir = tempdir();
    let g = graph(
        &CountJob {
            extra,
            ..CountJob::default()
        }
        .yaml(dir.path()),
        dir.path(),
    )
    .expect("valid");
    assert_eq!(g.config.backend.kind.name(), "hashmap");
    assert_eq!(format!("{:?}", g.config.checkpoint.storage), "JobManager");
    crate::checkpoints::restarts_once_from_memory_after_a_trap(extra);
}

#[test]
fn old_and_new_backend_keys_that_disagree_are_refused_naming_both() {
    let dir = tempdir();
    let d = dir.path();
    for (extra, both) in [
        (
            "state.backend: jobmanager\nexecution.checkpointing.storage: filesystem",
            [
                "state.backend: jobmanager",
                "execution.checkpointing.storage: filesystem",
            ],
        ),
        (
            "state.backend: filesystem\nstate.backend.type: rocksdb",
            ["state.backend: filesystem", "state.backend.type: rocksdb"],
        ),
    ] {
        let yaml = CountJob {
            extra,
            ..CountJob::default()
        }
        .yaml(d);
        std::fs::write(d.join("job.yaml"), yaml).expect("spec");
        let (code, err) = weir_in(d, &["validate", "job.yaml"]);
        assert_eq!(code, 2, "{err}");
        assert!(both.iter().all(|k| err.contains(k)), "{err}");
    }
    // The same meaning written twice is no conflict.
    let yaml = CountJob {
        extra: "state.backend: rocksdb\nstate.backend.type: rocksdb",
        ..CountJob::default()
    }
    .yaml(d);
    let g = graph(&yaml, d).expect("valid");
    assert_eq!(g.config.backend.kind.name(), "rocksdb");
}

#[test]
fn weir_cancel_with_savepoint_takes_one_then_cancels_and_it_restores_exactly_once() {
    let (count, keys) = (200_000, 500);
    let dir = tempdir();
    let d = dir.path();
    let job = CountJob {
        count,
        keys,
        rate: Some(20_000),
        ..CountJob::default()
    };
    let spec = d.join("job.yaml");
    std::fs::write(&spec, job.yaml(d)).expect("spec");
    let (mut child, addr, id, token) = crate::savepoints::spawn_with_api(&spec);
    std::thread::sleep(Duration::from_millis(500));
    let target = d.join("sp").display().to_string();
    let out = weir()
        .args(["cancel", "-s", &target, &id])
        .args(["--server", &format!("http://{addr}"), "--token", &token])
        .output()
        .expect("weir cancel");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("`weir stop"), "the notice: {stderr}");
    let location = stdout
        .trim()
        .rsplit_once(" with savepoint ")
        .map(|(_, p)| p.to_owned())
        .expect("the savepoint's path");
    assert!(location.starts_with(&target), "{stdout}");
    assert!(
        Path::new(&location).join("_metadata").is_file(),
        "{location}"
    );
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the job ends CANCELED, not FINISHED");
    // A target folder without -s is a mistake, said as such.
    let out = weir()
        .args(["cancel", &target, &id])
        .args(["--server", &format!("http://{addr}"), "--token", &token])
        .output()
        .expect("weir cancel");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only with -s"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::common::run_restored(&spec, Path::new(&location));
    assert_eq!(sorted_output(&d.join("out")), expected(count, keys));
}

#[test]
fn a_server_refuses_restore_and_savepoint_uris_it_cannot_store_to() {
    use crate::api::{count_job, http, start_server};
    let dir = tempdir();
    let (_server, port) = start_server(dir.path());
    let wasm = std::fs::read(weir_test_guests::COUNT).expect("count.wasm");
    let (s, v) = http(port, "POST", "/api/v1/bundles?name=count", &wasm);
    assert_eq!(s, 201, "{v}");
    let mut job = count_job("uris", 1_000);
    job["savepointPath"] = "hdfs://namenode/flink/savepoints/savepoint-1".into();
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 400, "{v}");
    let text = v.to_string();
    assert!(
        text.contains("savepointPath") && text.contains("scheme `hdfs`"),
        "{text}"
    );
    // A server whose savepoints root is a local folder holds nothing in
    // a bucket.
    let body = br#"{"savepointPath": "s3://bucket/savepoint-1"}"#;
    let (s, v) = http(port, "POST", "/api/v1/savepoint-disposal", body);
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("outside the savepoints root"), "{v}");
    // A Flink 1.x backend name in a submitted job's config.
    let mut job = count_job("legacy", 1_000_000);
    job["job"]["config"] = serde_json::json!({
        "state.backend": "jobmanager",
        "execution.checkpointing.interval": "100ms",
    });
    let (s, v) = http(port, "POST", "/api/v1/jobs", job.to_string().as_bytes());
    assert_eq!(s, 202, "{v}");
    let id = v["jobid"].as_str().expect("jobid").to_owned();
    let (s, v) = http(port, "GET", &format!("/api/v1/jobs/{id}/config"), b"");
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["state-backend"], &v["checkpoint-storage"]),
        (&Value::from("hashmap"), &Value::from("jobmanager")),
        "{v}"
    );
    assert!(v["checkpoint-directory"].is_null(), "{v}");
    let (s, v) = http(
        port,
        "PATCH",
        &format!("/api/v1/jobs/{id}?mode=cancel"),
        b"",
    );
    assert!(s == 202 || s == 200, "{s} {v}");
}
