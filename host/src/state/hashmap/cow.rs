//! Copy-on-write snapshots of the hashmap backend (Flink's
//! `CopyOnWriteStateMap`, per entry): a snapshot begins in time
//! proportional to the key groups, and reads each key group later, as it
//! was when the snapshot began, while the task goes on writing. The first
//! write to an entry of a key group the snapshot has not read yet keeps the
//! entry's old value aside (a value slot is marked written; a list or map
//! entry is noted as touched); the snapshot reads the entries not written
//! since, then those kept aside, and the key group is done with. What is
//! copied is bounded by the entries written while the snapshot is in
//! progress, not by the state.

use hashbrown::HashSet;

use super::{Entry, EntryKey, HashMapBackend, Lookup, ValueSlot};
use crate::state::{EntryRef, EntryVisitor, KeyedStateBackend, StateId};

/// What a key group keeps for the snapshot in progress until the snapshot
/// has read it.
#[derive(Debug, Default)]
pub(super) struct GroupCow {
    /// Entries as they were when the snapshot began, kept at their first
    /// write since.
    saved: Vec<Saved>,
    /// The list and map entries written, created or removed since.
    touched: HashSet<EntryKey>,
}

/// An entry as it was when the snapshot began.
#[derive(Debug)]
struct Saved {
    state: StateId,
    key: Vec<u8>,
    namespace: Vec<u8>,
    data: SavedData,
}

/// A kept value: of a value slot, or a list or map entry.
#[derive(Debug)]
enum SavedData {
    Value(Vec<u8>),
    Other(Entry),
}

impl GroupCow {
    /// Before `slot` is written or removed: keeps its value unless it was
    /// written (or created) since the snapshot began, and marks it.
    pub(super) fn before_value_write(&mut self, slot: &mut ValueSlot) {
        if slot.is_written() {
            return;
        }
        let (key, namespace) = slot.split();
        self.saved.push(Saved {
            state: slot.state,
            key: key.to_vec(),
            namespace: namespace.to_vec(),
            data: SavedData::Value(slot.value.to_vec()),
        });
        slot.set_written(true);
    }

    /// Before the list or map entry at `at` is written, created or
    /// removed (`old`: the entry there now, if any): keeps it unless it
    /// was touched since the snapshot began.
    pub(super) fn before_other_write(&mut self, at: &Lookup<'_>, old: Option<&Entry>) {
        if self.touched.contains(at) {
            return;
        }
        self.touched.insert(EntryKey::from(at));
        if let Some(entry) = old {
            self.saved.push(Saved {
                state: at.state,
                key: at.key.to_vec(),
                namespace: at.namespace.to_vec(),
                data: SavedData::Other(entry.clone()),
            });
        }
    }
}

impl HashMapBackend {
    /// See [`crate::state::KeyedStateBackend::begin_snapshot`].
    pub(super) fn begin_cow(&mut self) {
        for tables in &mut self.groups {
            if tables.cow.take().is_some() {
                // Abandoned before it read this key group: no mark stays.
                for slot in tables.values.iter_mut() {
                    slot.set_written(false);
                }
            }
            tables.cow = Some(Box::default());
        }
    }

    /// See [`crate::state::KeyedStateBackend::visit_snapshot_group`].
    pub(super) fn visit_cow_group(&mut self, key_group: u32, visit: &mut EntryVisitor<'_>) {
        if !self.range.contains(key_group) {
            return;
        }
        let tables = &mut self.groups[(key_group - self.range.start) as usize];
        let Some(cow) = tables.cow.take() else {
            // Not part of a snapshot in progress: as it is.
            return self.visit_key_group(key_group, visit);
        };
        for slot in tables.values.iter_mut() {
            if slot.is_written() {
                slot.set_written(false);
            } else {
                let (key, namespace) = slot.split();
                visit(slot.state, key, namespace, EntryRef::Value(&slot.value));
            }
        }
        for (k, e) in &tables.others {
            if !cow.touched.contains(k) {
                visit(k.state, &k.key, &k.namespace, e.as_ref());
            }
        }
        for s in &cow.saved {
            let entry = match &s.data {
                SavedData::Value(v) => EntryRef::Value(v),
                SavedData::Other(e) => e.as_ref(),
            };
            visit(s.state, &s.key, &s.namespace, entry);
        }
    }
}
