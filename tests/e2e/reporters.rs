//! Metric reporters against real servers: a running job's metrics arrive
//! in a real InfluxDB 1.x (`influxd`) with Flink's measurement, tag and
//! field names, also across a restart of the server; `/metrics` passes
//! Prometheus's own `promtool check metrics`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checkpoints::CountJob;
use crate::common::{RunWithApi, spawn_with_api, tempdir, weir};

/// `promtool check metrics` accepts `text`: no syntax error and no lint
/// but the one Flink's names cannot pass (camelCase).
pub(crate) fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/install-deps installs it)");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let err = String::from_utf8_lossy(&out.stderr);
    let camel = "metric names should be written in 'snake_case' not 'camelCase'";
    let ok = match out.status.code() {
        Some(0) => true,
        Some(3) => err
            .lines()
            .all(|l| l.trim().is_empty() || l.ends_with(camel)),
        _ => false,
    };
    assert!(ok, "promtool: {:?}\n{err}\n{text}", out.status);
}

/// A throwaway `influxd` in a folder of its own (scripts/influxdb),
/// stopped when dropped.
struct Influx {
    dir: PathBuf,
    url: String,
}

fn influx_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/influxdb")
}

impl Influx {
    fn start(dir: &Path) -> Self {
        let out = Command::new(influx_script())
            .arg("start")
            .arg(dir)
            .output()
            .expect("scripts/influxdb");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Influx {
            dir: dir.to_owned(),
            url,
        }
    }

    fn stop(&self) {
        let _ = Command::new(influx_script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }

    /// One InfluxQL query; the first series of the first result.
    fn query(&self, db: &str, q: &str) -> Value {
        let (status, text) = crate::api::request(
            self.url.trim_start_matches("http://"),
            None,
            "GET",
            &format!("/query?db={db}&epoch=ms&q={}", encode(q)),
            b"",
        );
        assert_eq!(status, 200, "{q}: {text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        v["results"][0]["series"][0].clone()
    }

    fn create_db(&self, db: &str) {
        let (status, text) = crate::api::request(
            self.url.trim_start_matches("http://"),
            None,
            "POST",
            &format!("/query?q={}", encode(&format!("CREATE DATABASE {db}"))),
            b"",
        );
        assert_eq!(status, 200, "{text}");
    }

    /// The `port` of its URL.
    fn port(&self) -> &str {
        self.url.rsplit(':').next().unwrap_or_default()
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A reporter block for `weir.yaml`, as a Flink user writes it.
fn reporter_yaml(influx: &Influx, db: &str, interval: &str) -> String {
    format!(
        "metrics.reporter.influxdb.factory.class: org.apache.flink.metrics.influxdb.InfluxdbReporterFactory\n\
         metrics.reporter.influxdb.host: 127.0.0.1\n\
         metrics.reporter.influxdb.port: {}\n\
         metrics.reporter.influxdb.db: {db}\n\
         metrics.reporter.influxdb.interval: {interval}\n\
         metrics.reporter.influxdb.scope.variables.excludes: task_attempt_num\n",
        influx.port()
    )
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_millis())
}

/// Polls `check` until it gives a value (60 s at most).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_running_jobs_metrics_arrive_in_influxdb_with_flinks_names_also_across_a_server_restart() {
    let dir = tempdir();
    let d = dir.path();
    let influx = Influx::start(&d.join("influx"));
    influx.create_db("weir");
    std::fs::write(d.join("weir.yaml"), reporter_yaml(&influx, "weir", "200ms")).expect("yaml");
    let job = CountJob {
        count: 10_000_000,
        rate: Some(20_000),
        ..CountJob::default()
    };
    std::fs::write(d.join("job.yaml"), job.yaml(d)).expect("job");
    let mut cmd = weir();
    cmd.current_dir(d)
        .args(["--config", "weir.yaml", "run", "job.yaml"]);
    let RunWithApi {
        mut child, log, id, ..
    } = spawn_with_api(cmd);
    assert!(
        log.iter()
            .any(|l| l.contains("metrics reporter influxdb (influxdb http://127.0.0.1:")),
        "{log:#?}"
    );
    let job_filter = format!("WHERE \"job_id\" = '{id}'");
    // lastCheckpointExternalPath arrives as a string: a completed checkpoint.
    let path = eventually("a checkpoint path in InfluxDB", || {
        let s = influx.query(
            "weir",
            &format!("SELECT last(\"value\") FROM \"jobmanager_job_lastCheckpointExternalPath\" {job_filter}"),
        );
        let p = s["values"][0][1].as_str()?.to_owned();
        p.contains("chk-").then_some(p)
    });
    assert!(Path::new(&path).is_absolute(), "{path}");
    let duration = influx.query(
        "weir",
        &format!(
            "SELECT last(\"value\") FROM \"jobmanager_job_lastCheckpointDuration\" {job_filter}"
        ),
    );
    assert!(
        duration["values"][0][1].as_f64().is_some_and(|v| v >= 0.0),
        "{duration}"
    );
    // numRecordsIn per operator subtask, a counter (`count`), with Flink's tags.
    let records = eventually("numRecordsIn of the count operator", || {
        let s = influx.query(
            "weir",
            &format!("SELECT last(\"count\") FROM \"taskmanager_job_task_operator_numRecordsIn\" {job_filter} AND \"operator_name\" = 'count' GROUP BY \"subtask_index\""),
        );
        let n = s["values"][0][1].as_u64()?;
        (n > 0).then_some(n)
    });
    assert!(records > 0);
    let tags = influx.query(
        "weir",
        "SHOW TAG KEYS FROM \"taskmanager_job_task_operator_numRecordsIn\"",
    );
    let keys: Vec<&str> = tags["values"]
        .as_array()
        .expect("tag keys")
        .iter()
        .filter_map(|v| v[0].as_str())
        .collect();
    for k in [
        "host",
        "job_id",
        "job_name",
        "operator_id",
        "operator_name",
        "subtask_index",
        "task_name",
        "tm_id",
    ] {
        assert!(keys.contains(&k), "{k}: {keys:?}");
    }
    assert!(!keys.contains(&"task_attempt_num"), "excluded: {keys:?}");

    // The server goes away and comes back on the same port: the reporter
    // keeps the reports it could not write and sends them then.
    influx.stop();
    let stopped_at = now_ms();
    std::thread::sleep(Duration::from_millis(1500));
    let back_at = now_ms();
    let again = Influx::start(&d.join("influx"));
    assert_eq!(again.url, influx.url, "the same port");
    std::mem::forget(again); // `influx` stops it
    let during = eventually("points stamped while the server was down", || {
        let s = influx.query(
            "weir",
            &format!(
                "SELECT count(\"value\") FROM \"jobmanager_job_numRestarts\" {job_filter} AND time >= {stopped_at}ms AND time < {back_at}ms"
            ),
        );
        let n = s["values"][0][1].as_u64()?;
        (n >= 2).then_some(n)
    });
    assert!(during >= 2, "{during}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_guests_own_counters_reach_influxdb_in_the_report_sent_when_weir_run_ends() {
    let dir = tempdir();
    let d = dir.path();
    let influx = Influx::start(&d.join("influx"));
    influx.create_db("windows");
    // A long interval: only the last report, at the end, can carry them.
    std::fs::write(d.join("weir.yaml"), reporter_yaml(&influx, "windows", "1h")).expect("yaml");
    let spec = crate::windows::window_sum_job("out");
    std::fs::write(d.join("job.yaml"), spec).expect("job");
    let out = weir()
        .current_dir(d)
        .args(["--config", "weir.yaml", "run", "-q", "job.yaml"])
        .output()
        .expect("weir run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = influx.query(
        "windows",
        "SELECT sum(\"count\") FROM (SELECT last(\"count\") AS \"count\" FROM \"taskmanager_job_task_operator_late_elements\" GROUP BY \"subtask_index\")",
    );
    assert_eq!(s["values"][0][1].as_u64(), Some(1), "one late element: {s}");
}
