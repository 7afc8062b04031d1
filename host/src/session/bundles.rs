//! Operator bundles: uploaded `.wasm` components, checked against the
//! `weir:operator` world when they arrive and stored by content hash in
//! `<data-dir>/bundles/<sha256>.wasm`, with their names in
//! `<data-dir>/bundles/index.json`.
//!
//! A name points to a list of versions: uploading under a name adds a
//! version and never drops an older one, so a job keeps the exact
//! component it was submitted with (it is recorded by hash) however often
//! the name is uploaded again. A component file is written under a
//! temporary name, fsynced and renamed, so a file under its final name is
//! always whole; one that does not hash to its name is rewritten.
//!
//! A bundle is checked without compiling when it arrives (names, exports,
//! valid WebAssembly) and compiled afterwards; [`Compiles`] keeps how each
//! compile went.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::compiles::{CompileStatus, Compiles};
use super::error::SessionError;
use crate::checkpoint::fs::sync_dir;
use crate::sandbox::Sandbox;

/// The version of `index.json` this code writes.
pub const INDEX_FORMAT: u32 = 2;

/// One stored bundle version.
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
    /// Its version under its name, from 1 (older indexes had one version).
    #[serde(default = "first_version")]
    pub version: u32,
}

fn first_version() -> u32 {
    1
}

/// `index.json`: every name's versions, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    format: u32,
    bundles: BTreeMap<String, Vec<Bundle>>,
}

/// `index.json` as the first servers wrote it: one bundle per name.
type IndexV1 = BTreeMap<String, Bundle>;

impl Index {
    /// Decodes either format.
    fn decode(bytes: &[u8]) -> anyhow::Result<Self> {
        if let Ok(index) = serde_json::from_slice::<Index>(bytes) {
            anyhow::ensure!(
                index.format <= INDEX_FORMAT,
                "bundles/index.json has format {}; this Weir reads up to {INDEX_FORMAT}",
                index.format
            );
            return Ok(index);
        }
        let old: IndexV1 = serde_json::from_slice(bytes)?;
        Ok(Index {
            format: INDEX_FORMAT,
            bundles: old.into_iter().map(|(n, b)| (n, vec![b])).collect(),
        })
    }

    /// The newest version of each name.
    fn latest(&self, name: &str) -> Option<&Bundle> {
        self.bundles.get(name).and_then(|v| v.last())
    }

    /// Every version of every name.
    fn all(&self) -> impl Iterator<Item = &Bundle> {
        self.bundles.values().flatten()
    }
}

/// The bundle store of a server.
#[derive(Debug)]
pub struct BundleStore {
    dir: PathBuf,
    index: Mutex<Index>,
    compiles: Compiles,
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

/// Whether the file at `path` holds exactly the bytes hashing to `id`.
fn is_whole(path: &Path, id: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| format!("{:x}", Sha256::digest(&b)) == id)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// folder, fsynced, renamed over `path`, and the folder fsynced.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)?;
    sync_dir(dir)?;
    Ok(())
}

impl BundleStore {
    /// Opens (or creates) the store in `<data_dir>/bundles`.
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("bundles");
        std::fs::create_dir_all(&dir)?;
        let index_path = dir.join("index.json");
        let index = match std::fs::read(&index_path) {
            Ok(b) => {
                Index::decode(&b).map_err(|e| anyhow::anyhow!("{}: {e}", index_path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index {
                format: INDEX_FORMAT,
                ..Index::default()
            },
            Err(e) => return Err(e.into()),
        };
        Ok(BundleStore {
            dir,
            index: Mutex::new(index),
            compiles: Compiles::default(),
        })
    }

    fn save(&self, index: &Index) -> Result<(), SessionError> {
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| SessionError::internal("cannot encode the bundle index", e))?;
        write_atomically(&self.dir, &self.dir.join("index.json"), &bytes)
            .map_err(|e| SessionError::internal("cannot save the bundle index", e))
    }

    /// Checks `bytes` against the world without compiling them and stores
    /// them as the newest version of `name` (the same bytes as the newest
    /// add no version); [`Self::compile`] compiles them.
    pub fn add(&self, name: &str, bytes: &[u8], sandbox: &Sandbox) -> Result<Bundle, SessionError> {
        let name = name.strip_suffix(".wasm").unwrap_or(name);
        if !valid_name(name) {
            return Err(SessionError::bad_request(format!(
                "bundle name {name:?}: use letters, digits, '-', '_' and '.'"
            )));
        }
        sandbox
            .precheck_bytes(bytes, name)
            .map_err(|e| SessionError::bad_request(e.to_string()))?;
        let id = format!("{:x}", Sha256::digest(bytes));
        let path = self.dir.join(format!("{id}.wasm"));
        if !is_whole(&path, &id) {
            write_atomically(&self.dir, &path, bytes)
                .map_err(|e| SessionError::internal("cannot store the bundle", e))?;
        }
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(latest) = index.latest(name).filter(|b| b.id == id) {
            return Ok(latest.clone());
        }
        let versions = index.bundles.get(name).map_or(0, Vec::len);
        let bundle = Bundle {
            name: name.to_owned(),
            id,
            size: bytes.len() as u64,
            uploaded: crate::clock::epoch_ms(),
            version: u32::try_from(versions).unwrap_or(u32::MAX - 1) + 1,
        };
        let mut next = Index {
            format: INDEX_FORMAT,
            bundles: index.bundles.clone(),
        };
        next.bundles
            .entry(name.to_owned())
            .or_default()
            .push(bundle.clone());
        self.save(&next)?;
        *index = next;
        Ok(bundle)
    }

    /// Every version of every bundle, by name, oldest version first.
    pub fn list(&self) -> Vec<Bundle> {
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index.all().cloned().collect()
    }

    /// The bundle a job names: the newest version of a name, or any version
    /// by id or by `sha256:<id>`.
    pub fn find(&self, reference: &str) -> Option<Bundle> {
        let reference = reference.strip_prefix("sha256:").unwrap_or(reference);
        let name = reference.strip_suffix(".wasm").unwrap_or(reference);
        let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        index
            .latest(name)
            .or_else(|| index.all().find(|b| b.id == reference))
            .cloned()
    }

    /// Marks `bundle` compiling, unless it is compiling already or the
    /// component cache holds it (then it is `ready`, whatever an earlier
    /// compile said): the generation to report its compile with, if it is
    /// to be compiled now.
    pub fn begin_compile(&self, bundle: &Bundle, sandbox: &Sandbox) -> Option<u64> {
        if sandbox.is_compiled(&bundle.id) {
            self.compiles
                .cached(&bundle.id, sandbox.compile_report(&bundle.id));
            return None;
        }
        self.compiles.begin(&bundle.id)
    }

    /// Compiles `bundle` into the component cache (waiting for a compile
    /// slot), checking its types against the world; returns how it went,
    /// for [`Self::finish_compile`].
    pub fn compile(
        &self,
        bundle: &Bundle,
        sandbox: &Sandbox,
    ) -> Result<Option<crate::sandbox::CompileReport>, String> {
        let bytes = std::fs::read(self.path(bundle))
            .map_err(|e| format!("cannot read the stored component: {e}"))?;
        sandbox
            .load_bytes(&bytes, &bundle.name)
            // What this process's compile of it cost, also when a job
            // start compiled it first.
            .map(|_| sandbox.compile_report(&bundle.id))
            .map_err(|e| e.to_string())
    }

    /// Records how compile `generation` of `bundle` ended (or that it
    /// runs late).
    pub fn finish_compile(
        &self,
        bundle: &Bundle,
        generation: u64,
        outcome: Result<Option<crate::sandbox::CompileReport>, String>,
    ) {
        if let Err(e) = &outcome {
            tracing::warn!(
                "bundle {} (version {}) did not compile: {e}",
                bundle.name,
                bundle.version
            );
        }
        self.compiles.finish(&bundle.id, generation, outcome);
    }

    /// Where `bundle`'s compile stands.
    pub fn compile_status(&self, bundle: &Bundle, sandbox: &Sandbox) -> CompileStatus {
        self.compiles
            .status(&bundle.id, || sandbox.is_compiled(&bundle.id))
    }

    /// Why `bundle` failed to compile, if it did: a job naming it is refused.
    pub fn compile_failure(&self, bundle: &Bundle) -> Option<String> {
        self.compiles.failure(&bundle.id)
    }

    /// Where a bundle's component is stored.
    pub fn path(&self, bundle: &Bundle) -> PathBuf {
        self.dir.join(format!("{}.wasm", bundle.id))
    }

    /// Removes bundle `reference`: every version of a name, or the one
    /// version an id names; refused if `in_use` says a running job uses
    /// one of them.
    pub fn delete(
        &self,
        reference: &str,
        in_use: impl Fn(&str) -> bool,
    ) -> Result<(), SessionError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let id = reference.strip_prefix("sha256:").unwrap_or(reference);
        let name = id.strip_suffix(".wasm").unwrap_or(id);
        let doomed: Vec<Bundle> = match index.bundles.get(name) {
            Some(versions) => versions.clone(),
            None => index.all().filter(|b| b.id == id).cloned().collect(),
        };
        if doomed.is_empty() {
            return Err(SessionError::not_found(format!("no bundle {reference:?}")));
        }
        if let Some(used) = doomed.iter().find(|b| in_use(&b.id)) {
            return Err(SessionError::conflict(format!(
                "bundle {:?} (version {}) is used by a running job",
                used.name, used.version
            )));
        }
        let mut next = Index {
            format: INDEX_FORMAT,
            bundles: index.bundles.clone(),
        };
        for b in &doomed {
            if let Some(versions) = next.bundles.get_mut(&b.name) {
                versions.retain(|v| v.id != b.id);
                if versions.is_empty() {
                    next.bundles.remove(&b.name);
                }
            }
        }
        self.save(&next)?;
        *index = next;
        for b in doomed {
            if !index.all().any(|kept| kept.id == b.id) {
                let _ = std::fs::remove_file(self.path(&b));
                self.compiles.forget(&b.id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index the first servers wrote (one bundle per name, no format)
    /// still opens, each bundle as version 1 of its name.
    #[test]
    fn reads_the_first_index_format() {
        let bytes = include_bytes!("../../tests/fixtures/bundles-index-v1.json");
        let index = Index::decode(bytes).expect("v1 index");
        assert_eq!(index.format, INDEX_FORMAT);
        let count = index.latest("count").expect("count");
        assert_eq!((count.version, count.size), (1, 61234));
        assert_eq!(index.all().count(), 2);
        let newer = br#"{"format": 99, "bundles": {}}"#;
        let err = Index::decode(newer).expect_err("a newer format");
        assert!(err.to_string().contains("format 99"), "{err}");
    }
}
