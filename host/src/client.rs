//! The CLI side of the REST API: `weir list`, `weir upload`, `weir submit`,
//! `weir cancel`, `weir checkpoints JOB_ID`, `weir savepoint`, `weir stop`
//! and `weir savepoints` against a `weir serve` (or a `weir run`'s API).
//!
//! The server URL comes from `--server` or `WEIR_SERVER`, else
//! `http://<rest.bind-address>:<rest.port>` of `weir.yaml`; the token from
//! `--token` or `WEIR_TOKEN`, else `weir.server.token`, else the token file
//! of a server on this machine (`<weir.server.data-dir>/token`). Each verb
//! prints a table, or the server's JSON with `--json`. ureq is the client:
//! small, blocking (the CLI makes one request at a time), plain HTTP here.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::config::Config;

/// What `weir submit` (and `weir run --server`) asks for besides the spec.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Default parallelism of nodes that set none.
    pub parallelism: Option<u32>,
    /// Start from this checkpoint or savepoint (a path on the server).
    pub savepoint_path: Option<String>,
    /// Skip restored state whose uid the job lacks.
    pub allow_non_restored_state: bool,
    /// `CLAIM` or `NO_CLAIM` (the server's default if `None`).
    pub claim_mode: Option<String>,
}

/// What `weir savepoint` and `weir stop` ask for.
#[derive(Debug, Clone, Default)]
pub struct SavepointOptions {
    /// The folder on the server the savepoint goes into.
    pub target: Option<String>,
    /// `canonical` or `native`.
    pub format: Option<String>,
    /// Stop the job with the savepoint (`Some(drain)`).
    pub stop: Option<bool>,
    /// Return the trigger id at once instead of waiting.
    pub detached: bool,
    /// Cancel the job once the savepoint is taken (`weir cancel -s`).
    pub cancel_job: bool,
}

/// Where the server is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client from flags (or their environment variables) and `config`.
    pub fn new(server: Option<&str>, token: Option<&str>, config: &Config) -> anyhow::Result<Self> {
        let base = match server {
            Some(s) => s.trim_end_matches('/').to_owned(),
            None => format!(
                "http://{}:{}",
                config.server.bind_address, config.server.port
            ),
        };
        let token = match token {
            Some(t) => t.to_owned(),
            None => match &config.server.token {
                Some(t) => t.clone(),
                None => std::fs::read_to_string(config.server.data_dir.join("token"))
                    .map(|t| t.trim().to_owned())
                    .context("no API token: pass --token or set WEIR_TOKEN")?,
            },
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    /// Sends a request and returns the JSON answer; a 4xx/5xx is an error
    /// with the server's message.
    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("authorization", &auth).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("authorization", &auth)
                .call(),
            ("PATCH", _) => self
                .agent
                .patch(&url)
                .header("authorization", &auth)
                .send_empty(),
            (_, Some(b)) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .send(b),
            (_, None) => self
                .agent
                .post(&url)
                .header("authorization", &auth)
                .send_empty(),
        };
        let mut resp = result.with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            let msg = value["errors"][0]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            bail!("{status}: {msg}");
        }
        Ok(value)
    }

    /// `weir upload FILE`.
    pub fn upload(&self, file: &Path) -> anyhow::Result<Value> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .context("the file needs a name")?;
        let path = format!("/api/v1/bundles?name={}", encode(name));
        self.request("POST", &path, Some(&bytes))
    }

    /// `weir submit JOB`: a YAML or JSON spec whose `wasm` names bundles.
    pub fn submit(&self, job: &Path, options: &SubmitOptions) -> anyhow::Result<Value> {
        self.submit_spec(read_spec(job)?, options)
    }

    /// `weir run --server URL JOB`: uploads every operator whose `wasm` is a
    /// file here (relative to `operators_dir`, default the spec's folder),
    /// names it by its bundle id in the spec, and submits the job.
    pub fn run_remote(
        &self,
        job: &Path,
        operators_dir: Option<&Path>,
        options: &SubmitOptions,
    ) -> anyhow::Result<Value> {
        let mut spec = read_spec(job)?;
        let base = operators_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| job.parent().map(Path::to_path_buf).unwrap_or_default());
        if let Some(ops) = spec.get_mut("operators").and_then(Value::as_array_mut) {
            for op in ops {
                let Some(wasm) = op.get("wasm").and_then(Value::as_str) else {
                    continue;
                };
                let file = base.join(wasm);
                if file.is_file() {
                    let bundle = self.upload(&file)?;
                    op["wasm"] = bundle["id"].clone();
                }
            }
        }
        self.submit_spec(spec, options)
    }

    fn submit_spec(&self, spec: Value, options: &SubmitOptions) -> anyhow::Result<Value> {
        let mut body = serde_json::json!({ "job": spec });
        if let Some(p) = options.parallelism {
            body["parallelism"] = p.into();
        }
        if let Some(p) = &options.savepoint_path {
            body["savepointPath"] = p.as_str().into();
        }
        if options.allow_non_restored_state {
            body["allowNonRestoredState"] = true.into();
        }
        if let Some(m) = &options.claim_mode {
            body["claimMode"] = m.as_str().into();
        }
        self.request("POST", "/api/v1/jobs", Some(body.to_string().as_bytes()))
    }

    /// `weir list`.
    pub fn list(&self) -> anyhow::Result<Value> {
        self.request("GET", "/api/v1/jobs", None)
    }

    /// `weir cancel JOB_ID`.
    pub fn cancel(&self, id: &str) -> anyhow::Result<Value> {
        self.request(
            "PATCH",
            &format!("/api/v1/jobs/{}?mode=cancel", encode(id)),
            None,
        )
    }

    /// `weir savepoint JOB_ID [DIR]` and `weir stop JOB_ID`: triggers the
    /// savepoint and, unless detached, waits for it; the answer holds its
    /// `location` (or, detached, the `request-id`).
    pub fn savepoint(&self, id: &str, options: &SavepointOptions) -> anyhow::Result<Value> {
        let mut body = serde_json::json!({});
        if let Some(t) = &options.target {
            body["targetDirectory"] = t.as_str().into();
        }
        if let Some(f) = &options.format {
            body["formatType"] = f.to_ascii_uppercase().into();
        }
        if options.cancel_job {
            body["cancelJob"] = true.into();
        }
        let path = match options.stop {
            Some(drain) => {
                body["drain"] = drain.into();
                format!("/api/v1/jobs/{}/stop", encode(id))
            }
            None => format!("/api/v1/jobs/{}/savepoints", encode(id)),
        };
        let started = self.request("POST", &path, Some(body.to_string().as_bytes()))?;
        let trigger = started["request-id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if options.detached {
            return Ok(started);
        }
        let poll = format!(
            "/api/v1/jobs/{}/savepoints/{}",
            encode(id),
            encode(&trigger)
        );
        self.wait(&poll)
    }

    /// `weir savepoint --dispose PATH`.
    pub fn dispose(&self, path: &str) -> anyhow::Result<Value> {
        let body = serde_json::json!({ "savepointPath": path });
        let started = self.request(
            "POST",
            "/api/v1/savepoint-disposal",
            Some(body.to_string().as_bytes()),
        )?;
        let trigger = started["request-id"].as_str().unwrap_or_default();
        self.wait(&format!("/api/v1/savepoint-disposal/{}", encode(trigger)))
    }

    /// Polls an asynchronous operation until it completes; its failure is
    /// an error with the cause.
    fn wait(&self, poll: &str) -> anyhow::Result<Value> {
        loop {
            let v = self.request("GET", poll, None)?;
            if v["status"]["id"] == "COMPLETED" {
                if let Some(cause) = v["operation"]["failure-cause"]["message"].as_str() {
                    bail!("{cause}");
                }
                return Ok(v["operation"].clone());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// `weir savepoints [JOB_ID]`.
    pub fn savepoints(&self, job: Option<&str>) -> anyhow::Result<Value> {
        let path = match job {
            Some(j) => format!("/api/v1/savepoints?job={}", encode(j)),
            None => "/api/v1/savepoints".to_owned(),
        };
        self.request("GET", &path, None)
    }

    /// Asks job `id` for a checkpoint now.
    pub fn trigger_checkpoint(&self, id: &str) -> anyhow::Result<Value> {
        self.request(
            "POST",
            &format!("/api/v1/jobs/{}/checkpoints", encode(id)),
            None,
        )
    }

    /// Job `id`'s detail: its graph, counters and state.
    pub fn job(&self, id: &str) -> anyhow::Result<Value> {
        self.request("GET", &format!("/api/v1/jobs/{}", encode(id)), None)
    }

    /// `weir dead-letters JOB_ID`: the records the job quarantined.
    pub fn dead_letters(&self, id: &str) -> anyhow::Result<Value> {
        let path = format!("/api/v1/jobs/{}/dead-letters?limit=1000", encode(id));
        self.request("GET", &path, None)
    }

    /// `weir checkpoints JOB_ID`.
    pub fn checkpoints(&self, id: &str) -> anyhow::Result<Value> {
        self.request(
            "GET",
            &format!("/api/v1/jobs/{}/checkpoints", encode(id)),
            None,
        )
    }
}

/// Reads a YAML or JSON job spec as JSON.
fn read_spec(job: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(job).with_context(|| format!("cannot read {}", job.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} is not YAML or JSON", job.display()))
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The job overview as a table.
pub fn jobs_table(v: &Value) -> String {
    let mut t = format!(
        "{:<32}  {:<10}  {:>10}  {}\n",
        "JOB ID", "STATE", "DURATION", "NAME"
    );
    for j in v["jobs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            t,
            "{:<32}  {:<10}  {:>9.1}s  {}",
            j["jid"].as_str().unwrap_or(""),
            j["state"].as_str().unwrap_or(""),
            j["duration"].as_f64().unwrap_or(0.0) / 1e3,
            j["name"].as_str().unwrap_or("")
        );
    }
    t
}

/// The savepoints of a server as a table.
pub fn savepoints_table(v: &Value) -> String {
    let mut t = format!(
        "{:<24}  {:<32}  {:<9}  {:>12}  {}
",
        "TIME (UTC)", "JOB ID", "FORMAT", "SIZE bytes", "PATH"
    );
    for s in v["savepoints"].as_array().into_iter().flatten() {
        let _ = writeln!(
            t,
            "{:<24}  {:<32}  {:<9}  {:>12}  {}",
            crate::checkpoint::listing::utc(s["timestamp"].as_i64().unwrap_or(0)),
            s["jobId"].as_str().unwrap_or(""),
            s["format"].as_str().unwrap_or(""),
            s["size"].as_u64().unwrap_or(0),
            s["path"].as_str().unwrap_or("")
        );
        for c in s["components"].as_array().into_iter().flatten() {
            let _ = writeln!(
                t,
                "{:<24}    component {} sha256:{}",
                "",
                c[0].as_str().unwrap_or(""),
                c[1].as_str().unwrap_or("")
            );
        }
    }
    t
}

/// The records a job quarantined, a line each, as `weir dead-letters`
/// prints them.
pub fn dead_letters_table(v: &Value) -> String {
    let mut t = format!(
        "{} record(s) quarantined{}\n",
        v["total"].as_u64().unwrap_or(0),
        if v["enabled"] == true {
            ""
        } else {
            " (weir.dead-letter.enabled is off)"
        }
    );
    for r in v["records"].as_array().into_iter().flatten() {
        let text = |k: &str| {
            let s = r[k]
                .as_str()
                .or(r[format!("{k}_hex")].as_str())
                .unwrap_or("-");
            let cut: String = s.chars().take(40).collect();
            cut
        };
        t.push_str(&format!(
            "{}[{}] key {} value {} (after {} failures, checkpoint {}): {}\n",
            r["operator"].as_str().unwrap_or("?"),
            r["subtask"].as_u64().unwrap_or(0) + 1,
            text("key"),
            text("value"),
            r["failures"],
            r["checkpoint"],
            r["message"].as_str().unwrap_or("")
        ));
    }
    t
}

/// A job's checkpoint statistics as a table.
pub fn checkpoints_table(v: &Value) -> String {
    let mut t = format!(
        "completed: {}  failed: {}  restored: {}  latest: {}\n{:>6}  {:>9}  {:>12}  {:>12}  {:>9}  {:>9}  {:>9}\n",
        v["counts"]["completed"],
        v["counts"]["failed"],
        v["counts"]["restored"],
        v["latest"]["completed"]["external_path"]
            .as_str()
            .unwrap_or("-"),
        "ID",
        "STATUS",
        "DURATION ms",
        "SIZE bytes",
        "SYNC ms",
        "ASYNC ms",
        "ALIGN ms"
    );
    for c in v["history"].as_array().into_iter().flatten() {
        let _ = writeln!(
            t,
            "{:>6}  {:>9}  {:>12.1}  {:>12}  {:>9.2}  {:>9.2}  {:>9.2}",
            c["id"].as_u64().unwrap_or(0),
            c["status"].as_str().unwrap_or(""),
            c["end_to_end_duration"].as_f64().unwrap_or(0.0),
            c["state_size"].as_u64().unwrap_or(0),
            c["max_sync_duration"].as_f64().unwrap_or(0.0),
            c["max_async_duration"].as_f64().unwrap_or(0.0),
            c["max_alignment_duration"].as_f64().unwrap_or(0.0),
        );
    }
    t
}
