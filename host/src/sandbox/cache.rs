//! Compiled components on disk, keyed by the SHA-256 of the `.wasm` bytes
//! and a hash of the engine's compatibility settings, so a second start
//! skips compilation (about 400x faster than compiling).
//!
//! Each artifact `<wasm-sha256>-<engine>.cwasm` has a sibling `.sha256`
//! holding the artifact's own hash, checked before loading: a truncated or
//! corrupted artifact is recompiled, never loaded. Files are written to a
//! temporary name and renamed, so a crash leaves no half-written artifact.
//! The folder is created private (0700) and is only used while it stays
//! this user's alone, since an artifact is native code. Its size is bounded
//! (`weir.sandbox.cache-max-bytes`): after a store, the artifacts used
//! least recently (a hit refreshes an artifact's time) are evicted until
//! the folder fits.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What compiling one component cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompileReport {
    /// Wall-clock seconds the compile took.
    pub seconds: f64,
    /// How far it raised the process's resident memory, in MiB
    /// ([`crate::machine::MemoryWatch`]).
    pub memory_mib: f64,
}

/// The on-disk cache of compiled components.
pub(super) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
    max_bytes: u64,
}

/// What each compile of this process cost, by component hash (every
/// sandbox of the process: a server's and its jobs').
static REPORTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, CompileReport>>,
> = std::sync::LazyLock::new(Default::default);

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    pub(super) fn new(dir: PathBuf, engine: &Engine, max_bytes: u64) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        ComponentCache {
            dir,
            engine_key: format!("{:016x}", h.finish()),
            max_bytes,
        }
    }

    /// The paths of the artifact of `wasm_hash` and of its checksum.
    fn paths(&self, wasm_hash: &str) -> (PathBuf, PathBuf) {
        let artifact = self
            .dir
            .join(format!("{wasm_hash}-{}.cwasm", self.engine_key));
        let checksum = artifact.with_extension("sha256");
        (artifact, checksum)
    }

    /// The compiled component for `wasm` (whose hash is `wasm_hash`): from
    /// the cache (no report), or compiled (and not stored: see
    /// [`Self::remember`]) with what the compile cost.
    pub(super) fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_hash: &str,
    ) -> wasmtime::Result<(Component, Option<CompileReport>)> {
        let (artifact, checksum) = self.paths(wasm_hash);
        if let Some(component) = self.load(engine, &artifact, &checksum) {
            return Ok((component, None));
        }
        let _slot = CompileSlot::take();
        let (started, memory) = (
            std::time::Instant::now(),
            crate::machine::MemoryWatch::start(),
        );
        let component = Component::new(engine, wasm)?;
        let report = CompileReport {
            seconds: started.elapsed().as_secs_f64(),
            memory_mib: memory.finish(),
        };
        // Compiling a language runtime's component (tens of MB) takes
        // seconds and hundreds of MB: said once, then cached.
        tracing::info!(
            "compiled a component of {:.1} MB in {:.1} s (it raised the process's memory by {:.0} MiB); cached for later starts",
            wasm.len() as f64 / 1e6,
            report.seconds,
            report.memory_mib,
        );
        REPORTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(wasm_hash.to_owned(), report);
        Ok((component, Some(report)))
    }

    /// What the last compile of `wasm_hash` in this process cost, if it
    /// compiled here.
    pub(super) fn report(&self, wasm_hash: &str) -> Option<CompileReport> {
        REPORTS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(wasm_hash)
            .copied()
    }

    /// Whether the artifact of `wasm_hash` is in the cache (by its files:
    /// a load checks its checksum, and compiles it again if that fails).
    pub(super) fn holds(&self, wasm_hash: &str) -> bool {
        let (artifact, checksum) = self.paths(wasm_hash);
        private_dir(&self.dir) && artifact.is_file() && checksum.is_file()
    }

    /// Stores a compiled component that passed every check, so a refused
    /// one never fills the cache. A cache that cannot be written only
    /// costs the next start a compilation.
    pub(super) fn remember(&self, wasm_hash: &str, component: &Component) {
        let (artifact, checksum) = self.paths(wasm_hash);
        if let Ok(bytes) = component.serialize() {
            let _ = self.store(&artifact, &checksum, &bytes);
        }
    }

    fn load(&self, engine: &Engine, artifact: &PathBuf, checksum: &PathBuf) -> Option<Component> {
        if !private_dir(&self.dir) {
            return None;
        }
        let expected = std::fs::read_to_string(checksum).ok()?;
        let bytes = std::fs::read(artifact).ok()?;
        if sha256_hex(&bytes) != expected.trim() {
            return None;
        }
        // Used now: the last to be evicted.
        let now = std::time::SystemTime::now();
        let _ = std::fs::File::options()
            .write(true)
            .open(artifact)
            .and_then(|f| f.set_modified(now));
        deserialize(engine, &bytes)
    }

    fn store(&self, artifact: &PathBuf, checksum: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
        }
        if !private_dir(&self.dir) {
            return Ok(());
        }
        // Unique temporary names: two threads of one process may store the
        // same component at once.
        let mut tmp_artifact = tempfile::NamedTempFile::new_in(&self.dir)?;
        let mut tmp_checksum = tempfile::NamedTempFile::new_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp_artifact, bytes)?;
        std::io::Write::write_all(&mut tmp_checksum, sha256_hex(bytes).as_bytes())?;
        tmp_artifact.persist(artifact).map_err(|e| e.error)?;
        tmp_checksum.persist(checksum).map_err(|e| e.error)?;
        evict(&self.dir, self.max_bytes, artifact);
        Ok(())
    }
}

/// What the threads of this process hold, and a wait until a holding
/// fits: the one mechanism behind [`LoadingOne`] and [`CompileSlot`].
struct Held<T> {
    held: std::sync::Mutex<Vec<T>>,
    freed: std::sync::Condvar,
}

impl<T: PartialEq> Held<T> {
    const fn new() -> Self {
        Held {
            held: std::sync::Mutex::new(Vec::new()),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits until `fits` says yes to what is held, then holds `item` too.
    fn take(&self, item: T, fits: impl Fn(&[T]) -> bool) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while !fits(&held) {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        held.push(item);
    }

    /// Lets go of one `item`, and wakes the waiting threads.
    fn give_back(&self, item: &T) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = held.iter().position(|h| h == item) {
            held.swap_remove(i);
        }
        self.freed.notify_all();
    }
}

/// The hashes of the components being loaded in this process.
static LOADING: Held<String> = Held::new();

/// The right to load (and so perhaps compile) the component of one hash in
/// this process: a second load of the same component (a job started while
/// its upload compiles) waits for the first and then finds it cached,
/// instead of compiling it again beside it.
pub(super) struct LoadingOne(String);

impl LoadingOne {
    /// Waits until no other thread loads `wasm_hash`, then takes it.
    pub(super) fn take(wasm_hash: &str) -> Self {
        let hash = wasm_hash.to_owned();
        LOADING.take(hash.clone(), |loading| !loading.contains(&hash));
        LoadingOne(hash)
    }
}

impl Drop for LoadingOne {
    fn drop(&mut self) {
        LOADING.give_back(&self.0);
    }
}

/// The compiles running in this process (one entry each).
static COMPILING: Held<()> = Held::new();

/// One of the process's compilation slots (as many as it has cores), held
/// by the compiling thread: uploads and job starts together never compile
/// more components at once than there are cores.
struct CompileSlot;

impl CompileSlot {
    /// Waits for a free slot and takes it.
    fn take() -> Self {
        let most = std::thread::available_parallelism().map_or(1, usize::from);
        COMPILING.take((), |running| running.len() < most);
        CompileSlot
    }
}

impl Drop for CompileSlot {
    fn drop(&mut self) {
        COMPILING.give_back(&());
    }
}

/// Deletes the artifacts of `dir` used least recently (with their
/// checksums) until their sizes add up to at most `max_bytes`; `keep`, the
/// one just stored, stays.
fn evict(dir: &std::path::Path, max_bytes: u64, keep: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = artifacts.iter().map(|a| a.1).sum();
    artifacts.sort();
    for (_, size, path) in artifacts {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            let _ = std::fs::remove_file(path.with_extension("sha256"));
            total -= size;
        }
    }
}

/// Whether `dir` belongs to this process's user and no one else may write
/// to it. Artifacts are native code: one planted by another user must never
/// be loaded, so a shared or foreign cache folder is not used at all.
fn private_dir(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let (Ok(meta), Ok(me)) = (std::fs::metadata(dir), std::fs::metadata("/proc/self")) else {
        return false;
    };
    meta.is_dir() && meta.uid() == me.uid() && meta.permissions().mode() & 0o022 == 0
}

#[expect(
    unsafe_code,
    reason = "wasmtime's deserializer is unsafe: it trusts the artifact"
)]
fn deserialize(engine: &Engine, bytes: &[u8]) -> Option<Component> {
    // SAFETY: the bytes come from a folder owned by this user that no one
    // else may write to (`private_dir`), where this cache wrote them with
    // `Component::serialize` for an engine with the same compatibility hash,
    // and their SHA-256 was checked against the one written beside them, so
    // they are not truncated or corrupted. wasmtime still checks the
    // engine settings and refuses a mismatch with an error.
    unsafe { Component::deserialize(engine, bytes) }.ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    #[test]
    fn the_least_recently_used_artifacts_go_first_until_the_folder_fits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let start = SystemTime::now() - Duration::from_secs(100);
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            let p = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&p, vec![0u8; 1000]).expect("artifact");
            std::fs::write(p.with_extension("sha256"), "x").expect("checksum");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(start + Duration::from_secs(10 * i as u64))
                .expect("time");
        }
        // `a` is the oldest but was just stored: it stays.
        super::evict(dir.path(), 2500, &dir.path().join("a.cwasm"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a.cwasm", "a.sha256", "d.cwasm", "d.sha256"]);
    }

    #[test]
    fn a_component_importing_what_is_not_linked_is_refused_without_compiling() {
        // Every compile slot is held: a load that compiled would wait.
        let most = std::thread::available_parallelism().map_or(1, usize::from);
        let held: Vec<super::CompileSlot> = (0..most).map(|_| super::CompileSlot::take()).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::config::Config {
            cache_dir: dir.path().join("cache"),
            ..crate::config::Config::default()
        };
        let sandbox = crate::sandbox::Sandbox::new(&config).expect("sandbox");
        let wasm = dir.path().join("http.wasm");
        let bytes =
            crate::sandbox::precheck::component_importing("wasi:http/outgoing-handler@0.2.0");
        std::fs::write(&wasm, bytes).expect("write");
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let loaded = sandbox.load(&wasm);
            let _ = done.send(loaded.map(|_| ()).map_err(|e| e.to_string()));
        });
        let refused = outcome.recv_timeout(Duration::from_secs(60));
        drop(held);
        let message = refused
            .expect("the refusal waited for a compile")
            .expect_err("wasi:http is not linked");
        assert!(message.contains("wasi:http/outgoing-handler"), "{message}");
    }

    #[test]
    fn a_cache_folder_others_may_write_to_is_not_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(super::private_dir(dir.path()));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        assert!(!super::private_dir(dir.path()));
        assert!(!super::private_dir(&dir.path().join("missing")));
    }
}
