//! The keyed-state side of a guest: the key slots of the current batch,
//! the values prefetched for them, and the key that state and timer calls
//! apply to.

use std::collections::BTreeSet;

use hashbrown::HashTable;
use weir_wire::{BatchReader, SlotValuesBuilder};

use crate::keygroup::{key_group, key_group_of_hash, key_hash};
use crate::state::{KeyedStateBackend, StateError, StateId, StateKey, StateKind, key_eq};

/// The key that state and timer calls apply to.
#[derive(Debug, Clone)]
enum CurrentKey {
    None,
    /// A slot of the current batch.
    Slot(u32),
    /// The key of a timer that fired.
    Owned {
        key: Vec<u8>,
        key_group: u32,
    },
}

/// Keyed state and the keys of the current batch.
pub(crate) struct KeyedContext {
    /// The keyed state backend, wrapped for time-to-live.
    pub(crate) backend: Box<dyn KeyedStateBackend>,
    /// Number of key groups, to map a key to its key group.
    pub(crate) max_parallelism: u32,
    /// The distinct keys of the current batch, one after the other.
    arena: Vec<u8>,
    /// Per slot: (start in `arena`, length, key group).
    slots: Vec<(u32, u32, u32)>,
    /// Per slot: the key's hash.
    slot_hashes: Vec<u64>,
    /// Key hash -> slot, for the current batch.
    index: HashTable<u32>,
    /// Per slot and prefetched state (slot-major): the backend's hint for
    /// writing the value back.
    hints: Vec<Option<usize>>,
    /// The prefetched states of the current batch, in order.
    hint_states: Vec<StateId>,
    /// Buffers of the previous batch, reused for the next.
    spare: (Vec<u32>, Vec<u8>),
    current: CurrentKey,
    /// The states a restored checkpoint holds, and those of them declared
    /// with a time-to-live.
    restored: Option<(BTreeSet<String>, BTreeSet<String>)>,
    /// The states the guest declared, in order.
    declared: Vec<crate::state::DeclaredState>,
}

impl KeyedContext {
    /// The context over `backend`, wrapped so that states may be declared
    /// with a time-to-live.
    pub(crate) fn new(backend: Box<dyn KeyedStateBackend>, max_parallelism: u32) -> Self {
        KeyedContext {
            backend: Box::new(crate::state::ttl::TtlBackend::new(backend)),
            max_parallelism,
            arena: Vec::new(),
            slots: Vec::new(),
            slot_hashes: Vec::new(),
            index: HashTable::new(),
            hints: Vec::new(),
            hint_states: Vec::new(),
            spare: (Vec::new(), Vec::new()),
            current: CurrentKey::None,
            restored: None,
            declared: Vec::new(),
        }
    }

    /// The key of slot `slot` and its key group.
    fn slot_key(&self, slot: u32) -> Option<(&[u8], u32)> {
        let &(start, len, kg) = self.slots.get(slot as usize)?;
        Some((&self.arena[start as usize..(start + len) as usize], kg))
    }

    /// The current key and its key group.
    pub(super) fn current(&self) -> wasmtime::Result<(&[u8], u32)> {
        match &self.current {
            CurrentKey::Slot(s) => self
                .slot_key(*s)
                .ok_or_else(|| wasmtime::format_err!("key slot {s} is not in the current batch")),
            CurrentKey::Owned { key, key_group } => Ok((key, *key_group)),
            CurrentKey::None => Err(wasmtime::format_err!(
                "keyed state or timer used outside a keyed context (call select-key first)"
            )),
        }
    }

    /// Runs `f` with the backend and the current key in `namespace`.
    pub(super) fn with_current_key<R>(
        &mut self,
        namespace: &[u8],
        f: impl FnOnce(&mut dyn KeyedStateBackend, StateKey<'_>) -> Result<R, StateError>,
    ) -> wasmtime::Result<R> {
        let (key, key_group) = match &self.current {
            CurrentKey::Slot(slot) => {
                let &(start, len, kg) = self.slots.get(*slot as usize).ok_or_else(|| {
                    wasmtime::format_err!("key slot {slot} is not in the current batch")
                })?;
                (&self.arena[start as usize..(start + len) as usize], kg)
            }
            CurrentKey::Owned { key, key_group } => (key.as_slice(), *key_group),
            CurrentKey::None => {
                return Err(wasmtime::format_err!(
                    "keyed state used outside a keyed context (call select-key first)"
                ));
            }
        };
        let at = StateKey {
            key_group,
            key,
            namespace,
        };
        Ok(f(self.backend.as_mut(), at)?)
    }

    /// Makes slot `slot` of the current batch the current key; false if the
    /// batch has no such slot.
    pub(super) fn select_slot(&mut self, slot: u32) -> bool {
        if slot as usize >= self.slots.len() {
            return false;
        }
        self.current = CurrentKey::Slot(slot);
        true
    }

    /// Makes a timer's key the current key.
    pub(crate) fn set_timer_key(&mut self, key: &[u8]) {
        let key_group = key_group(key, self.max_parallelism);
        self.current = CurrentKey::Owned {
            key: key.to_vec(),
            key_group,
        };
    }

    /// Forgets the current key, so that state calls trap until a key is
    /// selected again.
    pub(super) fn clear_key(&mut self) {
        self.current = CurrentKey::None;
    }

    /// Records which states a restored checkpoint holds (`names`) and which
    /// of them had a time-to-live (`ttl`).
    pub(crate) fn set_restored(&mut self, names: BTreeSet<String>, ttl: BTreeSet<String>) {
        self.restored = Some((names, ttl));
    }

    /// Registers keyed state `name` with the backend, with a time-to-live
    /// if `ttl_ms` is given; refuses to switch the time-to-live of a
    /// restored state on or off.
    pub(super) fn register(
        &mut self,
        name: &str,
        kind: StateKind,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<StateId> {
        // Entries of a state with a time-to-live carry expiry stamps: a
        // restore that switched it on or off would misread every entry.
        if let Some((names, ttl)) = &self.restored
            && names.contains(name)
            && ttl.contains(name) != ttl_ms.is_some()
        {
            let (was, is) = if ttl_ms.is_some() {
                ("without", "with")
            } else {
                ("with", "without")
            };
            return Err(wasmtime::format_err!(
                "state `{name}` was checkpointed {was} a time-to-live and is declared {is} one now; \
                 a restore cannot change that (its entries would be misread)"
            ));
        }
        let id = match ttl_ms {
            Some(ttl) => self.backend.register_with_ttl(name, kind, ttl)?,
            None => self.backend.register(name, kind)?,
        };
        if !self.declared.iter().any(|d| d.name == name) {
            self.declared.push(crate::state::DeclaredState {
                name: name.to_owned(),
                kind,
                ttl_ms,
            });
        }
        Ok(id)
    }

    /// The states the guest declared, in the order it declared them.
    pub(crate) fn declared(&self) -> &[crate::state::DeclaredState] {
        &self.declared
    }

    /// Assigns key slots to a batch's elements and gathers the prefetched
    /// values of its distinct keys. Each key is hashed once: the hash gives
    /// both its key group and its slot.
    pub(crate) fn prepare_batch(
        &mut self,
        elements: &[u8],
        prefetched_states: &[StateId],
    ) -> anyhow::Result<(Vec<u32>, Vec<u8>)> {
        self.arena.clear();
        self.slots.clear();
        self.slot_hashes.clear();
        self.index.clear();
        self.current = CurrentKey::None;
        let (mut key_slots, spare_values) = std::mem::take(&mut self.spare);
        key_slots.clear();
        self.assign_slots(elements, &mut key_slots)?;
        let mut values = SlotValuesBuilder::with_buffer(spare_values);
        self.prefetch(prefetched_states, &mut values)?;
        Ok((key_slots, values.into_inner()))
    }

    /// Gives each element of the batch the slot of its key, adding a slot
    /// for each key not seen before in the batch.
    fn assign_slots(&mut self, elements: &[u8], key_slots: &mut Vec<u32>) -> anyhow::Result<()> {
        let range = self.backend.key_groups();
        for e in BatchReader::new(elements) {
            let key = e?.key.unwrap_or_default();
            let hash = key_hash(key);
            let (arena, slots) = (&self.arena, &self.slots);
            let found = self.index.find(hash, |&s| {
                let (start, len, _) = slots[s as usize];
                key_eq(&arena[start as usize..(start + len) as usize], key)
            });
            let slot = match found {
                Some(&s) => s,
                None => {
                    let kg = key_group_of_hash(hash, self.max_parallelism);
                    if !range.contains(kg) {
                        anyhow::bail!(
                            "element with key group {kg} reached a subtask that owns {}..={}",
                            range.start,
                            range.end
                        );
                    }
                    let s = self.slots.len() as u32;
                    self.slots
                        .push((self.arena.len() as u32, key.len() as u32, kg));
                    self.slot_hashes.push(hash);
                    self.arena.extend_from_slice(key);
                    let hashes = &self.slot_hashes;
                    self.index.insert_unique(hash, s, |&x| hashes[x as usize]);
                    s
                }
            };
            key_slots.push(slot);
        }
        Ok(())
    }

    /// Reads the values of `prefetched_states` for every slot into
    /// `values`, keeping the backend's write-back hints.
    fn prefetch(
        &mut self,
        prefetched_states: &[StateId],
        values: &mut SlotValuesBuilder,
    ) -> anyhow::Result<()> {
        self.hints.clear();
        self.hint_states.clear();
        self.hint_states.extend_from_slice(prefetched_states);
        if let [id] = prefetched_states {
            // The common case, one prefetched state: all keys at once.
            let keys: Vec<(u32, &[u8])> = self
                .slots
                .iter()
                .map(|&(start, len, kg)| (kg, &self.arena[start as usize..(start + len) as usize]))
                .collect();
            let hints = &mut self.hints;
            self.backend
                .value_get_many(*id, &keys, &mut |value, hint| {
                    values.push(value);
                    hints.push(hint);
                })?;
        } else if !prefetched_states.is_empty() {
            for &(start, len, kg) in &self.slots {
                let key = &self.arena[start as usize..(start + len) as usize];
                for &id in prefetched_states {
                    let at = StateKey {
                        key_group: kg,
                        key,
                        namespace: &[],
                    };
                    let (value, hint) = self.backend.value_get_hinted(id, at)?;
                    values.push(value.as_deref());
                    self.hints.push(hint);
                }
            }
        }
        Ok(())
    }

    /// Hands back the buffers of a batch the guest has processed.
    pub(crate) fn recycle(&mut self, key_slots: Vec<u32>, prefetched: Vec<u8>) {
        self.spare = (key_slots, prefetched);
    }

    /// Applies one change the guest made to a prefetched value.
    pub(crate) fn apply_update(
        &mut self,
        slot: u32,
        state: StateId,
        value: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let (start, len, kg) = *self.slots.get(slot as usize).ok_or_else(|| {
            anyhow::anyhow!("state update names key slot {slot}, which is not in the batch")
        })?;
        let key = &self.arena[start as usize..(start + len) as usize];
        let at = StateKey {
            key_group: kg,
            key,
            namespace: &[],
        };
        match value {
            Some(v) => {
                let hint = self
                    .hint_states
                    .iter()
                    .position(|&s| s == state)
                    .and_then(|i| self.hints.get(slot as usize * self.hint_states.len() + i))
                    .copied()
                    .flatten();
                self.backend.value_put_hinted(state, at, v, hint)?
            }
            None => self.backend.clear(state, at)?,
        }
        Ok(())
    }
}
