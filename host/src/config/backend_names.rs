//! `state.backend` with the names of Flink 1.x's backend classes: each
//! means exactly what Flink gave it, in the modern keys
//! (`state.backend.type`, `execution.checkpointing.storage`).

use super::checkpoint::StorageKind;
use super::settings::{BackendKind, Config};

/// What `state.backend` names: Flink 1.x's backend classes and the
/// modern keys each stands for (backend type, checkpoint storage if the
/// name implies one).
const BACKENDS: &[(&str, BackendKind, Option<StorageKind>, &str)] = &[
    (
        "jobmanager",
        BackendKind::HashMap,
        Some(StorageKind::JobManager),
        "MemoryStateBackend",
    ),
    (
        "filesystem",
        BackendKind::HashMap,
        Some(StorageKind::Filesystem),
        "FsStateBackend",
    ),
    ("hashmap", BackendKind::HashMap, None, "HashMapStateBackend"),
    (
        "rocksdb",
        BackendKind::RocksDb,
        None,
        "EmbeddedRocksDBStateBackend",
    ),
];

/// The `state.backend` row's parser: sets the backend type and, for
/// `jobmanager` and `filesystem`, the checkpoint storage.
pub(super) fn set_backend(c: &mut Config, v: &str) -> Result<(), String> {
    let &(_, kind, storage, _) = backend(v)?;
    if kind == BackendKind::RocksDb && !cfg!(feature = "rocksdb") {
        return Err("this weir was built without the `rocksdb` feature".to_owned());
    }
    c.backend.kind = kind;
    if let Some(s) = storage {
        c.checkpoint.storage = s;
    }
    Ok(())
}

type Backend = (&'static str, BackendKind, Option<StorageKind>, &'static str);

fn backend(v: &str) -> Result<&'static Backend, String> {
    let name = v.trim().to_ascii_lowercase();
    BACKENDS
        .iter()
        .find(|b| b.0 == name)
        .ok_or_else(|| format!("{v:?} is not jobmanager, filesystem, hashmap or rocksdb"))
}

/// The one line that says what a `state.backend` value stands for, in
/// modern keys.
pub(super) fn meaning(v: &str) -> Option<String> {
    let (name, kind, storage, class) = backend(v).ok()?;
    let storage = match storage {
        Some(StorageKind::JobManager) => ", execution.checkpointing.storage: jobmanager",
        Some(StorageKind::Filesystem) => {
            ", execution.checkpointing.storage: filesystem (under state.checkpoints.dir)"
        }
        None => "",
    };
    Some(format!(
        "state.backend: {name} (Flink's {class}) stands for state.backend.type: {}{storage}",
        kind.name()
    ))
}
