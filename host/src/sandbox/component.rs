//! Loading a `.wasm` file: check that it is a component of the
//! `weir:operator` world before any job starts, and compile it.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::types::ComponentItem;

use super::bindings::OperatorPre;
use super::cache::{CompileReport, LoadingOne, sha256_hex};
use super::engine::Sandbox;
use super::error::SandboxError;
use super::guest::GuestState;

/// The interface the world requires a component to export.
pub const HANDLER_INTERFACE: &str = "weir:operator/handler@0.2.0";

/// The functions that interface requires.
pub const WORLD_EXPORTS: &[&str] = &["open", "process", "process-second", "on-timer", "close"];

/// A checked, compiled component, ready to instantiate many times.
#[derive(Clone)]
pub struct LoadedComponent {
    pub(super) pre: Arc<OperatorPre<GuestState>>,
    /// SHA-256 of the `.wasm` bytes.
    pub hash: String,
    /// What compiling it cost; `None` when it came from the
    /// compiled-component cache.
    pub compiled: Option<CompileReport>,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("hash", &self.hash)
            .field("compiled", &self.compiled)
            .finish_non_exhaustive()
    }
}

/// The WebAssembly magic number.
const MAGIC: &[u8; 4] = b"\0asm";

impl Sandbox {
    /// Reads, checks and compiles the component at `path`.
    pub fn load(&self, path: &Path) -> Result<LoadedComponent, SandboxError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| SandboxError::Io {
            path: shown.clone(),
            source,
        })?;
        self.load_bytes(&bytes, &shown)
    }

    /// Whether the component whose bytes hash to `wasm_sha256` (hex) is
    /// compiled in the cache, so loading it takes no compile.
    pub fn is_compiled(&self, wasm_sha256: &str) -> bool {
        self.cache.holds(wasm_sha256)
    }

    /// What compiling the component whose bytes hash to `wasm_sha256` cost,
    /// if this process compiled it (an upload's compile may find that a
    /// job start compiled it first).
    pub fn compile_report(&self, wasm_sha256: &str) -> Option<CompileReport> {
        self.cache.report(wasm_sha256)
    }

    /// Checks component bytes as far as can be done without compiling
    /// them: a component (not a core module) whose imports the sandbox
    /// links and which exports the world's handler, and valid WebAssembly
    /// (every function body type-checks). `name` is used in errors.
    pub fn precheck_bytes(&self, bytes: &[u8], name: &str) -> Result<(), SandboxError> {
        check_names(bytes, name)?;
        super::precheck::validate(bytes, name)
    }

    /// Checks and compiles component bytes; `name` is used in errors.
    pub fn load_bytes(&self, bytes: &[u8], name: &str) -> Result<LoadedComponent, SandboxError> {
        let path = name.to_owned();
        // Names first: a refusal must not wait for a compile.
        check_names(bytes, name)?;
        let hash = sha256_hex(bytes);
        // Held until the component is cached: a second load of it waits,
        // then takes it from the cache.
        let _loading = LoadingOne::take(&hash);
        let (component, compiled) = self
            .cache
            .get_or_compile(&self.engine, bytes, &hash)
            .map_err(|e| SandboxError::Invalid {
                path: path.clone(),
                message: format!("{e:#}"),
            })?;
        let ty = component.component_type();
        let handler = ty
            .exports(&self.engine)
            .find(|(name, _)| *name == HANDLER_INTERFACE)
            .map(|(_, item)| item.ty);
        let exported: Vec<String> = match handler {
            Some(ComponentItem::ComponentInstance(instance)) => instance
                .exports(&self.engine)
                .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                .map(|(name, _)| name.to_owned())
                .collect(),
            _ => {
                return Err(SandboxError::MissingExports {
                    path,
                    missing: vec![HANDLER_INTERFACE.to_owned()],
                });
            }
        };
        let missing: Vec<String> = WORLD_EXPORTS
            .iter()
            .filter(|e| !exported.iter().any(|x| x == *e))
            .map(|e| format!("{HANDLER_INTERFACE}#{e}"))
            .collect();
        if !missing.is_empty() {
            return Err(SandboxError::MissingExports { path, missing });
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::Mismatch {
                path: path.clone(),
                message: format!(
                    "{e:#} (an operator reaches only the weir:operator world and WASI 0.2, \
                     with nothing behind it)"
                ),
            })?;
        let pre = OperatorPre::new(pre).map_err(|e| SandboxError::Mismatch {
            path: path.clone(),
            message: format!("{e:#}"),
        })?;
        if compiled.is_some() {
            self.cache.remember(&hash, &component);
        }
        Ok(LoadedComponent {
            pre: Arc::new(pre),
            hash,
            compiled,
        })
    }
}

/// Checks that `bytes` are a component (not a core module or anything
/// else) whose import and export names fit the world.
fn check_names(bytes: &[u8], name: &str) -> Result<(), SandboxError> {
    let path = name.to_owned();
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(SandboxError::NotWasm { path });
    }
    // Bytes 4..8: a core module has version 1 and layer 0, a component
    // layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(SandboxError::CoreModule { path });
    }
    super::precheck::check_names(bytes, &path)
}
