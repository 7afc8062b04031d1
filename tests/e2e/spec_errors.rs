//! Every kind of bad job spec is refused with an error that names the field
//! and the problem.

use crate::common::{graph, q, tempdir, weir};

fn errors(yaml: &str) -> String {
    let dir = tempdir();
    match graph(yaml, dir.path()) {
        Ok(_) => panic!("spec must be refused:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn spec(operators: &str, edges: &str) -> String {
    format!(
        r#"
name: bad
sources:
  - {{ id: src, type: datagen, count: 10 }}
operators:
{operators}
sinks:
  - {{ id: out, type: discard }}
edges:
{edges}
"#
    )
}

fn op(id: &str, uid: &str, parallelism: u32) -> String {
    format!(
        "  - {{ id: {id}, uid: {uid}, wasm: {}, parallelism: {parallelism} }}\n",
        q(weir_test_guests::COUNT)
    )
}

const CHAIN: &str =
    "  - { from: src, to: a, partition: hash }\n  - { from: a, to: out, partition: rebalance }\n";

#[test]
fn a_good_spec_is_accepted() {
    let dir = tempdir();
    graph(&spec(&op("a", "a-uid", 2), CHAIN), dir.path()).expect("valid");
}

#[test]
fn an_unknown_reference_names_the_edge_field() {
    let e = errors(&spec(
        &op("a", "a-uid", 1),
        "  - { from: src, to: nope }\n  - { from: a, to: out }\n",
    ));
    assert!(e.contains("edges[0].to: unknown node `nope`"), "{e}");
}

#[test]
fn a_cycle_names_its_nodes() {
    let ops = format!("{}{}", op("a", "a-uid", 1), op("b", "b-uid", 1));
    let edges = "  - { from: src, to: a }\n  - { from: a, to: b }\n  - { from: b, to: a }\n  - { from: b, to: out }\n";
    let e = errors(&spec(&ops, edges));
    assert!(e.contains("edges: cycle through a -> b"), "{e}");
}

#[test]
fn a_missing_uid_is_refused() {
    let ops = format!(
        "  - {{ id: a, wasm: {}, parallelism: 1 }}\n",
        q(weir_test_guests::COUNT)
    );
    let e = errors(&spec(&ops, CHAIN));
    assert!(e.contains("operators[0]: missing uid"), "{e}");
}

#[test]
fn a_duplicate_uid_names_both_places() {
    let ops = format!("{}{}", op("a", "same", 1), op("b", "same", 1));
    let edges = "  - { from: src, to: a }\n  - { from: a, to: b }\n  - { from: b, to: out }\n";
    let e = errors(&spec(&ops, edges));
    assert!(
        e.contains("operators[1].uid: duplicate uid `same` (also at operators[0].uid)"),
        "{e}"
    );
}

#[test]
fn parallelism_zero_is_refused() {
    let e = errors(&spec(&op("a", "a-uid", 0), CHAIN));
    assert!(
        e.contains("operators[0].parallelism: parallelism must be at least 1"),
        "{e}"
    );
}

#[test]
fn a_forward_edge_between_different_parallelisms_is_refused() {
    let edges = "  - { from: src, to: a, partition: forward }\n  - { from: a, to: out, partition: rebalance }\n";
    let e = errors(&spec(&op("a", "a-uid", 2), edges));
    assert!(
        e.contains(
            "edges[0].partition: forward edge from `src` (parallelism 1) to `a` (parallelism 2)"
        ),
        "{e}"
    );
}

#[test]
fn a_missing_wasm_file_names_the_path() {
    let ops = "  - { id: a, uid: a-uid, wasm: /no/such/op.wasm }\n";
    let e = errors(&spec(ops, CHAIN));
    assert!(
        e.contains("operators[0].wasm: wasm file /no/such/op.wasm does not exist"),
        "{e}"
    );
}

#[test]
fn an_unknown_field_is_refused_with_its_path() {
    let ops = format!(
        "  - {{ id: a, uid: a-uid, wasm: {}, paralelism: 2 }}\n",
        q(weir_test_guests::COUNT)
    );
    let e = errors(&spec(&ops, CHAIN));
    assert!(
        e.contains("operators[0]: unknown field `paralelism`"),
        "{e}"
    );
}

#[test]
fn an_unknown_config_key_is_refused() {
    let yaml = spec(&op("a", "a-uid", 1), CHAIN).replace(
        "name: bad\n",
        "name: bad\nconfig:\n  weir.sandbox.memory-limt: 1mb\n",
    );
    let e = errors(&yaml);
    assert!(
        e.contains("config.weir.sandbox.memory-limt: unknown key"),
        "{e}"
    );
    assert!(
        e.contains("did you mean `weir.sandbox.memory-limit`"),
        "{e}"
    );
}

#[test]
fn malformed_yaml_and_json_are_refused() {
    let e = errors("name: [unclosed");
    assert!(!e.is_empty());
    let dir = tempdir();
    let spec = weir::JobSpec::parse("{\"name\": 3}", weir::SpecFormat::Json);
    assert!(spec.is_err());
    drop(dir);
}

#[test]
fn every_problem_is_listed_at_once() {
    let ops = format!("{}{}", op("a", "same", 0), op("b", "same", 1));
    let e = errors(&spec(&ops, "  - { from: src, to: zzz }\n"));
    for part in [
        "parallelism must be at least 1",
        "duplicate uid",
        "unknown node `zzz`",
    ] {
        assert!(e.contains(part), "missing {part:?} in {e}");
    }
}

#[test]
fn weir_validate_refuses_a_bad_spec_with_exit_code_2_and_accepts_a_good_one() {
    let dir = tempdir();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, spec(&op("a", "a-uid", 0), CHAIN)).expect("write");
    let out = weir().arg("validate").arg(&bad).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("operators[0].parallelism"), "{stderr}");

    let missing = dir.path().join("missing.yaml");
    let ops = format!(
        "  - {{ id: a, uid: a-uid, wasm: {} }}\n",
        q(weir_test_guests::MISSING_EXPORT)
    );
    std::fs::write(&missing, spec(&ops, CHAIN)).expect("write");
    let out = weir().arg("validate").arg(&missing).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing export(s) weir:operator/handler@0.2.0#process"),
        "{stderr}"
    );

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, spec(&op("a", "a-uid", 2), CHAIN)).expect("write");
    let out = weir().arg("validate").arg(&good).output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn second_inputs_must_be_well_formed() {
    // Into a sink, an input that does not exist, and a join with one keyed
    // and one unkeyed side.
    let e = errors(&spec(
        &op("a", "a-uid", 1),
        "  - { from: src, to: a, partition: hash }\n  - { from: a, to: out, input: 2 }\n",
    ));
    assert!(
        e.contains(
            "edges[1].input: `out` has one input; only a two-input operator takes `input: 2`"
        ),
        "{e}"
    );
    let e = errors(&spec(
        &op("a", "a-uid", 1),
        "  - { from: src, to: a, input: 3 }\n  - { from: a, to: out }\n",
    ));
    assert!(e.contains("edges[0].input: input 3 does not exist"), "{e}");
    let ops = format!("{}{}", op("a", "a-uid", 1), op("b", "b-uid", 1));
    let e = errors(&spec(
        &ops,
        "  - { from: src, to: a, partition: hash }\n  - { from: src, to: b, partition: hash }\n  - { from: a, to: out }\n  - { from: b, to: a, input: 2 }\n",
    ));
    assert!(
        e.contains("both inputs of `a` must be partitioned by key"),
        "{e}"
    );
}
