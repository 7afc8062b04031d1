//! Helpers shared by the end-to-end tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weir::Config;
use weir::JobGraph;
use weir::{JobControl, JobError, JobSummary, RunOptions, run_job};
use weir::{JobSpec, SpecErrors, SpecFormat, validate};

/// The `weir` binary built for these tests.
pub fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// A compiled-component cache shared by all tests of this run.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

/// The folder of checked-in test data.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/e2e/data")
        .join(name)
}

/// A config with the shared cache and no progress lines.
pub fn config() -> Config {
    Config {
        cache_dir: cache_dir(),
        progress_interval: std::time::Duration::ZERO,
        ..Config::default()
    }
}

/// Parses and validates a YAML spec whose paths are relative to `dir`.
pub fn graph(yaml: &str, dir: &Path) -> Result<JobGraph, SpecErrors> {
    let spec = JobSpec::parse(yaml, SpecFormat::Yaml)?;
    validate(&spec, &config(), dir, dir)
}

/// Runs a YAML spec in this process.
pub fn run(yaml: &str, dir: &Path) -> Result<JobSummary, JobError> {
    let g = graph(yaml, dir).map_err(JobError::Spec)?;
    run_job(&g, &RunOptions::default(), &JobControl::default())
}

/// Writes a spec into `dir` and runs `weir run` on it.
pub fn run_cli(yaml: &str, dir: &Path) -> Output {
    let job = dir.join("job.yaml");
    std::fs::write(&job, yaml).expect("write spec");
    weir()
        .arg("run")
        .arg(&job)
        .env("WEIR_LOG", "warn")
        .output()
        .expect("run weir")
}

/// The names in `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every line of every `part-*` file in `folder`.
pub fn output_lines(folder: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let mut parts: Vec<_> = std::fs::read_dir(folder)
        .expect("output folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-"))
        })
        .collect();
    parts.sort();
    for p in parts {
        let text = std::fs::read_to_string(&p).expect("part file");
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

/// The last value written per key (`key<TAB>value` lines).
pub fn last_values(lines: &[String]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in lines {
        let (k, v) = l.split_once('\t').expect("key<TAB>value");
        m.insert(k.to_owned(), v.to_owned());
    }
    m
}

/// A temporary folder for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Quotes a path for YAML.
pub fn q(p: &str) -> String {
    format!("{p:?}")
}

/// A `weir run` started with its API, as [`spawn_with_api`] found it.
pub struct RunWithApi {
    /// The process.
    pub child: std::process::Child,
    /// The lines it logged before it said where its API is.
    pub log: Vec<String>,
    /// The API's `host:port`.
    pub addr: String,
    /// The job's id.
    pub id: String,
    /// The API token.
    pub token: String,
}

/// Starts `cmd` (a `weir run`, logging at info) and reads its stderr up
/// to the line that says where its API is; the rest is drained so the job
/// never blocks on it.
pub fn spawn_with_api(mut cmd: Command) -> RunWithApi {
    let mut child = cmd
        .env("WEIR_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir run");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let mut log = Vec::new();
    let (addr, id, token) = loop {
        let line = lines.next().expect("weir run exited").expect("line");
        if let Some(rest) = line.strip_prefix("REST API: http://") {
            let (addr, rest) = rest.split_once("/api/v1/jobs/").expect("url");
            let (id, rest) = rest.split_once(' ').expect("id");
            let token = rest
                .trim_start_matches("(Authorization: Bearer ")
                .trim_end_matches(')');
            break (addr.to_owned(), id.to_owned(), token.to_owned());
        }
        log.push(line);
    };
    std::thread::spawn(move || for _ in lines {});
    RunWithApi {
        child,
        log,
        addr,
        id,
        token,
    }
}

/// Runs `weir run -q -s FROM SPEC` to its end; panics with its stderr if
/// it fails.
pub fn run_restored(spec: &Path, from: &Path) {
    let out = weir()
        .args(["run", "-q", "-s"])
        .arg(from)
        .arg(spec)
        .env("WEIR_LOG", "warn")
        .output()
        .expect("weir run -s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
