//! `GET /metrics`: Prometheus text exposition of every job's metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

type Shared = Arc<AppState>;

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: Prometheus text for every job, including the newest
/// checkpoint's path as a label of an info metric.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn prometheus(State(state): State<Shared>) -> impl IntoResponse {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(t, "# TYPE weir_job_num_restarts gauge");
    let _ = writeln!(t, "# TYPE weir_job_completed_checkpoints gauge");
    let _ = writeln!(t, "# TYPE weir_job_failed_checkpoints gauge");
    let _ = writeln!(
        t,
        "# TYPE weir_job_last_checkpoint_restore_timestamp_ms gauge"
    );
    let _ = writeln!(t, "# TYPE weir_job_last_checkpoint_duration_ms gauge");
    let _ = writeln!(t, "# TYPE weir_job_last_checkpoint_size_bytes gauge");
    let _ = writeln!(t, "# TYPE weir_job_last_checkpoint_info gauge");
    let _ = writeln!(t, "# TYPE weir_operator_records_in_total counter");
    let _ = writeln!(t, "# TYPE weir_operator_records_out_total counter");
    for job in state.jobs.list() {
        let live = job.control.live();
        let l = format!(
            "job_id=\"{}\",job_name=\"{}\"",
            job.id,
            label(&job.graph.name)
        );
        let _ = writeln!(t, "weir_job_num_restarts{{{l}}} {}", live.restarts);
        let _ = writeln!(
            t,
            "weir_job_completed_checkpoints{{{l}}} {}",
            live.completed_count
        );
        let _ = writeln!(
            t,
            "weir_job_failed_checkpoints{{{l}}} {}",
            live.failed_count
        );
        if let Some(r) = &live.restored {
            let _ = writeln!(
                t,
                "weir_job_last_checkpoint_restore_timestamp_ms{{{l}}} {}",
                r.restore_timestamp
            );
        }
        if let Some(c) = live.checkpoints.last() {
            let _ = writeln!(
                t,
                "weir_job_last_checkpoint_duration_ms{{{l}}} {}",
                c.duration_ms
            );
            let _ = writeln!(t, "weir_job_last_checkpoint_size_bytes{{{l}}} {}", c.size);
        }
        if let Some(p) = &live.last_checkpoint_path {
            let _ = writeln!(
                t,
                "weir_job_last_checkpoint_info{{{l},path=\"{}\"}} 1",
                label(p)
            );
        }
        for (node, tasks) in job.graph.nodes.iter().zip(&live.metrics) {
            let (mut rin, mut rout) = (0u64, 0u64);
            for task in tasks {
                let s = task.snapshot();
                rin += s.records_in;
                rout += s.records_out;
            }
            let o = format!("{l},operator=\"{}\"", label(&node.id));
            let _ = writeln!(t, "weir_operator_records_in_total{{{o}}} {rin}");
            let _ = writeln!(t, "weir_operator_records_out_total{{{o}}} {rout}");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t)
}
