//! The exceptions a job detail shows: the failures that restarted it, the
//! one it ended with, and the records the dead-letter quarantine took.

use serde_json::{Value, json};

use crate::runtime::LiveJob;
use crate::session::Roots;

/// The exceptions of a job as its detail shows them: the failures that
/// restarted it, the one that ended it, and the records quarantined.
pub fn exceptions_json(live: &LiveJob, ended: &[(i64, String)], roots: &Roots) -> Vec<Value> {
    let quarantined = live.quarantined.iter().map(|r| {
        let (key, value) = (r.key.as_deref(), r.value.as_deref());
        let m = format!(
            "record quarantined: operator `{}`, subtask {}: {} (key {key:?}, value {value:?}, after {} failures)",
            r.operator,
            r.subtask + 1,
            r.message,
            r.failures
        );
        json!({ "timestamp": r.time, "exception": roots.redact(&m), "restarted": false, "quarantined": true })
    });
    live.exceptions
        .iter()
        .map(|(t, m)| (t, m, true))
        .chain(ended.iter().map(|(t, m)| (t, m, false)))
        .map(|(t, m, restarted)| {
            json!({
                "timestamp": t,
                "exception": roots.redact(m),
                "restarted": restarted,
            })
        })
        .chain(quarantined)
        .collect()
}
