//! Restart strategies, with Flink's keys, defaults and meaning: after a
//! task failure they decide whether the job restarts (from its latest
//! completed checkpoint) and after what delay.
//!
//! [`RestartPolicy`] is a pure struct: it is told when failures happen and
//! answers with a decision, so its timing is unit-tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Config;

/// `restart-strategy.type` and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// `none`: a failure fails the job.
    None,
    /// `fixed-delay`: up to `attempts` restarts, `delay` apart.
    FixedDelay {
        /// `restart-strategy.fixed-delay.attempts` (Flink's default 1).
        attempts: u32,
        /// `restart-strategy.fixed-delay.delay` (default 1 s).
        delay: Duration,
    },
    /// `exponential-delay`: restarts forever (or `attempts` times before the
    /// backoff resets), the delay growing by `multiplier` up to `max_backoff`.
    ExponentialDelay {
        /// `.initial-backoff` (default 1 s).
        initial_backoff: Duration,
        /// `.max-backoff` (default 1 min).
        max_backoff: Duration,
        /// `.backoff-multiplier` (default 1.5).
        multiplier: f64,
        /// `.reset-backoff-threshold` (default 1 h): a failure this long
        /// after the previous one starts again from `initial_backoff`.
        reset_threshold: Duration,
        /// `.jitter-factor` (default 0.1): the delay varies by up to this
        /// share either way, so that many jobs do not restart in step.
        jitter: f64,
        /// `.attempts-before-reset-backoff` (default unlimited).
        attempts: u32,
    },
    /// `failure-rate`: restarts `delay` after a failure unless more than
    /// `max_failures` happened within `interval`.
    FailureRate {
        /// `.max-failures-per-interval` (default 1).
        max_failures: u32,
        /// `.failure-rate-interval` (default 1 min).
        interval: Duration,
        /// `.delay` (default 1 s).
        delay: Duration,
    },
}

impl RestartStrategy {
    /// The restart strategy a job's configuration asks for:
    /// `restart-strategy.type` if set, else Flink's default
    /// (`exponential-delay` with checkpointing, `none` without).
    pub fn from_config(config: &Config) -> Self {
        let r = &config.restart;
        let kind = match config.restart_type.as_deref() {
            Some(t) => t,
            None if config.checkpoint.enabled() => "exponential-delay",
            None => "none",
        };
        match kind {
            "fixed-delay" | "fixeddelay" => RestartStrategy::FixedDelay {
                attempts: r.fixed_attempts,
                delay: r.fixed_delay,
            },
            "exponential-delay" | "exponentialdelay" => RestartStrategy::ExponentialDelay {
                initial_backoff: r.initial_backoff,
                max_backoff: r.max_backoff,
                multiplier: r.multiplier,
                reset_threshold: r.reset_threshold,
                jitter: r.jitter,
                attempts: r.exp_attempts,
            },
            "failure-rate" | "failurerate" => RestartStrategy::FailureRate {
                max_failures: r.max_failures,
                interval: r.failure_interval,
                delay: r.failure_delay,
            },
            _ => RestartStrategy::None,
        }
    }

    /// Flink's `exponential-delay` defaults: the strategy of a job with
    /// checkpointing on and no `restart-strategy.type`.
    #[cfg(test)]
    pub fn exponential_default() -> Self {
        RestartStrategy::ExponentialDelay {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 1.5,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.1,
            attempts: i32::MAX as u32,
        }
    }

    /// The type name as written in `restart-strategy.type`.
    pub fn name(&self) -> &'static str {
        match self {
            RestartStrategy::None => "none",
            RestartStrategy::FixedDelay { .. } => "fixed-delay",
            RestartStrategy::ExponentialDelay { .. } => "exponential-delay",
            RestartStrategy::FailureRate { .. } => "failure-rate",
        }
    }
}

/// The strategy in words, as Flink's job configuration shows it
/// (`Restart with fixed delay (10000 ms). #3 restart attempts.`).
impl std::fmt::Display for RestartStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            RestartStrategy::None => write!(f, "Restart deactivated."),
            RestartStrategy::FixedDelay { attempts, delay } => write!(
                f,
                "Restart with fixed delay ({} ms). #{attempts} restart attempts.",
                ms(delay)
            ),
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts,
            } => write!(
                f,
                "Restart with exponential delay: initial backoff {} ms, max backoff {} ms, multiplier {multiplier}, reset threshold {} ms, jitter {jitter}, #{attempts} attempts before the backoff resets.",
                ms(initial_backoff),
                ms(max_backoff),
                ms(reset_threshold)
            ),
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => write!(
                f,
                "Failure rate restart with maximum of {max_failures} failures within interval {} ms and fixed delay {} ms.",
                ms(interval),
                ms(delay)
            ),
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Fail the job; the reason says which limit was reached.
    Fail(&'static str),
}

/// The running state of a [`RestartStrategy`] over one job's life.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    strategy: RestartStrategy,
    /// Restarts granted so far (fixed-delay), or since the last backoff
    /// reset (exponential-delay).
    restarts: u32,
    /// Exponential delay: the current backoff and the last failure.
    backoff: Duration,
    last_failure: Option<Instant>,
    /// Failure rate: the failures within the interval.
    recent: VecDeque<Instant>,
    /// Jitter source, seeded per policy.
    rng: fastrand::Rng,
}

impl RestartPolicy {
    /// A fresh policy; `seed` drives the jitter.
    pub fn new(strategy: RestartStrategy, seed: u64) -> Self {
        RestartPolicy {
            strategy,
            restarts: 0,
            backoff: Duration::ZERO,
            last_failure: None,
            recent: VecDeque::new(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The strategy this policy follows.
    pub fn strategy(&self) -> &RestartStrategy {
        &self.strategy
    }

    /// A uniform value in [-1, 1].
    fn unit_jitter(&mut self) -> f64 {
        self.rng.f64() * 2.0 - 1.0
    }

    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Instant) -> RestartDecision {
        match self.strategy.clone() {
            RestartStrategy::None => RestartDecision::Fail("restart-strategy.type is none"),
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.restarts >= attempts {
                    return RestartDecision::Fail("the fixed-delay attempts are used up");
                }
                self.restarts += 1;
                RestartDecision::RestartAfter(delay)
            }
            RestartStrategy::ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts,
            } => {
                let reset = self
                    .last_failure
                    .is_none_or(|t| now.saturating_duration_since(t) >= reset_threshold);
                self.last_failure = Some(now);
                if reset {
                    self.restarts = 0;
                    self.backoff = initial_backoff.min(max_backoff);
                } else {
                    self.backoff = self.backoff.mul_f64(multiplier.max(1.0)).min(max_backoff);
                }
                if self.restarts >= attempts {
                    return RestartDecision::Fail(
                        "the exponential-delay attempts before a backoff reset are used up",
                    );
                }
                self.restarts += 1;
                let spread = self.backoff.as_secs_f64() * jitter * self.unit_jitter();
                let delay = (self.backoff.as_secs_f64() + spread).max(0.0);
                RestartDecision::RestartAfter(Duration::from_secs_f64(delay).min(max_backoff))
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                while self
                    .recent
                    .front()
                    .is_some_and(|&t| now.saturating_duration_since(t) > interval)
                {
                    self.recent.pop_front();
                }
                self.recent.push_back(now);
                if self.recent.len() > max_failures as usize {
                    return RestartDecision::Fail(
                        "more failures than failure-rate.max-failures-per-interval within the interval",
                    );
                }
                RestartDecision::RestartAfter(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_picks_flinks_strategy() {
        let mut c = Config::default();
        assert_eq!(RestartStrategy::from_config(&c), RestartStrategy::None);
        c.set("execution.checkpointing.interval", "1s")
            .expect("set");
        assert_eq!(
            RestartStrategy::from_config(&c),
            RestartStrategy::exponential_default()
        );
        c.set("restart-strategy", "fixed-delay").expect("set");
        c.set("restart-strategy.fixed-delay.attempts", "4")
            .expect("set");
        assert_eq!(
            RestartStrategy::from_config(&c),
            RestartStrategy::FixedDelay {
                attempts: 4,
                delay: Duration::from_secs(1)
            }
        );
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn none_never_restarts() {
        let mut p = RestartPolicy::new(RestartStrategy::None, 7);
        assert!(matches!(
            p.on_failure(Instant::now()),
            RestartDecision::Fail(_)
        ));
    }

    #[test]
    fn fixed_delay_grants_its_attempts_then_fails() {
        let mut p = RestartPolicy::new(
            RestartStrategy::FixedDelay {
                attempts: 2,
                delay: secs(3),
            },
            7,
        );
        let t = Instant::now();
        assert_eq!(p.on_failure(t), RestartDecision::RestartAfter(secs(3)));
        assert_eq!(p.on_failure(t), RestartDecision::RestartAfter(secs(3)));
        assert!(matches!(p.on_failure(t), RestartDecision::Fail(_)));
    }

    fn exponential(jitter: f64, attempts: u32) -> RestartStrategy {
        RestartStrategy::ExponentialDelay {
            initial_backoff: secs(1),
            max_backoff: secs(5),
            multiplier: 2.0,
            reset_threshold: secs(60),
            jitter,
            attempts,
        }
    }

    #[test]
    fn exponential_delay_grows_to_its_cap_and_resets_after_a_quiet_period() {
        let mut p = RestartPolicy::new(exponential(0.0, u32::MAX), 7);
        let t0 = Instant::now();
        let delays: Vec<Duration> = (0..5)
            .map(|i| match p.on_failure(t0 + secs(i)) {
                RestartDecision::RestartAfter(d) => d,
                RestartDecision::Fail(why) => panic!("{why}"),
            })
            .collect();
        assert_eq!(delays, vec![secs(1), secs(2), secs(4), secs(5), secs(5)]);
        // 60 s after the last failure the backoff starts over.
        assert_eq!(
            p.on_failure(t0 + secs(4 + 60)),
            RestartDecision::RestartAfter(secs(1))
        );
    }

    #[test]
    fn exponential_jitter_stays_within_its_factor() {
        let mut p = RestartPolicy::new(exponential(0.5, u32::MAX), 12345);
        let t0 = Instant::now();
        let mut seen_different = false;
        for i in 0..50 {
            // Each failure after a quiet period: the backoff is 1 s +- 50%.
            match p.on_failure(t0 + secs(i * 61)) {
                RestartDecision::RestartAfter(d) => {
                    assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1500));
                    seen_different |= d != secs(1);
                }
                RestartDecision::Fail(why) => panic!("{why}"),
            }
        }
        assert!(seen_different, "jitter never moved the delay");
    }

    #[test]
    fn exponential_attempts_limit_the_restarts_between_resets() {
        let mut p = RestartPolicy::new(exponential(0.0, 2), 7);
        let t0 = Instant::now();
        assert!(matches!(p.on_failure(t0), RestartDecision::RestartAfter(_)));
        assert!(matches!(
            p.on_failure(t0 + secs(1)),
            RestartDecision::RestartAfter(_)
        ));
        assert!(matches!(
            p.on_failure(t0 + secs(2)),
            RestartDecision::Fail(_)
        ));
    }

    #[test]
    fn failure_rate_fails_past_its_rate_and_forgets_old_failures() {
        let mut p = RestartPolicy::new(
            RestartStrategy::FailureRate {
                max_failures: 2,
                interval: secs(60),
                delay: secs(1),
            },
            7,
        );
        let t0 = Instant::now();
        assert_eq!(p.on_failure(t0), RestartDecision::RestartAfter(secs(1)));
        assert_eq!(
            p.on_failure(t0 + secs(30)),
            RestartDecision::RestartAfter(secs(1))
        );
        // A third failure 61 s after the first: only two within a minute.
        assert_eq!(
            p.on_failure(t0 + secs(61)),
            RestartDecision::RestartAfter(secs(1))
        );
        // A fourth at 62 s: three within the last minute.
        assert!(matches!(
            p.on_failure(t0 + secs(62)),
            RestartDecision::Fail(_)
        ));
    }
}
