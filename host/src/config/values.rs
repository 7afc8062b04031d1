//! How the values of configuration keys are parsed: the small parsers and
//! the tables of named values that the rows of [`super::keys::KEYS`] use.

use std::path::PathBuf;
use std::time::Duration;

use super::checkpoint::{CheckpointingMode, Retention, StorageKind};
use super::location::parse_location;
use super::settings::{BackendKind, FailoverStrategy};
use super::units::{parse_duration, parse_positive};
use crate::keygroup::UPPER_BOUND_MAX_PARALLELISM;

/// Stores a parsed value.
pub(super) fn put<T>(slot: &mut T, value: Result<T, String>) -> Result<(), String> {
    *slot = value?;
    Ok(())
}

pub(super) fn boolean(v: &str) -> Result<bool, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not true or false"))
}

pub(super) fn positive_duration(v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d.is_zero() {
        return Err("must be positive".to_owned());
    }
    Ok(d)
}

/// A checkpoint or savepoint location: a path or a `file:` URI.
pub(super) fn location(v: &str) -> Result<PathBuf, String> {
    parse_location(v).map_err(|e| e.to_string())
}

/// A location that must be a local folder (the dead-letter folder):
/// an `s3://` one is refused.
pub(super) fn local_folder(v: &str) -> Result<PathBuf, String> {
    let path = location(v)?;
    if super::ObjectUri::of(&path).is_some() {
        return Err(format!(
            "{v:?}: this folder must be local (s3:// is for checkpoints and savepoints)"
        ));
    }
    Ok(path)
}

/// One of `names` (compared in `case`), mapped to its value.
pub(super) fn one_of<T: Copy>(v: &str, upper: bool, names: &[(&str, T)]) -> Result<T, String> {
    let v2 = if upper {
        v.trim().to_ascii_uppercase()
    } else {
        v.trim().to_ascii_lowercase()
    };
    names
        .iter()
        .find(|(n, _)| *n == v2)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let all: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            format!(
                "{v:?} is not {}",
                all.join(" or ")
                    .replacen(" or ", ", ", all.len().saturating_sub(2))
            )
        })
}

/// A path, or `none`.
pub(super) fn optional_path(v: &str) -> Result<Option<PathBuf>, String> {
    match v.trim() {
        "none" | "" => Ok(None),
        _ => location(v).map(Some),
    }
}

/// Flink 1.x's `prefer-checkpoint-for-recovery`: Weir, like Flink since
/// 1.15, always recovers from the latest checkpoint; `false` is accepted
/// with a warning that says so.
pub(super) fn prefer_checkpoint(v: &str) -> Result<(), String> {
    if !boolean(v)? {
        tracing::warn!(
            "execution.checkpointing.prefer-checkpoint-for-recovery: false is ignored; \
             automatic recovery always restores the latest checkpoint, never a savepoint"
        );
    }
    Ok(())
}

pub(super) fn interval(v: &str) -> Result<Option<Duration>, String> {
    match v.trim() {
        "none" | "" => Ok(None),
        v => {
            let d = parse_duration(v)?;
            if d < Duration::from_millis(10) {
                return Err("must be at least 10ms (or none)".to_owned());
            }
            Ok(Some(d))
        }
    }
}

pub(super) fn restart_type(v: &str) -> Result<Option<String>, String> {
    let t = v.trim().to_ascii_lowercase();
    match t.as_str() {
        "none" | "off" | "disable" => Ok(Some("none".to_owned())),
        "fixed-delay" | "fixeddelay" | "exponential-delay" | "exponentialdelay"
        | "failure-rate" | "failurerate" => Ok(Some(t)),
        _ => Err(format!(
            "{v:?} is not none, fixed-delay, exponential-delay or failure-rate"
        )),
    }
}

pub(super) fn backend_kind(v: &str) -> Result<BackendKind, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "hashmap" => Ok(BackendKind::HashMap),
        "rocksdb" if cfg!(feature = "rocksdb") => Ok(BackendKind::RocksDb),
        "rocksdb" => Err("this weir was built without the `rocksdb` feature".to_owned()),
        _ => Err(format!("{v:?} is not hashmap or rocksdb")),
    }
}

pub(super) fn port(v: &str) -> Result<u16, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a port number"))
}

pub(super) fn max_parallelism(v: &str) -> Result<u32, String> {
    let m = parse_positive(v)?;
    if m > UPPER_BOUND_MAX_PARALLELISM {
        return Err(format!("must be at most {UPPER_BOUND_MAX_PARALLELISM}"));
    }
    Ok(m)
}

pub(super) fn token(v: &str) -> Result<Option<String>, String> {
    let t = v.trim();
    if t.len() < 16 {
        return Err("must be at least 16 characters".to_owned());
    }
    Ok(Some(t.to_owned()))
}

pub(super) fn nice(v: &str) -> Result<i32, String> {
    v.trim()
        .parse()
        .ok()
        .filter(|n| (0..=19).contains(n))
        .ok_or_else(|| format!("{v:?} is not a nice value from 0 to 19"))
}

/// The values of `execution.checkpointing.mode`.
pub(super) const MODES: &[(&str, CheckpointingMode)] = &[
    ("EXACTLY_ONCE", CheckpointingMode::ExactlyOnce),
    ("AT_LEAST_ONCE", CheckpointingMode::AtLeastOnce),
];

/// The values of `execution.checkpointing.externalized-checkpoint-retention`.
pub(super) const RETENTIONS: &[(&str, Retention)] = &[
    ("RETAIN_ON_CANCELLATION", Retention::RetainOnCancellation),
    ("DELETE_ON_CANCELLATION", Retention::DeleteOnCancellation),
    (
        "NO_EXTERNALIZED_CHECKPOINTS",
        Retention::NoExternalizedCheckpoints,
    ),
];

/// The values of `jobmanager.execution.failover-strategy`.
pub(super) const FAILOVERS: &[(&str, FailoverStrategy)] = &[
    ("region", FailoverStrategy::Region),
    ("full", FailoverStrategy::Full),
];

/// The values of `execution.checkpointing.storage`.
pub(super) const STORAGES: &[(&str, StorageKind)] = &[
    ("filesystem", StorageKind::Filesystem),
    ("jobmanager", StorageKind::JobManager),
];

/// A memory size, or `0` for "none set" (a default decided elsewhere).
pub(super) fn memory_or_zero(v: &str) -> Result<u64, String> {
    match v.trim() {
        "0" => Ok(0),
        other => super::units::parse_memory(other),
    }
}
