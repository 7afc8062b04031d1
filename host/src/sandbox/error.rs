//! [`SandboxError`]: why a component cannot be loaded or a sandbox cannot
//! start.

use thiserror::Error;

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
