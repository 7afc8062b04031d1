//! The sandbox: runs operator components under wasmtime with the component
//! model, isolated from the host.
//!
//! A guest reaches nothing but the imports of the `weir:operator` world and
//! a WASI preview 2 context with no preopened directories, no environment,
//! no arguments, no inherited stdio and no network. Each guest call has an
//! epoch deadline (`weir.sandbox.call-timeout`) and each instance a memory
//! limit (`weir.sandbox.memory-limit`); a trap, a timeout or an exhausted
//! memory fails the task with a [`GuestFailure`], never the host.
//!
//! Start with [`Sandbox::load`], which checks a `.wasm` file against the
//! world and compiles it (or takes it from the on-disk cache, keyed by
//! content hash and engine), then [`Sandbox::instantiate`].

mod bindings;
mod cache;
mod component;
mod guest;
mod imports;
mod instance;
mod keyed;
mod wasi;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, OptLevel};

pub use cache::CacheOutcome;
pub use component::{HANDLER_INTERFACE, LoadedComponent, WORLD_EXPORTS};
pub use guest::GuestState;
pub use instance::{GuestFailure, GuestFailureKind, WasmOperator};

use crate::config::Config;

/// How often the epoch advances; call deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A component that cannot be used, or a sandbox that cannot start.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not start with the WebAssembly magic bytes.
    #[error("{path} is not a WebAssembly file")]
    NotWasm {
        /// The file.
        path: String,
    },
    /// The file is a core module, not a component.
    #[error(
        "{path} is a core WebAssembly module, not a component; build the operator for \
         wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule {
        /// The file.
        path: String,
    },
    /// wasmtime cannot compile it.
    #[error("{path} is not a valid component: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// wasmtime's reason.
        message: String,
    },
    /// It does not export what the world requires.
    #[error(
        "{path} does not implement the weir:operator world: missing export(s) {}",
        missing.join(", ")
    )]
    MissingExports {
        /// The file.
        path: String,
        /// The missing export names.
        missing: Vec<String>,
    },
    /// It imports something the sandbox does not provide, or an export has
    /// the wrong type.
    #[error("{path} does not fit the weir:operator world: {message}")]
    Mismatch {
        /// The file.
        path: String,
        /// What does not fit.
        message: String,
    },
    /// The engine or linker could not be set up (a bug, not user input).
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

/// Limits applied to every guest instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a single guest call may run.
    pub call_timeout: Duration,
    /// Largest linear memory of one instance, in bytes.
    pub memory_limit: u64,
}

/// The wasmtime engine, linker and component cache shared by the operators
/// of a job.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<GuestState>,
    cache: cache::ComponentCache,
    limits: Limits,
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
        let cache = cache::ComponentCache::new(config.cache_dir.clone(), &engine);
        let ticker = EpochTicker::start(engine.clone());
        Ok(Sandbox {
            engine,
            linker,
            cache,
            limits: Limits {
                call_timeout: config.call_timeout,
                memory_limit: config.memory_limit,
            },
            ticker: Some(ticker),
        })
    }

    /// The limits every instance gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Epoch ticks that make up one call's deadline.
    fn deadline_ticks(&self) -> u64 {
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

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}
