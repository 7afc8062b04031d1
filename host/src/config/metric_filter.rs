//! Flink's metric filters (`metrics.reporter.<name>.filter.includes` and
//! `.excludes`): a list of `<scope>[:<name>[,<name>][:<type>[,<type>]]]`
//! separated by `;`, where `*` matches any run of characters. A metric is
//! reported if some include matches it and no exclude does.

/// The kinds of metric Flink's filters name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A count that only grows.
    Counter,
    /// A value read when reported.
    Gauge,
    /// A count and its rate per second.
    Meter,
    /// A distribution: count, min, max, mean, deviation, quantiles.
    Histogram,
}

impl MetricKind {
    /// Every kind.
    pub const ALL: [MetricKind; 4] = [
        MetricKind::Counter,
        MetricKind::Gauge,
        MetricKind::Meter,
        MetricKind::Histogram,
    ];

    /// Parses `counter`, `gauge`, `meter` or `histogram` (any case).
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "counter" => Ok(MetricKind::Counter),
            "gauge" => Ok(MetricKind::Gauge),
            "meter" => Ok(MetricKind::Meter),
            "histogram" => Ok(MetricKind::Histogram),
            _ => Err(format!("{v:?} is not counter, gauge, meter or histogram")),
        }
    }
}

/// One filter: a scope pattern, name patterns and the metric kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    scope: String,
    names: Vec<String>,
    kinds: Vec<MetricKind>,
}

/// The include and exclude filters of a reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricFilter {
    includes: Vec<Filter>,
    excludes: Vec<Filter>,
}

impl Default for MetricFilter {
    /// Flink's defaults: include `*:*:*`, exclude nothing.
    fn default() -> Self {
        MetricFilter {
            includes: vec![Filter {
                scope: "*".into(),
                names: vec!["*".into()],
                kinds: MetricKind::ALL.to_vec(),
            }],
            excludes: Vec::new(),
        }
    }
}

impl MetricFilter {
    /// Parses the `filter.includes` and `filter.excludes` values (`None`:
    /// Flink's default for that side).
    pub fn parse(includes: Option<&str>, excludes: Option<&str>) -> Result<Self, String> {
        let mut f = MetricFilter::default();
        if let Some(v) = includes {
            f.includes = parse_list(v)?;
        }
        if let Some(v) = excludes {
            f.excludes = parse_list(v)?;
        }
        Ok(f)
    }

    /// Whether a metric of `kind` named `name` in logical scope `scope`
    /// (`jobmanager.job`) is reported.
    pub fn accepts(&self, scope: &str, name: &str, kind: MetricKind) -> bool {
        let hit = |f: &Filter| {
            glob(&f.scope, scope)
                && f.names.iter().any(|n| glob(n, name))
                && f.kinds.contains(&kind)
        };
        self.includes.iter().any(hit) && !self.excludes.iter().any(hit)
    }
}

fn parse_list(v: &str) -> Result<Vec<Filter>, String> {
    v.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_one)
        .collect()
}

fn parse_one(text: &str) -> Result<Filter, String> {
    let mut parts = text.split(':');
    let scope = parts.next().unwrap_or("*").trim().to_owned();
    let names = match parts.next() {
        Some(n) => n.split(',').map(|s| s.trim().to_owned()).collect(),
        None => vec!["*".to_owned()],
    };
    let kinds = match parts.next().map(str::trim) {
        None | Some("*") => MetricKind::ALL.to_vec(),
        Some(k) => k
            .split(',')
            .map(|s| MetricKind::parse(s.trim()))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if parts.next().is_some() || scope.is_empty() {
        return Err(format!(
            "{text:?} is not <scope>[:<name>[,<name>][:<type>[,<type>]]]"
        ));
    }
    Ok(Filter {
        scope,
        names,
        kinds,
    })
}

/// Whether `text` matches `pattern`, in which `*` matches any run of
/// characters (also none, and also dots).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_flink_converts_them() {
        assert!(glob("*", "jobmanager.job"));
        assert!(glob("*.job", "jobmanager.job"));
        assert!(glob("numRecords*", "numRecordsInPerSecond"));
        assert!(glob("*.job.task.operator", "taskmanager.job.task.operator"));
        assert!(!glob("*.job.task.operator", "taskmanager.job.task"));
        assert!(!glob("jobmanager", "jobmanager.job"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }

    #[test]
    fn flinks_documented_filters_select_what_flink_says() {
        let f = MetricFilter::parse(Some("*.job.task.operator:numRecords*:meter"), None)
            .expect("parses");
        let op = "taskmanager.job.task.operator";
        assert!(f.accepts(op, "numRecordsInPerSecond", MetricKind::Meter));
        assert!(!f.accepts(op, "numRecordsIn", MetricKind::Counter));
        assert!(!f.accepts(
            "taskmanager.job.task",
            "numRecordsInPerSecond",
            MetricKind::Meter
        ));
        let f = MetricFilter::parse(
            Some("*:numRecords*,numBytes*:counter,meter"),
            Some("jobmanager.job:lastCheckpoint*"),
        )
        .expect("parses");
        assert!(f.accepts(op, "numBytesIn", MetricKind::Counter));
        assert!(!f.accepts(op, "numBytesIn", MetricKind::Gauge));
        let f = MetricFilter::parse(None, Some("jobmanager.job:lastCheckpoint*")).expect("parses");
        assert!(!f.accepts(
            "jobmanager.job",
            "lastCheckpointDuration",
            MetricKind::Gauge
        ));
        assert!(f.accepts("jobmanager.job", "numRestarts", MetricKind::Gauge));
        assert!(MetricFilter::default().accepts("x", "y", MetricKind::Histogram));
        let all = MetricFilter::parse(Some("*:*:*"), None).expect("parses");
        assert_eq!(all, MetricFilter::default());
        assert!(MetricFilter::parse(Some("*:*:timer"), None).is_err());
        assert!(MetricFilter::parse(Some("a:b:gauge:x"), None).is_err());
    }
}
