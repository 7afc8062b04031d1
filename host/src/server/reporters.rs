//! The metric reporters of a server (or of the API `weir run` serves):
//! the InfluxDB reporters it pushes with, and what shapes `/metrics` (the
//! filters and excluded variables of a configured Prometheus reporter, and
//! the readings its per-second rates are measured from).

use std::sync::{Arc, Mutex, Weak};

use super::AppState;
use crate::config::{Config, ReporterConfig, ReporterKind};
use crate::reporting::influxdb::InfluxReporter;
use crate::reporting::point::Rates;

/// The reporters of one [`AppState`].
#[derive(Debug, Default)]
pub struct Reporting {
    /// The Prometheus reporter's settings, if one is configured.
    pub prometheus: Option<ReporterConfig>,
    /// The previous `/metrics` readings, for rates.
    pub rates: Mutex<Rates>,
    influx: Mutex<Vec<InfluxReporter>>,
}

impl Reporting {
    /// The reporting of a server with `config`, before any reporter runs.
    pub fn new(config: &Config) -> Self {
        let prometheus = config
            .reporters
            .active()
            .find(|(_, r)| r.kind == Some(ReporterKind::Prometheus))
            .map(|(name, r)| {
                tracing::info!(
                    "metrics reporter {name} (prometheus): served at /metrics on the REST port"
                );
                r.clone()
            });
        Reporting {
            prometheus,
            ..Reporting::default()
        }
    }

    /// Stops every push reporter after a last report.
    pub fn stop(&self) {
        let reporters = std::mem::take(&mut *self.influx.lock().unwrap_or_else(|p| p.into_inner()));
        drop(reporters);
    }
}

/// Starts the InfluxDB reporters `config` turns on, reporting the jobs of
/// `state` for as long as it lives.
pub fn start(state: &Arc<AppState>, config: &Config) -> anyhow::Result<()> {
    for (name, r) in config.reporters.active() {
        if r.kind != Some(ReporterKind::InfluxDb) {
            continue;
        }
        let weak: Weak<AppState> = Arc::downgrade(state);
        let jobs = Box::new(move || weak.upgrade().map(|s| s.jobs.list()));
        let reporter = InfluxReporter::start(name, r, jobs)?;
        state
            .reporting
            .influx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reporter);
    }
    Ok(())
}
