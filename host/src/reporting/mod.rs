//! Metric reporters, as Flink's: the metrics of running jobs with Flink's
//! scopes, names and variables ([`point`]), selected by a reporter's
//! filters and excluded variables, then written to InfluxDB 1.x
//! ([`influxdb`], in the [`line_protocol`]) or as the Prometheus text that
//! `/metrics` serves ([`exposition`]).
//!
//! Above the session (it reads the jobs' live counters), below the
//! server, which starts the configured reporters and serves `/metrics`.

pub mod exposition;
pub mod influxdb;
pub mod line_protocol;
pub mod point;

use crate::config::ReporterConfig;
use point::Point;

/// The points a reporter with `config` reports: those its filters accept,
/// without the variables it excludes.
pub fn select(points: Vec<Point>, config: &ReporterConfig) -> Vec<Point> {
    points
        .into_iter()
        .filter(|p| config.filter.accepts(p.scope, &p.name, p.value.kind()))
        .map(|mut p| {
            p.variables
                .retain(|(k, _)| !config.excluded_variables.iter().any(|e| e == k));
            p
        })
        .collect()
}

pub use crate::machine::host_name;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use point::{JOB, OPERATOR, Value};

    #[test]
    fn a_reporter_keeps_what_its_filters_accept_without_excluded_variables() {
        let mut c = Config::default();
        for (k, v) in [
            ("metrics.reporter.p.factory.class", "prometheus"),
            ("metrics.reporter.p.filter.includes", "*:num*"),
            ("metrics.reporter.p.filter.excludes", "*.operator:*:counter"),
            (
                "metrics.reporter.p.scope.variables.excludes",
                "<host>;job_name",
            ),
        ] {
            c.set(k, v).expect("set");
        }
        let vars = vec![
            ("host", "h".to_owned()),
            ("job_id", "j".to_owned()),
            ("job_name", "n".to_owned()),
        ];
        let p = |scope, name: &str, value| Point {
            scope,
            name: name.into(),
            variables: vars.clone(),
            value,
        };
        let kept = select(
            vec![
                p(JOB, "numRestarts", Value::Number(0.0)),
                p(JOB, "lastCheckpointDuration", Value::Number(1.0)),
                p(OPERATOR, "numRecordsIn", Value::Count(3)),
            ],
            &c.reporters.by_name["p"],
        );
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].name, "numRestarts");
        assert_eq!(kept[0].variables, vec![("job_id", "j".to_owned())]);
    }
}
