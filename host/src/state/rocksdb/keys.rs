//! The bytes the RocksDB backend stores, a persistent format (incremental
//! checkpoints upload the SST files as they are): its keys and its list
//! values.
//!
//! ```text
//! key        := key group u16 BE | len u32 BE | key | len u32 BE | namespace [| map key]
//! list value := (len u32 BE | element)*
//! ```
//!
//! The key group comes first, so one key group, or a range of them, is one
//! ordered scan; a map state has one RocksDB entry per map key, its key
//! being the (key, namespace) prefix followed by the map key. A list value
//! is appended to with one `len | element` merge operand per element.

use crate::keygroup::KeyGroupRange;
use crate::state::{StateError, StateKey};

/// Appends `bytes` with its 4-byte big-endian length.
#[inline]
fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Splits a length-prefixed field off the front of `bytes`.
fn take_len_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let rest = &bytes[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// The first two bytes of every RocksDB key of `key_group`: the prefix that
/// one key group's scan seeks.
#[inline]
pub(super) fn key_group_prefix(key_group: u32) -> [u8; 2] {
    (key_group as u16).to_be_bytes()
}

/// The RocksDB key bounds of the key groups of `range`: the first one's
/// prefix, and the next key group's (exclusive; `None` past key group
/// 65535).
pub(super) fn key_group_bounds(range: KeyGroupRange) -> (Vec<u8>, Option<Vec<u8>>) {
    let lower = key_group_prefix(range.start).to_vec();
    let upper = u16::try_from(range.end + 1)
        .ok()
        .map(|end| end.to_be_bytes().to_vec());
    (lower, upper)
}

/// The RocksDB key of (key group, key, namespace): also the prefix of a
/// map's entries.
#[inline]
pub(super) fn entry_key(at: &StateKey<'_>) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + at.key.len() + at.namespace.len());
    push_entry_key(&mut k, at);
    k
}

/// Appends the RocksDB key of the entry at `at` to `out` (the encoding of
/// [`entry_key`]), so that many keys share one buffer.
#[inline]
pub fn push_entry_key(out: &mut Vec<u8>, at: &StateKey<'_>) {
    out.extend_from_slice(&key_group_prefix(at.key_group));
    put_len_prefixed(out, at.key);
    put_len_prefixed(out, at.namespace);
}

/// The RocksDB key of one map entry: its (key group, key, namespace)
/// `prefix` followed by `map_key`.
#[inline]
pub(super) fn map_entry_key(mut prefix: Vec<u8>, map_key: &[u8]) -> Vec<u8> {
    prefix.extend_from_slice(map_key);
    prefix
}

/// Parses a RocksDB key back into (key, namespace, rest: the map key).
pub(super) fn parse_key(k: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (key, rest) = take_len_prefixed(k.get(2..)?)?;
    let (namespace, rest) = take_len_prefixed(rest)?;
    Some((key, namespace, rest))
}

/// The smallest key after every key that starts with `prefix` (`None`: no
/// such key, the prefix is all 0xff).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// One list element as the merge operand that appends it to a list value.
#[inline]
pub(super) fn list_element(value: &[u8]) -> Vec<u8> {
    let mut element = Vec::with_capacity(4 + value.len());
    put_len_prefixed(&mut element, value);
    element
}

/// The list value of `values`, in order.
pub(super) fn encode_list(values: &[Vec<u8>]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for v in values {
        put_len_prefixed(&mut encoded, v);
    }
    encoded
}

/// Decodes a list value into its elements.
pub(super) fn decode_list(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, StateError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (element, rest) = take_len_prefixed(bytes)
            .ok_or_else(|| StateError::Storage("a list value is damaged".into()))?;
        out.push(element.to_vec());
        bytes = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_key_groups_are_one_prefix() {
        let at = StateKey {
            key_group: 300,
            key: b"key",
            namespace: b"ns",
        };
        let k = entry_key(&at);
        assert_eq!(&k[..2], &300u16.to_be_bytes());
        let mut map_key = k.clone();
        map_key.extend_from_slice(b"mk");
        assert_eq!(
            parse_key(&map_key),
            Some((&b"key"[..], &b"ns"[..], &b"mk"[..]))
        );
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    /// The layout is in checkpoints (incremental ones upload the SST files
    /// as they are): these bytes must never change.
    #[test]
    fn keys_and_list_values_are_pinned_byte_for_byte() {
        let at = StateKey {
            key_group: 300,
            key: b"key",
            namespace: b"ns",
        };
        let mut expected = vec![0x01, 0x2c, 0, 0, 0, 3];
        expected.extend_from_slice(b"key");
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"ns");
        assert_eq!(entry_key(&at), expected);

        let default_namespace = StateKey {
            key_group: 0,
            key: &[0xab],
            namespace: b"",
        };
        assert_eq!(
            entry_key(&default_namespace),
            [0, 0, 0, 0, 0, 1, 0xab, 0, 0, 0, 0]
        );

        let last_group = StateKey {
            key_group: 65535,
            key: b"",
            namespace: b"",
        };
        assert_eq!(entry_key(&last_group), [0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);

        // A map entry: the (key, namespace) prefix, then the map key.
        let mut map_entry = expected.clone();
        map_entry.extend_from_slice(b"mk");
        assert_eq!(map_entry_key(entry_key(&at), b"mk"), map_entry);

        assert_eq!(list_element(b"xy"), [0, 0, 0, 2, b'x', b'y']);
        assert_eq!(
            encode_list(&[b"a".to_vec(), Vec::new(), b"bc".to_vec()]),
            [0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 2, b'b', b'c']
        );
        assert_eq!(
            decode_list(&[0, 0, 0, 1, b'a', 0, 0, 0, 0]),
            Ok(vec![b"a".to_vec(), Vec::new()])
        );
        assert!(decode_list(&[0, 0, 0, 5, b'a']).is_err());

        let range = KeyGroupRange { start: 3, end: 4 };
        assert_eq!(key_group_bounds(range), (vec![0, 3], Some(vec![0, 5])));
        let to_the_end = KeyGroupRange {
            start: 0,
            end: 65535,
        };
        assert_eq!(key_group_bounds(to_the_end), (vec![0, 0], None));
    }
}
