//! The limits a server sets for the jobs submitted to it. A submitted job
//! starts from the server's own configuration, so the server's value of
//! each resource key is the most a job may ask for (or, for delays, the
//! least): a job may lower a limit, never raise it. Three limits have keys
//! of their own, since the server's own value of the job key would be too
//! strict a bound or none: `weir.server.min-checkpoint-interval`,
//! `weir.server.max-subtasks` and `weir.server.max-retained-checkpoints`.
//! `weir run` (one user, one job) checks none of this.

use std::fmt;
use std::time::Duration;

use super::settings::Config;

/// How a job's value may stand to the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// At most the server's (memory, time per call, counts).
    AtMost,
    /// At least the server's (delays between restarts).
    AtLeast,
}

/// A value of a resource key.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Amount {
    Bytes(u64),
    Time(Duration),
    Count(u64),
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Bytes(u64::MAX) => f.write_str("no bound (0: off)"),
            Amount::Bytes(b) => write!(f, "{b} bytes"),
            Amount::Time(d) => write!(f, "{}ms", d.as_millis()),
            Amount::Count(n) => write!(f, "{n}"),
        }
    }
}

/// One limited key.
struct Limit {
    key: &'static str,
    bound: Bound,
    get: fn(&Config) -> Amount,
}

const fn at_most(key: &'static str, get: fn(&Config) -> Amount) -> Limit {
    Limit {
        key,
        bound: Bound::AtMost,
        get,
    }
}

const fn at_least(key: &'static str, get: fn(&Config) -> Amount) -> Limit {
    Limit {
        key,
        bound: Bound::AtLeast,
        get,
    }
}

/// Every key a server limits, and how.
#[rustfmt::skip]
const LIMITS: &[Limit] = &[
    at_most("weir.sandbox.call-timeout", |c| Amount::Time(c.call_timeout)),
    at_most("weir.sandbox.memory-limit", |c| Amount::Bytes(c.memory_limit)),
    at_most("weir.sandbox.output-limit", |c| Amount::Bytes(c.output_limit)),
    at_most("weir.state.max-bytes", |c| Amount::Bytes(c.state_max_bytes)),
    at_most("state.backend.rocksdb.block.cache-size", |c| Amount::Bytes(c.backend.rocksdb_block_cache)),
    // 0 switches the budget off: no bound at all.
    at_most("state.backend.rocksdb.memory.fixed-per-slot", |c| Amount::Bytes(match c.backend.rocksdb_memory { 0 => u64::MAX, b => b })),
    at_most("state.backend.rocksdb.writebuffer.size", |c| Amount::Bytes(c.backend.rocksdb_write_buffer)),
    at_most("state.backend.rocksdb.writebuffer.count", |c| Amount::Count(c.backend.rocksdb_write_buffers.into())),
    at_most("state.backend.rocksdb.write-cache.size", |c| Amount::Bytes(c.backend.rocksdb_write_cache)),
    at_most("execution.checkpointing.max-concurrent-checkpoints", |c| Amount::Count(c.checkpoint.max_concurrent.into())),
    at_most("weir.batch.size", |c| Amount::Count(c.batch_size as u64)),
    at_most("weir.batch.max-bytes", |c| Amount::Bytes(c.batch_max_bytes as u64)),
    at_most("weir.channel.capacity", |c| Amount::Count(c.channel_capacity as u64)),
    at_most("pipeline.max-parallelism", |c| Amount::Count(c.max_parallelism.into())),
    at_most("restart-strategy.fixed-delay.attempts", |c| Amount::Count(c.restart.fixed_attempts.into())),
    at_most("restart-strategy.exponential-delay.attempts-before-reset-backoff", |c| Amount::Count(c.restart.exp_attempts.into())),
    at_most("restart-strategy.failure-rate.max-failures-per-interval", |c| Amount::Count(c.restart.max_failures.into())),
    at_least("restart-strategy.fixed-delay.delay", |c| Amount::Time(c.restart.fixed_delay)),
    at_least("restart-strategy.exponential-delay.initial-backoff", |c| Amount::Time(c.restart.initial_backoff)),
    at_least("restart-strategy.failure-rate.delay", |c| Amount::Time(c.restart.failure_delay)),
];

/// A job asking for more than the server allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The key (`parallelism` for the number of subtasks).
    pub key: String,
    /// What the job asks for.
    pub asked: String,
    /// What the server allows.
    pub allowed: String,
    /// `at most` or `at least`.
    pub bound: &'static str,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: asks for {}; the server allows {} {}",
            self.key, self.asked, self.bound, self.allowed
        )
    }
}

/// What the job configured as `job`, with `subtasks` subtasks in all,
/// asks for beyond what `server` allows; empty if it fits.
pub fn exceeded(job: &Config, subtasks: u64, server: &Config) -> Vec<Violation> {
    let mut found = Vec::new();
    for limit in LIMITS {
        let (asked, allowed) = ((limit.get)(job), (limit.get)(server));
        let over = match limit.bound {
            Bound::AtMost => asked > allowed,
            Bound::AtLeast => asked < allowed,
        };
        if over {
            found.push(violation(limit.key, asked, allowed, limit.bound));
        }
    }
    let floor = server.server.min_checkpoint_interval;
    if let Some(interval) = job.checkpoint.interval.filter(|i| *i < floor) {
        found.push(violation(
            "execution.checkpointing.interval",
            Amount::Time(interval),
            Amount::Time(floor),
            Bound::AtLeast,
        ));
    }
    let retained = u64::from(job.checkpoint.num_retained);
    let most_retained = server.server.max_retained_checkpoints;
    if retained > most_retained {
        found.push(violation(
            "state.checkpoints.num-retained",
            Amount::Count(retained),
            Amount::Count(most_retained),
            Bound::AtMost,
        ));
    }
    let most = server.server.max_subtasks;
    if subtasks > most {
        found.push(Violation {
            key: "parallelism".into(),
            asked: format!("{subtasks} subtasks"),
            allowed: format!("{most} (weir.server.max-subtasks)"),
            bound: "at most",
        });
    }
    found
}

fn violation(key: &str, asked: Amount, allowed: Amount, bound: Bound) -> Violation {
    Violation {
        key: key.to_owned(),
        asked: asked.to_string(),
        allowed: allowed.to_string(),
        bound: match bound {
            Bound::AtMost => "at most",
            Bound::AtLeast => "at least",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Config {
        let mut c = Config::default();
        for (k, v) in pairs {
            c.set(k, v).expect("valid");
        }
        c
    }

    #[test]
    fn switching_the_rocksdb_memory_budget_off_asks_for_more_than_any_budget() {
        let server = with(&[("state.backend.rocksdb.memory.fixed-per-slot", "256mb")]);
        let off = with(&[("state.backend.rocksdb.memory.fixed-per-slot", "0")]);
        let found = exceeded(&off, 1, &server);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].to_string().contains("asks for no bound (0: off)"));
        assert!(
            exceeded(&server, 1, &off).is_empty(),
            "a server without a budget allows one"
        );
    }

    #[test]
    fn a_job_may_lower_a_limit_but_not_raise_it() {
        let server = with(&[
            ("weir.sandbox.call-timeout", "10s"),
            ("weir.sandbox.memory-limit", "64mb"),
            ("restart-strategy.fixed-delay.delay", "1s"),
        ]);
        assert!(
            exceeded(&server, 4, &server).is_empty(),
            "the server's own values fit"
        );
        let lower = with(&[
            ("weir.sandbox.call-timeout", "1s"),
            ("weir.sandbox.memory-limit", "16mb"),
            ("restart-strategy.fixed-delay.delay", "5s"),
        ]);
        assert!(exceeded(&lower, 4, &server).is_empty());
        let greedy = with(&[
            ("weir.sandbox.call-timeout", "1h"),
            ("weir.sandbox.memory-limit", "1gb"),
            ("restart-strategy.fixed-delay.delay", "0ms"),
            ("execution.checkpointing.interval", "10ms"),
            ("state.checkpoints.num-retained", "100"),
        ]);
        let found: Vec<String> = exceeded(&greedy, 5000, &server)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            vec![
                "weir.sandbox.call-timeout: asks for 3600000ms; the server allows at most 10000ms",
                "weir.sandbox.memory-limit: asks for 1073741824 bytes; the server allows at most 67108864 bytes",
                "restart-strategy.fixed-delay.delay: asks for 0ms; the server allows at least 1000ms",
                "execution.checkpointing.interval: asks for 10ms; the server allows at least 100ms",
                "state.checkpoints.num-retained: asks for 100; the server allows at most 10",
                "parallelism: asks for 5000 subtasks; the server allows at most 4096 (weir.server.max-subtasks)",
            ]
        );
    }
}
