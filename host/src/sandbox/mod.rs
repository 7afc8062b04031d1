//! The sandbox: runs operator components under wasmtime with the component
//! model, isolated from the host.
//!
//! A guest reaches nothing but the imports of the `weir:operator` world and
//! a WASI preview 2 context with no preopened directories, no environment,
//! no arguments and no network, its stdout and stderr going to the job's
//! log, and nothing that can block (`wasi.rs`). Each guest call has an
//! epoch deadline (`weir.sandbox.call-timeout`) and each instance a memory
//! limit (`weir.sandbox.memory-limit`); a trap, a timeout or an exhausted
//! memory fails the task with a [`GuestFailure`], never the host.
//!
//! Start with [`Sandbox::load`], which checks a `.wasm` file's import and
//! export names against the world before it compiles it (or takes it from the on-disk cache, keyed by
//! content hash and engine), then [`Sandbox::instantiate`].

mod bindings;
mod cache;
mod clock;
mod component;
mod engine;
mod error;
mod guest;
mod guest_log;
mod imports;
mod instance;
mod keyed;
mod limits;
mod precheck;
mod stdio;
mod wasi;

pub use cache::CompileReport;
pub use component::{HANDLER_INTERFACE, LoadedComponent};
pub use engine::Sandbox;
pub use error::SandboxError;
pub use instance::{GuestFailure, GuestFailureKind, WasmOperator};
