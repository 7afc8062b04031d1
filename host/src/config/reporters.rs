//! Flink's metric reporter keys, `metrics.reporter.<name>.<option>`, and
//! `metrics.reporters` (which of them are on): one [`ReporterConfig`] per
//! name. Flink's factory class names are accepted for the kinds.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::ConfigError;
use super::metric_filter::MetricFilter;
use super::units::parse_duration;

/// What a reporter sends its metrics to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReporterKind {
    /// InfluxDB 1.x's `/write` API (Flink's `InfluxdbReporterFactory`).
    InfluxDb,
    /// The Prometheus text at `/metrics` on the REST port (Flink's
    /// `PrometheusReporterFactory`): its filters and excluded variables
    /// shape that page.
    Prometheus,
}

/// The names `factory.class` (or Flink 1.x's `class`) accepts.
const FACTORIES: &[(&str, ReporterKind)] = &[
    ("influxdb", ReporterKind::InfluxDb),
    (
        "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory",
        ReporterKind::InfluxDb,
    ),
    (
        "org.apache.flink.metrics.influxdb.InfluxdbReporter",
        ReporterKind::InfluxDb,
    ),
    ("prometheus", ReporterKind::Prometheus),
    (
        "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        ReporterKind::Prometheus,
    ),
    (
        "org.apache.flink.metrics.prometheus.PrometheusReporter",
        ReporterKind::Prometheus,
    ),
];

/// The settings of the InfluxDB reporter, with Flink's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfluxSettings {
    /// `scheme`: `http` or `https`.
    pub scheme: String,
    /// `host` (required).
    pub host: Option<String>,
    /// `port` (8086).
    pub port: u16,
    /// `db` (required).
    pub db: Option<String>,
    /// `username` (with `password`: authenticated writes).
    pub username: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `retentionPolicy` (empty: the database's default).
    pub retention_policy: Option<String>,
    /// `consistency`: `ALL`, `ANY`, `ONE` or `QUORUM` (ONE).
    pub consistency: String,
    /// `connectTimeout` (10 s).
    pub connect_timeout: Duration,
    /// `writeTimeout` (10 s).
    pub write_timeout: Duration,
}

impl Default for InfluxSettings {
    fn default() -> Self {
        InfluxSettings {
            scheme: "http".into(),
            host: None,
            port: 8086,
            db: None,
            username: None,
            password: None,
            retention_policy: None,
            consistency: "ONE".into(),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// One reporter: `metrics.reporter.<name>.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterConfig {
    /// `factory.class` (alias `class`).
    pub kind: Option<ReporterKind>,
    /// `interval` (10 s): how often a push reporter sends.
    pub interval: Duration,
    /// `scope.variables.excludes`: variables (`job_id` or `<job_id>`) left
    /// out of tags and labels.
    pub excluded_variables: Vec<String>,
    /// `filter.includes` and `filter.excludes`.
    pub filter: MetricFilter,
    /// The InfluxDB options.
    pub influx: InfluxSettings,
    /// The filter texts as written, so that either side may be set first.
    filter_text: (Option<String>, Option<String>),
}

impl Default for ReporterConfig {
    fn default() -> Self {
        ReporterConfig {
            kind: None,
            interval: Duration::from_secs(10),
            excluded_variables: Vec::new(),
            filter: MetricFilter::default(),
            influx: InfluxSettings::default(),
            filter_text: (None, None),
        }
    }
}

/// The reporters of a configuration, by name, and which are on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reporters {
    /// Every `metrics.reporter.<name>` configured.
    pub by_name: BTreeMap<String, ReporterConfig>,
    /// `metrics.reporters`: the names that are on (all if unset).
    pub enabled: Option<Vec<String>>,
}

impl Reporters {
    /// The reporters that are on, by name.
    pub fn active(&self) -> impl Iterator<Item = (&String, &ReporterConfig)> {
        self.by_name.iter().filter(|(n, _)| {
            self.enabled
                .as_ref()
                .is_none_or(|on| on.iter().any(|e| e == *n))
        })
    }

    /// Checks that each reporter that is on has what it needs: a kind,
    /// and for InfluxDB a host and a database (Flink's messages).
    /// The error names the key that is missing.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (name, r) in self.active() {
            let missing = |k: &str, message: &str| ConfigError::BadValue {
                key: format!("metrics.reporter.{name}.{k}"),
                message: message.to_owned(),
            };
            match r.kind {
                None => {
                    return Err(missing(
                        "factory.class",
                        "is not set: influxdb or prometheus (or Flink's factory class names)",
                    ));
                }
                Some(ReporterKind::InfluxDb) if r.influx.host.is_none() => {
                    return Err(missing("host", "'host' configuration option is not set"));
                }
                Some(ReporterKind::InfluxDb) if r.influx.db.is_none() => {
                    return Err(missing("db", "'db' configuration option is not set"));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Whether `key` is a reporter key.
pub(super) fn is_reporter_key(key: &str) -> bool {
    key == "metrics.reporters" || key.starts_with("metrics.reporter.")
}

/// Applies one reporter key; the error says what is wrong with the value.
pub(super) fn set(reporters: &mut Reporters, key: &str, v: &str) -> Result<(), String> {
    if key == "metrics.reporters" {
        let names: Vec<String> = v
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        reporters.enabled = Some(names);
        return Ok(());
    }
    let rest = key.strip_prefix("metrics.reporter.").unwrap_or(key);
    let (name, option) = rest
        .split_once('.')
        .ok_or_else(|| "name the option: metrics.reporter.<name>.<option>".to_owned())?;
    let r = reporters.by_name.entry(name.to_owned()).or_default();
    set_option(r, option, v.trim())
}

fn set_option(r: &mut ReporterConfig, option: &str, v: &str) -> Result<(), String> {
    let text = || Some(v.to_owned()).filter(|s| !s.is_empty());
    let i = &mut r.influx;
    match option {
        "factory.class" | "class" => {
            let kind = FACTORIES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(v))
                .map(|(_, k)| *k)
                .ok_or_else(|| format!("{v:?} is not influxdb or prometheus (or Flink's factory class names for them)"))?;
            r.kind = Some(kind);
        }
        "interval" => r.interval = positive(v)?,
        "scope.variables.excludes" => {
            r.excluded_variables = v
                .split(';')
                .map(|s| {
                    s.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned()
                })
                .filter(|s| !s.is_empty())
                .collect();
        }
        "filter.includes" | "filter.excludes" => {
            if option == "filter.includes" {
                r.filter_text.0 = text();
            } else {
                r.filter_text.1 = text();
            }
            let (inc, exc) = &r.filter_text;
            r.filter = MetricFilter::parse(inc.as_deref(), exc.as_deref())?;
        }
        "scheme" => match v.to_ascii_lowercase().as_str() {
            s @ ("http" | "https") => i.scheme = s.to_owned(),
            _ => return Err(format!("{v:?} is not http or https")),
        },
        "host" => i.host = text(),
        "port" => {
            i.port = v
                .parse()
                .map_err(|_| format!("{v:?} is not a port number"))?;
        }
        "db" => i.db = text(),
        "username" => i.username = text(),
        "password" => i.password = text(),
        "retentionPolicy" => i.retention_policy = text(),
        "consistency" => match v.to_ascii_uppercase().as_str() {
            s @ ("ALL" | "ANY" | "ONE" | "QUORUM") => i.consistency = s.to_owned(),
            _ => return Err(format!("{v:?} is not ALL, ANY, ONE or QUORUM")),
        },
        "connectTimeout" => i.connect_timeout = positive(v)?,
        "writeTimeout" => i.write_timeout = positive(v)?,
        "scope.variables.additional" | "scope.delimiter" => {
            tracing::warn!("metrics reporter option {option} is accepted and ignored");
        }
        _ => {
            return Err(format!(
                "unknown reporter option `{option}` (known: factory.class, interval, scope.variables.excludes, filter.includes, filter.excludes, and for influxdb scheme, host, port, db, username, password, retentionPolicy, consistency, connectTimeout, writeTimeout)"
            ));
        }
    }
    Ok(())
}

/// A duration above zero; a bare number is milliseconds, as Flink's
/// reporter timeouts are written.
fn positive(v: &str) -> Result<Duration, String> {
    let d = parse_duration(v)?;
    if d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn configured(lines: &[(&str, &str)]) -> Result<Config, String> {
        let mut c = Config::default();
        for (k, v) in lines {
            c.set(k, v).map_err(|e| e.to_string())?;
        }
        c.reporters.check().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn flinks_influxdb_reporter_block_configures_one_reporter() {
        let c = configured(&[
            (
                "metrics.reporter.influxdb.factory.class",
                "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory",
            ),
            ("metrics.reporter.influxdb.host", "localhost"),
            ("metrics.reporter.influxdb.port", "8086"),
            ("metrics.reporter.influxdb.db", "flink"),
            ("metrics.reporter.influxdb.consistency", "ANY"),
            ("metrics.reporter.influxdb.connectTimeout", "60000"),
            ("metrics.reporter.influxdb.interval", "60 SECONDS"),
            (
                "metrics.reporter.influxdb.scope.variables.excludes",
                "<task_attempt_id>;tm_id",
            ),
            (
                "metrics.reporter.influxdb.filter.excludes",
                "jobmanager.job:numRestarts",
            ),
        ])
        .expect("valid");
        let r = &c.reporters.by_name["influxdb"];
        assert_eq!(r.kind, Some(ReporterKind::InfluxDb));
        assert_eq!(r.interval, Duration::from_secs(60));
        assert_eq!(r.influx.connect_timeout, Duration::from_secs(60));
        assert_eq!(r.influx.consistency, "ANY");
        assert_eq!(r.excluded_variables, ["task_attempt_id", "tm_id"]);
        assert_eq!(c.reporters.active().count(), 1);
    }

    #[test]
    fn incomplete_or_unknown_reporter_settings_are_refused_with_flinks_words() {
        let err = configured(&[
            ("metrics.reporter.x.factory.class", "influxdb"),
            ("metrics.reporter.x.host", "h"),
        ])
        .expect_err("no db");
        assert!(
            err.contains("'db' configuration option is not set"),
            "{err}"
        );
        let err = configured(&[("metrics.reporter.x.host", "h")]).expect_err("no class");
        assert!(
            err.contains("metrics.reporter.x.factory.class`: is not set"),
            "{err}"
        );
        let err = configured(&[("metrics.reporter.x.factory.class", "jmx")]).expect_err("jmx");
        assert!(err.contains("is not influxdb or prometheus"), "{err}");
        let err = configured(&[("metrics.reporter.x.hots", "h")]).expect_err("typo");
        assert!(err.contains("unknown reporter option `hots`"), "{err}");
        let err = configured(&[("metrics.reporter.x.filter.includes", "a:b:gauge:d")])
            .expect_err("filter");
        assert!(err.contains("is not <scope>"), "{err}");
        // metrics.reporters turns the others off.
        let c = configured(&[
            ("metrics.reporter.off.host", "h"),
            ("metrics.reporter.prom.factory.class", "prometheus"),
            ("metrics.reporters", "prom"),
        ])
        .expect("the incomplete one is off");
        assert_eq!(
            c.reporters
                .active()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["prom"]
        );
    }
}
