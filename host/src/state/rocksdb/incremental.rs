//! Incremental snapshots of the RocksDB backend: a RocksDB checkpoint (hard
//! links to the live SST files, taken after the write cache and the
//! memtables are flushed) that the coordinator uploads, and the restore of
//! an instance from such files, at the same parallelism (the files become
//! the instance) or at another (the owned key-group range of each old
//! instance is copied over, one bounded scan per state).

use std::collections::HashMap;
use std::path::Path;

use rocksdb::{DB, ReadOptions};

use super::keys::{key_group_bounds, parse_key};
use super::options::column_family_options;
use super::{RemoveOnDrop, RocksDbBackend, RocksDbOptions, storage};
use crate::confined::Folder;
use crate::keygroup::KeyGroupRange;
use crate::state::StateError;
use crate::state::incremental::{LocatedHandle, NativeFile, NativeSnapshot, SHARED_PREFIX};

/// Bytes gathered in one write batch while copying a key-group range.
const BATCH_BYTES: usize = 4 << 20;

/// Copies the files of `source` into `dest`, checking each one's size and
/// checksum against the handle. Each is read through a handle on its
/// checkpoint folder (or on the job's `shared/` folder beside it).
fn download(source: &LocatedHandle, dest: &Path) -> Result<(), StateError> {
    source
        .handle
        .files()
        .try_for_each(|f| f.check_names().map_err(StateError::Storage))?;
    let open = |p: &Path| {
        Folder::open_existing(p).map_err(|e| {
            StateError::Storage(format!(
                "cannot open checkpoint folder {}: {e}",
                p.display()
            ))
        })
    };
    let checkpoint = open(&source.base)?;
    let mut shared = None;
    let to = open(dest)?;
    for f in source.handle.files() {
        let (from, name) = match f.shared_name() {
            Some(name) => {
                if shared.is_none() {
                    shared = Some(open(&source.base.join(SHARED_PREFIX))?);
                }
                (shared.as_ref().unwrap_or(&checkpoint), name)
            }
            None => (&checkpoint, f.file.as_str()),
        };
        let shown = from.shown(name);
        let (size, sum) = to.copy_in(from, name, &f.local, false).map_err(|e| {
            StateError::Storage(format!(
                "cannot read checkpoint file {}: {e}",
                shown.display()
            ))
        })?;
        if size != f.size || sum != f.checksum {
            return Err(StateError::Storage(format!(
                "checkpoint file {}: size or checksum differs from _metadata (the file is damaged or was changed)",
                shown.display()
            )));
        }
    }
    Ok(())
}

impl RocksDbBackend {
    /// Opens an instance in `dir` (emptied first) owning `range`, from the
    /// incremental snapshots in `restore` that overlap it (none: a new,
    /// empty instance).
    pub fn restore(
        dir: &Path,
        range: KeyGroupRange,
        options: RocksDbOptions,
        restore: &[LocatedHandle],
    ) -> Result<Self, StateError> {
        Self::clear_folder(dir)?;
        let cf_options = column_family_options(&options);
        let sources: Vec<&LocatedHandle> = restore
            .iter()
            .filter(|h| h.handle.overlaps(range))
            .collect();
        // One snapshot of exactly these key groups: its files become the
        // instance, and its shared files are referenced, not uploaded, by
        // the next checkpoint.
        if let [only] = sources.as_slice()
            && only.handle.key_group_range == (range.start, range.end)
        {
            download(only, dir)?;
            let mut flags = HashMap::new();
            let db = Self::open_db(dir, &cf_options, &mut flags)?;
            let restored = only
                .handle
                .shared
                .iter()
                .filter_map(|f| Some((f.local.clone(), f.shared_name()?.to_owned())))
                .collect();
            let entries = usize::try_from(only.handle.entries).unwrap_or(usize::MAX);
            return Ok(Self::over(
                (db, flags),
                dir,
                range,
                &options,
                cf_options,
                entries,
                restored,
            ));
        }
        let mut flags = HashMap::new();
        let db = Self::open_db(dir, &cf_options, &mut flags)?;
        let mut backend = Self::over(
            (db, flags),
            dir,
            range,
            &options,
            cf_options,
            0,
            HashMap::new(),
        );
        for (i, source) in sources.iter().enumerate() {
            let tmp = dir.with_extension(format!("restore-{i}"));
            Self::clear_folder(&tmp)?;
            let _remove = RemoveOnDrop(tmp.clone());
            download(source, &tmp)?;
            let from = Self::open_db(&tmp, &backend.cf_options, &mut HashMap::new())?;
            let families = DB::list_cf(&backend.cf_options, &tmp).map_err(storage)?;
            for family in families.iter().filter(|f| f.starts_with("state:")) {
                backend.entries += backend.copy_range(&from, family)?;
            }
        }
        Ok(backend)
    }

    /// Copies the entries of this instance's key groups in column family
    /// `family` of `from`; returns the (key, namespace) entries copied.
    fn copy_range(&mut self, from: &DB, family: &str) -> Result<usize, StateError> {
        let Some(source) = from.cf_handle(family) else {
            return Ok(0);
        };
        self.ensure_family(family)?;
        let target = self
            .db
            .cf_handle(family)
            .ok_or_else(|| StateError::Storage(format!("column family {family} is missing")))?;
        let mut read = ReadOptions::default();
        let (lower, upper) = key_group_bounds(self.range);
        read.set_iterate_lower_bound(lower);
        if let Some(upper) = upper {
            read.set_iterate_upper_bound(upper);
        }
        let mut it = from.raw_iterator_cf_opt(source, read);
        it.seek_to_first();
        let mut batch = rocksdb::WriteBatch::default();
        let mut entries = 0;
        let mut last: Vec<u8> = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            // A map has one RocksDB entry per map key; the state entry is
            // the (key, namespace) prefix.
            let prefix_len = parse_key(k).map_or(k.len(), |(_, _, rest)| k.len() - rest.len());
            if k[..prefix_len] != last[..] {
                entries += 1;
                last.clear();
                last.extend_from_slice(&k[..prefix_len]);
            }
            batch.put_cf(target, k, v);
            if batch.size_in_bytes() > BATCH_BYTES {
                self.db
                    .write_opt(std::mem::take(&mut batch), &self.write)
                    .map_err(storage)?;
            }
            it.next();
        }
        it.status().map_err(storage)?;
        self.db.write_opt(batch, &self.write).map_err(storage)?;
        Ok(entries)
    }

    /// Takes a RocksDB checkpoint for checkpoint `id`: the cached writes
    /// and the memtables are flushed, then every live file is hard-linked
    /// into a folder beside the instance's.
    pub(super) fn checkpoint_files(&self, id: u64) -> Result<NativeSnapshot, StateError> {
        self.flush()?;
        let folder = self.dir.with_extension(format!("chk-{id}"));
        if folder.exists() {
            std::fs::remove_dir_all(&folder).map_err(|e| {
                StateError::Storage(format!("cannot clear {}: {e}", folder.display()))
            })?;
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(&folder))
            .map_err(storage)?;
        let mut snapshot = NativeSnapshot {
            range: (self.range.start, self.range.end),
            instance: self.instance.clone(),
            entries: self.entries as u64,
            folder,
            files: Vec::new(),
        };
        let listing = std::fs::read_dir(&snapshot.folder).map_err(|e| {
            StateError::Storage(format!("cannot list {}: {e}", snapshot.folder.display()))
        })?;
        for entry in listing {
            let entry = entry.map_err(|e| StateError::Storage(e.to_string()))?;
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Some(local) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let shared = local.ends_with(".sst").then(|| {
                self.restored_shared
                    .get(&local)
                    .cloned()
                    .unwrap_or_else(|| format!("{}-{local}", self.instance))
            });
            snapshot.files.push(NativeFile { local, shared });
        }
        snapshot.files.sort_by(|a, b| a.local.cmp(&b.local));
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::storage::CheckpointStorage;
    use crate::config::StorageKind;
    use crate::keygroup::key_group;
    use crate::state::{KeyedStateBackend, StateKey, StateKind};

    const MP: u32 = 16;

    fn options() -> RocksDbOptions {
        RocksDbOptions {
            incremental: true,
            ..RocksDbOptions::default()
        }
    }

    fn at(key: &[u8]) -> StateKey<'_> {
        StateKey {
            key_group: key_group(key, MP),
            key,
            namespace: b"",
        }
    }

    /// Writes keys `from..to`: a value, a list of one and a map of one each.
    fn fill(b: &mut RocksDbBackend, from: u32, to: u32) {
        let (v, l, m) = declare(b);
        for i in from..to {
            let key = format!("k{i}");
            b.value_put(v, at(key.as_bytes()), &i.to_le_bytes())
                .expect("put");
            b.list_add(l, at(key.as_bytes()), b"x").expect("add");
            b.map_put(m, at(key.as_bytes()), b"i", key.as_bytes())
                .expect("map");
        }
    }

    fn declare(b: &mut RocksDbBackend) -> (u32, u32, u32) {
        (
            b.register("v", StateKind::Value).expect("register"),
            b.register("l", StateKind::List).expect("register"),
            b.register("m", StateKind::Map).expect("register"),
        )
    }

    /// Checks the entries of keys `0..n` that `b` owns; returns how many.
    fn check(b: &mut RocksDbBackend, n: u32) -> usize {
        let (v, l, m) = declare(b);
        let mut owned = 0;
        for i in 0..n {
            let key = format!("k{i}");
            let a = at(key.as_bytes());
            if !b.key_groups().contains(a.key_group) {
                continue;
            }
            owned += 1;
            let got = b.value_get(v, a).expect("get").map(|x| x.to_vec());
            assert_eq!(got, Some(i.to_le_bytes().to_vec()), "value of {key}");
            assert_eq!(b.list_get(l, a).expect("list"), vec![b"x".to_vec()]);
            assert_eq!(
                b.map_get(m, a, b"i").expect("map").as_deref(),
                Some(key.as_bytes())
            );
        }
        owned
    }

    /// The key groups of one subtask at parallelism 1.
    const FULL: KeyGroupRange = KeyGroupRange {
        start: 0,
        end: MP - 1,
    };

    /// Takes two incremental checkpoints of an instance in `dir`, the
    /// second referencing the files of the first; returns the instance and
    /// its second snapshot (alive as long as the caller keeps them) and the
    /// second checkpoint's handle.
    fn checkpoint_twice(
        dir: &Path,
        storage: &CheckpointStorage,
    ) -> (RocksDbBackend, NativeSnapshot, LocatedHandle) {
        let mut b = RocksDbBackend::open(&dir.join("a.db"), FULL, options()).expect("open");
        fill(&mut b, 0, 3000);
        let snap = b
            .native_snapshot(1, false)
            .expect("snapshot")
            .expect("incremental");
        let (first, written) = storage
            .write_incremental(1, "0-op-0", &snap)
            .expect("upload");
        assert_eq!(
            written,
            first.size(),
            "the first checkpoint uploads everything"
        );
        assert_eq!(first.entries, 9000);
        drop(snap);
        // The second checkpoint references the files of the first.
        fill(&mut b, 3000, 4000);
        let snap = b
            .native_snapshot(2, false)
            .expect("snapshot")
            .expect("incremental");
        let (second, written) = storage
            .write_incremental(2, "0-op-0", &snap)
            .expect("upload");
        assert!(written < second.size(), "{written} of {}", second.size());
        assert!(first.shared.iter().all(|f| second.shared.contains(f)));
        let located = LocatedHandle {
            handle: second,
            base: dir.join("job/chk-2"),
        };
        (b, snap, located)
    }

    /// Same key groups: the files become the instance, and its next
    /// snapshot names the restored files as they are in shared/.
    fn restore_at_the_same_parallelism(dir: &Path, located: &LocatedHandle) {
        let mut same = RocksDbBackend::restore(
            &dir.join("b.db"),
            FULL,
            options(),
            std::slice::from_ref(located),
        )
        .expect("restore");
        assert_eq!(same.entry_count(), 12_000);
        assert_eq!(check(&mut same, 4000), 4000);
        let again = same
            .native_snapshot(3, false)
            .expect("snapshot")
            .expect("incremental");
        let named: Vec<&str> = again
            .files
            .iter()
            .filter_map(|f| f.shared.as_deref())
            .collect();
        for f in &located.handle.shared {
            assert!(named.contains(&f.shared_name().expect("shared")), "{f:?}");
        }
    }

    /// Three subtasks split the key groups.
    fn restore_split_in_three(dir: &Path, located: &LocatedHandle) {
        let mut owned = 0;
        for (i, range) in [(0, 4), (5, 9), (10, 15)].into_iter().enumerate() {
            let range = KeyGroupRange {
                start: range.0,
                end: range.1,
            };
            let mut part = RocksDbBackend::restore(
                &dir.join(format!("p{i}.db")),
                range,
                options(),
                std::slice::from_ref(located),
            )
            .expect("restore part");
            let n = check(&mut part, 4000);
            assert_eq!(part.entry_count(), 3 * n, "entries counted exactly");
            owned += n;
        }
        assert_eq!(owned, 4000);
    }

    /// A damaged shared file is refused, naming the file; so is a handle
    /// naming a file outside its folders.
    fn refuse_damaged_and_hostile_handles(dir: &Path, located: &LocatedHandle) {
        let victim = dir.join("job/chk-2").join(&located.handle.shared[0].file);
        let mut bytes = std::fs::read(&victim).expect("read");
        bytes[0] ^= 0xff;
        std::fs::write(&victim, bytes).expect("damage");
        let err = RocksDbBackend::restore(
            &dir.join("c.db"),
            FULL,
            options(),
            std::slice::from_ref(located),
        )
        .expect_err("damaged");
        assert!(err.to_string().contains("checksum"), "{err}");
        let mut hostile = located.clone();
        hostile.handle.private[0].local = "../../escape".into();
        let err = RocksDbBackend::restore(&dir.join("d.db"), FULL, options(), &[hostile])
            .expect_err("hostile");
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn restores_its_files_at_the_same_and_at_other_parallelisms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = CheckpointStorage::new(
            StorageKind::Filesystem,
            dir.path(),
            "job",
            &Default::default(),
        )
        .expect("storage");
        let (_instance, _snapshot, located) = checkpoint_twice(dir.path(), &storage);
        restore_at_the_same_parallelism(dir.path(), &located);
        restore_split_in_three(dir.path(), &located);
        refuse_damaged_and_hostile_handles(dir.path(), &located);
    }
}
