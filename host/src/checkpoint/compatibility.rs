//! Whether a snapshot's state fits a job, operator by operator: the
//! component that wrote each operator's state and the states it declared
//! (recorded in `_metadata`) against the job's component and the states
//! it declares now. Pure: the runtime finds what the new components
//! declare; this decides.
//!
//! Per uid: **matched** (same component), **changed-component** (another
//! component declaring the same states: a new version of the operator),
//! **dropped** (state the job has no place for, skipped with `-n`),
//! **new** (an operator without state in the snapshot) or **refused** (a
//! state whose kind or time-to-live changed, or that the new component no
//! longer declares, without `-n`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::metadata::{CheckpointMetadata, OperatorSnapshot};
use crate::state::DeclaredState;

/// An operator of the job being started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOperator {
    /// Its uid.
    pub uid: String,
    /// SHA-256 of its component (WebAssembly operators).
    pub sha256: Option<String>,
    /// The WIT interface its component was checked against.
    pub world: Option<String>,
    /// The keyed states its component declares when opened (`None`: not
    /// known, e.g. not a WebAssembly operator).
    pub states: Option<Vec<DeclaredState>>,
}

/// What happens to one uid's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UidVerdict {
    /// The operator uid.
    pub uid: String,
    /// `matched`, `changed-component`, `dropped`, `new` or `refused`.
    pub verdict: &'static str,
    /// The component that wrote the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_sha256: Option<String>,
    /// The job's component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_sha256: Option<String>,
    /// States in the snapshot that the job drops (with `-n`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_states: Vec<String>,
    /// States the job declares that the snapshot does not hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_states: Vec<String>,
    /// Why it is refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What changed without being refused (the WIT world).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The verdicts for every uid of the snapshot and of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompatibilityReport {
    /// One verdict per uid, snapshot order first.
    pub operators: Vec<UidVerdict>,
    /// Whether a restore would be refused.
    pub refused: bool,
}

impl CompatibilityReport {
    /// Per uid, the states the job drops.
    pub fn dropped_states(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.operators
            .iter()
            .filter(|v| !v.dropped_states.is_empty())
            .map(|v| (v.uid.clone(), v.dropped_states.iter().cloned().collect()))
            .collect()
    }

    /// Every problem, one line each, naming its uid.
    pub fn problems(&self) -> Vec<String> {
        self.operators
            .iter()
            .flat_map(|v| v.problems.iter().map(move |p| format!("`{}`: {p}", v.uid)))
            .collect()
    }
}

impl fmt::Display for CompatibilityReport {
    /// One line per uid: `uid  verdict  details`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for v in &self.operators {
            write!(f, "  {:<20} {:<18}", v.uid, v.verdict)?;
            if let (Some(old), Some(new)) = (&v.old_sha256, &v.new_sha256)
                && old != new
            {
                write!(f, " component {} -> {}", short(old), short(new))?;
            }
            if !v.dropped_states.is_empty() {
                write!(f, " drops state {}", v.dropped_states.join(", "))?;
            }
            if !v.new_states.is_empty() {
                write!(f, " new state {}", v.new_states.join(", "))?;
            }
            for p in v.problems.iter().chain(&v.notes) {
                write!(f, "\n  {:<20}   {p}", "")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The first 12 hex digits of a hash, for people.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Whether an operator's snapshot holds any state.
pub(super) fn has_state(o: &OperatorSnapshot) -> bool {
    o.subtasks.iter().any(|s| {
        s.keyed.as_ref().is_some_and(|k| !k.key_groups.is_empty())
            || s.incremental.as_ref().is_some_and(|h| h.entries > 0)
            || !s.operator_state.is_empty()
            || s.channel.as_ref().is_some_and(|c| c.elements > 0)
    })
}

/// Checks `job`'s operators against the snapshot `metadata`;
/// `allow_non_restored` (`-n`) drops state the job has no place for
/// instead of refusing.
pub fn check(
    metadata: &CheckpointMetadata,
    job: &[JobOperator],
    allow_non_restored: bool,
) -> CompatibilityReport {
    let mut operators = Vec::new();
    for old in &metadata.operators {
        let Some(new) = job.iter().find(|j| j.uid == old.uid) else {
            if has_state(old) {
                let mut v = verdict(&old.uid, "dropped", old, None);
                if !allow_non_restored {
                    v.verdict = "refused";
                    v.problems.push(
                        "the job has no operator with this uid; pass -n (--allow-non-restored-state) to drop its state"
                            .into(),
                    );
                }
                operators.push(v);
            }
            continue;
        };
        operators.push(compare(old, new, allow_non_restored, is_native(old)));
    }
    for new in job {
        if metadata.operator(&new.uid).is_none() {
            let mut v = verdict(&new.uid, "new", &empty(&new.uid), Some(new));
            v.new_states = new
                .states
                .iter()
                .flatten()
                .map(|s| s.name.clone())
                .collect();
            operators.push(v);
        }
    }
    let refused = operators.iter().any(|v| v.verdict == "refused");
    CompatibilityReport { operators, refused }
}

/// Whether the operator's keyed state is in a backend's own files.
fn is_native(o: &OperatorSnapshot) -> bool {
    o.subtasks.iter().any(|s| s.incremental.is_some())
}

fn empty(uid: &str) -> OperatorSnapshot {
    OperatorSnapshot {
        uid: uid.to_owned(),
        node: uid.to_owned(),
        parallelism: 0,
        subtasks: Vec::new(),
        component: None,
    }
}

fn verdict(
    uid: &str,
    what: &'static str,
    old: &OperatorSnapshot,
    new: Option<&JobOperator>,
) -> UidVerdict {
    UidVerdict {
        uid: uid.to_owned(),
        verdict: what,
        old_sha256: old.component.as_ref().map(|c| c.sha256.clone()),
        new_sha256: new.and_then(|n| n.sha256.clone()),
        dropped_states: Vec::new(),
        new_states: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    }
}

/// One uid present in both: its states, one by one.
fn compare(
    old: &OperatorSnapshot,
    new: &JobOperator,
    allow_non_restored: bool,
    native: bool,
) -> UidVerdict {
    let mut v = verdict(&old.uid, "matched", old, Some(new));
    let (Some(recorded), Some(declared)) = (&old.component, &new.states) else {
        // An older snapshot (no identity) or an operator that declares
        // nothing we can know: the restore itself checks what it can.
        return v;
    };
    for s in &recorded.states {
        match declared.iter().find(|d| d.name == s.name) {
            None if allow_non_restored && native => v.problems.push(format!(
                "state `{}` is no longer declared, and this snapshot holds it in the backend's own files; take a canonical savepoint to drop it",
                s.name
            )),
            None if allow_non_restored => v.dropped_states.push(s.name.clone()),
            None => v.problems.push(format!(
                "state `{}` ({}) is not declared by the new component; pass -n (--allow-non-restored-state) to drop it",
                s.name, s.kind
            )),
            Some(d) if d.kind != s.kind => v.problems.push(format!(
                "state `{}` was a {} state and is declared as a {} state now",
                s.name, s.kind, d.kind
            )),
            Some(d) if d.ttl_ms != s.ttl_ms => v.problems.push(format!(
                "state `{}` had time-to-live {} and is declared with {} now",
                s.name,
                ttl(s.ttl_ms),
                ttl(d.ttl_ms)
            )),
            Some(_) => {}
        }
    }
    v.new_states = declared
        .iter()
        .filter(|d| !recorded.states.iter().any(|s| s.name == d.name))
        .map(|d| d.name.clone())
        .collect();
    // A component built against another version of the world loads only
    // if this host accepts it; its states decide, but the change is shown.
    let world_changed = new.world.as_ref().is_some_and(|w| *w != recorded.world);
    if let (true, Some(w)) = (world_changed, &new.world) {
        v.notes.push(format!("WIT world {} -> {w}", recorded.world));
    }
    v.verdict = if !v.problems.is_empty() {
        "refused"
    } else if world_changed || new.sha256.as_ref() != Some(&recorded.sha256) {
        "changed-component"
    } else {
        "matched"
    };
    v
}

fn ttl(ms: Option<u64>) -> String {
    ms.map_or_else(|| "none".to_owned(), |ms| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::ComponentIdentity;
    use crate::state::StateKind;

    fn state(name: &str, kind: StateKind, ttl_ms: Option<u64>) -> DeclaredState {
        DeclaredState {
            name: name.into(),
            kind,
            ttl_ms,
        }
    }

    fn snapshot(states: Vec<DeclaredState>) -> CheckpointMetadata {
        let keyed = crate::state::snapshot::KeyedStateHandle {
            file: "f".into(),
            size: 1,
            checksum: String::new(),
            key_group_range: (0, 127),
            key_groups: vec![crate::state::snapshot::KeyGroupOffset {
                key_group: 0,
                offset: 0,
                len: 1,
            }],
            ttl_states: Vec::new(),
        };
        let mut m = CheckpointMetadata::one_subtask(1, "hashmap", "count", Some(keyed), None);
        m.operators[0].component = Some(ComponentIdentity {
            sha256: "aaaa".into(),
            world: "weir:operator/handler@0.2.0".into(),
            states,
        });
        m
    }

    fn job(sha: &str, states: Vec<DeclaredState>) -> Vec<JobOperator> {
        vec![JobOperator {
            uid: "count".into(),
            sha256: Some(sha.into()),
            world: Some("weir:operator/handler@0.2.0".into()),
            states: Some(states),
        }]
    }

    #[test]
    fn same_states_restore_and_a_new_component_is_named() {
        let counts = vec![state("counts", StateKind::Value, None)];
        let m = snapshot(counts.clone());
        let r = check(&m, &job("aaaa", counts.clone()), false);
        assert!(!r.refused);
        assert_eq!(r.operators[0].verdict, "matched");
        let r = check(&m, &job("bbbb", counts), false);
        assert!(!r.refused);
        assert_eq!(r.operators[0].verdict, "changed-component");
        assert!(r.to_string().contains("component aaaa -> bbbb"), "{r}");
        let mut newer = job("aaaa", vec![state("counts", StateKind::Value, None)]);
        newer[0].world = Some("weir:operator/handler@0.3.0".into());
        let r = check(&m, &newer, false);
        assert_eq!(r.operators[0].verdict, "changed-component");
        assert!(
            r.to_string()
                .contains("WIT world weir:operator/handler@0.2.0 -> weir:operator/handler@0.3.0"),
            "{r}"
        );
    }

    #[test]
    fn a_changed_kind_or_ttl_or_a_missing_state_is_refused_naming_it() {
        let m = snapshot(vec![state("counts", StateKind::Value, None)]);
        let r = check(
            &m,
            &job("bbbb", vec![state("counts", StateKind::List, None)]),
            false,
        );
        assert!(r.refused);
        assert_eq!(
            r.problems(),
            vec!["`count`: state `counts` was a value state and is declared as a list state now"]
        );
        let r = check(
            &m,
            &job("bbbb", vec![state("counts", StateKind::Value, Some(5))]),
            true,
        );
        assert!(r.refused, "-n does not allow a changed time-to-live");
        let r = check(
            &m,
            &job("bbbb", vec![state("other", StateKind::Value, None)]),
            false,
        );
        assert!(r.refused);
        assert!(
            r.problems()[0].contains("not declared"),
            "{:?}",
            r.problems()
        );
        let r = check(
            &m,
            &job("bbbb", vec![state("other", StateKind::Value, None)]),
            true,
        );
        assert!(!r.refused);
        assert_eq!(r.operators[0].dropped_states, vec!["counts"]);
        assert_eq!(r.operators[0].new_states, vec!["other"]);
        assert_eq!(r.dropped_states()["count"].len(), 1);
    }

    #[test]
    fn a_uid_the_job_lacks_is_refused_or_dropped_and_a_new_one_is_listed() {
        let m = snapshot(vec![state("counts", StateKind::Value, None)]);
        let other = vec![JobOperator {
            uid: "sum".into(),
            sha256: None,
            world: None,
            states: None,
        }];
        let r = check(&m, &other, false);
        assert!(r.refused);
        let r = check(&m, &other, true);
        assert!(!r.refused);
        let verdicts: Vec<_> = r
            .operators
            .iter()
            .map(|v| (v.uid.as_str(), v.verdict))
            .collect();
        assert_eq!(verdicts, vec![("count", "dropped"), ("sum", "new")]);
    }
}
