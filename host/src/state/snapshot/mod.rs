//! The keyed-state snapshot file of one operator subtask, format version 1.
//!
//! A snapshot is cut per key group, so that a restore at another
//! parallelism reads only the key groups a new subtask owns:
//!
//! ```text
//! file    := magic "WEIRKS01" | version u32 LE | states | block*
//! states  := count varint | (name bytes | kind u8)*      kind: 0 value, 1 list, 2 map
//! block   := entries varint | entry* | timers varint | timer*   (one per key group)
//! entry   := state varint | key bytes | namespace bytes | tag u8 | payload
//!            tag 0 value: bytes; tag 1 list: count varint | bytes*;
//!            tag 2 map: count varint | (map-key bytes | value bytes)*
//! timer   := domain u8 (0 event, 1 processing) | time i64 LE | key bytes | namespace bytes
//! bytes   := length varint | raw bytes          varint: unsigned LEB128
//! ```
//!
//! The block offsets, the file's size and its xxh3-64 checksum are kept in
//! the checkpoint's `_metadata` ([`KeyedStateHandle`]). A file of another
//! version is refused with [`SnapshotError::Version`]; the checked-in
//! fixture `host/tests/fixtures/chk-fixture` pins this format.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use xxhash_rust::xxh3::xxh3_64;

use super::{KeyedStateBackend, StateError, StateId, StateKey, StateKind};
use crate::keygroup::KeyGroupRange;
use crate::timers::{Domain, TimerEntry, TimerService};

mod encoder;
pub use encoder::{SnapshotEncoder, encode, encode_timers};

/// The version this build writes and reads.
pub const KEYED_SNAPSHOT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"WEIRKS01";

/// A keyed snapshot file that cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// Not a keyed snapshot file.
    #[error("not a Weir keyed-state file (bad magic)")]
    Magic,
    /// Written by another format version.
    #[error(
        "keyed-state format version {found}, but this build reads version {KEYED_SNAPSHOT_VERSION}"
    )]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// The checksum does not match: the file is damaged.
    #[error("checksum mismatch (the file is damaged or was changed)")]
    Checksum,
    /// The bytes end early or hold an impossible value.
    #[error("malformed keyed-state file: {0}")]
    Malformed(&'static str),
    /// The backend refused an entry.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Where one key group's block lies in a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGroupOffset {
    /// The key group.
    pub key_group: u32,
    /// Byte offset of its block.
    pub offset: u64,
    /// Length of its block.
    pub len: u64,
}

/// What `_metadata` records about a keyed snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedStateHandle {
    /// File name, relative to the checkpoint folder.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// xxh3-64 of the whole file, in hex.
    pub checksum: String,
    /// The key groups of the subtask that wrote it (first, last).
    pub key_group_range: (u32, u32),
    /// One block per key group that holds anything.
    pub key_groups: Vec<KeyGroupOffset>,
    /// The states declared with a time-to-live (their entries carry
    /// expiry stamps): a restore refuses to change that.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ttl_states: Vec<String>,
}

impl KeyedStateHandle {
    /// Whether any key group of this file lies in `range`.
    pub fn overlaps(&self, range: KeyGroupRange) -> bool {
        self.key_group_range.0 <= range.end && range.start <= self.key_group_range.1
    }
}

/// An encoded snapshot, ready to be written.
#[derive(Debug, Clone, Default)]
pub struct KeyedSnapshot {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The blocks.
    pub key_groups: Vec<KeyGroupOffset>,
    /// The subtask's range.
    pub range: (u32, u32),
    /// The states declared with a time-to-live.
    pub ttl_states: Vec<String>,
}

impl KeyedSnapshot {
    /// The handle of this snapshot once written as `file`.
    pub fn handle(&self, file: String) -> KeyedStateHandle {
        KeyedStateHandle {
            file,
            size: self.bytes.len() as u64,
            checksum: checksum(&self.bytes),
            key_group_range: self.range,
            key_groups: self.key_groups.clone(),
            ttl_states: self.ttl_states.clone(),
        }
    }
}

/// The checksum written in handles and `_metadata`: xxh3-64 in hex.
pub fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxh3_64(bytes))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn kind_tag(k: StateKind) -> u8 {
    match k {
        StateKind::Value => 0,
        StateKind::List => 1,
        StateKind::Map => 2,
    }
}

/// One entry as a backend shows it to a snapshot.
#[derive(Debug, Clone, Copy)]
pub enum EntryRef<'a> {
    /// A value.
    Value(&'a [u8]),
    /// A list.
    List(&'a [Vec<u8>]),
    /// A map, ordered by map key.
    Map(&'a dyn MapView),
}

/// The entries of a map state, as a snapshot reads them.
pub trait MapView: std::fmt::Debug {
    /// Number of entries.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Calls `f` for each entry in map-key order.
    fn each(&self, f: &mut dyn FnMut(&[u8], &[u8]));
}

impl MapView for std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    fn len(&self) -> usize {
        std::collections::BTreeMap::len(self)
    }
    fn each(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (k, v) in self {
            f(k, v);
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, SnapshotError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .b
                .split_first()
                .ok_or(SnapshotError::Malformed("ends inside a number"))?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed("number too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.b.len() < n {
            return Err(SnapshotError::Malformed("ends early"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| SnapshotError::Malformed("length"))?;
        self.take(n)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    /// A count of items that each take at least one byte.
    fn count(&mut self) -> Result<usize, SnapshotError> {
        let n = self.varint()?;
        if n > self.b.len() as u64 {
            return Err(SnapshotError::Malformed("count larger than the file"));
        }
        Ok(n as usize)
    }
}

/// Checks the size and checksum of a snapshot file against its handle.
pub fn verify(bytes: &[u8], handle: &KeyedStateHandle) -> Result<(), SnapshotError> {
    if bytes.len() as u64 != handle.size {
        return Err(SnapshotError::Malformed("size differs from _metadata"));
    }
    if checksum(bytes) != handle.checksum {
        return Err(SnapshotError::Checksum);
    }
    Ok(())
}

/// Reads the declared states of a snapshot file (after [`verify`]).
pub fn read_states(bytes: &[u8]) -> Result<Vec<(String, StateKind)>, SnapshotError> {
    let mut r = Reader { b: bytes };
    if r.take(8)? != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(r.take(4)?);
    let found = u32::from_le_bytes(v);
    if found != KEYED_SNAPSHOT_VERSION {
        return Err(SnapshotError::Version { found });
    }
    let n = r.count()?;
    let mut states = Vec::with_capacity(n);
    for _ in 0..n {
        let name = String::from_utf8(r.bytes()?.to_vec())
            .map_err(|_| SnapshotError::Malformed("state name is not UTF-8"))?;
        let kind = match r.u8()? {
            0 => StateKind::Value,
            1 => StateKind::List,
            2 => StateKind::Map,
            _ => return Err(SnapshotError::Malformed("state kind")),
        };
        states.push((name, kind));
    }
    Ok(states)
}

/// Loads the key groups of `handle` that `backend` owns from a verified
/// snapshot file into `backend` and `timers`, leaving out the entries of
/// the states `drop` names (state a new version of the operator no longer
/// declares, restored with `--allow-non-restored-state`); returns the
/// entries loaded.
pub fn restore_without(
    bytes: &[u8],
    handle: &KeyedStateHandle,
    backend: &mut dyn KeyedStateBackend,
    timers: &mut TimerService,
    drop: &dyn Fn(&str) -> bool,
) -> Result<usize, SnapshotError> {
    let states = read_states(bytes)?;
    let mut ids = Vec::with_capacity(states.len());
    for (name, kind) in &states {
        ids.push(match drop(name) {
            true => None,
            false => Some(backend.register(name, *kind)?),
        });
    }
    let range = backend.key_groups();
    let mut loaded = 0;
    for kg in handle
        .key_groups
        .iter()
        .filter(|k| range.contains(k.key_group))
    {
        let mut r = Reader {
            b: block_of(bytes, kg)?,
        };
        loaded += restore_entries(&mut r, kg.key_group, &ids, backend)?;
        restore_timers(&mut r, timers)?;
        if !r.b.is_empty() {
            return Err(SnapshotError::Malformed(
                "trailing bytes in a key-group block",
            ));
        }
    }
    Ok(loaded)
}

/// The bytes of key group `kg`'s block in the file `bytes`.
fn block_of<'a>(bytes: &'a [u8], kg: &KeyGroupOffset) -> Result<&'a [u8], SnapshotError> {
    let start = usize::try_from(kg.offset).map_err(|_| SnapshotError::Malformed("offset"))?;
    let len = usize::try_from(kg.len).map_err(|_| SnapshotError::Malformed("length"))?;
    bytes
        .get(start..start.saturating_add(len))
        .ok_or(SnapshotError::Malformed("block outside the file"))
}

/// Reads the entries of one key group's block into `backend`, whose ids of
/// the file's states are `ids`; returns how many.
fn restore_entries(
    r: &mut Reader<'_>,
    key_group: u32,
    ids: &[Option<StateId>],
    backend: &mut dyn KeyedStateBackend,
) -> Result<usize, SnapshotError> {
    let n = r.count()?;
    let mut loaded = 0;
    for _ in 0..n {
        let s = r.varint()?;
        let id = *ids
            .get(usize::try_from(s).unwrap_or(usize::MAX))
            .ok_or(SnapshotError::Malformed("state index"))?;
        let key = r.bytes()?;
        let namespace = r.bytes()?;
        let at = StateKey {
            key_group,
            key,
            namespace,
        };
        restore_entry(r, id, at, backend)?;
        loaded += usize::from(id.is_some());
    }
    Ok(loaded)
}

/// Reads one entry's tag and payload and writes it at `at` of state `id`
/// (`None`: a dropped state, read past).
fn restore_entry(
    r: &mut Reader<'_>,
    id: Option<StateId>,
    at: StateKey<'_>,
    backend: &mut dyn KeyedStateBackend,
) -> Result<(), SnapshotError> {
    match r.u8()? {
        0 => {
            let v = r.bytes()?;
            if let Some(id) = id {
                backend.value_put(id, at, v)?;
            }
        }
        1 => {
            let m = r.count()?;
            let mut list = Vec::with_capacity(m);
            for _ in 0..m {
                list.push(r.bytes()?.to_vec());
            }
            if let Some(id) = id {
                backend.list_set(id, at, list)?;
            }
        }
        2 => {
            let m = r.count()?;
            for _ in 0..m {
                let k = r.bytes()?;
                let v = r.bytes()?;
                if let Some(id) = id {
                    backend.map_put(id, at, k, v)?;
                }
            }
        }
        _ => return Err(SnapshotError::Malformed("entry tag")),
    }
    Ok(())
}

/// Reads the timers of one key group's block into `timers`.
fn restore_timers(r: &mut Reader<'_>, timers: &mut TimerService) -> Result<(), SnapshotError> {
    let t = r.count()?;
    for _ in 0..t {
        let domain = match r.u8()? {
            0 => Domain::EventTime,
            1 => Domain::ProcessingTime,
            _ => return Err(SnapshotError::Malformed("timer domain")),
        };
        let mut time = [0u8; 8];
        time.copy_from_slice(r.take(8)?);
        let key = r.bytes()?.to_vec();
        let namespace = r.bytes()?.to_vec();
        timers.register(
            domain,
            TimerEntry {
                time: i64::from_le_bytes(time),
                key,
                namespace,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygroup::key_group;
    use crate::state::HashMapBackend;

    fn at(key: &[u8], mp: u32) -> StateKey<'_> {
        StateKey {
            key_group: key_group(key, mp),
            key,
            namespace: b"",
        }
    }

    #[test]
    fn damage_is_detected() {
        let mut b = HashMapBackend::new(KeyGroupRange { start: 0, end: 3 });
        let s = b.register("s", StateKind::Value).expect("register");
        b.value_put(s, at(b"a", 4), b"1").expect("put");
        let snap = encode(&b, &TimerService::default(), 4);
        let handle = snap.handle("f".into());
        let mut bad = snap.bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(verify(&bad, &handle), Err(SnapshotError::Checksum));
        assert!(verify(&bad[..last], &handle).is_err());
        let mut other = snap.bytes.clone();
        other[8] = 9;
        assert_eq!(
            read_states(&other),
            Err(SnapshotError::Version { found: 9 })
        );
    }
}
