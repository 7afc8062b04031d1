//! Ordered scans of the RocksDB backend's column families: every entry
//! under a key prefix (a map's entries, one key group's), and the entries of
//! one state in one key group as a snapshot sees them, a map's entries
//! gathered into one map.

use std::collections::BTreeMap;

use rocksdb::{ColumnFamily, Direction, IteratorMode, ReadOptions};

use super::keys::{decode_list, parse_key, prefix_end};
use super::{RocksDbBackend, storage};
use crate::state::{EntryRef, EntryVisitor, StateError, StateId, StateKind};

/// A map being gathered from its entries: (key, namespace, entries).
type GatheredMap = (Vec<u8>, Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>);

impl RocksDbBackend {
    /// Whether any RocksDB key in `cf` starts with `prefix`.
    #[inline]
    pub(super) fn any_with_prefix(
        &self,
        cf: &ColumnFamily,
        prefix: &[u8],
    ) -> Result<bool, StateError> {
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek(prefix);
        it.status().map_err(storage)?;
        Ok(it.key().is_some_and(|k| k.starts_with(prefix)))
    }

    /// Calls `f(key, value)` for every RocksDB key in `cf` that starts with
    /// `prefix`, in key order.
    pub(super) fn scan(
        &self,
        cf: &ColumnFamily,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        let mut read = ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            read.set_iterate_upper_bound(end);
        }
        let iter =
            self.db
                .iterator_cf_opt(cf, read, IteratorMode::From(prefix, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(storage)?;
            if !k.starts_with(prefix) {
                break;
            }
            f(&k, &v);
        }
        Ok(())
    }

    /// Calls `visit` for every entry of `state` (of `kind`, in `cf`) whose
    /// RocksDB key starts with `prefix` (a key group's); damaged entries are
    /// logged and skipped.
    pub(super) fn visit_state(
        &self,
        cf: &ColumnFamily,
        state: StateId,
        kind: StateKind,
        prefix: &[u8],
        visit: &mut EntryVisitor<'_>,
    ) -> Result<(), StateError> {
        // A map's entries arrive in order; they are gathered per (key,
        // namespace) and handed over when the next one starts.
        let mut map: Option<GatheredMap> = None;
        let scanned = self.scan(cf, prefix, &mut |k, v| {
            let Some((key, namespace, map_key)) = parse_key(k) else {
                tracing::error!("rocksdb: a key of state {state} is damaged; skipped");
                return;
            };
            match kind {
                StateKind::Value => visit(state, key, namespace, EntryRef::Value(v)),
                StateKind::List => match decode_list(v) {
                    Ok(list) => visit(state, key, namespace, EntryRef::List(&list)),
                    Err(e) => tracing::error!("rocksdb: state {state}: {e}; skipped"),
                },
                StateKind::Map => {
                    let same = map
                        .as_ref()
                        .is_some_and(|(k0, n0, _)| k0 == key && n0 == namespace);
                    if !same {
                        if let Some((k0, n0, m)) = map.take() {
                            visit(state, &k0, &n0, EntryRef::Map(&m));
                        }
                        map = Some((key.to_vec(), namespace.to_vec(), BTreeMap::new()));
                    }
                    if let Some((_, _, m)) = map.as_mut() {
                        m.insert(map_key.to_vec(), v.to_vec());
                    }
                }
            }
        });
        if let Some((k0, n0, m)) = map.take() {
            visit(state, &k0, &n0, EntryRef::Map(&m));
        }
        scanned
    }
}
