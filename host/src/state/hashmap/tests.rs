//! Tests of the `hashmap` backend: the conformance suite, the layout of a
//! value slot, and the byte count and its limit.

crate::state_conformance_tests!(super::HashMapBackend::new);

/// The value slot's size and alignment, which the lookups are built on.
mod layout {
    #[test]
    fn a_value_slot_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<super::super::ValueSlot>(), 64);
        assert_eq!(std::mem::align_of::<super::super::ValueSlot>(), 64);
    }
}

/// The byte count and the limit.
mod limits {
    use super::super::*;

    fn at<'a>(key: &'a [u8], ns: &'a [u8]) -> StateKey<'a> {
        StateKey {
            key_group: 0,
            key,
            namespace: ns,
        }
    }

    #[test]
    fn size_follows_writes_and_removals_and_the_limit_refuses_growth() {
        let mut b = HashMapBackend::with_limit(KeyGroupRange { start: 0, end: 0 }, 1000);
        let v = b.register("v", StateKind::Value).expect("register");
        let l = b.register("l", StateKind::List).expect("register");
        b.value_put(v, at(b"k", b""), b"12345").expect("put");
        let one = b.size_bytes();
        assert_eq!(one, 1 + ENTRY_OVERHEAD + 5);
        b.value_put(v, at(b"k", b""), b"1").expect("overwrite");
        assert_eq!(b.size_bytes(), one - 4);
        b.clear(v, at(b"k", b"")).expect("clear");
        assert_eq!(b.size_bytes(), 0);
        b.list_add(l, at(b"k", b""), &[0; 100]).expect("add");
        b.clear(l, at(b"k", b"")).expect("clear");
        assert_eq!(b.size_bytes(), 0);
        let err = (0..20)
            .map(|_| b.list_add(l, at(b"k", b""), &[0; 100]))
            .find(Result::is_err);
        assert!(matches!(err, Some(Err(StateError::Full { limit: 1000 }))));
    }
}
