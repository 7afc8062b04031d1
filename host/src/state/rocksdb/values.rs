//! Value state of the RocksDB backend, the hot path: reads and writes go
//! through the write cache (`write_cache`), whose dirty entries reach
//! RocksDB as one batch; a read's hint says whether the entry existed, so
//! that writing it back needs no second read to keep the entry count.
//!
//! A hint is the cache's generation shifted left by one, with the low bit
//! set if the entry was present, and it is trusted only while the
//! generation is the same. Emptying the cache and clearing a value entry
//! each start a new one: every write of a value goes through the cache, so
//! an entry written since the read is cached ("absent" is still true if
//! it is not), and only `clear` removes one ("present" is still true if
//! nothing was cleared).

use std::borrow::Cow;

use super::keys::{entry_key, push_entry_key};
use super::{RocksDbBackend, storage};
use crate::state::{HintedValue, StateError, StateId, StateKey, StateKind, ValueVisitor};

/// The bit of a hint that says the value was read as present.
const EXISTED: usize = 1;

impl RocksDbBackend {
    /// The hint of a value read as `present` or not, now.
    #[inline]
    fn hint_of(&self, present: bool) -> usize {
        (self.cache.generation() << 1) | usize::from(present)
    }

    /// What a hint says of an entry not in the cache: that it exists
    /// (`Some(true)`), that it does not (`Some(false)`), or nothing the
    /// backend can trust (`None`: find out).
    #[inline]
    fn existed(&self, hint: Option<usize>) -> Option<bool> {
        let hint = hint?;
        (hint & !EXISTED == self.hint_of(false)).then_some(hint & EXISTED != 0)
    }
}

impl RocksDbBackend {
    /// Reads a value state: the cached value, else RocksDB's.
    #[inline]
    pub(super) fn get_value(
        &self,
        state: StateId,
        at: &StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        self.check(at)?;
        let cf = self.cf(state, StateKind::Value)?;
        let key = entry_key(at);
        if let Some(v) = self.cache.get(state, &key) {
            return Ok(Some(Cow::Owned(v)));
        }
        let v = self.db.get_pinned_cf(cf, key).map_err(storage)?;
        Ok(v.map(|v| Cow::Owned(v.to_vec())))
    }

    /// Reads a value state with the hint that says whether the entry
    /// existed when it was read (its [`EXISTED`] bit) and when.
    #[inline]
    pub(super) fn get_value_hinted(
        &self,
        state: StateId,
        at: &StateKey<'_>,
    ) -> Result<HintedValue<'_>, StateError> {
        let value = self.get_value(state, at)?;
        let hint = self.hint_of(value.is_some());
        Ok((value, Some(hint)))
    }

    /// Reads the default-namespace values of `keys` with their hints:
    /// cached writes first, one `multi_get` for the rest. The keys are
    /// encoded into one buffer and the values lent out, not copied.
    pub(super) fn get_values(
        &self,
        state: StateId,
        keys: &[(u32, &[u8])],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), StateError> {
        let cf = self.cf(state, StateKind::Value)?;
        let mut encoded = Vec::with_capacity(keys.iter().map(|(_, k)| k.len() + 10).sum());
        let mut ends = Vec::with_capacity(keys.len());
        for &(key_group, key) in keys {
            let at = StateKey {
                key_group,
                key,
                namespace: &[],
            };
            self.check(&at)?;
            push_entry_key(&mut encoded, &at);
            ends.push(encoded.len());
        }
        let slices = ends.iter().scan(0, |start, &end| {
            let key = &encoded[*start..end];
            *start = end;
            Some(key)
        });
        let cache = self.cache.reader(state);
        let cached: Vec<(&[u8], Option<&[u8]>)> = slices.map(|k| (k, cache.get(k))).collect();
        let misses = cached.iter().filter(|(_, c)| c.is_none()).map(|(k, _)| k);
        let mut read = self.db.batched_multi_get_cf(cf, misses, false).into_iter();
        let present = self.hint_of(true);
        let absent = self.hint_of(false);
        for (_, c) in cached {
            match c {
                Some(v) => visit(Some(v), Some(present)),
                None => {
                    let value = read.next().transpose().map_err(storage)?.flatten();
                    let hint = if value.is_some() { present } else { absent };
                    visit(value.as_deref(), Some(hint));
                }
            }
        }
        Ok(())
    }

    /// Writes a value state with the hint of its read (see the module's
    /// comment for which hints are trusted; the write goes to its key
    /// whatever the hint).
    #[inline]
    pub(super) fn put_value_hinted(
        &mut self,
        state: StateId,
        at: &StateKey<'_>,
        value: &[u8],
        hint: Option<usize>,
    ) -> Result<(), StateError> {
        let existed = self.existed(hint);
        self.put_value(state, at, value, existed)
    }

    /// Writes value state through the cache (a limit of 0 flushes it at
    /// once); `existed` says whether the entry existed before (`None`:
    /// find out).
    #[inline]
    pub(super) fn put_value(
        &mut self,
        state: StateId,
        at: &StateKey<'_>,
        value: &[u8],
        existed: Option<bool>,
    ) -> Result<(), StateError> {
        self.check(at)?;
        let cf = self.cf(state, StateKind::Value)?;
        let key = entry_key(at);
        if !self.cache.update(state, &key, value) {
            let new = match existed {
                Some(e) => !e,
                None => !self.exists(cf, &key)?,
            };
            self.entries += usize::from(new);
            self.cache.insert(state, key, value);
        }
        if self.cache.is_over_limit() {
            self.evict()?;
        }
        Ok(())
    }

    /// Writes every dirty cached value to RocksDB in one batch; once it is
    /// written they stay in the cache, clean.
    pub(super) fn flush(&self) -> Result<(), StateError> {
        if !self.cache.is_dirty() {
            return Ok(());
        }
        let mut batch = rocksdb::WriteBatch::default();
        let mut bytes = 0;
        self.cache.each_dirty(&mut |state, dirty| {
            let cf = self.cf(state, StateKind::Value)?;
            for (key, value) in dirty {
                bytes += key.len() + value.len();
                batch.put_cf(cf, key, value);
            }
            Ok(())
        })?;
        self.db.write_opt(batch, &self.write).map_err(storage)?;
        self.cache.mark_clean();
        self.charge(bytes)
    }

    /// Writes the dirty cached values and empties the cache.
    fn evict(&self) -> Result<(), StateError> {
        self.flush()?;
        self.cache.clear();
        Ok(())
    }
}
