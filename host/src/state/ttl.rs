//! State time-to-live, as Flink's `StateTtlConfig` with its defaults:
//! processing time, the clock restarts when an entry is created or written
//! (`OnCreateAndWrite`), and an expired entry is never returned
//! (`NeverReturnExpired`).
//!
//! [`TtlBackend`] wraps any backend. An entry of a state declared with a
//! TTL is stored as `expires-at (i64 ms, little-endian) | bytes`: a value,
//! each map value, each list element. Reads drop what has expired; writes
//! stamp. Expired entries leave a checkpoint when it is taken from the
//! entries (the portable snapshot skips them) and the backend right after
//! (the scan notes them, the next write removes them), leave RocksDB in
//! compaction (a compaction filter per column family, see
//! [`KeyedStateBackend::expire_in_background`]), and are overwritten or
//! cleared like any other. The stamps travel in checkpoints, so a restored
//! entry keeps its expiry.

use std::borrow::Cow;
use std::cell::RefCell;

use super::{
    EntryRef, EntryVisitor, HintedValue, KeyedStateBackend, MapEntries, StateError, StateId,
    StateKey, StateKind, ValueVisitor,
};
use crate::keygroup::KeyGroupRange;

/// Bytes of the expiry stamp in front of a stored entry.
pub const STAMP_BYTES: usize = 8;

/// `bytes` stamped to expire at `expires_at` (ms since the epoch).
pub fn stamp(bytes: &[u8], expires_at: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(STAMP_BYTES + bytes.len());
    out.extend_from_slice(&expires_at.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// The expiry of a stamped entry, if it is long enough to hold one.
pub fn expires_at(stored: &[u8]) -> Option<i64> {
    let head: [u8; STAMP_BYTES] = stored.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(i64::from_le_bytes(head))
}

/// Whether a stamped entry has expired at `now`.
pub fn is_expired(stored: &[u8], now: i64) -> bool {
    expires_at(stored).is_some_and(|t| t <= now)
}

/// The bytes of a stamped entry alive at `now`.
fn live(stored: &[u8], now: i64) -> Result<Option<&[u8]>, StateError> {
    let t = expires_at(stored)
        .ok_or_else(|| StateError::Storage("an entry of a TTL state has no expiry stamp".into()))?;
    Ok((t > now).then(|| &stored[STAMP_BYTES..]))
}

/// [`live`] for a value a backend read (borrowed or owned).
fn live_cow(value: Option<Cow<'_, [u8]>>, now: i64) -> Result<Option<Cow<'_, [u8]>>, StateError> {
    Ok(match value {
        None => None,
        Some(Cow::Borrowed(b)) => live(b, now)?.map(Cow::Borrowed),
        Some(Cow::Owned(b)) => live(&b, now)?.map(|v| Cow::Owned(v.to_vec())),
    })
}

/// Milliseconds of processing time since the Unix epoch.
fn wall_clock() -> i64 {
    crate::clock::epoch_ms()
}

/// A backend whose states may each have a time-to-live.
pub struct TtlBackend {
    inner: Box<dyn KeyedStateBackend>,
    /// Per state id: its TTL in ms, if it has one.
    ttl: Vec<Option<i64>>,
    clock: fn() -> i64,
    /// Entries a snapshot scan found expired: removed from the backend at
    /// the next write, so the hashmap backend's memory does not keep them.
    expired: RefCell<Vec<ExpiredEntry>>,
}

/// An entry found expired: (state, key group, key, namespace, and for a
/// map its map key).
type ExpiredEntry = (StateId, u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

impl std::fmt::Debug for TtlBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlBackend")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TtlBackend {
    /// Wraps `inner`, with processing time from the wall clock.
    pub fn new(inner: Box<dyn KeyedStateBackend>) -> Self {
        Self::with_clock(inner, wall_clock)
    }

    /// Wraps `inner` with processing time from `clock` (for tests).
    pub fn with_clock(inner: Box<dyn KeyedStateBackend>, clock: fn() -> i64) -> Self {
        TtlBackend {
            inner,
            ttl: Vec::new(),
            clock,
            expired: RefCell::default(),
        }
    }

    /// Removes the entries the last snapshot scan found expired, each
    /// checked again (it may have been written since).
    fn purge(&mut self) -> Result<(), StateError> {
        if self.expired.get_mut().is_empty() {
            return Ok(());
        }
        let now = (self.clock)();
        for (state, key_group, key, namespace, map_key) in self.expired.take() {
            let at = StateKey {
                key_group,
                key: &key,
                namespace: &namespace,
            };
            let kind = self.inner.declared().get(state as usize).map(|d| d.1);
            match (kind, map_key) {
                (Some(StateKind::Map), Some(mk)) => {
                    let gone = self
                        .inner
                        .map_get(state, at, &mk)?
                        .is_some_and(|v| is_expired(&v, now));
                    if gone {
                        self.inner.map_remove(state, at, &mk)?;
                    }
                }
                (Some(StateKind::List), _) => {
                    let list = self.inner.list_get(state, at)?;
                    let alive: Vec<Vec<u8>> = list
                        .iter()
                        .filter(|e| !is_expired(e, now))
                        .cloned()
                        .collect();
                    if alive.is_empty() {
                        self.inner.clear(state, at)?;
                    } else if alive.len() < list.len() {
                        self.inner.list_set(state, at, alive)?;
                    }
                }
                (Some(StateKind::Value), _) => {
                    let gone = self
                        .inner
                        .value_get(state, at)?
                        .is_some_and(|v| is_expired(&v, now));
                    if gone {
                        self.inner.clear(state, at)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn ttl_of(&self, state: StateId) -> Option<i64> {
        self.ttl.get(state as usize).copied().flatten()
    }

    fn expiry(&self, ttl: i64) -> i64 {
        (self.clock)().saturating_add(ttl)
    }
}

impl KeyedStateBackend for TtlBackend {
    fn register(&mut self, name: &str, kind: StateKind) -> Result<StateId, StateError> {
        self.inner.register(name, kind)
    }

    fn register_with_ttl(
        &mut self,
        name: &str,
        kind: StateKind,
        ttl_ms: u64,
    ) -> Result<StateId, StateError> {
        let id = self.inner.register(name, kind)?;
        if self.ttl.len() <= id as usize {
            self.ttl.resize(id as usize + 1, None);
        }
        self.ttl[id as usize] = Some(i64::try_from(ttl_ms.max(1)).unwrap_or(i64::MAX));
        self.inner.expire_in_background(id);
        Ok(id)
    }

    fn key_groups(&self) -> KeyGroupRange {
        self.inner.key_groups()
    }

    fn declared(&self) -> &[(String, StateKind)] {
        self.inner.declared()
    }

    /// Copy-on-write only without time-to-live states: their expired
    /// entries are left out of a snapshot when it reads them, which is
    /// at the barrier only when it reads them all at once.
    fn begin_snapshot(&mut self) -> bool {
        self.ttl.iter().all(Option::is_none) && self.inner.begin_snapshot()
    }

    fn visit_snapshot_group(&mut self, key_group: u32, visit: &mut EntryVisitor<'_>) -> bool {
        self.inner.visit_snapshot_group(key_group, visit)
    }

    /// Expired entries are left out, so a checkpoint does not carry them,
    /// and noted, so the next write removes them from the backend.
    fn visit_key_group(&self, key_group: u32, visit: &mut EntryVisitor<'_>) {
        let now = (self.clock)();
        let mut expired = self.expired.borrow_mut();
        let mut note = |state, key: &[u8], ns: &[u8], map_key: Option<&[u8]>| {
            expired.push((
                state,
                key_group,
                key.to_vec(),
                ns.to_vec(),
                map_key.map(<[u8]>::to_vec),
            ));
        };
        self.inner
            .visit_key_group(key_group, &mut |state, key, ns, entry| {
                if self.ttl_of(state).is_none() {
                    return visit(state, key, ns, entry);
                }
                match entry {
                    EntryRef::Value(v) => {
                        if is_expired(v, now) {
                            note(state, key, ns, None);
                        } else {
                            visit(state, key, ns, entry);
                        }
                    }
                    EntryRef::List(l) => {
                        let alive: Vec<Vec<u8>> =
                            l.iter().filter(|e| !is_expired(e, now)).cloned().collect();
                        if alive.len() < l.len() {
                            note(state, key, ns, None);
                        }
                        if !alive.is_empty() {
                            visit(state, key, ns, EntryRef::List(&alive));
                        }
                    }
                    EntryRef::Map(m) => {
                        let mut alive = std::collections::BTreeMap::new();
                        m.each(&mut |k, v| {
                            if is_expired(v, now) {
                                note(state, key, ns, Some(k));
                            } else {
                                alive.insert(k.to_vec(), v.to_vec());
                            }
                        });
                        if !alive.is_empty() {
                            visit(state, key, ns, EntryRef::Map(&alive));
                        }
                    }
                }
            });
    }

    fn value_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        Ok(self.value_get_hinted(state, at)?.0)
    }

    fn value_get_hinted(
        &self,
        state: StateId,
        at: StateKey<'_>,
    ) -> Result<HintedValue<'_>, StateError> {
        let (value, hint) = self.inner.value_get_hinted(state, at)?;
        if self.ttl_of(state).is_none() {
            return Ok((value, hint));
        }
        let now = (self.clock)();
        let alive = live_cow(value, now)?;
        Ok((alive, hint))
    }

    fn value_get_many(
        &self,
        state: StateId,
        keys: &[(u32, &[u8])],
        visit: &mut ValueVisitor<'_>,
    ) -> Result<(), StateError> {
        if self.ttl_of(state).is_none() {
            return self.inner.value_get_many(state, keys, visit);
        }
        let now = (self.clock)();
        let mut damaged = None;
        self.inner
            .value_get_many(state, keys, &mut |value, hint| match value {
                None => visit(None, hint),
                Some(v) => match live(v, now) {
                    Ok(alive) => visit(alive, hint),
                    Err(e) => {
                        damaged = Some(e);
                        visit(None, hint);
                    }
                },
            })?;
        damaged.map_or(Ok(()), Err)
    }

    fn value_put_hinted(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
        hint: Option<usize>,
    ) -> Result<(), StateError> {
        self.purge()?;
        match self.ttl_of(state) {
            None => self.inner.value_put_hinted(state, at, value, hint),
            Some(ttl) => {
                let stamped = stamp(value, self.expiry(ttl));
                self.inner.value_put_hinted(state, at, &stamped, hint)
            }
        }
    }

    fn value_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        self.value_put_hinted(state, at, value, None)
    }

    fn list_get(&self, state: StateId, at: StateKey<'_>) -> Result<Vec<Vec<u8>>, StateError> {
        let list = self.inner.list_get(state, at)?;
        if self.ttl_of(state).is_none() {
            return Ok(list);
        }
        let now = (self.clock)();
        let mut alive = Vec::with_capacity(list.len());
        for e in &list {
            if let Some(v) = live(e, now)? {
                alive.push(v.to_vec());
            }
        }
        Ok(alive)
    }

    fn list_add(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        value: &[u8],
    ) -> Result<(), StateError> {
        self.purge()?;
        match self.ttl_of(state) {
            None => self.inner.list_add(state, at, value),
            Some(ttl) => {
                let stamped = stamp(value, self.expiry(ttl));
                self.inner.list_add(state, at, &stamped)
            }
        }
    }

    fn list_set(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        values: Vec<Vec<u8>>,
    ) -> Result<(), StateError> {
        self.purge()?;
        match self.ttl_of(state) {
            None => self.inner.list_set(state, at, values),
            Some(ttl) => {
                let t = self.expiry(ttl);
                let stamped = values.iter().map(|v| stamp(v, t)).collect();
                self.inner.list_set(state, at, stamped)
            }
        }
    }

    fn map_get(
        &self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<Option<Cow<'_, [u8]>>, StateError> {
        let value = self.inner.map_get(state, at, map_key)?;
        if self.ttl_of(state).is_none() {
            return Ok(value);
        }
        let now = (self.clock)();
        live_cow(value, now)
    }

    fn map_put(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
        value: &[u8],
    ) -> Result<(), StateError> {
        self.purge()?;
        match self.ttl_of(state) {
            None => self.inner.map_put(state, at, map_key, value),
            Some(ttl) => {
                let stamped = stamp(value, self.expiry(ttl));
                self.inner.map_put(state, at, map_key, &stamped)
            }
        }
    }

    fn map_remove(
        &mut self,
        state: StateId,
        at: StateKey<'_>,
        map_key: &[u8],
    ) -> Result<(), StateError> {
        self.purge()?;
        self.inner.map_remove(state, at, map_key)
    }

    fn map_entries(&self, state: StateId, at: StateKey<'_>) -> Result<MapEntries, StateError> {
        let entries = self.inner.map_entries(state, at)?;
        if self.ttl_of(state).is_none() {
            return Ok(entries);
        }
        let now = (self.clock)();
        let mut alive = Vec::with_capacity(entries.len());
        for (k, v) in &entries {
            if let Some(v) = live(v, now)? {
                alive.push((k.clone(), v.to_vec()));
            }
        }
        Ok(alive)
    }

    fn clear(&mut self, state: StateId, at: StateKey<'_>) -> Result<(), StateError> {
        self.purge()?;
        self.inner.clear(state, at)
    }

    fn native_snapshot(
        &self,
        id: u64,
        always: bool,
    ) -> Result<Option<super::incremental::NativeSnapshot>, StateError> {
        self.inner.native_snapshot(id, always)
    }

    fn expire_in_background(&mut self, state: StateId) {
        self.inner.expire_in_background(state);
    }

    fn ttl_states(&self) -> Vec<String> {
        let declared = self.inner.declared();
        self.ttl
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_some())
            .filter_map(|(id, _)| declared.get(id).map(|(name, _)| name.clone()))
            .collect()
    }

    fn entry_count(&self) -> usize {
        self.inner.entry_count()
    }

    fn size_bytes(&self) -> usize {
        self.inner.size_bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::state::HashMapBackend;

    static NOW: AtomicI64 = AtomicI64::new(1_000);

    fn clock() -> i64 {
        NOW.load(Ordering::SeqCst)
    }

    fn at(key: &[u8]) -> StateKey<'_> {
        StateKey {
            key_group: 0,
            key,
            namespace: b"",
        }
    }

    #[test]
    fn entries_expire_after_their_last_write_and_leave_snapshots() {
        let range = KeyGroupRange { start: 0, end: 0 };
        let mut b = TtlBackend::with_clock(Box::new(HashMapBackend::new(range)), clock);
        let v = b.register_with_ttl("v", StateKind::Value, 100).expect("v");
        let l = b.register_with_ttl("l", StateKind::List, 100).expect("l");
        let m = b.register_with_ttl("m", StateKind::Map, 100).expect("m");
        let plain = b.register("plain", StateKind::Value).expect("plain");
        NOW.store(1_000, Ordering::SeqCst);
        b.value_put(v, at(b"a"), b"1").expect("put");
        b.value_put(plain, at(b"a"), b"p").expect("put");
        b.list_add(l, at(b"a"), b"x").expect("add");
        b.map_put(m, at(b"a"), b"k1", b"old").expect("map");
        NOW.store(1_050, Ordering::SeqCst);
        // Written again: its clock restarts; the other map entry's does not.
        b.value_put(v, at(b"a"), b"2").expect("put");
        b.list_add(l, at(b"a"), b"y").expect("add");
        b.map_put(m, at(b"a"), b"k2", b"new").expect("map");
        NOW.store(1_099, Ordering::SeqCst);
        assert_eq!(
            b.value_get(v, at(b"a")).expect("get").as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(b.list_get(l, at(b"a")).expect("list").len(), 2);
        NOW.store(1_100, Ordering::SeqCst);
        assert_eq!(b.list_get(l, at(b"a")).expect("list"), vec![b"y".to_vec()]);
        assert_eq!(b.map_get(m, at(b"a"), b"k1").expect("map"), None);
        assert_eq!(
            b.map_entries(m, at(b"a")).expect("entries"),
            vec![(b"k2".to_vec(), b"new".to_vec())]
        );
        let mut hints = Vec::new();
        b.value_get_many(v, &[(0, b"a"), (0, b"b")], &mut |value, _| {
            hints.push(value.map(<[u8]>::to_vec));
        })
        .expect("many");
        assert_eq!(hints, vec![Some(b"2".to_vec()), None]);
        NOW.store(1_150, Ordering::SeqCst);
        assert_eq!(b.value_get(v, at(b"a")).expect("get"), None);
        assert_eq!(
            b.value_get(plain, at(b"a")).expect("get").as_deref(),
            Some(&b"p"[..]),
            "a state without TTL never expires"
        );
        // A snapshot carries only what is alive, unstamped values intact.
        let mut seen = Vec::new();
        b.visit_key_group(0, &mut |state, _, _, entry| {
            seen.push((state, matches!(entry, EntryRef::Value(_))));
        });
        assert_eq!(seen, vec![(plain, true)]);
        // The next write removes what the scan found expired.
        let before = b.entry_count();
        b.value_put(plain, at(b"b"), b"q").expect("put");
        assert_eq!(b.entry_count(), before + 1 - 3, "v, l and m of a removed");
    }
}
