//! Kafka records with headers: a Kafka source with `headers: true` emits
//! each record's headers and value in one element value, the *record
//! envelope*; a Kafka sink with `headers: true` writes such values back
//! as headers and value.
//!
//! ```no_run
//! use weir_sdk::kafka::{EnvelopeRef, HeaderRef, write_envelope};
//! use weir_sdk::prelude::*;
//!
//! /// Tags each record with a `seen-by` header, keeping its own.
//! struct Tag;
//!
//! impl Operator for Tag {
//!     fn open(_: &mut OpenContext) -> Result<Self, String> {
//!         Ok(Tag)
//!     }
//!
//!     fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
//!         let Ok(record) = EnvelopeRef::read(e.value) else {
//!             return; // not an envelope: the source lacks `headers: true`
//!         };
//!         let tag = HeaderRef { name: "seen-by", value: Some(b"tag") };
//!         let mut out = Vec::new();
//!         let headers = record.headers.iter().copied().chain([tag]);
//!         write_envelope(&mut out, headers, record.value);
//!         ctx.emit(e.key, &out, e.timestamp);
//!     }
//! }
//! ```

pub use weir_wire::{ENVELOPE_VERSION, EnvelopeRef, HeaderRef, WireError, write_envelope};
