//! How state values are encoded: [postcard](https://docs.rs/postcard) 1.x.
//!
//! Every typed handle ([`crate::ValueState`], [`crate::ListState`],
//! [`crate::MapState`]) turns its values (and map keys) into bytes with
//! postcard, a compact serde format whose wire format is stable since 1.0
//! (integers are varints, strings and sequences are length-prefixed). The
//! host stores those bytes opaquely, so checkpoints hold postcard bytes. A
//! change of a value's Rust type is a change of its state's format: give the
//! state a new name, or keep the type serde-compatible.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes a value; a type that serde cannot encode (a map with non-string
/// keys is fine, a `serde_json::Value` number is fine) panics with its error.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    match postcard::to_allocvec(value) {
        Ok(v) => v,
        Err(e) => panic!("weir-sdk: cannot encode state value: {e}"),
    }
}

/// Encodes a value into `buf`; `None` if it does not fit.
pub fn encode_into<'a, T: Serialize + ?Sized>(value: &T, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    postcard::to_slice(value, buf).ok().map(|b| &*b)
}

/// Decodes a value; bytes written with another type panic with the error,
/// which fails the task with a message that names it.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
    match postcard::from_bytes(bytes) {
        Ok(v) => v,
        Err(e) => panic!(
            "weir-sdk: cannot decode state value as {}: {e}",
            std::any::type_name::<T>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The examples of `docs/state-codec.md`, which the Python and
    /// JavaScript SDKs' tests hold too: the bytes every SDK must write.
    #[test]
    fn the_documented_examples_are_postcards_bytes() {
        assert_eq!(hex(&encode(&0u64)), "00");
        assert_eq!(hex(&encode(&300u64)), "ac02");
        assert_eq!(hex(&encode(&-1i64)), "01");
        assert_eq!(hex(&encode(&200u8)), "c8");
        assert_eq!(hex(&encode(&-2i8)), "fe");
        assert_eq!(hex(&encode(&1.5f64)), "000000000000f83f");
        assert_eq!(hex(&encode("hé")), "0368c3a9");
        assert_eq!(hex(&encode(&Some(7u64))), "0107");
        assert_eq!(hex(&encode(&vec![1u64, 2])), "020102");
        assert_eq!(hex(&encode(&(5u64, -3i64))), "0505");
        assert_eq!(decode::<(i64, u64)>(&encode(&(12i64, 3u64))), (12, 3));
    }
}
