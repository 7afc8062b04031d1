//! `GET /metrics`: every job's metrics in the Prometheus exposition format,
//! encoded by the Prometheus project's own Rust client (`prometheus-client`)
//! from a registry built per scrape.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::runtime::LiveJob;
use crate::session::JobEntry;

type Shared = Arc<AppState>;

/// The labels of a job's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job_id: String,
    job_name: String,
}

/// The labels of the info metric that carries the newest checkpoint's path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabels {
    job_id: String,
    job_name: String,
    path: String,
}

/// The labels of an operator's metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperatorLabels {
    job_id: String,
    job_name: String,
    operator: String,
}

/// The metric families of one scrape.
#[derive(Default)]
struct Families {
    restarts: Family<JobLabels, Gauge>,
    completed: Family<JobLabels, Gauge>,
    failed: Family<JobLabels, Gauge>,
    restore_ts: Family<JobLabels, Gauge>,
    duration: Family<JobLabels, Gauge<f64, AtomicU64>>,
    size: Family<JobLabels, Gauge>,
    info: Family<CheckpointLabels, Gauge>,
    records_in: Family<OperatorLabels, Counter>,
    records_out: Family<OperatorLabels, Counter>,
}

impl Families {
    /// A registry holding every family.
    fn register(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "weir_job_num_restarts",
            "Restarts of the job",
            self.restarts.clone(),
        );
        r.register(
            "weir_job_completed_checkpoints",
            "Completed checkpoints",
            self.completed.clone(),
        );
        r.register(
            "weir_job_failed_checkpoints",
            "Failed checkpoints",
            self.failed.clone(),
        );
        r.register(
            "weir_job_last_checkpoint_restore_timestamp_ms",
            "When the job last restored from a checkpoint (ms since the Unix epoch)",
            self.restore_ts.clone(),
        );
        r.register(
            "weir_job_last_checkpoint_duration_ms",
            "Duration of the newest checkpoint",
            self.duration.clone(),
        );
        r.register(
            "weir_job_last_checkpoint_size_bytes",
            "State size of the newest checkpoint",
            self.size.clone(),
        );
        r.register(
            "weir_job_last_checkpoint_info",
            "The newest checkpoint's path, as a label",
            self.info.clone(),
        );
        r.register(
            "weir_operator_records_in",
            "Records into the operator",
            self.records_in.clone(),
        );
        r.register(
            "weir_operator_records_out",
            "Records out of the operator",
            self.records_out.clone(),
        );
        r
    }

    /// Records one job's figures.
    fn add(&self, job: &JobEntry, live: &LiveJob) {
        let l = JobLabels {
            job_id: job.id.clone(),
            job_name: job.graph.name.clone(),
        };
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.restarts
            .get_or_create(&l)
            .set(i64::from(live.restarts));
        self.completed
            .get_or_create(&l)
            .set(int(live.completed_count));
        self.failed.get_or_create(&l).set(int(live.failed_count));
        if let Some(r) = &live.restored {
            self.restore_ts.get_or_create(&l).set(r.restore_timestamp);
        }
        if let Some(c) = live.last_checkpoint() {
            self.duration.get_or_create(&l).set(c.duration_ms);
            self.size.get_or_create(&l).set(int(c.size));
        }
        if let Some(p) = live.last_checkpoint_path() {
            let info = CheckpointLabels {
                job_id: l.job_id.clone(),
                job_name: l.job_name.clone(),
                path: p.to_owned(),
            };
            self.info.get_or_create(&info).set(1);
        }
        for (node, tasks) in job.graph.nodes.iter().zip(&live.metrics) {
            let o = OperatorLabels {
                job_id: l.job_id.clone(),
                job_name: l.job_name.clone(),
                operator: node.id.clone(),
            };
            for task in tasks {
                let s = task.snapshot();
                self.records_in.get_or_create(&o).inc_by(s.records_in);
                self.records_out.get_or_create(&o).inc_by(s.records_out);
            }
        }
    }
}

/// `GET /metrics`: Prometheus text for every job, including the newest
/// checkpoint's path as a label of an info metric.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses((status = 200, description = "Prometheus text exposition (OpenMetrics)", body = String, content_type = "application/openmetrics-text")))]
pub async fn prometheus(State(state): State<Shared>) -> Response {
    let families = Families::default();
    for job in state.jobs.list() {
        families.add(&job, &job.control.live());
    }
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &families.register()) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response();
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}
