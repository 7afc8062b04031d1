//! What a source spec must hold for its type (`datagen`, `file`, `kafka`):
//! the fields each type needs and the fields it does not take.

use super::error::SpecError;
use super::model::{SourceSpec, SourceType};

/// Adds a problem for each field source `s` at `field` lacks or should not
/// have for its type.
pub(super) fn check_source(field: &str, s: &SourceSpec, errors: &mut Vec<SpecError>) {
    // Any source may be held to a rate.
    if s.rate == Some(0) {
        errors.push(SpecError::Invalid {
            field: format!("{field}.rate"),
            message: "must be at least 1 (leave it out for no limit)".into(),
        });
    }
    let mut not_for = |name: &str, present: bool| {
        if present {
            errors.push(SpecError::Invalid {
                field: format!("{field}.{name}"),
                message: format!("not a setting of a {} source", type_name(s.source_type)),
            });
        }
    };
    if s.source_type != SourceType::Kafka {
        not_for("kafka", s.kafka.is_some());
    }
    match s.source_type {
        SourceType::Kafka => {
            for (name, present) in [
                ("count", s.count.is_some()),
                ("keys", s.keys.is_some()),
                ("timestamp-step-ms", s.timestamp_step_ms.is_some()),
                ("latency-stamps", s.latency_stamps.is_some()),
                ("sequential-keys", s.sequential_keys.is_some()),
                ("fill-keys", s.fill_keys.is_some()),
                ("path", s.path.is_some()),
                ("paths", s.paths.is_some()),
                ("format", s.format.is_some()),
            ] {
                not_for(name, present);
            }
            match &s.kafka {
                Some(k) => super::kafka::check_source(field, k, errors),
                None => errors.push(SpecError::Invalid {
                    field: format!("{field}.kafka"),
                    message: "a kafka source needs its `kafka` block (bootstrap-servers, topic)"
                        .into(),
                }),
            }
        }
        SourceType::Datagen => {
            not_for("path", s.path.is_some());
            not_for("paths", s.paths.is_some());
            not_for("format", s.format.is_some());
            check_datagen(field, s, errors);
        }
        SourceType::File => {
            not_for("count", s.count.is_some());
            not_for("keys", s.keys.is_some());
            not_for("timestamp-step-ms", s.timestamp_step_ms.is_some());
            not_for("latency-stamps", s.latency_stamps.is_some());
            not_for("sequential-keys", s.sequential_keys.is_some());
            not_for("fill-keys", s.fill_keys.is_some());
            let n = s.path.iter().count() + s.paths.as_ref().map_or(0, Vec::len);
            if n == 0 {
                errors.push(SpecError::Invalid {
                    field: format!("{field}.path"),
                    message: "a file source needs `path` or `paths`".into(),
                });
            }
        }
    }
}

/// The checks of a datagen source's own settings.
fn check_datagen(field: &str, s: &SourceSpec, errors: &mut Vec<SpecError>) {
    if s.count.is_none() {
        errors.push(SpecError::Invalid {
            field: format!("{field}.count"),
            message: "a datagen source needs `count`".into(),
        });
    }
    if s.keys == Some(0) {
        errors.push(SpecError::Invalid {
            field: format!("{field}.keys"),
            message: "must be at least 1".into(),
        });
    }
    if s.latency_stamps == Some(true) && s.timestamp_step_ms.is_some() {
        errors.push(SpecError::Invalid {
            field: format!("{field}.latency-stamps"),
            message:
                "a record has one timestamp: `latency-stamps` or `timestamp-step-ms`, not both"
                    .into(),
        });
    }
}

fn type_name(t: SourceType) -> &'static str {
    match t {
        SourceType::Datagen => "datagen",
        SourceType::File => "file",
        SourceType::Kafka => "kafka",
    }
}
