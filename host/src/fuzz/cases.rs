//! The fuzz cases, one per parser of outside input.

use std::path::Path;

use weir_wire::{
    BatchBuilder, BatchReader, SlotValuesBuilder, SlotValuesReader, UpdatesBuilder, UpdatesReader,
    count_elements,
};

use super::mutate::fuzz;
use crate::channel::Batch;
use crate::checkpoint::channel_state::{ChannelState, replay_for};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::config::Config;
use crate::keygroup::{KeyGroupRange, key_group};
use crate::spec::graph::JobGraph;
use crate::spec::{JobSpec, Partitioning, SpecFormat, validate};
use crate::state::snapshot::{self, checksum};
use crate::state::{HashMapBackend, KeyedStateBackend, StateKey, StateKind};
use crate::timers::TimerService;

const CASES: usize = 20_000;

const SPEC_YAML: &str = r#"
name: fuzz
config:
  execution.checkpointing.interval: 1s
  weir.batch.size: "64"
sources:
  - { id: gen, type: datagen, count: 10, keys: 3, rate: 5, parallelism: 2, out-of-orderness-ms: 5 }
  - { id: lines, type: file, path: in.txt, format: csv, idle-timeout-ms: 100 }
operators:
  - { id: count, uid: count, wasm: count.wasm, parallelism: 2, config: { window: session, gap-ms: "10" } }
sinks:
  - { id: out, type: file, path: out }
edges:
  - { from: gen, to: count, partition: hash }
  - { from: lines, to: count, partition: rebalance, input: 1 }
  - { from: count, to: out }
  - { from: count, to: out, side-output: late }
"#;

#[test]
fn job_specs_in_yaml_and_json_never_panic() {
    let json = serde_json::to_string(
        &serde_yaml_ng::from_str::<serde_json::Value>(SPEC_YAML).expect("yaml"),
    )
    .expect("json");
    let base = Config::default();
    let dir = Path::new("/nonexistent-weir-fuzz");
    for (name, text, format) in [
        ("spec yaml", SPEC_YAML.to_owned(), SpecFormat::Yaml),
        ("spec json", json, SpecFormat::Json),
    ] {
        fuzz(name, &[text.into_bytes()], CASES, |bytes| {
            let text = String::from_utf8_lossy(bytes);
            if let Ok(spec) = JobSpec::parse(&text, format) {
                let _: Result<JobGraph, _> = validate(&spec, &base, dir, dir);
            }
        });
    }
}

#[test]
fn metadata_files_never_panic_even_with_a_valid_checksum() {
    let m = CheckpointMetadata::one_subtask(7, "hashmap", "count", None, None);
    let valid = m.encode().expect("encode");
    fuzz("_metadata", std::slice::from_ref(&valid), CASES, |bytes| {
        let _ = CheckpointMetadata::decode(bytes);
    });
    // Mutations of the body under a recomputed checksum reach the JSON.
    let text = String::from_utf8(valid).expect("utf8");
    let body = text.lines().skip(1).take_while(|l| !l.starts_with("xxh3 "));
    let body: String = body.map(|l| format!("{l}\n")).collect();
    fuzz("_metadata body", &[body.into_bytes()], CASES, |bytes| {
        let mut file = b"WEIR-CHECKPOINT-METADATA 4\n".to_vec();
        file.extend_from_slice(bytes);
        if !file.ends_with(b"\n") {
            file.push(b'\n');
        }
        let sum = checksum(&file);
        file.extend_from_slice(format!("xxh3 {sum}\n").as_bytes());
        let _ = CheckpointMetadata::decode(&file);
    });
}

/// A keyed snapshot of three states with entries and a timer.
fn keyed_snapshot() -> snapshot::KeyedSnapshot {
    let mp = 16;
    let mut b = HashMapBackend::new(KeyGroupRange { start: 0, end: 15 });
    let v = b.register("v", StateKind::Value).expect("register");
    let l = b.register("l", StateKind::List).expect("register");
    let m = b.register("m", StateKind::Map).expect("register");
    for key in [b"a".as_slice(), b"bb", b"ccc"] {
        let at = StateKey {
            key_group: key_group(key, mp),
            key,
            namespace: b"ns",
        };
        b.value_put(v, at, b"1").expect("put");
        b.list_add(l, at, b"x").expect("add");
        b.map_put(m, at, b"k", b"y").expect("put");
    }
    snapshot::encode(&b, &TimerService::default(), mp)
}

#[test]
fn keyed_state_files_never_panic_when_their_checksum_matches() {
    let snap = keyed_snapshot();
    let template = snap.handle("f".into());
    fuzz(
        "keyed state",
        std::slice::from_ref(&snap.bytes),
        CASES,
        |bytes| {
            // The handle agrees with the damaged bytes, so the parser itself
            // is what meets them.
            let mut handle = template.clone();
            handle.size = bytes.len() as u64;
            handle.checksum = checksum(bytes);
            let _ = snapshot::read_states(bytes);
            if snapshot::verify(bytes, &handle).is_ok() {
                let mut backend = HashMapBackend::new(KeyGroupRange { start: 0, end: 15 });
                let mut timers = TimerService::default();
                let _ =
                    snapshot::restore_without(bytes, &handle, &mut backend, &mut timers, &|_| {
                        false
                    });
            }
        },
    );
}

#[test]
fn channel_state_files_never_panic_and_replay_what_they_decode() {
    let mut state = ChannelState::for_inputs(
        [(0, Partitioning::Hash), (1, Partitioning::Rebalance)].into_iter(),
    );
    for input in 0..2 {
        let mut b = BatchBuilder::default();
        for k in ["a", "b", "c", "d"] {
            b.push(Some(k.as_bytes()), b"v", Some(3));
        }
        let (data, len) = b.take();
        state.record(input, &Batch { data, len });
    }
    fuzz("channel state", &[state.encode()], CASES, |bytes| {
        if let Ok(decoded) = ChannelState::decode(bytes) {
            let range = KeyGroupRange::for_subtask(128, 3, 1);
            let _ = replay_for(&[(0, decoded)], 2, (1, 3, range), 128, 2);
        }
    });
}

#[test]
fn wire_encodings_never_panic() {
    let mut batch = BatchBuilder::default();
    batch.push(Some(b"key"), b"value", Some(-5));
    batch.push(None, b"", None);
    let (batch, _) = batch.take();
    fuzz("batch", &[batch], CASES, |bytes| {
        let _ = count_elements(bytes);
        for e in BatchReader::new(bytes) {
            if e.is_err() {
                break;
            }
        }
    });
    let mut slots = SlotValuesBuilder::with_buffer(Vec::new());
    slots.push(Some(b"abc"));
    slots.push(None);
    fuzz("slot values", &[slots.into_inner()], CASES, |bytes| {
        let mut r = SlotValuesReader::new(bytes);
        while !r.at_end() {
            if r.next_value().is_err() {
                break;
            }
        }
    });
    let mut updates = UpdatesBuilder::default();
    updates.push(1, 2, Some(b"v"));
    updates.push(3, 0, None);
    fuzz("updates", &[updates.take()], CASES, |bytes| {
        let mut r = UpdatesReader::new(bytes);
        while let Ok(Some(_)) = r.next_update() {}
    });
}
