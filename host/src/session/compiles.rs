//! What became of each stored bundle's compile: an upload is answered once
//! its component is checked and stored, and compiles afterwards (a
//! language runtime's component takes seconds and hundreds of MiB), so the
//! bundle list says whether it is compiling, ready (with what its compile
//! cost) or failed (with why). Kept in memory: after a restart a bundle is
//! `ready` if the compiled-component cache holds it, else `not-compiled`
//! (compiled when a job first starts it).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::sandbox::CompileReport;

/// Where a bundle's compile stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CompileState {
    /// Compiling, or waiting for a compile slot.
    Compiling,
    /// Compiled and cached: a job starts it without compiling.
    Ready,
    /// Refused by the compiler or the world's type check, or slower than
    /// `weir.server.compile-timeout`; jobs naming it are refused.
    Failed,
    /// Not compiled by this server and not in the cache: the first job
    /// that starts it compiles it.
    NotCompiled,
}

/// A bundle's compile, as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CompileStatus {
    /// Where it stands.
    pub state: CompileState,
    /// Seconds the compile took (when this server compiled it).
    pub seconds: Option<f64>,
    /// How far the compile raised the server's resident memory, in MiB
    /// (when this server compiled it).
    #[serde(rename = "memory-mib")]
    pub memory_mib: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl CompileStatus {
    fn of(state: CompileState) -> Self {
        CompileStatus {
            state,
            seconds: None,
            memory_mib: None,
            error: None,
        }
    }

    /// Ready, with what the compile cost if known.
    fn ready(report: Option<CompileReport>) -> Self {
        CompileStatus {
            seconds: report.map(|r| r.seconds),
            memory_mib: report.map(|r| r.memory_mib),
            ..CompileStatus::of(CompileState::Ready)
        }
    }
}

/// The compiles of this server's bundles, by bundle id: each status with
/// the generation of the compile that writes it.
#[derive(Debug, Default)]
pub struct Compiles {
    map: Mutex<HashMap<String, (u64, CompileStatus)>>,
    generations: std::sync::atomic::AtomicU64,
}

impl Compiles {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, CompileStatus)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks bundle `id` compiling: the generation its compile reports
    /// with, or `None` if it already compiles (one compile of a bundle at
    /// a time).
    pub fn begin(&self, id: &str) -> Option<u64> {
        let mut map = self.map();
        if map
            .get(id)
            .is_some_and(|(_, s)| s.state == CompileState::Compiling)
        {
            return None;
        }
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(
            id.to_owned(),
            (generation, CompileStatus::of(CompileState::Compiling)),
        );
        Some(generation)
    }

    /// Records that bundle `id` is in the component cache (compiled by a
    /// job start, or by a compile reported late): `ready`, with what the
    /// compile cost if this process did it. A compile under way goes on
    /// and reports itself.
    pub fn cached(&self, id: &str, report: Option<CompileReport>) {
        let mut map = self.map();
        if let Some((_, status)) = map.get_mut(id)
            && status.state != CompileState::Compiling
        {
            *status = CompileStatus::ready(report);
        }
    }

    /// Records how compile `generation` of bundle `id` ended (or that it
    /// ran late): its report (`None`: it was in the cache after all), or
    /// why it failed. Nothing if a later compile began, or the bundle was
    /// deleted, meanwhile.
    pub fn finish(
        &self,
        id: &str,
        generation: u64,
        outcome: Result<Option<CompileReport>, String>,
    ) {
        let status = match outcome {
            Ok(report) => CompileStatus::ready(report),
            Err(error) => CompileStatus {
                error: Some(error),
                ..CompileStatus::of(CompileState::Failed)
            },
        };
        if let Some(entry) = self.map().get_mut(id)
            && entry.0 == generation
        {
            entry.1 = status;
        }
    }

    /// Bundle `id`'s compile; `cached` tells whether the component cache
    /// holds it, for a bundle this server has not compiled.
    pub fn status(&self, id: &str, cached: impl FnOnce() -> bool) -> CompileStatus {
        if let Some((_, s)) = self.map().get(id) {
            return s.clone();
        }
        CompileStatus::of(match cached() {
            true => CompileState::Ready,
            false => CompileState::NotCompiled,
        })
    }

    /// Why bundle `id` failed to compile, if it did.
    pub fn failure(&self, id: &str) -> Option<String> {
        self.map().get(id).and_then(|(_, s)| s.error.clone())
    }

    /// Forgets bundle `id` (deleted).
    pub fn forget(&self, id: &str) {
        self.map().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compile_is_begun_once_and_its_end_is_kept() {
        let c = Compiles::default();
        assert_eq!(c.status("a", || false).state, CompileState::NotCompiled);
        assert_eq!(c.status("a", || true).state, CompileState::Ready);
        let first = c.begin("a").expect("a first compile");
        assert_eq!(c.begin("a"), None, "a second compile of one bundle");
        assert_eq!(c.status("a", || true).state, CompileState::Compiling);
        let report = CompileReport {
            seconds: 1.5,
            memory_mib: 300.0,
        };
        c.finish("a", first, Ok(Some(report)));
        let ready = c.status("a", || false);
        assert_eq!(
            (ready.state, ready.seconds, ready.memory_mib),
            (CompileState::Ready, Some(1.5), Some(300.0))
        );
        let b = c.begin("b").expect("b");
        c.finish("b", b, Err("bad types".into()));
        assert_eq!(c.failure("b").as_deref(), Some("bad types"));
        assert_eq!(c.status("b", || true).state, CompileState::Failed);
        // A failed compile may be tried again (the same bytes uploaded).
        assert!(c.begin("b").is_some());
        c.forget("b");
        assert_eq!(c.failure("b"), None);
    }

    #[test]
    fn a_late_compile_is_failed_until_it_ends_and_a_stale_one_writes_nothing() {
        let c = Compiles::default();
        let late = c.begin("a").expect("a");
        c.finish("a", late, Err("took longer".into()));
        assert_eq!(c.status("a", || false).state, CompileState::Failed);
        // It ends well: ready after all.
        c.finish("a", late, Ok(None));
        assert_eq!(c.status("a", || false).state, CompileState::Ready);
        // A compile of a deleted bundle reports into nothing.
        let gone = c.begin("b").expect("b");
        c.forget("b");
        c.finish("b", gone, Err("No such file".into()));
        assert_eq!(c.status("b", || false).state, CompileState::NotCompiled);
        // An older compile's end does not overwrite a newer one's.
        let old = c.begin("c").expect("c");
        c.finish("c", old, Err("took longer".into()));
        let new = c.begin("c").expect("c again");
        c.finish("c", new, Ok(None));
        c.finish("c", old, Err("a stale failure".into()));
        assert_eq!(c.status("c", || false).state, CompileState::Ready);
        // Found in the cache: a failure is forgotten.
        let d = c.begin("d").expect("d");
        c.finish("d", d, Err("took longer".into()));
        c.cached("d", None);
        assert_eq!(c.failure("d"), None);
    }
}
