//! The InfluxDB reporter: every `interval`, the metrics of the jobs, as
//! the reporter's filters select them, written to InfluxDB 1.x's `/write`
//! in one request, all stamped with one time (ms), as Flink's reporter
//! does. It runs on a thread of its own and reads only the jobs' live
//! counters, so a slow or absent server never slows a job. A write that
//! fails for want of the server is sent again with the next one (at most
//! [`MAX_PENDING_BYTES`] kept); one the server refuses as malformed is
//! dropped. Each change between failing and succeeding is logged once.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::point::{Rates, collect};
use super::{host_name, line_protocol, select};
use crate::clock::epoch_ms;
use crate::config::{InfluxSettings, ReporterConfig};
use crate::session::JobEntry;

/// The most unsent line-protocol text kept for the next attempt; older
/// reports go first.
pub const MAX_PENDING_BYTES: usize = 16 << 20;

/// Where a reporter finds the jobs to report; `None` once they are gone
/// (the server stopped).
pub type JobSource = Box<dyn Fn() -> Option<Vec<Arc<JobEntry>>> + Send>;

/// A running InfluxDB reporter; dropping it sends a last report and stops
/// its thread.
#[derive(Debug)]
pub struct InfluxReporter {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What became of one write.
enum Outcome {
    Written,
    /// The server could not be reached or answered 404 or 5xx: try again.
    Retry(String),
    /// The server refused the points (400): they are dropped.
    Refused(String),
}

impl InfluxReporter {
    /// Starts reporter `name` with `config` (an InfluxDB one), reporting
    /// the jobs `jobs` gives.
    pub fn start(name: &str, config: &ReporterConfig, jobs: JobSource) -> anyhow::Result<Self> {
        let url = write_url(&config.influx)?;
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let config = config.clone();
        let label = format!("metrics reporter {name} (influxdb {})", redacted(&url));
        tracing::info!("{label}: every {} ms", config.interval.as_millis());
        let thread = std::thread::Builder::new()
            .name(format!("reporter-{name}"))
            .spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_connect(Some(config.influx.connect_timeout))
                    .timeout_global(Some(config.influx.write_timeout))
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut state = ReportState::default();
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(config.interval),
                        Err(RecvTimeoutError::Timeout)
                    );
                    let Some(jobs) = jobs() else { break };
                    if last && state.failing {
                        // No last report to a server that is not answering:
                        // it would hold the shutdown for its timeouts.
                        break;
                    }
                    state.report(&agent, &url, &label, &config, &jobs);
                    if last {
                        break;
                    }
                }
            })?;
        Ok(InfluxReporter {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for InfluxReporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a reporter keeps between reports.
#[derive(Default)]
struct ReportState {
    rates: Rates,
    host: Option<String>,
    pending: String,
    failing: bool,
}

impl ReportState {
    /// Collects, encodes and writes one report (with what is pending).
    fn report(
        &mut self,
        agent: &ureq::Agent,
        url: &str,
        label: &str,
        config: &ReporterConfig,
        jobs: &[Arc<JobEntry>],
    ) {
        let host = self.host.get_or_insert_with(host_name).clone();
        let points = select(collect(jobs, &host, &mut self.rates), config);
        let now = epoch_ms();
        for p in &points {
            line_protocol::encode(p, now, &mut self.pending);
        }
        if self.pending.len() > MAX_PENDING_BYTES {
            // Whole lines go, oldest first; a newline is a char boundary.
            let cut = self.pending.len() - MAX_PENDING_BYTES;
            let at = self.pending.as_bytes()[cut..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.pending.len(), |i| cut + i + 1);
            self.pending.drain(..at);
        }
        if self.pending.is_empty() {
            return;
        }
        match write(agent, url, &self.pending) {
            Outcome::Written => {
                if self.failing {
                    tracing::info!("{label}: writes succeed again");
                }
                self.failing = false;
                self.pending.clear();
            }
            Outcome::Retry(why) => {
                if !self.failing {
                    tracing::warn!("{label}: write failed, retried at the next interval: {why}");
                }
                self.failing = true;
            }
            Outcome::Refused(why) => {
                tracing::warn!("{label}: the server refused the points, dropped: {why}");
                self.pending.clear();
            }
        }
    }
}

/// The `/write` URL of `s`: database, retention policy, consistency,
/// millisecond precision and credentials as query parameters.
fn write_url(s: &InfluxSettings) -> anyhow::Result<String> {
    let host = s.host.as_deref().unwrap_or("localhost");
    let mut url = url::Url::parse(&format!("{}://{host}:{}/write", s.scheme, s.port))
        .map_err(|e| anyhow::anyhow!("Invalid host/port configuration ({host}:{}): {e}", s.port))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("db", s.db.as_deref().unwrap_or_default());
        if let Some(rp) = &s.retention_policy {
            q.append_pair("rp", rp);
        }
        q.append_pair("consistency", &s.consistency.to_ascii_lowercase());
        q.append_pair("precision", "ms");
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            q.append_pair("u", u);
            q.append_pair("p", p);
        }
    }
    Ok(url.into())
}

/// `url` without its password, for logs.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "p")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            u.query_pairs_mut().clear().extend_pairs(kept);
            u.into()
        }
        Err(_) => url.to_owned(),
    }
}

/// Sends `body` to `url`.
fn write(agent: &ureq::Agent, url: &str, body: &str) -> Outcome {
    let response = agent
        .post(url)
        .header("content-type", "text/plain; charset=utf-8")
        .send(body.as_bytes());
    let mut r = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    let status = r.status().as_u16();
    if (200..300).contains(&status) {
        return Outcome::Written;
    }
    let text = r
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    let why = format!("HTTP {status}: {}", text.trim());
    if status == 400 {
        Outcome::Refused(why)
    } else {
        Outcome::Retry(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_url_carries_flinks_options() {
        let s = InfluxSettings {
            host: Some("127.0.0.1".into()),
            db: Some("flink db".into()),
            retention_policy: Some("one_hour".into()),
            username: Some("u".into()),
            password: Some("secret".into()),
            ..InfluxSettings::default()
        };
        let url = write_url(&s).expect("url");
        assert_eq!(
            url,
            "http://127.0.0.1:8086/write?db=flink+db&rp=one_hour&consistency=one&precision=ms&u=u&p=secret"
        );
        assert!(!redacted(&url).contains("secret"));
        let bad = InfluxSettings {
            host: Some("a b".into()),
            ..InfluxSettings::default()
        };
        assert!(
            write_url(&bad)
                .expect_err("a space in the host")
                .to_string()
                .contains("Invalid host/port")
        );
    }
}
