//! Work that must end within a deadline or leave no trace: a component
//! compilation, which wasmtime cannot interrupt. The work runs on a thread
//! of its own; the caller waits at most the deadline. Work that overruns
//! goes on until it ends (holding whatever it owns, such as an upload
//! permit, so concurrency stays bounded), but may no longer take effect:
//! it asks [`Gate::enter`] before its lasting step, which refuses once the
//! caller gave up. It gives up its compile slot then, so that job starts
//! do not wait for a compile nobody waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

const WAITING: u8 = 0;
const ENTERED: u8 = 1;
const ABANDONED: u8 = 2;

/// Whether overrunning work may still take effect.
#[derive(Debug, Clone)]
pub struct Gate(Arc<AtomicU8>);

impl Gate {
    /// Whether the work may take its lasting step (once true, the caller
    /// waits for it).
    pub fn enter(&self) -> bool {
        self.0
            .compare_exchange(WAITING, ENTERED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// Runs `work` on a thread named `name` and waits for it at most `limit`;
/// `None` if it did not end by then (and did not enter its gate).
pub fn run_within<T: Send + 'static>(
    name: &str,
    limit: Duration,
    work: impl FnOnce(&Gate) -> T + Send + 'static,
) -> Option<T> {
    let gate = Gate(Arc::new(AtomicU8::new(WAITING)));
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = gate.clone();
    let Ok(worker) = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(work(&inner));
        })
    else {
        return None;
    };
    match rx.recv_timeout(limit) {
        Ok(v) => Some(v),
        Err(_) => {
            let gave_up = gate
                .0
                .compare_exchange(WAITING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if gave_up {
                crate::sandbox::release_compile_slot(worker.thread().id());
                return None;
            }
            // Work that entered its gate takes effect: wait for its answer.
            rx.recv().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrunning_work_is_abandoned_and_may_not_take_effect() {
        let (tx, rx) = std::sync::mpsc::channel();
        let r = run_within("slow", Duration::from_millis(20), move |gate| {
            std::thread::sleep(Duration::from_millis(300));
            let _ = tx.send(gate.enter());
        });
        assert!(r.is_none());
        assert_eq!(rx.recv().ok(), Some(false), "the gate refuses");
        let r = run_within("quick", Duration::from_secs(30), |gate| gate.enter());
        assert_eq!(r, Some(true));
    }
}
