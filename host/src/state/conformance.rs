//! One conformance suite for every [`super::KeyedStateBackend`]: a backend
//! module expands it with `state_conformance_tests!(constructor)`.

/// Expands the conformance tests for a backend built by `$new(range)`.
#[macro_export]
#[doc(hidden)]
macro_rules! state_conformance_tests {
    ($new:expr) => {
        use $crate::keygroup::KeyGroupRange;
        use $crate::state::{KeyedStateBackend, StateError, StateKey, StateKind};

        fn backend() -> impl KeyedStateBackend {
            ($new)(KeyGroupRange { start: 10, end: 19 })
        }

        fn backend_for(range: KeyGroupRange) -> impl KeyedStateBackend {
            ($new)(range)
        }

        fn at_key(key: &[u8], mp: u32) -> StateKey<'_> {
            StateKey {
                key_group: $crate::keygroup::key_group(key, mp),
                key,
                namespace: b"",
            }
        }

        fn at<'a>(kg: u32, key: &'a [u8], ns: &'a [u8]) -> StateKey<'a> {
            StateKey {
                key_group: kg,
                key,
                namespace: ns,
            }
        }

        #[test]
        fn values_are_scoped_by_key_namespace_and_state() {
            let mut b = backend();
            let s = b.register("count", StateKind::Value).expect("register");
            let t = b.register("other", StateKind::Value).expect("register");
            assert_eq!(b.register("count", StateKind::Value), Ok(s));
            b.value_put(s, at(10, b"a", b""), b"1").expect("put");
            b.value_put(s, at(10, b"a", b"w1"), b"2").expect("put");
            b.value_put(s, at(11, b"b", b""), b"3").expect("put");
            assert_eq!(
                b.value_get(s, at(10, b"a", b"")).expect("get").as_deref(),
                Some(&b"1"[..])
            );
            assert_eq!(
                b.value_get(s, at(10, b"a", b"w1")).expect("get").as_deref(),
                Some(&b"2"[..])
            );
            assert_eq!(b.value_get(t, at(10, b"a", b"")).expect("get"), None);
            b.value_put(s, at(10, b"a", b""), b"9").expect("overwrite");
            assert_eq!(
                b.value_get(s, at(10, b"a", b"")).expect("get").as_deref(),
                Some(&b"9"[..])
            );
            assert_eq!(b.entry_count(), 3);
            b.clear(s, at(10, b"a", b"w1")).expect("clear");
            assert_eq!(b.value_get(s, at(10, b"a", b"w1")).expect("get"), None);
            assert_eq!(b.entry_count(), 2);
        }

        #[test]
        fn reading_many_values_matches_reading_them_one_by_one() {
            let mut b = backend();
            let s = b.register("v", StateKind::Value).expect("register");
            let keys: Vec<(u32, Vec<u8>)> = (0..200u32)
                .map(|i| (10 + i % 10, format!("k{i}").into_bytes()))
                .collect();
            for (kg, k) in keys.iter().step_by(2) {
                b.value_put(s, at(*kg, k, b""), k).expect("put");
            }
            // Another namespace of the same keys must not be read.
            b.value_put(s, at(11, b"k1", b"ns"), b"x").expect("put");
            let refs: Vec<(u32, &[u8])> = keys.iter().map(|(g, k)| (*g, k.as_slice())).collect();
            let mut got = Vec::new();
            b.value_get_many(s, &refs, &mut |v, hint| {
                got.push((v.map(<[u8]>::to_vec), hint))
            })
            .expect("get many");
            assert_eq!(got.len(), keys.len());
            for ((kg, k), (v, hint)) in keys.iter().zip(got) {
                let (one, one_hint) = b.value_get_hinted(s, at(*kg, k, b"")).expect("get");
                assert_eq!(v.as_deref(), one.as_deref());
                assert_eq!(hint, one_hint);
            }
            assert!(b.value_get_many(s, &[(99, b"k")], &mut |_, _| {}).is_err());
        }

        #[test]
        fn hinted_writes_land_on_their_entry_even_after_the_table_moved() {
            let mut b = backend();
            let s = b.register("v", StateKind::Value).expect("register");
            b.value_put(s, at(10, b"k", b""), b"1").expect("put");
            let (v, hint) = b.value_get_hinted(s, at(10, b"k", b"")).expect("get");
            assert_eq!(v.as_deref(), Some(&b"1"[..]));
            // Grow the table so entries move, then write with the old hint.
            for i in 0..1000u32 {
                b.value_put(s, at(10, &i.to_le_bytes(), b""), b"x")
                    .expect("put");
            }
            b.value_put_hinted(s, at(10, b"k", b""), b"2", hint)
                .expect("hinted put");
            assert_eq!(
                b.value_get(s, at(10, b"k", b"")).expect("get").as_deref(),
                Some(&b"2"[..])
            );
            // A hint for another entry never overwrites it.
            let (_, other) = b
                .value_get_hinted(s, at(10, &7u32.to_le_bytes(), b""))
                .expect("get");
            b.value_put_hinted(s, at(10, b"k", b""), b"3", other)
                .expect("hinted put");
            assert_eq!(
                b.value_get(s, at(10, b"k", b"")).expect("get").as_deref(),
                Some(&b"3"[..])
            );
            assert_eq!(
                b.value_get(s, at(10, &7u32.to_le_bytes(), b""))
                    .expect("get")
                    .as_deref(),
                Some(&b"x"[..])
            );
            assert_eq!(b.entry_count(), 1001);
        }

        #[test]
        fn a_hint_of_absence_counts_its_entry_once_however_often_it_is_written() {
            let mut b = backend();
            let s = b.register("v", StateKind::Value).expect("register");
            let (v, hint) = b.value_get_hinted(s, at(10, b"k", b"")).expect("get");
            assert_eq!(v, None);
            b.value_put_hinted(s, at(10, b"k", b""), b"1", hint)
                .expect("hinted put");
            b.value_put_hinted(s, at(10, b"k", b""), b"2", hint)
                .expect("hinted put");
            assert_eq!(b.entry_count(), 1);
            // Other writes in between (a small write cache is emptied by
            // them), then the same hint again.
            for i in 0..1000u32 {
                b.value_put(s, at(10, &i.to_le_bytes(), b""), b"x")
                    .expect("put");
            }
            b.value_put_hinted(s, at(10, b"k", b""), b"3", hint)
                .expect("hinted put");
            assert_eq!(b.entry_count(), 1001);
            // Cleared, then written back with the hint: one entry again.
            b.clear(s, at(10, b"k", b"")).expect("clear");
            assert_eq!(b.entry_count(), 1000);
            b.value_put_hinted(s, at(10, b"k", b""), b"4", hint)
                .expect("hinted put");
            b.value_put_hinted(s, at(10, b"k", b""), b"5", hint)
                .expect("hinted put");
            assert_eq!(b.entry_count(), 1001);
            assert_eq!(
                b.value_get(s, at(10, b"k", b"")).expect("get").as_deref(),
                Some(&b"5"[..])
            );
            // Read as present, cleared, then written back with that hint:
            // the entry is new again and counted.
            let (_, present) = b.value_get_hinted(s, at(10, b"k", b"")).expect("get");
            b.clear(s, at(10, b"k", b"")).expect("clear");
            assert_eq!(b.entry_count(), 1000);
            b.value_put_hinted(s, at(10, b"k", b""), b"6", present)
                .expect("hinted put");
            assert_eq!(b.entry_count(), 1001);
        }

        #[test]
        fn lists_append_replace_and_clear() {
            let mut b = backend();
            let s = b.register("l", StateKind::List).expect("register");
            assert!(b.list_get(s, at(12, b"k", b"")).expect("get").is_empty());
            b.list_add(s, at(12, b"k", b""), b"x").expect("add");
            b.list_add(s, at(12, b"k", b""), b"y").expect("add");
            assert_eq!(
                b.list_get(s, at(12, b"k", b"")).expect("get"),
                vec![b"x".to_vec(), b"y".to_vec()]
            );
            b.list_set(s, at(12, b"k", b""), vec![b"z".to_vec()])
                .expect("set");
            assert_eq!(
                b.list_get(s, at(12, b"k", b"")).expect("get"),
                vec![b"z".to_vec()]
            );
            b.clear(s, at(12, b"k", b"")).expect("clear");
            assert_eq!(b.entry_count(), 0);
        }

        #[test]
        fn maps_are_ordered_by_map_key() {
            let mut b = backend();
            let s = b.register("m", StateKind::Map).expect("register");
            b.map_put(s, at(19, b"k", b""), b"b", b"2").expect("put");
            b.map_put(s, at(19, b"k", b""), b"a", b"1").expect("put");
            assert_eq!(
                b.map_get(s, at(19, b"k", b""), b"a")
                    .expect("get")
                    .as_deref(),
                Some(&b"1"[..])
            );
            assert_eq!(
                b.map_entries(s, at(19, b"k", b"")).expect("entries"),
                vec![
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"b".to_vec(), b"2".to_vec())
                ]
            );
            b.map_remove(s, at(19, b"k", b""), b"a").expect("remove");
            b.map_remove(s, at(19, b"k", b""), b"b").expect("remove");
            assert_eq!(b.entry_count(), 0);
        }

        #[test]
        fn misuse_is_an_error_not_a_panic() {
            let mut b = backend();
            let s = b.register("v", StateKind::Value).expect("register");
            assert!(matches!(
                b.register("v", StateKind::Map),
                Err(StateError::KindConflict { .. })
            ));
            assert!(matches!(
                b.list_get(s, at(10, b"k", b"")),
                Err(StateError::WrongKind { .. })
            ));
            assert!(matches!(
                b.value_get(7, at(10, b"k", b"")),
                Err(StateError::UnknownState(7))
            ));
            assert!(matches!(
                b.value_put(s, at(20, b"k", b""), b"x"),
                Err(StateError::KeyGroupOutOfRange { key_group: 20, .. })
            ));
        }

        #[test]
        fn a_snapshot_restores_at_another_parallelism() {
            let mp = 16;
            let mut b = backend_for(KeyGroupRange { start: 0, end: 15 });
            let count = b.register("count", StateKind::Value).expect("register");
            let seen = b.register("seen", StateKind::List).expect("register");
            let attrs = b.register("attrs", StateKind::Map).expect("register");
            let mut timers = $crate::timers::TimerService::default();
            for i in 0..200u32 {
                let key = format!("k{i}");
                let a = at_key(key.as_bytes(), mp);
                b.value_put(count, a, &i.to_le_bytes()).expect("put");
                b.list_add(seen, a, b"x").expect("add");
                b.map_put(attrs, a, b"i", key.as_bytes()).expect("map");
                timers.register(
                    $crate::timers::Domain::EventTime,
                    $crate::timers::TimerEntry {
                        time: i64::from(i),
                        key: key.into_bytes(),
                        namespace: b"w".to_vec(),
                    },
                );
            }
            let snap = $crate::state::snapshot::encode(&b, &timers, mp);
            let handle = snap.handle("f".into());
            $crate::state::snapshot::verify(&snap.bytes, &handle).expect("verify");
            // Two new subtasks split the 16 key groups.
            let mut total = 0;
            let mut total_timers = 0;
            for range in [
                KeyGroupRange { start: 0, end: 7 },
                KeyGroupRange { start: 8, end: 15 },
            ] {
                let mut nb = backend_for(range);
                let mut nt = $crate::timers::TimerService::default();
                total += $crate::state::snapshot::restore_without(
                    &snap.bytes,
                    &handle,
                    &mut nb,
                    &mut nt,
                    &|_| false,
                )
                .expect("restore");
                total_timers += nt.len();
                let c = nb.register("count", StateKind::Value).expect("same id");
                let l = nb.register("seen", StateKind::List).expect("same id");
                let m = nb.register("attrs", StateKind::Map).expect("same id");
                for i in 0..200u32 {
                    let key = format!("k{i}");
                    let a = at_key(key.as_bytes(), mp);
                    if range.contains(a.key_group) {
                        let v = nb.value_get(c, a).expect("get").map(|v| v.to_vec());
                        assert_eq!(v, Some(i.to_le_bytes().to_vec()));
                        assert_eq!(nb.list_get(l, a).expect("list"), vec![b"x".to_vec()]);
                        assert_eq!(
                            nb.map_get(m, a, b"i").expect("map").as_deref(),
                            Some(key.as_bytes())
                        );
                    }
                }
            }
            assert_eq!(total, 600);
            assert_eq!(total_timers, 200);
        }

        /// Every entry of `b`, owned and sorted, for comparing states.
        fn dump(b: &dyn KeyedStateBackend) -> Vec<(u32, Vec<u8>, Vec<u8>, String)> {
            let mut all = Vec::new();
            let range = b.key_groups();
            for kg in range.start..=range.end {
                b.visit_key_group(kg, &mut |state, key, ns, entry| {
                    let shown = match entry {
                        $crate::state::EntryRef::Value(v) => format!("{v:?}"),
                        $crate::state::EntryRef::List(l) => format!("{l:?}"),
                        $crate::state::EntryRef::Map(m) => {
                            let mut pairs = Vec::new();
                            m.each(&mut |k, v| pairs.push((k.to_vec(), v.to_vec())));
                            format!("{pairs:?}")
                        }
                    };
                    all.push((state, key.to_vec(), ns.to_vec(), shown));
                });
            }
            all.sort();
            all
        }

        /// The state `snap` restores into a new backend for `range`.
        fn restored(
            snap: &$crate::state::snapshot::KeyedSnapshot,
            range: KeyGroupRange,
        ) -> Vec<(u32, Vec<u8>, Vec<u8>, String)> {
            let handle = snap.handle("f".into());
            let mut nb = backend_for(range);
            let mut nt = $crate::timers::TimerService::default();
            $crate::state::snapshot::restore_without(
                &snap.bytes,
                &handle,
                &mut nb,
                &mut nt,
                &|_| false,
            )
            .expect("restore");
            dump(&nb)
        }

        /// Round `round` of writes of every kind, to keys spread over all
        /// key groups: overwrites, removals, list and map changes, new keys.
        fn write_round(
            b: &mut dyn KeyedStateBackend,
            (v, l, m): (u32, u32, u32),
            round: u32,
            mp: u32,
        ) {
            for j in 0..24u32 {
                let key = format!("k{}", (round * 24 + j) % 300);
                let a = at_key(key.as_bytes(), mp);
                match j % 8 {
                    0 => b.value_put(v, a, &round.to_be_bytes()).expect("put"),
                    1 => b.clear(v, a).expect("clear"),
                    2 => b.list_add(l, a, b"more").expect("add"),
                    3 => b.map_put(m, a, b"y", b"new").expect("map"),
                    4 => b.map_remove(m, a, b"x").expect("remove"),
                    5 => b.clear(l, a).expect("clear"),
                    6 => {
                        let fresh = format!("n{round}-{j}");
                        let a = at_key(fresh.as_bytes(), mp);
                        b.value_put(v, a, b"fresh").expect("put");
                        b.list_add(l, a, b"fresh").expect("add");
                    }
                    _ => {
                        // Removed, then written again.
                        b.clear(v, a).expect("clear");
                        b.value_put(v, a, b"again").expect("put");
                    }
                }
            }
        }

        #[test]
        fn a_snapshot_taken_copy_on_write_restores_the_state_at_its_start_while_writes_go_on() {
            let mp = 16;
            let range = KeyGroupRange { start: 0, end: 15 };
            // `b` is snapshotted; `twin` takes the same writes without.
            let mut b = backend_for(range);
            let mut twin = backend_for(range);
            let mut ids = (0, 0, 0);
            for x in [&mut b as &mut dyn KeyedStateBackend, &mut twin] {
                ids = (
                    x.register("v", StateKind::Value).expect("register"),
                    x.register("l", StateKind::List).expect("register"),
                    x.register("m", StateKind::Map).expect("register"),
                );
                for i in 0..300u32 {
                    let key = format!("k{i}");
                    let a = at_key(key.as_bytes(), mp);
                    x.value_put(ids.0, a, &i.to_le_bytes()).expect("put");
                    x.list_add(ids.1, a, b"a").expect("add");
                    x.map_put(ids.2, a, b"x", &i.to_le_bytes()).expect("map");
                }
            }
            let timers = $crate::timers::TimerService::default();
            let at_barrier = dump(&b);
            // The backend snapshots copy-on-write if it can; else (RocksDB,
            // whose checkpoints are its own files) all at once, as the
            // runtime then does.
            let cow = b.begin_snapshot();
            let mut encoder = $crate::state::snapshot::SnapshotEncoder::new(&b, &timers, mp);
            let mut round = 0;
            let snap = if cow {
                loop {
                    write_round(&mut b, ids, round, mp);
                    write_round(&mut twin, ids, round, mp);
                    round += 1;
                    if encoder.encode_next(&mut b) {
                        break encoder.finish();
                    }
                }
            } else {
                let snap = $crate::state::snapshot::encode(&b, &timers, mp);
                write_round(&mut b, ids, 0, mp);
                write_round(&mut twin, ids, 0, mp);
                snap
            };
            assert_eq!(
                restored(&snap, range),
                at_barrier,
                "the snapshot is the state at its start"
            );
            assert_ne!(dump(&b), at_barrier, "the writes went on");
            assert_eq!(
                dump(&b),
                dump(&twin),
                "the writes landed as without a snapshot"
            );
            // A second snapshot, without writes, is the state as it is.
            let now = dump(&b);
            let snap = if b.begin_snapshot() {
                let mut encoder = $crate::state::snapshot::SnapshotEncoder::new(&b, &timers, mp);
                while !encoder.encode_next(&mut b) {}
                encoder.finish()
            } else {
                $crate::state::snapshot::encode(&b, &timers, mp)
            };
            assert_eq!(restored(&snap, range), now);
        }

        #[test]
        fn a_copy_on_write_snapshot_abandoned_halfway_leaves_the_next_one_whole() {
            let mp = 16;
            let range = KeyGroupRange { start: 0, end: 15 };
            let mut b = backend_for(range);
            let ids = (
                b.register("v", StateKind::Value).expect("register"),
                b.register("l", StateKind::List).expect("register"),
                b.register("m", StateKind::Map).expect("register"),
            );
            for i in 0..300u32 {
                let key = format!("k{i}");
                b.value_put(ids.0, at_key(key.as_bytes(), mp), &i.to_le_bytes())
                    .expect("put");
            }
            if !b.begin_snapshot() {
                return; // no copy-on-write snapshots to abandon
            }
            let timers = $crate::timers::TimerService::default();
            let mut encoder = $crate::state::snapshot::SnapshotEncoder::new(&b, &timers, mp);
            for round in 0..40 {
                write_round(&mut b, ids, round, mp);
                if encoder.encode_next(&mut b) {
                    break;
                }
            }
            // A new snapshot abandons that one, wherever it had got to.
            let at_second = dump(&b);
            assert!(b.begin_snapshot());
            let mut encoder = $crate::state::snapshot::SnapshotEncoder::new(&b, &timers, mp);
            let mut round = 40;
            let snap = loop {
                write_round(&mut b, ids, round, mp);
                round += 1;
                if encoder.encode_next(&mut b) {
                    break encoder.finish();
                }
            };
            assert_eq!(restored(&snap, range), at_second);
        }
    };
}
