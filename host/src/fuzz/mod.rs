//! Bounded fuzzing of the parsers that take bytes from outside (tests
//! only): the job spec (YAML and JSON), `_metadata`, the keyed-state file,
//! channel-state files, the batch wire format and the guest boundary's
//! slot and update encodings. Each gets valid inputs mutated at random
//! (bytes flipped, cut, duplicated, spliced) and random bytes, for a fixed
//! number of cases with a printed seed; every case must return (an error
//! or a value), never panic, and the whole run stays within seconds, so a
//! hang or an unbounded allocation fails the suite too.

#![cfg(test)]

mod cases;
mod mutate;
