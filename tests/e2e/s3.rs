//! Checkpoints and savepoints in S3-compatible object storage, against a
//! real server (a throwaway moto per test, `scripts/s3`): a RocksDB job
//! SIGKILLed and restored from checkpoints in the bucket writes exactly
//! once; the bucket holds exactly the files the retained `_metadata` name,
//! after a run and after kills; checkpoints fail while the server is
//! stopped and complete again after; a checkpoint whose last state file or
//! `_metadata` is written after its timeout fails and is never published;
//! a savepoint in the bucket restores at
//! another parallelism; a missing bucket and missing or refused
//! credentials fail at start, naming the key and never the secret.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::{Bucket, JobControl, RestorePoint, RunOptions, S3Config, run_job};

use crate::checkpoints::{CountJob, sorted_output};
use crate::common::{graph, q, tempdir, weir};
use crate::proxy::Proxy;

/// A throwaway moto server (`scripts/s3`), stopped when dropped.
pub(crate) struct S3Server {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
}

fn s3_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/s3")
}

impl S3Server {
    pub(crate) fn start() -> Self {
        let dir = tempdir();
        let out = Command::new(s3_script())
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("scripts/s3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let endpoint = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        S3Server { dir, endpoint }
    }

    /// Creates bucket `name` (moto takes any credentials until told to
    /// check them).
    pub(crate) fn bucket(&self, name: &str) {
        let status = Command::new("curl")
            .args(["-sf", "-X", "PUT", "-o", "/dev/null"])
            .arg(format!("{}/{name}", self.endpoint))
            .status()
            .expect("curl");
        assert!(status.success(), "cannot create bucket {name}");
    }

    /// A client of bucket `name` of this server (created first).
    pub(crate) fn client(&self, name: &str) -> std::sync::Arc<Bucket> {
        self.bucket(name);
        self.open(name)
    }

    /// A client of the existing bucket `name` of this server.
    pub(crate) fn open(&self, name: &str) -> std::sync::Arc<Bucket> {
        let uri = weir::ObjectUri::of(Path::new(&format!("s3://{name}"))).expect("uri");
        weir::open_bucket(&uri, &self.config(KEY, SECRET)).expect("bucket")
    }

    /// The client settings of this server, with `key` and `secret`.
    pub(crate) fn config(&self, key: &str, secret: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            access_key: Some(key.to_owned()),
            secret_key: Some(secret.to_owned().into()),
            ..S3Config::default()
        }
    }

    /// The same as lines of a job's `config:`.
    pub(crate) fn yaml(&self, key: &str, secret: &str) -> String {
        s3_yaml(&self.endpoint, key, secret)
    }
}

/// The lines of a job's `config:` that reach `endpoint` with `key` and
/// `secret`.
fn s3_yaml(endpoint: &str, key: &str, secret: &str) -> String {
    format!("s3.endpoint: {endpoint}\ns3.access-key: {key}\ns3.secret-key: {secret}\n")
}

impl S3Server {
    /// Sends the server `SIG<name>`.
    fn signal(&self, name: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("moto.pid")).expect("moto.pid");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.trim())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new(s3_script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// `job`'s spec with its checkpoints at `uri` instead of a local folder.
fn in_bucket(job: &CountJob, dir: &Path, uri: &str) -> String {
    let local = q(&dir.join("checkpoints").display().to_string());
    let yaml = job.yaml(dir);
    assert!(yaml.contains(&local));
    yaml.replace(&local, uri)
}

/// The completed checkpoints under `prefix`, by job folder: per job key,
/// the ids whose `_metadata` is there.
pub(crate) fn completed(bucket: &Bucket, prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for o in bucket.list(prefix).expect("list") {
        let Some(folder) = o.key.strip_suffix("/_metadata") else {
            continue;
        };
        let (job, chk) = folder.rsplit_once('/').expect("job/chk-n");
        if let Some(id) = chk.strip_prefix("chk-").and_then(|n| n.parse().ok()) {
            out.push((job.to_owned(), id));
        }
    }
    out
}

/// The newest completed checkpoint under `prefix`, as an `s3://` path.
pub(crate) fn latest_in(bucket: &Bucket, prefix: &str) -> Option<(u64, PathBuf)> {
    completed(bucket, prefix)
        .into_iter()
        .max_by_key(|c| c.1)
        .map(|(job, id)| (id, PathBuf::from(bucket.uri(&format!("{job}/chk-{id}")))))
}

/// Waits (up to a minute, and while `ended` is false) until a checkpoint
/// under `jobs` has its `_metadata` in the bucket; the newest.
fn wait_for_checkpoint_in(bucket: &Bucket, ended: impl Fn() -> bool) -> (u64, PathBuf) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = latest_in(bucket, "jobs") {
            return found;
        }
        assert!(
            Instant::now() < deadline && !ended(),
            "no checkpoint completed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The access key the tests use (moto takes any until told otherwise).
pub(crate) const KEY: &str = "weir-test";
/// Its secret key.
pub(crate) const SECRET: &str = "weir-test-secret";

#[test]
fn the_bucket_client_never_overwrites_with_a_conditional_put_and_uploads_large_files_in_parts() {
    let server = S3Server::start();
    let bucket = server.client("weir-checkpoints");
    bucket
        .put_new("x/_metadata", b"one".to_vec())
        .expect("first put");
    let again = bucket.put_new("x/_metadata", b"two".to_vec());
    assert!(
        matches!(again, Err(weir::ObjectError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert_eq!(bucket.get("x/_metadata", 100).expect("get"), b"one");
    // 20 MiB and a bit: three parts of 8 MiB, 8 MiB and the rest.
    let big: Vec<u8> = (0..(20 << 20) + 12_345u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let (size, sum) = bucket
        .upload("x/big", &mut big.as_slice())
        .expect("multipart");
    assert_eq!(size, big.len() as u64);
    assert_eq!(sum, format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&big)));
    assert_eq!(bucket.get("x/big", size).expect("get"), big);
    // A size bound refuses a larger object unread.
    assert!(bucket.get("x/big", 1 << 20).is_err());
    let listed = bucket.list("x").expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(bucket.delete_all("x").expect("delete"), 2);
    assert!(matches!(
        bucket.get("x/big", size),
        Err(weir::ObjectError::NotFound { .. })
    ));
}

#[test]
fn checkpoints_fail_while_the_s3_server_is_stopped_and_complete_again_after() {
    let server = S3Server::start();
    let bucket = server.client("weir-checkpoints");
    let dir = tempdir();
    // Every checkpoint is kept, so the coordinator deletes none during the
    // run: whatever it is doing when the server stops, it is a
    // checkpoint's write, and that checkpoint outlasts its timeout.
    let g = outage_job(dir.path(), &server.endpoint, 2);
    let control = JobControl::default();
    let (summary, resumed_at) = std::thread::scope(|s| {
        let run = s.spawn(|| run_job(&g, &RunOptions::default(), &control));
        wait_for_checkpoint_in(&bucket, || run.is_finished());
        // The server stops answering for 3 s (SIGSTOP keeps what it holds).
        server.signal("STOP");
        std::thread::sleep(Duration::from_secs(3));
        server.signal("CONT");
        let resumed_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (run.join().expect("job thread"), resumed_at)
    });
    let summary = summary.expect("the job rides out the outage");
    let live = control.live();
    assert!(live.failed_count >= 1, "no checkpoint failed: {live:?}");
    assert!(
        summary
            .checkpoints
            .iter()
            .any(|c| c.trigger_timestamp > resumed_at),
        "no checkpoint completed after the outage"
    );
    let (_, path) = live.last_checkpoint.expect("a checkpoint");
    assert!(path.starts_with("s3://weir-checkpoints/jobs/"), "{path}");
    assert_eq!(
        sorted_output(&dir.path().join("out")),
        crate::checkpoints::expected(OUTAGE_RECORDS, OUTAGE_KEYS)
    );
}

#[test]
fn a_checkpoint_whose_metadata_is_written_after_its_timeout_fails_and_leaves_no_metadata() {
    // The `_metadata` put is the checkpoint's last write.
    a_stalled_write_fails_its_checkpoint(2, b"/_metadata ");
}

#[test]
fn a_checkpoint_whose_last_state_file_is_written_after_its_timeout_fails() {
    // At parallelism 1 the count's acknowledgement comes last (the sink
    // acknowledges when the barrier passes, the count once its snapshot
    // is written), so its state file is the last write before `_metadata`.
    a_stalled_write_fails_its_checkpoint(1, b".keyed ");
}

/// Runs a job with checkpoints in a bucket behind a proxy that, once a
/// checkpoint completed, holds the next put of a key containing `name`
/// 2 s (the write succeeds, after the checkpoint's 1 s timeout): that
/// checkpoint fails, the bucket never shows its `_metadata`, newer ones
/// complete while the job runs on, and the output is exactly once.
fn a_stalled_write_fails_its_checkpoint(parallelism: u32, name: &'static [u8]) {
    let server = S3Server::start();
    let bucket = server.client("weir-checkpoints");
    let proxy = Proxy::start(&server.endpoint);
    let dir = tempdir();
    let g = outage_job(dir.path(), &proxy.endpoint(), parallelism);
    let control = JobControl::default();
    let (summary, late, there) = std::thread::scope(|s| {
        let run = s.spawn(|| run_job(&g, &RunOptions::default(), &control));
        wait_for_checkpoint_in(&bucket, || run.is_finished());
        proxy.stall_next(
            move |b| b.starts_with(b"PUT ") && contains(b, name),
            Duration::from_secs(2),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let late = loop {
            let failed = control.live().failed_checkpoints;
            if let Some(f) = failed
                .iter()
                .find(|f| f.reason.contains("not complete within"))
            {
                break f.id;
            }
            assert!(
                Instant::now() < deadline && !run.is_finished(),
                "{failed:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        // While the job runs on: a newer checkpoint completes, and the
        // bucket holds no `_metadata` of the late one.
        while wait_for_checkpoint_in(&bucket, || run.is_finished()).0 <= late {
            std::thread::sleep(Duration::from_millis(5));
        }
        let there: Vec<u64> = completed(&bucket, "jobs").iter().map(|c| c.1).collect();
        (run.join().expect("job thread"), late, there)
    });
    summary.expect("the job rides out the stall");
    assert!(proxy.stalled(), "no put was held");
    assert!(!there.contains(&late), "checkpoint {late} in {there:?}");
    // The checkpoint seen before the stall is kept (every one is).
    assert!(there.iter().any(|&id| id < late), "{there:?}");
    assert_eq!(
        sorted_output(&dir.path().join("out")),
        crate::checkpoints::expected(OUTAGE_RECORDS, OUTAGE_KEYS)
    );
}

/// Records of [`outage_job`].
const OUTAGE_RECORDS: u64 = 60_000;
/// Keys of [`outage_job`].
const OUTAGE_KEYS: u64 = 500;

/// A count of [`OUTAGE_RECORDS`] at 10,000 a second over `parallelism`
/// subtasks, its checkpoints in the bucket at `endpoint`: a 1 s timeout,
/// failures tolerated, every checkpoint kept (the coordinator deletes
/// none while it runs).
fn outage_job(dir: &Path, endpoint: &str, parallelism: u32) -> weir::JobGraph {
    let extra = format!(
        "execution.checkpointing.timeout: 1s\nexecution.checkpointing.tolerable-failed-checkpoints: 1000\nstate.checkpoints.num-retained: 1000\n{}",
        s3_yaml(endpoint, KEY, SECRET)
    );
    let job = CountJob {
        count: OUTAGE_RECORDS,
        keys: OUTAGE_KEYS,
        rate: Some(10_000),
        parallelism,
        extra: &extra,
        ..CountJob::default()
    };
    graph(&in_bucket(&job, dir, "s3://weir-checkpoints/jobs"), dir).expect("spec")
}

/// Whether `needle` is in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_savepoint_in_s3_restores_at_another_parallelism_exactly_once() {
    let server = S3Server::start();
    server.bucket("weir-savepoints");
    let s3 = server.config(KEY, SECRET);
    let dir = tempdir();
    let d = dir.path();
    let (count, keys) = (60_000, 600);
    let extra = server.yaml(KEY, SECRET);
    let job = CountJob {
        count,
        keys,
        rate: Some(20_000),
        extra: &extra,
        ..CountJob::default()
    };
    let running = crate::savepoints::start(&job.yaml(d), d);
    running.wait_sink_records(5_000);
    let target = Path::new("s3://weir-savepoints/sp");
    let stop = Some(weir::StopMode { drain: false });
    let done = running
        .savepoint(target, weir::SavepointFormat::Canonical, stop)
        .expect("stop with a savepoint in the bucket");
    assert!(
        done.path.starts_with("s3://weir-savepoints/sp/savepoint-"),
        "{}",
        done.path
    );
    running.thread.join().expect("job thread").expect("stopped");
    // Nothing of it stayed on local disk: a restore reads the bucket.
    let point = RestorePoint::open_in(Path::new(&done.path), &s3).expect("savepoint opens");
    assert!(point.metadata.is_savepoint());
    let p3 = CountJob {
        count,
        keys,
        parallelism: 3,
        extra: &extra,
        ..CountJob::default()
    };
    let g = graph(&p3.yaml(d), d).expect("spec");
    let options = RunOptions {
        restore: Some(point),
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("restored at p=3");
    assert_eq!(
        sorted_output(&d.join("out")),
        crate::checkpoints::expected(count, keys)
    );
}

#[test]
fn another_jobs_folder_is_swept_only_once_the_process_running_it_is_gone() {
    let server = S3Server::start();
    let bucket = server.client("weir-checkpoints");
    let extra = server.yaml(KEY, SECRET);
    let (dir_a, dir_b) = (tempdir(), tempdir());
    let uri = "s3://weir-checkpoints/jobs";
    // Job A runs for minutes. It keeps its checkpoints, so the first one
    // is still there when B starts from it (with one retained, a loaded
    // machine could subsume it first).
    let a_extra = format!("{extra}state.checkpoints.num-retained: 50\n");
    let a = CountJob {
        count: 10_000_000,
        keys: 500,
        rate: Some(5_000),
        extra: &a_extra,
        ..CountJob::default()
    };
    let spec_a = dir_a.path().join("job.yaml");
    std::fs::write(&spec_a, in_bucket(&a, dir_a.path(), uri)).expect("spec");
    let mut running = crate::checkpoints::spawn(&spec_a, None);
    let (_, chk) = wait_for_checkpoint_in(&bucket, || false);
    let folder = chk
        .to_str()
        .and_then(|c| c.strip_prefix("s3://weir-checkpoints/"))
        .and_then(|c| c.rsplit_once('/'))
        .map(|c| c.0.to_owned())
        .expect("job folder");
    // What an upload of A could be in the middle of writing.
    let upload = format!("{folder}/shared/in-flight.sst");
    bucket.put(&upload, b"sst".to_vec()).expect("put");
    // Job B starts from A's checkpoint (its output elsewhere) while A runs:
    // A's folder is left as it is.
    let b_extra = format!("{extra}weir.sink.file.allow-new-folder: true\n");
    let b = CountJob {
        count: 10_000_000,
        keys: 500,
        rate: Some(1_000_000),
        extra: &b_extra,
        ..CountJob::default()
    };
    let spec_b = dir_b.path().join("job.yaml");
    std::fs::write(&spec_b, in_bucket(&b, dir_b.path(), uri)).expect("spec");
    let restore_b = |from: &Path| {
        let mut child = crate::checkpoints::spawn(&spec_b, Some(from));
        std::thread::sleep(Duration::from_secs(2));
        let _ = child.kill();
        let out = child.wait_with_output().expect("reap");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("error"), "{err}");
    };
    restore_b(&chk);
    assert!(
        bucket.get(&upload, 100).is_ok(),
        "a running job's upload was swept"
    );
    // Once A is gone, the next start from its checkpoint sweeps its folder.
    running.kill().expect("SIGKILL");
    running.wait().expect("reap");
    let (_, newest) = latest_in(&bucket, &folder).expect("A's newest checkpoint");
    restore_b(&newest);
    assert!(
        matches!(
            bucket.get(&upload, 100),
            Err(weir::ObjectError::NotFound { .. })
        ),
        "a dead job's leftover stayed"
    );
    assert!(
        latest_in(&bucket, &folder).is_some(),
        "its checkpoints stay"
    );
}

#[test]
fn a_restart_while_s3_is_unreachable_waits_for_it_instead_of_taking_the_checkpoint_for_damaged() {
    let server = S3Server::start();
    let bucket = server.client("weir-checkpoints");
    let proxy = Proxy::start(&server.endpoint);
    let dir = tempdir();
    let d = dir.path();
    // The operator traps once, at value 3000, within 2 s of now.
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_millis())
        + 2_000;
    let hostile = format!("mode: trap-at, value: \"3000\", before-ms: \"{before}\"");
    let extra = format!(
        "{}execution.checkpointing.timeout: 1s\nexecution.checkpointing.tolerable-failed-checkpoints: 1000\nrestart-strategy.type: fixed-delay\nrestart-strategy.fixed-delay.attempts: 20\nrestart-strategy.fixed-delay.delay: 1s\n",
        s3_yaml(&proxy.endpoint(), KEY, SECRET)
    );
    let (count, keys) = (20_000, 300);
    let job = CountJob {
        count,
        keys,
        rate: Some(5_000),
        hostile: Some(&hostile),
        extra: &extra,
        ..CountJob::default()
    };
    let g = graph(&in_bucket(&job, d, "s3://weir-checkpoints/jobs"), d).expect("spec");
    let control = JobControl::default();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| run_job(&g, &RunOptions::default(), &control));
        // Cut the server off once a checkpoint is there, before the trap,
        // and for a while after it.
        wait_for_checkpoint_in(&bucket, || run.is_finished());
        proxy.set_down(true);
        let deadline = Instant::now() + Duration::from_secs(60);
        while control.live().restarts == 0 {
            assert!(
                Instant::now() < deadline && !run.is_finished(),
                "no restart"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs(3));
        proxy.set_down(false);
        run.join().expect("job thread")
    });
    let summary = summary.expect("the job restores once the server answers again");
    assert!(summary.restarts >= 1);
    let live = control.live();
    let restart = live.restart_history.first().expect("a restart");
    assert!(
        restart.cause.contains("trap at value 3000"),
        "{}",
        restart.cause
    );
    // It restored the checkpoint it could not read during the outage,
    // rather than starting from the beginning.
    let restored = restart
        .restored
        .as_ref()
        .expect("restored from a checkpoint");
    assert!(
        restored.id >= 1 && restored.kind == "checkpoint",
        "{restored:?}"
    );
    assert_eq!(
        sorted_output(&d.join("out")),
        crate::checkpoints::expected(count, keys)
    );
}

/// `weir run` of a job checkpointing to `uri` with `config`; its stderr,
/// after checking it failed.
fn refused(uri: &str, config: &str, env_clear: bool) -> String {
    let dir = tempdir();
    let job = CountJob {
        extra: Box::leak(config.to_owned().into_boxed_str()),
        ..CountJob::default()
    };
    let spec = dir.path().join("job.yaml");
    std::fs::write(&spec, in_bucket(&job, dir.path(), uri)).expect("spec");
    let mut cmd = weir();
    cmd.arg("run").arg("-q").arg(&spec);
    if env_clear {
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(!dir.path().join("out").exists() || sorted_output(&dir.path().join("out")).is_empty());
    stderr
}

#[test]
fn a_missing_bucket_or_refused_credentials_fail_at_start_naming_the_key_not_the_secret() {
    let server = S3Server::start();
    server.bucket("weir-checkpoints");
    let err = refused("s3://no-such-bucket/jobs", &server.yaml(KEY, SECRET), false);
    assert!(
        err.contains("bucket `no-such-bucket` does not exist"),
        "{err}"
    );
    let no_keys = format!("s3.endpoint: {}\n", server.endpoint);
    let err = refused("s3://weir-checkpoints/jobs", &no_keys, true);
    assert!(
        err.contains("s3.access-key") && err.contains("s3.secret-key"),
        "{err}"
    );
    // With credential checks on, a wrong secret is refused by the server.
    let out = Command::new(s3_script())
        .arg("credentials")
        .arg(&server.endpoint)
        .output()
        .expect("scripts/s3 credentials");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = String::from_utf8_lossy(&out.stdout).into_owned();
    let (key, secret) = keys.trim().split_once(' ').expect("key secret");
    let wrong = "wrong-secret-0123456789";
    let err = refused(
        "s3://weir-checkpoints/jobs",
        &server.yaml(key, wrong),
        false,
    );
    assert!(
        err.contains("access denied") && err.contains("s3.secret-key"),
        "{err}"
    );
    assert!(!err.contains(wrong) && !err.contains(secret), "{err}");
    let uri = weir::ObjectUri::of(Path::new("s3://weir-checkpoints/jobs")).expect("uri");
    let e = weir::open_bucket(&uri, &server.config(key, wrong)).expect_err("refused");
    assert!(matches!(e, weir::ObjectError::Denied { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains(wrong), "{e:?}");
    // The right ones work.
    let dir = tempdir();
    let job = CountJob {
        extra: Box::leak(server.yaml(key, secret).into_boxed_str()),
        ..CountJob::default()
    };
    let g = graph(
        &in_bucket(&job, dir.path(), "s3://weir-checkpoints/jobs"),
        dir.path(),
    )
    .expect("spec");
    let summary = run_job(&g, &RunOptions::default(), &JobControl::default()).expect("run");
    assert!(summary.checkpoints_completed >= 1, "{summary:?}");
}

/// Incremental RocksDB checkpoints in the bucket.
#[cfg(feature = "rocksdb")]
mod rocksdb {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use weir::{Bucket, JobControl, RestorePoint, RunOptions, S3Config, run_job};

    use super::{KEY, S3Server, SECRET, completed, in_bucket, latest_in};
    use crate::checkpoints::{CountJob, expected, kill_and_restore_from, sorted_output};
    use crate::common::{graph, tempdir, weir};

    /// Every key job folder `job` should hold: its completed checkpoints'
    /// `_metadata` and every file they name (keyed and private files in
    /// their folder, shared files in `shared/`).
    fn named_by_retained(bucket: &Bucket, s3: &S3Config, job: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for (_, id) in completed(bucket, job).into_iter().filter(|c| c.0 == job) {
            let folder = format!("{job}/chk-{id}");
            let point = RestorePoint::open_in(Path::new(&bucket.uri(&folder)), s3).expect("opens");
            keys.insert(format!("{folder}/_metadata"));
            for s in point.metadata.operators.iter().flat_map(|o| &o.subtasks) {
                keys.extend(s.keyed.iter().map(|k| format!("{folder}/{}", k.file)));
                keys.extend(s.channel.iter().map(|c| format!("{folder}/{}", c.file)));
                if let Some(h) = &s.incremental {
                    keys.extend(h.private.iter().map(|f| format!("{folder}/{}", f.file)));
                    keys.extend(h.shared.iter().map(|f| {
                        let name = f.file.strip_prefix("../shared/").expect("a shared name");
                        format!("{job}/shared/{name}")
                    }));
                }
            }
        }
        keys
    }

    /// The keys in job folder `job`, but its `_owner` (which process
    /// runs the job, not a checkpoint file).
    fn held(bucket: &Bucket, job: &str) -> BTreeSet<String> {
        bucket
            .list(job)
            .expect("list")
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !k.ends_with("/_owner"))
            .collect()
    }

    /// An incremental RocksDB count job with checkpoints in `bucket/jobs`.
    fn rocksdb_job(
        server: &S3Server,
        rate: Option<u64>,
        count: u64,
    ) -> (CountJob<'static>, String) {
        let extra = format!(
            "state.backend.type: rocksdb\nstate.backend.incremental: true\nstate.checkpoints.num-retained: 2\n{}",
            server.yaml(KEY, SECRET)
        );
        let extra: &'static str = Box::leak(extra.into_boxed_str());
        let job = CountJob {
            count,
            keys: 500,
            rate,
            extra,
            ..CountJob::default()
        };
        (job, "s3://weir-checkpoints/jobs".to_owned())
    }

    #[test]
    fn a_rocksdb_job_restored_from_checkpoints_in_s3_after_sigkills_writes_exactly_once() {
        let server = S3Server::start();
        let bucket = server.client("weir-checkpoints");
        let s3 = server.config(KEY, SECRET);
        let dir = tempdir();
        let (count, keys) = (200_000, 500);
        let (mut job, uri) = rocksdb_job(&server, Some(12_000), count);
        let spec = dir.path().join("job.yaml");
        std::fs::write(&spec, in_bucket(&job, dir.path(), &uri)).expect("spec");
        let mut seed = crate::checkpoints::kill_seed();
        let latest = || latest_in(&bucket, "jobs");
        let restored = kill_and_restore_from(&spec, 4, (1500, 1000), &mut seed, &latest);
        assert!(
            restored.len() >= 2 && restored.first() < restored.last(),
            "restored from checkpoints {restored:?}"
        );
        // The last run restores at parallelism 3 from the bucket and ends.
        let (_, last) = latest().expect("a checkpoint in the bucket");
        job.parallelism = 3;
        job.rate = None;
        std::fs::write(&spec, in_bucket(&job, dir.path(), &uri)).expect("spec");
        let out = weir()
            .arg("run")
            .arg("-q")
            .arg("-s")
            .arg(&last)
            .arg(&spec)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            sorted_output(&dir.path().join("out")),
            expected(count, keys)
        );
        // The newest checkpoint is always in the folder of the last run that
        // completed one, so every folder holding a completed checkpoint was
        // restored from by the next run, which swept it at its start: it holds
        // exactly the files its completed checkpoints name, nothing a killed
        // upload left. (The last run finished, and deleted its own folder.)
        let folders: BTreeSet<String> = completed(&bucket, "jobs")
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert!(!folders.is_empty());
        for job in &folders {
            assert_eq!(
                held(&bucket, job),
                named_by_retained(&bucket, &s3, job),
                "{job}"
            );
        }
    }

    #[test]
    fn after_a_run_the_bucket_holds_exactly_the_files_of_the_retained_checkpoints() {
        let server = S3Server::start();
        let bucket = server.client("weir-checkpoints");
        let s3 = server.config(KEY, SECRET);
        let dir = tempdir();
        let (count, keys) = (40_000, 500);
        let (job, uri) = rocksdb_job(&server, Some(20_000), count);
        let g = graph(&in_bucket(&job, dir.path(), &uri), dir.path()).expect("spec");
        let options = RunOptions {
            keep_checkpoints: true,
            ..RunOptions::default()
        };
        let summary = run_job(&g, &options, &JobControl::default()).expect("run");
        assert!(summary.checkpoints_completed >= 4, "{summary:?}");
        assert_eq!(
            sorted_output(&dir.path().join("out")),
            expected(count, keys)
        );
        let job_key = format!("jobs/{}", summary.job_id);
        let retained = completed(&bucket, &job_key);
        assert_eq!(retained.len(), 2, "num-retained 2: {retained:?}");
        let named = named_by_retained(&bucket, &s3, &job_key);
        assert!(named.iter().any(|k| k.contains("/shared/")), "{named:?}");
        assert_eq!(held(&bucket, &job_key), named);
        // The newest restores (its files downloaded from the bucket).
        let newest = retained.iter().map(|c| c.1).max().expect("one");
        let point = RestorePoint::open_in(
            &PathBuf::from(format!("{uri}/{}/chk-{newest}", summary.job_id)),
            &s3,
        )
        .expect("opens");
        point.verify().expect("intact");
    }
}

#[test]
fn the_rest_api_and_weir_checkpoints_show_s3_paths() {
    use crate::api::request;
    use crate::server::wait_for;
    let s3 = S3Server::start();
    s3.bucket("weir-checkpoints");
    s3.bucket("weir-savepoints");
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    let settings: String = s3
        .yaml(KEY, SECRET)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    std::fs::write(
        &job,
        format!(
            "name: s3-api\nconfig:\n  weir.sandbox.cache-dir: {cache}\n  execution.checkpointing.interval: 200ms\n  execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION\n  state.checkpoints.dir: s3://weir-checkpoints/jobs\n  execution.checkpointing.savepoint-dir: s3://weir-savepoints/sp\n{settings}sources:\n  - {{ id: gen, type: datagen, count: 100000000, keys: 100, rate: 20000 }}\noperators:\n  - {{ id: count, uid: count, wasm: {wasm} }}\nsinks:\n  - {{ id: out, type: discard }}\nedges:\n  - {{ from: gen, to: count, partition: hash }}\n  - {{ from: count, to: out }}\n",
            cache = q(&crate::common::cache_dir().display().to_string()),
            wasm = q(weir_test_guests::COUNT),
        ),
    )
    .expect("job");
    let mut run = crate::common::spawn_with_api({
        let mut cmd = crate::common::weir();
        cmd.arg("run").arg(&job);
        cmd
    });
    let send = |method: &str, path: &str, body: &[u8]| {
        request(&run.addr, Some(&run.token), method, path, body)
    };
    let job_path = format!("/api/v1/jobs/{}", run.id);
    let checkpoint = format!("s3://weir-checkpoints/jobs/{}/chk-", run.id);
    // Flink's metric and the checkpoint statistics name the checkpoint by
    // its URI in the bucket.
    let metric = wait_for(60, "a checkpoint's path in the metric", || {
        let (_, body) = send(
            "GET",
            &format!("{job_path}/metrics?get=lastCheckpointExternalPath"),
            b"",
        );
        body.contains(&checkpoint).then_some(body)
    });
    assert!(metric.contains("lastCheckpointExternalPath"), "{metric}");
    let (status, stats) = send("GET", &format!("{job_path}/checkpoints"), b"");
    assert_eq!(status, 200, "{stats}");
    assert!(
        stats.contains(&format!("\"external_path\":\"{checkpoint}")),
        "{stats}"
    );
    // A savepoint triggered over the API goes to the bucket, and its
    // status says where.
    let (status, trigger) = send("POST", &format!("{job_path}/savepoints"), b"{}");
    assert_eq!(status, 202, "{trigger}");
    let trigger: serde_json::Value = serde_json::from_str(&trigger).expect("json");
    let trigger = trigger["request-id"]
        .as_str()
        .expect("request-id")
        .to_owned();
    let done = wait_for(60, "the savepoint", || {
        let (_, body) = send("GET", &format!("{job_path}/savepoints/{trigger}"), b"");
        body.contains("COMPLETED").then_some(body)
    });
    assert!(
        done.contains("\"location\":\"s3://weir-savepoints/sp/savepoint-"),
        "{done}"
    );
    let (status, resp) = send("PATCH", &format!("{job_path}?mode=cancel"), b"");
    assert_eq!(status, 202, "{resp}");
    wait_for(30, "weir run to exit", || {
        run.child.try_wait().expect("poll")
    });
    // `weir checkpoints` lists the bucket's jobs and the checkpoints the
    // cancelled job kept.
    let out = crate::common::weir()
        .args(["checkpoints", "s3://weir-checkpoints/jobs"])
        .env("AWS_ENDPOINT_URL", &s3.endpoint)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .output()
        .expect("weir checkpoints");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing.contains(&run.id), "{listing}");
    assert!(listing.contains("chk-"), "{listing}");
}

#[test]
fn a_server_that_does_not_answer_is_told_apart_from_a_missing_object() {
    let server = S3Server::start();
    server.client("probe").put("k", b"v".to_vec()).expect("put");
    let proxy = Proxy::start(&server.endpoint);
    let config = S3Config {
        endpoint: Some(proxy.endpoint()),
        ..server.config(KEY, SECRET)
    };
    let uri = weir::ObjectUri::of(Path::new("s3://probe")).expect("uri");
    let bucket = weir::open_bucket(&uri, &config).expect("bucket");
    proxy.set_down(true);
    match bucket.get("k", 10) {
        Err(e) => assert!(e.is_unreachable(), "{e:?}"),
        Ok(_) => panic!("read through a cut proxy"),
    }
    proxy.set_down(false);
    assert_eq!(bucket.get("k", 10).expect("read again"), b"v");
    match bucket.get("missing", 10) {
        Err(e) => assert!(
            matches!(e, weir::ObjectError::NotFound { .. }) && !e.is_unreachable(),
            "{e:?}"
        ),
        Ok(_) => panic!("a missing object was read"),
    }
}
