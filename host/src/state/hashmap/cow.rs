//! Copy-on-write snapshots of the hashmap backend (Flink's
//! `CopyOnWriteStateMap`, per entry): a snapshot begins in time
//! proportional to the key groups, and reads each key group later, as it
//! was when the snapshot began, while the task goes on writing. The first
//! write to an entry the snapshot has not read yet keeps the entry's old
//! value aside (a value slot's mark is flipped; a list or map entry is
//! noted as touched); the snapshot reads the value slots not flipped yet,
//! flipping them, a step of buckets at a time (from the first bucket again
//! whenever an insert may have moved the slots), then the list and map
//! entries not touched and those kept aside, and the key group is done
//! with. What is copied is bounded by the entries written while the
//! snapshot is in progress, not by the state, and no step reads more than
//! a step's buckets of value slots.

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
    /// The mark of a value slot the snapshot is done with (the group's
    /// clean mark flipped).
    done: bool,
    /// The next bucket of the value table to read.
    next: usize,
    /// The group's `moves` when `next` was last valid.
    moves: u64,
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
        if slot.mark() == self.done {
            return;
        }
        let (key, namespace) = slot.split();
        self.saved.push(Saved {
            state: slot.state,
            key: key.to_vec(),
            namespace: namespace.to_vec(),
            data: SavedData::Value(slot.value.to_vec()),
        });
        slot.set_mark(self.done);
    }

    /// The mark of a value slot the snapshot is done with: that of a new
    /// one.
    pub(super) fn done_mark(&self) -> bool {
        self.done
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
                // Abandoned before it read all of this key group: every
                // slot gets the clean mark back.
                for slot in tables.values.iter_mut() {
                    slot.set_mark(tables.clean);
                }
            }
            tables.cow = Some(Box::new(GroupCow {
                done: !tables.clean,
                moves: tables.moves,
                ..GroupCow::default()
            }));
        }
    }

    /// See [`crate::state::KeyedStateBackend::visit_snapshot_group`].
    pub(super) fn visit_cow_group(&mut self, key_group: u32, visit: &mut EntryVisitor<'_>) -> bool {
        if !self.range.contains(key_group) {
            return true;
        }
        let step = self.snapshot_step;
        let tables = &mut self.groups[(key_group - self.range.start) as usize];
        let Some(cow) = tables.cow.as_deref_mut() else {
            // Not part of a snapshot in progress: as it is.
            self.visit_key_group(key_group, visit);
            return true;
        };
        if cow.moves != tables.moves {
            // The slots may have moved: the flipped ones are skipped.
            cow.next = 0;
            cow.moves = tables.moves;
        }
        let buckets = tables.values.num_buckets();
        let end = cow.next.saturating_add(step).min(buckets);
        for i in cow.next..end {
            if let Some(slot) = tables.values.get_bucket_mut(i)
                && slot.mark() != cow.done
            {
                let (key, namespace) = slot.split();
                visit(slot.state, key, namespace, EntryRef::Value(&slot.value));
                slot.set_mark(cow.done);
            }
        }
        cow.next = end;
        if end < buckets {
            return false;
        }
        // Every slot is flipped: the flipped mark is the clean one now.
        let Some(cow) = tables.cow.take() else {
            return true;
        };
        tables.clean = cow.done;
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
        true
    }
}
