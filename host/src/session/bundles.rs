//! Operator bundles: uploaded `.wasm` components, checked against the
//! `weir:operator` world when they arrive and stored by content hash in
//! `<data-dir>/bundles/<sha256>.wasm`, with their names in
//! `<data-dir>/bundles/index.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::SessionError;
use crate::checkpoint::fs::write_durably;
use crate::sandbox::Sandbox;

/// One stored bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bundle {
    /// The name it was uploaded under (its file name without `.wasm`).
    pub name: String,
    /// sha256 of its bytes, in hex: its id.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded (ms since the Unix epoch).
    pub uploaded: i64,
}

/// The bundle store of a server.
#[derive(Debug)]
pub struct BundleStore {
    dir: PathBuf,
    index: Mutex<BTreeMap<String, Bundle>>,
}

/// Whether `name` is a plain bundle name: letters, digits, `-`, `_`, `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl BundleStore {
    /// Opens (or creates) the store in `<data_dir>/bundles`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("bundles");
        std::fs::create_dir_all(&dir)?;
        let index_path = dir.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(b) => serde_json::from_slice(&b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(BundleStore {
            dir,
            index: Mutex::new(index),
        })
    }

    fn save(&self, index: &BTreeMap<String, Bundle>) -> Result<(), SessionError> {
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| SessionError::internal("cannot encode the bundle index", e))?;
        let tmp = self.dir.join("index.json.tmp");
        write_durably(&tmp, &bytes)
            .and_then(|()| {
                std::fs::rename(&tmp, self.dir.join("index.json")).map_err(|e| {
                    crate::checkpoint::fs::StorageError {
                        path: "index.json".into(),
                        message: e.to_string(),
                    }
                })
            })
            .map_err(|e| SessionError::internal("cannot save the bundle index", e))
    }

    /// Checks `bytes` against the world and stores them as `name`
    /// (replacing an older bundle of that name).
    pub fn add(&self, name: &str, bytes: &[u8], sandbox: &Sandbox) -> Result<Bundle, SessionError> {
        let name = name.strip_suffix(".wasm").unwrap_or(name);
        if !valid_name(name) {
            return Err(SessionError::bad_request(format!(
                "bundle name {name:?}: use letters, digits, '-', '_' and '.'"
            )));
        }
        sandbox
            .load_bytes(bytes, name)
            .map_err(|e| SessionError::bad_request(e.to_string()))?;
        let id = format!("{:x}", Sha256::digest(bytes));
        let path = self.dir.join(format!("{id}.wasm"));
        if !path.exists() {
            write_durably(&path, bytes)
                .map_err(|e| SessionError::internal("cannot store the bundle", e))?;
        }
        let bundle = Bundle {
            name: name.to_owned(),
            id,
            size: bytes.len() as u64,
            uploaded: crate::clock::epoch_ms(),
        };
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = index.clone();
        next.insert(name.to_owned(), bundle.clone());
        self.save(&next)?;
        *index = next;
        Ok(bundle)
    }

    /// Every bundle, by name.
    pub fn list(&self) -> Vec<Bundle> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index.values().cloned().collect()
    }

    /// The bundle a job names: by name, by id, or by `sha256:<id>`.
    pub fn find(&self, reference: &str) -> Option<Bundle> {
        let reference = reference.strip_prefix("sha256:").unwrap_or(reference);
        let name = reference.strip_suffix(".wasm").unwrap_or(reference);
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index
            .get(name)
            .or_else(|| index.values().find(|b| b.id == reference))
            .cloned()
    }

    /// Where a bundle's component is stored.
    pub fn path(&self, bundle: &Bundle) -> PathBuf {
        self.dir.join(format!("{}.wasm", bundle.id))
    }

    /// Removes bundle `reference` unless `in_use` says a running job uses it.
    pub fn delete(
        &self,
        reference: &str,
        in_use: impl Fn(&str) -> bool,
    ) -> Result<(), SessionError> {
        let bundle = self
            .find(reference)
            .ok_or_else(|| SessionError::not_found(format!("no bundle {reference:?}")))?;
        if in_use(&bundle.id) {
            return Err(SessionError::conflict(format!(
                "bundle {:?} is used by a running job",
                bundle.name
            )));
        }
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = index.clone();
        next.remove(&bundle.name);
        self.save(&next)?;
        *index = next;
        if !index.values().any(|b| b.id == bundle.id) {
            let _ = std::fs::remove_file(self.path(&bundle));
        }
        Ok(())
    }
}
