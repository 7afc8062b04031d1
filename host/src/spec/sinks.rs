//! What a sink spec must hold for its type (`stdout`, `file`, `discard`,
//! `kafka`): the fields each type needs and the fields it does not take.

use super::error::SpecError;
use super::model::{SinkSpec, SinkType};

/// Adds a problem for each field sink `s` at `field` lacks or should not
/// have for its type.
pub(super) fn check_sink(field: &str, s: &SinkSpec, errors: &mut Vec<SpecError>) {
    let mut bad = |name: &str, message: &str| {
        errors.push(SpecError::Invalid {
            field: format!("{field}.{name}"),
            message: message.to_owned(),
        });
    };
    if s.sink_type == SinkType::File && s.path.is_none() {
        bad("path", "a file sink needs `path` (the output folder)");
    }
    if s.sink_type != SinkType::File && s.path.is_some() {
        bad("path", "only a file sink takes `path`");
    }
    match (s.sink_type, &s.kafka) {
        (SinkType::Kafka, Some(k)) => super::kafka::check_sink(field, k, errors),
        (SinkType::Kafka, None) => bad(
            "kafka",
            "a kafka sink needs its `kafka` block (bootstrap-servers, topic)",
        ),
        (_, Some(_)) => bad("kafka", "only a kafka sink takes `kafka`"),
        (_, None) => {}
    }
}

/// Adds a problem for each exactly-once Kafka sink that shares its
/// transactional-id prefix with an earlier one of the job: their
/// producers would fence each other.
pub(super) fn check_prefixes(sinks: &[SinkSpec], errors: &mut Vec<SpecError>) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, s) in sinks.iter().enumerate() {
        let Some(prefix) = s
            .kafka
            .as_ref()
            .filter(|k| k.is_exactly_once())
            .and_then(|k| k.transactional_id_prefix.as_deref())
        else {
            continue;
        };
        if seen.contains(&prefix) {
            errors.push(SpecError::Invalid {
                field: format!("sinks[{i}].kafka.transactional-id-prefix"),
                message: format!("`{prefix}` is the prefix of another sink of the job"),
            });
        }
        seen.push(prefix);
    }
}
