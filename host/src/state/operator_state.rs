//! Operator (non-keyed) list state of a guest: named lists of byte strings
//! per subtask, and how they are split over a new parallelism on restore.
//!
//! In a checkpoint a subtask's operator state is a list of items (the
//! `operator_state` of its `_metadata` entry); a guest's item is
//! `name-len: u32 LE | name | value`, one per list element.

use std::collections::BTreeMap;

/// A subtask's named lists.
pub type OperatorLists = BTreeMap<String, Vec<Vec<u8>>>;

/// Most bytes of operator state one guest subtask may hold.
pub const MAX_OPERATOR_STATE_BYTES: usize = 64 << 20;

/// The checkpoint items of `lists`.
pub fn encode(lists: &OperatorLists) -> Vec<Vec<u8>> {
    let mut items = Vec::new();
    for (name, values) in lists {
        for v in values {
            let mut item = Vec::with_capacity(4 + name.len() + v.len());
            item.extend_from_slice(&(name.len() as u32).to_le_bytes());
            item.extend_from_slice(name.as_bytes());
            item.extend_from_slice(v);
            items.push(item);
        }
    }
    items
}

fn decode_item(item: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32::from_le_bytes(item.get(..4)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(item.get(4..4usize.checked_add(len)?)?).ok()?;
    Some((name, &item[4 + len..]))
}

/// The lists of subtask `subtask` of `parallelism`, from the items of
/// every old subtask (`old[i]` is old subtask i's). At the same
/// parallelism a subtask gets its own items back; otherwise each list's
/// items, in old-subtask order, are dealt round-robin.
pub fn redistribute(
    old: &[Vec<Vec<u8>>],
    subtask: u32,
    parallelism: u32,
) -> Result<OperatorLists, String> {
    let mut lists = OperatorLists::new();
    let same = old.len() == parallelism as usize;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, items) in old.iter().enumerate() {
        for item in items {
            let (name, value) = decode_item(item)
                .ok_or_else(|| "malformed operator-state item in the checkpoint".to_owned())?;
            let n = seen.entry(name.to_owned()).or_insert(0);
            let mine = if same {
                i == subtask as usize
            } else {
                *n % parallelism as usize == subtask as usize
            };
            *n += 1;
            if mine {
                lists
                    .entry(name.to_owned())
                    .or_default()
                    .push(value.to_vec());
            }
        }
    }
    Ok(lists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_split_over_a_new_parallelism() {
        let mut a = OperatorLists::new();
        a.insert("buf".into(), vec![b"1".to_vec(), b"2".to_vec()]);
        let mut b = OperatorLists::new();
        b.insert("buf".into(), vec![b"3".to_vec()]);
        b.insert("pos".into(), vec![b"9".to_vec()]);
        let old = vec![encode(&a), encode(&b)];
        // Same parallelism: each subtask its own.
        assert_eq!(redistribute(&old, 0, 2).expect("ok"), a);
        assert_eq!(redistribute(&old, 1, 2).expect("ok"), b);
        // Three subtasks: dealt round-robin per list.
        let s: Vec<OperatorLists> = (0..3)
            .map(|i| redistribute(&old, i, 3).expect("ok"))
            .collect();
        assert_eq!(s[0]["buf"], vec![b"1".to_vec()]);
        assert_eq!(s[0]["pos"], vec![b"9".to_vec()]);
        assert_eq!(s[1]["buf"], vec![b"2".to_vec()]);
        assert_eq!(s[2]["buf"], vec![b"3".to_vec()]);
        assert!(redistribute(&[vec![vec![1, 2]]], 0, 1).is_err());
    }
}
