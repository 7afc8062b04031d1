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
