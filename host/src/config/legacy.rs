//! Settings written together, as users paste Flink 1.x configurations:
//! keys written twice under an old and a new name, or `state.backend`
//! beside the keys it stands for. A group in which two of them disagree is
//! refused, naming both.

use super::backend_names::meaning;
use super::error::ConfigError;
use super::keys::canonical_key;
use super::settings::Config;

/// The modern keys a written key sets: its own (under its canonical
/// name), and for `state.backend` the ones its value implies.
fn touches(key: &str) -> Vec<&str> {
    match canonical_key(key) {
        "state.backend" => vec!["state.backend.type", "execution.checkpointing.storage"],
        k => vec![k],
    }
}

impl Config {
    /// Applies settings written together (one `weir.yaml`, one job's
    /// `config:`), each as [`Config::set`] does; then refuses two keys of
    /// the group that set the same thing differently (an old and a new
    /// name of one key, or `state.backend` and the keys it stands for),
    /// naming both. Every problem is returned, in the order of `pairs`.
    pub fn set_all(&mut self, pairs: &[(String, String)]) -> Vec<(String, ConfigError)> {
        let mut errors = Vec::new();
        for (k, v) in pairs {
            if let Err(e) = self.set(k, v) {
                errors.push((k.clone(), e));
            }
        }
        if errors.is_empty() {
            errors.extend(conflicts(pairs));
        }
        if let (true, Err(e)) = (errors.is_empty(), self.reporters.check()) {
            errors.push(("metrics.reporter".to_owned(), e));
        }
        if let (true, Err(message)) = (errors.is_empty(), self.checkpoint.check()) {
            let key = "execution.checkpointing.unaligned.enabled";
            let e = ConfigError::BadValue {
                key: key.to_owned(),
                message,
            };
            errors.push((key.to_owned(), e));
        }
        if errors.is_empty() {
            let legacy = pairs.iter().filter(|(k, _)| k == "state.backend");
            for line in legacy.filter_map(|(_, v)| meaning(v)) {
                tracing::info!("{line}");
            }
        }
        errors
    }
}

/// The pairs of `pairs` that touch the same setting and whose result
/// depends on which is applied last.
fn conflicts(pairs: &[(String, String)]) -> Vec<(String, ConfigError)> {
    let mut found = Vec::new();
    for (i, (a, va)) in pairs.iter().enumerate() {
        for (b, vb) in &pairs[i + 1..] {
            let (ta, tb) = (touches(a), touches(b));
            if !ta.iter().any(|k| tb.contains(k)) {
                continue;
            }
            let order = |first: (&str, &str), second: (&str, &str)| {
                let mut c = Config::default();
                let _ = c.set(first.0, first.1);
                let _ = c.set(second.0, second.1);
                c
            };
            if order((a, va), (b, vb)) != order((b, vb), (a, va)) {
                found.push((
                    b.clone(),
                    ConfigError::Conflict {
                        first: format!("{a}: {va}"),
                        second: format!("{b}: {vb}"),
                    },
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::checkpoint::StorageKind;
    use crate::config::settings::BackendKind;
    use crate::config::{CheckpointingMode, KEYS};

    fn group(lines: &[(&str, &str)]) -> (Config, Vec<String>) {
        let pairs: Vec<(String, String)> = lines
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut c = Config::default();
        let errors = c
            .set_all(&pairs)
            .into_iter()
            .map(|(_, e)| e.to_string())
            .collect();
        (c, errors)
    }

    #[test]
    fn flink_1_backend_names_mean_what_flink_gave_them() {
        assert!(KEYS.iter().any(|k| k.name == "state.backend"));
        let (c, e) = group(&[("state.backend", "jobmanager")]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.backend.kind, BackendKind::HashMap);
        assert_eq!(c.checkpoint.storage, StorageKind::JobManager);
        let (c, e) = group(&[("state.backend", "FileSystem")]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.backend.kind, BackendKind::HashMap);
        assert_eq!(c.checkpoint.storage, StorageKind::Filesystem);
        if cfg!(feature = "rocksdb") {
            let (c, e) = group(&[("state.backend", "rocksdb")]);
            assert!(e.is_empty(), "{e:?}");
            assert_eq!(c.backend.kind, BackendKind::RocksDb);
        }
        let (_, e) = group(&[("state.backend", "memory")]);
        assert!(e[0].contains("is not jobmanager, filesystem"), "{e:?}");
        assert_eq!(
            meaning("jobmanager").as_deref(),
            Some(
                "state.backend: jobmanager (Flink's MemoryStateBackend) stands for state.backend.type: hashmap, execution.checkpointing.storage: jobmanager"
            )
        );
    }

    #[test]
    fn old_and_new_keys_that_disagree_are_refused_naming_both() {
        let (_, e) = group(&[
            ("state.backend", "jobmanager"),
            ("execution.checkpointing.storage", "filesystem"),
        ]);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("state.backend: jobmanager")
                && e[0].contains("execution.checkpointing.storage: filesystem"),
            "{e:?}"
        );
        let (_, e) = group(&[
            ("state.backend", "filesystem"),
            ("state.backend.type", "rocksdb"),
        ]);
        assert_eq!(e.len(), 1, "{e:?}");
        let (_, e) = group(&[
            ("state.checkpoints.dir", "/a"),
            ("execution.checkpointing.dir", "file:///b"),
        ]);
        assert_eq!(e.len(), 1, "{e:?}");
        // The same meaning twice is no conflict, however it is written.
        let (c, e) = group(&[
            ("state.backend", "filesystem"),
            ("state.backend.type", "hashmap"),
            ("state.checkpoint-storage", "filesystem"),
            ("state.checkpoints.dir", "/a"),
            ("execution.checkpointing.dir", "file:///a"),
            ("restart-strategy", "fixed-delay"),
            ("restart-strategy.type", "FIXED-DELAY"),
            ("execution.checkpointing.mode", "exactly_once"),
        ]);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(c.checkpoint.mode, CheckpointingMode::ExactlyOnce);
    }
}
