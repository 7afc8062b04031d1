//! [`Sandbox`]: the wasmtime engine, linker and component cache that the
//! operators of a job share, the [`Limits`] every instance gets, and the
//! thread that advances the engine's epoch for call deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, OptLevel};

use super::bindings;
use super::cache::ComponentCache;
use super::error::SandboxError;
use super::guest::GuestState;
pub use super::limits::Limits;
use super::wasi;
use crate::config::Config;

/// How often the epoch advances; call deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The wasmtime engine, linker and component cache shared by the operators
/// of a job.
pub struct Sandbox {
    /// The engine, with epoch interruption on.
    pub(super) engine: Engine,
    /// The world's imports and the allowed WASI.
    pub(super) linker: Linker<GuestState>,
    /// Compiled components on disk, by content hash.
    pub(super) cache: ComponentCache,
    limits: Limits,
    /// Raised when the job is cancelled: running guest calls stop at the
    /// next epoch tick.
    pub(super) interrupt: Option<Arc<AtomicBool>>,
    ticker: Option<EpochTicker>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// An engine with epoch interruption, a linker with the world's imports
    /// and a locked-down WASI, and the component cache of `config`.
    pub fn new(config: &Config) -> Result<Self, SandboxError> {
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&cfg).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| SandboxError::Setup(e.to_string()))?;
        bindings::Operator::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let cache = ComponentCache::new(config.cache_dir.clone(), &engine, config.cache_max_bytes);
        let ticker = EpochTicker::start(engine.clone());
        Ok(Sandbox {
            engine,
            linker,
            cache,
            limits: Limits {
                call_timeout: config.call_timeout,
                memory_limit: config.memory_limit,
                output_limit: config.output_limit,
            },
            interrupt: None,
            ticker: Some(ticker),
        })
    }

    /// The same sandbox, whose instances stop their running call within an
    /// epoch tick once `flag` is raised (a job's cancel flag).
    pub fn interrupted_by(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// The limits every instance gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Epoch ticks that make up one call's deadline.
    pub(super) fn deadline_ticks(&self) -> u64 {
        (self.limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.stop();
        }
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`].
struct EpochTicker {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl EpochTicker {
    /// Starts the thread.
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the epoch thread: {e}"));
        EpochTicker { stop, handle }
    }

    /// Stops the thread and waits for it.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}
