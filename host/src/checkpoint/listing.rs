//! `weir checkpoints DIR`: the retained checkpoints of a job folder (or of
//! every job folder under a checkpoints directory; either on disk or at an
//! `s3://` location), with id, time, size and
//! duration, and per subtask the sync, async and alignment times.

use std::fmt::Write;
use std::path::Path;

use super::layout::{
    CheckpointLayout, METADATA_FILE, checkpoint_folder_name, metadata_in, parse_checkpoint_folder,
};
use super::metadata::CheckpointMetadata;
use super::object::ObjectCheckpoint;
use super::recovery::completed_in;
use crate::config::{ObjectUri, S3Config};
use crate::objectstore::open_bucket;

/// Formats ms since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmm` UTC.
pub fn utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// A job folder's completed checkpoints: its location and, per
/// checkpoint, the id and the decoded `_metadata` (or why it cannot be).
type JobListing = (String, Vec<(u64, Result<CheckpointMetadata, String>)>);

/// The listing as text; an error if `dir` holds no checkpoint at all.
/// `dir` may be an `s3://` location, read with the settings `s3`.
pub fn list(dir: &Path, s3: &S3Config) -> anyhow::Result<String> {
    let jobs = match ObjectUri::of(dir) {
        Some(uri) => in_bucket(&uri, s3)?,
        None => on_disk(dir)?,
    };
    if jobs.is_empty() {
        anyhow::bail!("{}: no retained checkpoints", dir.display());
    }
    let mut out = String::new();
    for (job, checkpoints) in &jobs {
        let _ = writeln!(out, "{job}");
        for (id, meta) in checkpoints {
            match meta {
                Ok(m) => write_checkpoint(&mut out, *id, m),
                Err(e) => {
                    let _ = writeln!(out, "  {}  unreadable: {e}", checkpoint_folder_name(*id));
                }
            }
        }
    }
    Ok(out)
}

/// The job folders under `dir` (or `dir` itself) on disk.
fn on_disk(dir: &Path) -> anyhow::Result<Vec<JobListing>> {
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
    let read = |path: &Path| {
        super::fs::read_metadata_file(&metadata_in(path))
            .map_err(|e| e.to_string())
            .and_then(|b| CheckpointMetadata::decode(&b).map_err(|e| e.to_string()))
    };
    Ok(jobs
        .iter()
        .map(|job| {
            let found = completed_in(job);
            let listed = found.iter().map(|(id, p)| (*id, read(p))).collect();
            (job.display().to_string(), listed)
        })
        .collect())
}

/// The job folders under `uri` (or `uri` itself) in a bucket, newest
/// checkpoint first as on disk.
fn in_bucket(uri: &ObjectUri, s3: &S3Config) -> anyhow::Result<Vec<JobListing>> {
    let bucket = open_bucket(uri, s3)?;
    let mut jobs: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for o in bucket.list(&uri.key)? {
        let Some((job, chk)) = o
            .key
            .strip_suffix(&format!("/{METADATA_FILE}"))
            .and_then(|f| f.rsplit_once('/'))
        else {
            continue;
        };
        if let Some(id) = parse_checkpoint_folder(chk) {
            jobs.entry(job.to_owned()).or_default().push(id);
        }
    }
    Ok(jobs
        .into_iter()
        .map(|(job, mut ids)| {
            ids.sort_by_key(|id| std::cmp::Reverse(*id));
            let listed = ids
                .into_iter()
                .map(|id| {
                    let folder = format!("{job}/{}", checkpoint_folder_name(id));
                    let meta = ObjectCheckpoint::new(bucket.clone(), folder)
                        .metadata()
                        .map_err(|e| e.to_string())
                        .and_then(|m| m.ok_or_else(|| "no _metadata".to_owned()));
                    (id, meta)
                })
                .collect();
            (bucket.uri(&job), listed)
        })
        .collect())
}

/// The lines of one completed checkpoint.
fn write_checkpoint(out: &mut String, id: u64, m: &CheckpointMetadata) {
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
