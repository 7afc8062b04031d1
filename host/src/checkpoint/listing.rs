//! `weir checkpoints DIR`: the retained checkpoints of a job folder (or of
//! every job folder under a checkpoints directory), with id, time, size and
//! duration, and per subtask the sync, async and alignment times.

use std::fmt::Write;
use std::path::Path;

use super::layout::{CheckpointLayout, checkpoint_folder_name, metadata_in};
use super::metadata::CheckpointMetadata;
use super::recovery::completed_in;

/// Formats ms since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` UTC.
pub fn utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// The listing as text; an error if `dir` holds no checkpoint at all.
pub fn list(dir: &Path) -> anyhow::Result<String> {
    let mut jobs: Vec<std::path::PathBuf> = Vec::new();
    if !completed_in(dir).is_empty() || CheckpointLayout::of_job_dir(dir).shared().is_dir() {
        jobs.push(dir.to_path_buf());
    } else {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
        for e in entries.flatten() {
            if e.path().is_dir() && !completed_in(&e.path()).is_empty() {
                jobs.push(e.path());
            }
        }
        jobs.sort();
    }
    let mut out = String::new();
    for job in &jobs {
        let _ = writeln!(out, "{}", job.display());
        for (id, path) in completed_in(job) {
            let meta = super::fs::read_metadata_file(&metadata_in(&path))
                .map_err(|e| e.to_string())
                .and_then(|b| CheckpointMetadata::decode(&b).map_err(|e| e.to_string()));
            let m = match meta {
                Ok(m) => m,
                Err(e) => {
                    let _ = writeln!(out, "  {}  unreadable: {e}", checkpoint_folder_name(id));
                    continue;
                }
            };
            let incremental = m
                .operators
                .iter()
                .flat_map(|o| &o.subtasks)
                .any(|s| s.incremental.is_some());
            let written = if incremental {
                format!(" ({} written, incremental)", m.checkpointed_size)
            } else {
                String::new()
            };
            let subtasks = || m.operators.iter().flat_map(|o| &o.subtasks);
            let unaligned = if subtasks().any(|s| s.unaligned) {
                let persisted: u64 = subtasks().map(|s| s.persisted_bytes).sum();
                format!("  unaligned ({persisted} bytes in flight)")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  chk-{id}  {}  {} bytes{written}  {:.1} ms{unaligned}{}",
                utc(m.completed_timestamp),
                m.state_size,
                m.duration_ms,
                if m.is_final { "  (final)" } else { "" }
            );
            for op in &m.operators {
                for s in &op.subtasks {
                    let _ = writeln!(
                        out,
                        "    {}[{}/{}]  sync {:.2} ms  async {:.2} ms  alignment {:.2} ms{}",
                        op.uid,
                        s.subtask + 1,
                        op.parallelism,
                        s.sync_ms,
                        s.async_ms,
                        s.alignment_ms,
                        in_flight(s)
                    );
                }
            }
        }
    }
    if jobs.is_empty() {
        anyhow::bail!("{}: no retained checkpoints", dir.display());
    }
    Ok(out)
}

/// A subtask's in-flight figures, if it went unaligned or processed
/// records while aligning.
fn in_flight(s: &crate::checkpoint::metadata::SubtaskState) -> String {
    if !s.unaligned && s.processed_bytes == 0 {
        return String::new();
    }
    format!(
        "  {}processed {} B  persisted {} B",
        if s.unaligned { "unaligned  " } else { "" },
        s.processed_bytes,
        s.persisted_bytes
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(super::utc(1_795_318_245_123), "2026-11-22 03:30:45.123");
    }
}
