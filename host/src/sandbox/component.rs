//! Loading a `.wasm` file: check that it is a component of the
//! `weir:operator` world before any job starts, and compile it.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::types::ComponentItem;

use super::bindings::OperatorPre;
use super::cache::{CacheOutcome, sha256_hex};
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
    /// Whether it came from the compiled-component cache.
    pub cache: CacheOutcome,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("hash", &self.hash)
            .field("cache", &self.cache)
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

    /// Checks and compiles component bytes; `name` is used in errors.
    pub fn load_bytes(&self, bytes: &[u8], name: &str) -> Result<LoadedComponent, SandboxError> {
        let path = name.to_owned();
        if bytes.len() < 8 || &bytes[..4] != MAGIC {
            return Err(SandboxError::NotWasm { path });
        }
        // Bytes 4..8: a core module has version 1 and layer 0, a component
        // layer 1.
        if bytes[6..8] == [0, 0] {
            return Err(SandboxError::CoreModule { path });
        }
        // Names first: a refusal must not wait for a compile.
        super::precheck::check_names(bytes, &path)?;
        let hash = sha256_hex(bytes);
        let (component, cache) = self
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
        if cache == CacheOutcome::Compiled {
            self.cache.remember(&hash, &component);
        }
        Ok(LoadedComponent {
            pre: Arc::new(pre),
            hash,
            cache,
        })
    }
}
