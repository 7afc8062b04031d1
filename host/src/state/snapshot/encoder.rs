//! Writing a keyed snapshot: the header, then per key group that holds
//! anything its entries and timers. [`SnapshotEncoder`] writes a step of a
//! key group at a time, so a copy-on-write snapshot is written in steps
//! between the task's batches; [`encode`] writes them all at once.

use super::{
    EntryRef, KEYED_SNAPSHOT_VERSION, KeyGroupOffset, KeyedSnapshot, MAGIC, kind_tag, put_bytes,
    put_varint,
};
use crate::keygroup::{KeyGroupRange, key_group};
use crate::state::{EntryVisitor, KeyedStateBackend, StateId, StateKind};
use crate::timers::{Domain, TimerEntry, TimerService};

/// Encodes the state and timers of every key group of `backend`: the
/// synchronous part of a checkpoint (a copy, after which processing goes
/// on while the bytes are written).
pub fn encode(
    backend: &dyn KeyedStateBackend,
    timers: &TimerService,
    max_parallelism: u32,
) -> KeyedSnapshot {
    let mut e = SnapshotEncoder::new(backend, timers, max_parallelism);
    e.reserve(backend.size_bytes());
    for kg in backend.key_groups().start..=backend.key_groups().end {
        e.add_group(kg, &mut |visit| backend.visit_key_group(kg, visit));
    }
    e.finish()
}

/// Encodes the declared states and the timers of `backend`'s key groups,
/// but no entries: what goes beside a backend's own snapshot of them.
pub fn encode_timers(
    backend: &dyn KeyedStateBackend,
    timers: &TimerService,
    max_parallelism: u32,
) -> KeyedSnapshot {
    let mut e = SnapshotEncoder::new(backend, timers, max_parallelism);
    for kg in backend.key_groups().start..=backend.key_groups().end {
        e.add_group(kg, &mut |_| {});
    }
    e.finish()
}

/// A keyed snapshot being written key group by key group, from the state
/// and timers as they were when it was made.
#[derive(Debug)]
pub struct SnapshotEncoder {
    out: Vec<u8>,
    key_groups: Vec<KeyGroupOffset>,
    range: KeyGroupRange,
    /// The next key group [`Self::encode_next`] writes.
    next: u32,
    /// The timers of each key group, indexed by `kg - range.start`.
    timers: Vec<Vec<(Domain, TimerEntry)>>,
    ttl_states: Vec<String>,
    /// The entries of the key group being written, before their count
    /// (kept from group to group, so its memory is reused).
    body: Vec<u8>,
    /// How many entries `body` holds.
    entries: u64,
}

impl SnapshotEncoder {
    /// An encoder for `backend`'s key groups: the header (its declared
    /// states) written, and `timers` copied.
    pub fn new(
        backend: &dyn KeyedStateBackend,
        timers: &TimerService,
        max_parallelism: u32,
    ) -> Self {
        let range = backend.key_groups();
        let mut out = Vec::with_capacity(64);
        put_header(&mut out, backend.declared());
        SnapshotEncoder {
            out,
            key_groups: Vec::new(),
            range,
            next: range.start,
            timers: timers_by_key_group(timers, range, max_parallelism),
            ttl_states: backend.ttl_states(),
            body: Vec::new(),
            entries: 0,
        }
    }

    /// Makes room for about `bytes` of snapshot (at most 1 GiB), so that
    /// writing a large state does not copy what is written as it grows.
    pub fn reserve(&mut self, bytes: usize) {
        self.out.reserve(bytes.min(1 << 30));
    }

    /// Writes a step of the next key group as `backend`'s copy-on-write
    /// snapshot has it (see [`KeyedStateBackend::begin_snapshot`]), and
    /// the key group once the backend is done with it; returns whether
    /// every key group is written.
    pub fn encode_next(&mut self, backend: &mut dyn KeyedStateBackend) -> bool {
        if self.next <= self.range.end {
            let kg = self.next;
            let mut done = false;
            self.collect(&mut |visit| done = backend.visit_snapshot_group(kg, visit));
            if done {
                self.close_group(kg);
                self.next += 1;
            }
        }
        self.next > self.range.end
    }

    /// Writes key group `kg`: the entries `each` hands its visitor, and
    /// the group's timers; nothing if it has neither.
    fn add_group(&mut self, kg: u32, each: &mut dyn FnMut(&mut EntryVisitor<'_>)) {
        self.collect(each);
        self.close_group(kg);
    }

    /// Adds the entries `each` hands its visitor to the key group being
    /// written.
    fn collect(&mut self, each: &mut dyn FnMut(&mut EntryVisitor<'_>)) {
        let (n, body) = (&mut self.entries, &mut self.body);
        each(&mut |state, key, namespace, entry| {
            *n += 1;
            put_entry(body, state, key, namespace, entry);
        });
    }

    /// Writes key group `kg`: the entries collected, and the group's
    /// timers; nothing if it has neither.
    fn close_group(&mut self, kg: u32) {
        let n = std::mem::take(&mut self.entries);
        let group_timers = self
            .timers
            .get((kg - self.range.start) as usize)
            .map_or(&[][..], Vec::as_slice);
        if n == 0 && group_timers.is_empty() {
            return;
        }
        let offset = self.out.len() as u64;
        put_varint(&mut self.out, n);
        self.out.extend_from_slice(&self.body);
        self.body.clear();
        put_varint(&mut self.out, group_timers.len() as u64);
        for (d, t) in group_timers {
            put_timer(&mut self.out, *d, t);
        }
        self.key_groups.push(KeyGroupOffset {
            key_group: kg,
            offset,
            len: self.out.len() as u64 - offset,
        });
    }

    /// The snapshot, once every key group is written.
    pub fn finish(self) -> KeyedSnapshot {
        KeyedSnapshot {
            bytes: self.out,
            key_groups: self.key_groups,
            range: (self.range.start, self.range.end),
            ttl_states: self.ttl_states,
        }
    }
}

/// Writes the file header: magic, version and the declared states.
fn put_header(out: &mut Vec<u8>, states: &[(String, StateKind)]) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&KEYED_SNAPSHOT_VERSION.to_le_bytes());
    put_varint(out, states.len() as u64);
    for (name, kind) in states {
        put_bytes(out, name.as_bytes());
        out.push(kind_tag(*kind));
    }
}

/// Writes one entry: state, key, namespace, tag and payload.
fn put_entry(out: &mut Vec<u8>, state: StateId, key: &[u8], namespace: &[u8], entry: EntryRef<'_>) {
    put_varint(out, u64::from(state));
    put_bytes(out, key);
    put_bytes(out, namespace);
    match entry {
        EntryRef::Value(v) => {
            out.push(0);
            put_bytes(out, v);
        }
        EntryRef::List(l) => {
            out.push(1);
            put_varint(out, l.len() as u64);
            for v in l {
                put_bytes(out, v);
            }
        }
        EntryRef::Map(m) => {
            out.push(2);
            put_varint(out, m.len() as u64);
            m.each(&mut |k, v| {
                put_bytes(out, k);
                put_bytes(out, v);
            });
        }
    }
}

/// Writes one timer: domain, time, key and namespace.
fn put_timer(out: &mut Vec<u8>, domain: Domain, timer: &TimerEntry) {
    out.push(match domain {
        Domain::EventTime => 0,
        Domain::ProcessingTime => 1,
    });
    out.extend_from_slice(&timer.time.to_le_bytes());
    put_bytes(out, &timer.key);
    put_bytes(out, &timer.namespace);
}

/// The timers of each key group of `range`, indexed by `kg - range.start`.
fn timers_by_key_group(
    timers: &TimerService,
    range: KeyGroupRange,
    max_parallelism: u32,
) -> Vec<Vec<(Domain, TimerEntry)>> {
    let mut groups: Vec<Vec<(Domain, TimerEntry)>> = vec![Vec::new(); range.len()];
    for (d, t) in timers.iter() {
        let kg = key_group(&t.key, max_parallelism);
        if range.contains(kg) {
            groups[(kg - range.start) as usize].push((d, t.clone()));
        }
    }
    groups
}
