//! Paths of the guest components built for the tests by `build.rs`: the
//! example operators from `operators/` and the misbehaving guests from
//! `tests/guests/`.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
