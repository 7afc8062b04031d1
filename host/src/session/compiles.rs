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
}

/// The compiles of this server's bundles, by bundle id.
#[derive(Debug, Default)]
pub struct Compiles(Mutex<HashMap<String, CompileStatus>>);

impl Compiles {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, CompileStatus>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks bundle `id` compiling; false if it already is (one compile of
    /// a bundle at a time).
    pub fn begin(&self, id: &str) -> bool {
        let mut map = self.map();
        if map
            .get(id)
            .is_some_and(|s| s.state == CompileState::Compiling)
        {
            return false;
        }
        map.insert(id.to_owned(), CompileStatus::of(CompileState::Compiling));
        true
    }

    /// Records how bundle `id`'s compile ended: its report (`None`: it was
    /// in the cache after all), or why it failed.
    pub fn finish(&self, id: &str, outcome: Result<Option<CompileReport>, String>) {
        let status = match outcome {
            Ok(report) => CompileStatus {
                seconds: report.map(|r| r.seconds),
                memory_mib: report.map(|r| r.memory_mib),
                ..CompileStatus::of(CompileState::Ready)
            },
            Err(error) => CompileStatus {
                error: Some(error),
                ..CompileStatus::of(CompileState::Failed)
            },
        };
        self.map().insert(id.to_owned(), status);
    }

    /// Bundle `id`'s compile; `cached` tells whether the component cache
    /// holds it, for a bundle this server has not compiled.
    pub fn status(&self, id: &str, cached: impl FnOnce() -> bool) -> CompileStatus {
        if let Some(s) = self.map().get(id) {
            return s.clone();
        }
        CompileStatus::of(match cached() {
            true => CompileState::Ready,
            false => CompileState::NotCompiled,
        })
    }

    /// Why bundle `id` failed to compile, if it did.
    pub fn failure(&self, id: &str) -> Option<String> {
        self.map().get(id).and_then(|s| s.error.clone())
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
        assert!(c.begin("a"));
        assert!(!c.begin("a"), "a second compile of one bundle");
        assert_eq!(c.status("a", || true).state, CompileState::Compiling);
        let report = CompileReport {
            seconds: 1.5,
            memory_mib: 300.0,
        };
        c.finish("a", Ok(Some(report)));
        let ready = c.status("a", || false);
        assert_eq!(
            (ready.state, ready.seconds, ready.memory_mib),
            (CompileState::Ready, Some(1.5), Some(300.0))
        );
        assert!(c.begin("b"));
        c.finish("b", Err("bad types".into()));
        assert_eq!(c.failure("b").as_deref(), Some("bad types"));
        assert_eq!(c.status("b", || true).state, CompileState::Failed);
        // A failed compile may be tried again (the same bytes uploaded).
        assert!(c.begin("b"));
        c.forget("b");
        assert_eq!(c.failure("b"), None);
    }
}
