//! Configuration: `weir.yaml` and per-job overrides, with Flink's key names
//! where the concept is Flink's.
//!
//! Every key Weir knows is listed once, in [`KEYS`], with its default and
//! meaning; an unknown key is an error, never silently ignored. Durations
//! are written as Flink writes them (`500ms`, `10 s`, `1min`; a bare number
//! is milliseconds); memory sizes as `64mb`, `1gb` (a bare number is bytes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::checkpoint::{CheckpointConfig, CheckpointingMode, Retention, StorageKind};
use crate::runtime::RestartStrategy;

/// A config value that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// The key is not one of [`KEYS`].
    #[error("unknown key `{key}`{hint}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// A suggestion, if a known key is close.
        hint: String,
    },
    /// The value does not parse for its key.
    #[error("key `{key}`: {message}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Every configuration key: (name, default, meaning).
pub const KEYS: &[(&str, &str, &str)] = &[
    (
        "parallelism.default",
        "1",
        "parallelism of nodes that do not set one",
    ),
    (
        "pipeline.max-parallelism",
        "128",
        "number of key groups of keyed state",
    ),
    (
        "weir.sandbox.call-timeout",
        "10s",
        "longest a single guest call may run (epoch deadline)",
    ),
    (
        "weir.sandbox.memory-limit",
        "128mb",
        "largest linear memory of one guest instance",
    ),
    (
        "pipeline.operator-chaining.enabled",
        "true",
        "run a sink behind a forward edge in its upstream task's thread",
    ),
    (
        "state.backend.type",
        "hashmap",
        "keyed state backend: hashmap (on the heap) or rocksdb (embedded RocksDB, larger than memory)",
    ),
    (
        "state.backend.incremental",
        "false",
        "incremental checkpoints of the rocksdb backend: upload only the SST files not in shared/ yet",
    ),
    (
        "state.backend.rocksdb.localdir",
        "<temp>/weir-rocksdb",
        "working folder of the RocksDB instances (one per subtask)",
    ),
    (
        "state.backend.rocksdb.block.cache-size",
        "8mb",
        "RocksDB block cache per subtask",
    ),
    (
        "state.backend.rocksdb.writebuffer.size",
        "64mb",
        "RocksDB memtable size per state",
    ),
    (
        "state.backend.rocksdb.writebuffer.count",
        "2",
        "RocksDB memtables per state",
    ),
    (
        "state.backend.rocksdb.write-cache.size",
        "32mb",
        "value-state writes per subtask held in memory and written to RocksDB in one batch (Weir's own; 0: none)",
    ),
    (
        "weir.state.max-bytes",
        "1gb",
        "most keyed state one operator subtask may hold (hashmap backend)",
    ),
    (
        "weir.sandbox.cache-dir",
        "~/.cache/weir/components",
        "where compiled components are cached by content hash",
    ),
    (
        "weir.batch.size",
        "1024",
        "elements per batch on channels and per guest call",
    ),
    (
        "weir.channel.capacity",
        "16",
        "batches a channel holds before its sender waits (backpressure)",
    ),
    (
        "weir.progress.interval",
        "1s",
        "how often `weir run` prints progress on stderr (0 disables)",
    ),
    (
        "execution.checkpointing.interval",
        "none",
        "how often a checkpoint is triggered; none disables checkpoints",
    ),
    (
        "execution.checkpointing.timeout",
        "10min",
        "a checkpoint not complete after this long is aborted and counts as failed",
    ),
    (
        "execution.checkpointing.min-pause",
        "0ms",
        "least time between the end of one checkpoint and the start of the next",
    ),
    (
        "execution.checkpointing.max-concurrent-checkpoints",
        "1",
        "most checkpoints in progress at once",
    ),
    (
        "execution.checkpointing.tolerable-failed-checkpoints",
        "0",
        "failed checkpoints in a row tolerated before the job fails over",
    ),
    (
        "execution.checkpointing.mode",
        "EXACTLY_ONCE",
        "EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE (nothing held)",
    ),
    (
        "execution.checkpointing.externalized-checkpoint-retention",
        "NO_EXTERNALIZED_CHECKPOINTS",
        "RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS",
    ),
    (
        "execution.checkpointing.storage",
        "filesystem",
        "filesystem (files under state.checkpoints.dir) or jobmanager (memory)",
    ),
    (
        "state.checkpoints.dir",
        "checkpoints",
        "folder that holds <job-id>/chk-<n>/, relative to the job spec's folder (Flink 2: execution.checkpointing.dir)",
    ),
    (
        "state.savepoints.dir",
        "savepoints",
        "folder of savepoints; for `weir serve`, relative to its data folder, and the only other root a restore path may lie under",
    ),
    (
        "state.checkpoints.num-retained",
        "1",
        "completed checkpoints kept (Flink 2: execution.checkpointing.num-retained)",
    ),
    (
        "rest.bind-address",
        "127.0.0.1",
        "address `weir serve` listens on",
    ),
    ("rest.port", "8081", "port `weir serve` listens on"),
    (
        "weir.server.data-dir",
        "weir-data",
        "folder of `weir serve`: bundles, jobs, the token",
    ),
    (
        "weir.server.files-dir",
        "files",
        "folder, relative to the data folder, that the source and sink paths of submitted jobs resolve under and may not leave",
    ),
    (
        "weir.server.cache-ttl",
        "100ms",
        "how long a rendered job detail or checkpoint statistics answer is reused by later requests (0: never)",
    ),
    (
        "weir.server.api-nice",
        "10",
        "nice value (0-19) of the REST API's threads, so that requests never take the CPU from running jobs",
    ),
    (
        "weir.server.token",
        "generated",
        "bearer token the API requires; generated at first start into <data-dir>/token if unset",
    ),
    (
        "weir.server.max-upload",
        "64mb",
        "largest operator bundle upload",
    ),
    (
        "weir.server.max-body",
        "1mb",
        "largest request body other than an upload",
    ),
    (
        "restart-strategy.type",
        "none",
        "none, fixed-delay, exponential-delay or failure-rate; without it: exponential-delay if checkpointing is on, else none",
    ),
    (
        "restart-strategy.fixed-delay.attempts",
        "1",
        "restarts before the job fails",
    ),
    (
        "restart-strategy.fixed-delay.delay",
        "1s",
        "wait before each restart",
    ),
    (
        "restart-strategy.exponential-delay.initial-backoff",
        "1s",
        "first wait",
    ),
    (
        "restart-strategy.exponential-delay.max-backoff",
        "1min",
        "longest wait",
    ),
    (
        "restart-strategy.exponential-delay.backoff-multiplier",
        "1.5",
        "factor by which the wait grows",
    ),
    (
        "restart-strategy.exponential-delay.reset-backoff-threshold",
        "1h",
        "a failure this long after the last one starts from the initial backoff",
    ),
    (
        "restart-strategy.exponential-delay.jitter-factor",
        "0.1",
        "share by which each wait varies either way",
    ),
    (
        "restart-strategy.exponential-delay.attempts-before-reset-backoff",
        "2147483647",
        "restarts before the job fails unless the backoff resets",
    ),
    (
        "restart-strategy.failure-rate.max-failures-per-interval",
        "1",
        "failures within the interval that are still restarted",
    ),
    (
        "restart-strategy.failure-rate.failure-rate-interval",
        "1min",
        "the window over which failures are counted",
    ),
    (
        "restart-strategy.failure-rate.delay",
        "1s",
        "wait before each restart",
    ),
];

/// The key Weir uses for `key`, which may be one of its [`ALIASES`].
pub fn canonical_key(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, k)| *k)
}

/// Older (Flink 1.x) or newer (Flink 2.x) names accepted for a key in
/// [`KEYS`]: (alias, key).
pub const ALIASES: &[(&str, &str)] = &[
    (
        "execution.checkpointing.incremental",
        "state.backend.incremental",
    ),
    ("execution.checkpointing.dir", "state.checkpoints.dir"),
    (
        "execution.checkpointing.num-retained",
        "state.checkpoints.num-retained",
    ),
    (
        "state.checkpoint-storage",
        "execution.checkpointing.storage",
    ),
    ("restart-strategy", "restart-strategy.type"),
    ("state.backend", "state.backend.type"),
];

/// The effective configuration of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `parallelism.default`.
    pub default_parallelism: u32,
    /// `pipeline.max-parallelism`.
    pub max_parallelism: u32,
    /// `weir.sandbox.call-timeout`.
    pub call_timeout: Duration,
    /// `weir.sandbox.memory-limit`, in bytes.
    pub memory_limit: u64,
    /// `pipeline.operator-chaining.enabled`.
    pub chaining: bool,
    /// `weir.state.max-bytes`.
    pub state_max_bytes: u64,
    /// `state.backend.*`.
    pub backend: BackendConfig,
    /// `weir.sandbox.cache-dir`.
    pub cache_dir: PathBuf,
    /// `weir.batch.size`.
    pub batch_size: usize,
    /// `weir.channel.capacity`.
    pub channel_capacity: usize,
    /// `weir.progress.interval`; zero disables progress lines.
    pub progress_interval: Duration,
    /// `execution.checkpointing.*` and `state.checkpoints.*`.
    pub checkpoint: CheckpointConfig,
    /// `restart-strategy.type`, if set; see [`Config::restart_strategy`].
    pub restart_type: Option<String>,
    /// The parameters of every restart strategy, as set or defaulted.
    pub restart: RestartParams,
    /// `rest.*` and `weir.server.*`: the settings of `weir serve`.
    pub server: ServerConfig,
}

/// Which keyed state backend jobs use, and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// `state.backend.type`.
    pub kind: BackendKind,
    /// `state.backend.incremental`: RocksDB checkpoints upload only new
    /// SST files.
    pub incremental: bool,
    /// `state.backend.rocksdb.localdir`.
    pub rocksdb_dir: PathBuf,
    /// `state.backend.rocksdb.block.cache-size`, bytes.
    pub rocksdb_block_cache: u64,
    /// `state.backend.rocksdb.writebuffer.size`, bytes.
    pub rocksdb_write_buffer: u64,
    /// `state.backend.rocksdb.writebuffer.count`.
    pub rocksdb_write_buffers: u32,
    /// `state.backend.rocksdb.write-cache.size`, bytes.
    pub rocksdb_write_cache: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::HashMap,
            incremental: false,
            rocksdb_dir: std::env::temp_dir().join("weir-rocksdb"),
            rocksdb_block_cache: 8 << 20,
            rocksdb_write_buffer: 64 << 20,
            rocksdb_write_buffers: 2,
            rocksdb_write_cache: 32 << 20,
        }
    }
}

/// `state.backend.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// State on the heap, snapshot by copy.
    HashMap,
    /// Embedded RocksDB.
    RocksDb,
}

impl BackendKind {
    /// The name in configuration and in `_metadata`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::HashMap => "hashmap",
            BackendKind::RocksDb => "rocksdb",
        }
    }
}

/// The settings of `weir serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `rest.bind-address`.
    pub bind_address: String,
    /// `rest.port`.
    pub port: u16,
    /// `weir.server.data-dir`.
    pub data_dir: PathBuf,
    /// `weir.server.files-dir`.
    pub files_dir: PathBuf,
    /// `weir.server.api-nice`.
    pub api_nice: i32,
    /// `weir.server.cache-ttl`.
    pub cache_ttl: Duration,
    /// `weir.server.token`; `None`: generated at first start.
    pub token: Option<String>,
    /// `weir.server.max-upload`, bytes.
    pub max_upload: u64,
    /// `weir.server.max-body`, bytes.
    pub max_body: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind_address: "127.0.0.1".into(),
            port: 8081,
            data_dir: PathBuf::from("weir-data"),
            files_dir: PathBuf::from("files"),
            api_nice: 10,
            cache_ttl: Duration::from_millis(100),
            token: None,
            max_upload: 64 << 20,
            max_body: 1 << 20,
        }
    }
}

/// The `restart-strategy.*` parameters, with Flink's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartParams {
    /// `fixed-delay.attempts`.
    pub fixed_attempts: u32,
    /// `fixed-delay.delay`.
    pub fixed_delay: Duration,
    /// `exponential-delay.initial-backoff`.
    pub initial_backoff: Duration,
    /// `exponential-delay.max-backoff`.
    pub max_backoff: Duration,
    /// `exponential-delay.backoff-multiplier`.
    pub multiplier: f64,
    /// `exponential-delay.reset-backoff-threshold`.
    pub reset_threshold: Duration,
    /// `exponential-delay.jitter-factor`.
    pub jitter: f64,
    /// `exponential-delay.attempts-before-reset-backoff`.
    pub exp_attempts: u32,
    /// `failure-rate.max-failures-per-interval`.
    pub max_failures: u32,
    /// `failure-rate.failure-rate-interval`.
    pub failure_interval: Duration,
    /// `failure-rate.delay`.
    pub failure_delay: Duration,
}

impl Default for RestartParams {
    fn default() -> Self {
        RestartParams {
            fixed_attempts: 1,
            fixed_delay: Duration::from_secs(1),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            multiplier: 1.5,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.1,
            exp_attempts: i32::MAX as u32,
            max_failures: 1,
            failure_interval: Duration::from_secs(60),
            failure_delay: Duration::from_secs(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_parallelism: 1,
            max_parallelism: 128,
            call_timeout: Duration::from_secs(10),
            memory_limit: 128 << 20,
            chaining: true,
            state_max_bytes: 1 << 30,
            backend: BackendConfig::default(),
            cache_dir: default_cache_dir(),
            batch_size: 1024,
            channel_capacity: 16,
            progress_interval: Duration::from_secs(1),
            checkpoint: CheckpointConfig::default(),
            restart_type: None,
            restart: RestartParams::default(),
            server: ServerConfig::default(),
        }
    }
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("weir/components");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/weir/components"),
        None => std::env::temp_dir().join("weir-components"),
    }
}

impl Config {
    /// The restart strategy in effect: `restart-strategy.type` if set, else
    /// Flink's default (`exponential-delay` with checkpointing, `none`
    /// without).
    pub fn restart_strategy(&self) -> RestartStrategy {
        let r = &self.restart;
        let kind = match self.restart_type.as_deref() {
            Some(t) => t,
            None if self.checkpoint.enabled() => "exponential-delay",
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

    /// Applies one `key: value` setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = canonical_key(key);
        let bad = |message: String| ConfigError::BadValue {
            key: key.to_owned(),
            message,
        };
        let cp = &mut self.checkpoint;
        let r = &mut self.restart;
        let sv = &mut self.server;
        match key {
            "rest.bind-address" => sv.bind_address = value.trim().to_owned(),
            "rest.port" => {
                sv.port = value
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{value:?} is not a port number")))?
            }
            "weir.server.data-dir" => sv.data_dir = PathBuf::from(value.trim()),
            "weir.server.files-dir" => sv.files_dir = PathBuf::from(value.trim()),
            "weir.server.cache-ttl" => sv.cache_ttl = parse_duration(value).map_err(bad)?,
            "weir.server.api-nice" => {
                sv.api_nice = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (0..=19).contains(n))
                    .ok_or_else(|| bad(format!("{value:?} is not a nice value from 0 to 19")))?
            }
            "weir.server.token" => {
                let t = value.trim();
                if t.len() < 16 {
                    return Err(bad("must be at least 16 characters".to_owned()));
                }
                sv.token = Some(t.to_owned());
            }
            "weir.server.max-upload" => sv.max_upload = parse_memory(value).map_err(bad)?,
            "weir.server.max-body" => sv.max_body = parse_memory(value).map_err(bad)?,
            "execution.checkpointing.interval" => {
                cp.interval = match value.trim() {
                    "none" | "" => None,
                    v => {
                        let d = parse_duration(v).map_err(bad)?;
                        if d < Duration::from_millis(10) {
                            return Err(bad("must be at least 10ms (or none)".to_owned()));
                        }
                        Some(d)
                    }
                }
            }
            "execution.checkpointing.timeout" => {
                cp.timeout = parse_duration(value).map_err(bad)?;
                if cp.timeout.is_zero() {
                    return Err(bad("must be positive".to_owned()));
                }
            }
            "execution.checkpointing.min-pause" => {
                cp.min_pause = parse_duration(value).map_err(bad)?
            }
            "execution.checkpointing.max-concurrent-checkpoints" => {
                cp.max_concurrent = parse_positive(value).map_err(bad)?
            }
            "execution.checkpointing.tolerable-failed-checkpoints" => {
                cp.tolerable_failed = parse_count(value).map_err(bad)?
            }
            "execution.checkpointing.mode" => {
                cp.mode = match value.trim().to_ascii_uppercase().as_str() {
                    "EXACTLY_ONCE" => CheckpointingMode::ExactlyOnce,
                    "AT_LEAST_ONCE" => CheckpointingMode::AtLeastOnce,
                    _ => {
                        return Err(bad(format!(
                            "{value:?} is not EXACTLY_ONCE or AT_LEAST_ONCE"
                        )));
                    }
                }
            }
            "execution.checkpointing.externalized-checkpoint-retention" => {
                cp.retention = match value.trim().to_ascii_uppercase().as_str() {
                    "RETAIN_ON_CANCELLATION" => Retention::RetainOnCancellation,
                    "DELETE_ON_CANCELLATION" => Retention::DeleteOnCancellation,
                    "NO_EXTERNALIZED_CHECKPOINTS" => Retention::NoExternalizedCheckpoints,
                    _ => {
                        return Err(bad(format!(
                            "{value:?} is not RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS"
                        )));
                    }
                }
            }
            "execution.checkpointing.storage" => {
                cp.storage = match value.trim().to_ascii_lowercase().as_str() {
                    "filesystem" => StorageKind::Filesystem,
                    "jobmanager" => StorageKind::JobManager,
                    _ => return Err(bad(format!("{value:?} is not filesystem or jobmanager"))),
                }
            }
            "state.checkpoints.dir" => {
                let v = value.trim();
                cp.dir = PathBuf::from(v.strip_prefix("file://").unwrap_or(v));
            }
            "state.savepoints.dir" => {
                let v = value.trim();
                cp.savepoint_dir = PathBuf::from(v.strip_prefix("file://").unwrap_or(v));
            }
            "state.checkpoints.num-retained" => {
                cp.num_retained = parse_positive(value).map_err(bad)?
            }
            "restart-strategy.type" => {
                let t = value.trim().to_ascii_lowercase();
                self.restart_type = Some(match t.as_str() {
                    "none" | "off" | "disable" => "none".to_owned(),
                    "fixed-delay" | "fixeddelay" | "exponential-delay" | "exponentialdelay"
                    | "failure-rate" | "failurerate" => t,
                    _ => {
                        return Err(bad(format!(
                            "{value:?} is not none, fixed-delay, exponential-delay or failure-rate"
                        )));
                    }
                });
            }
            "restart-strategy.fixed-delay.attempts" => {
                r.fixed_attempts = parse_count(value).map_err(bad)?
            }
            "restart-strategy.fixed-delay.delay" => {
                r.fixed_delay = parse_duration(value).map_err(bad)?
            }
            "restart-strategy.exponential-delay.initial-backoff" => {
                r.initial_backoff = parse_duration(value).map_err(bad)?
            }
            "restart-strategy.exponential-delay.max-backoff" => {
                r.max_backoff = parse_duration(value).map_err(bad)?
            }
            "restart-strategy.exponential-delay.backoff-multiplier" => {
                r.multiplier = parse_float(value, 1.0, 1e6).map_err(bad)?
            }
            "restart-strategy.exponential-delay.reset-backoff-threshold" => {
                r.reset_threshold = parse_duration(value).map_err(bad)?
            }
            "restart-strategy.exponential-delay.jitter-factor" => {
                r.jitter = parse_float(value, 0.0, 1.0).map_err(bad)?
            }
            "restart-strategy.exponential-delay.attempts-before-reset-backoff" => {
                r.exp_attempts = parse_positive(value).map_err(bad)?
            }
            "restart-strategy.failure-rate.max-failures-per-interval" => {
                r.max_failures = parse_positive(value).map_err(bad)?
            }
            "restart-strategy.failure-rate.failure-rate-interval" => {
                r.failure_interval = parse_duration(value).map_err(bad)?
            }
            "restart-strategy.failure-rate.delay" => {
                r.failure_delay = parse_duration(value).map_err(bad)?
            }
            "parallelism.default" => {
                self.default_parallelism = parse_positive(value).map_err(bad)?
            }
            "pipeline.max-parallelism" => {
                let m = parse_positive(value).map_err(bad)?;
                if m > crate::keygroup::UPPER_BOUND_MAX_PARALLELISM {
                    return Err(bad(format!(
                        "must be at most {}",
                        crate::keygroup::UPPER_BOUND_MAX_PARALLELISM
                    )));
                }
                self.max_parallelism = m;
            }
            "weir.sandbox.call-timeout" => {
                let d = parse_duration(value).map_err(bad)?;
                if d.is_zero() {
                    return Err(bad("must be positive".to_owned()));
                }
                self.call_timeout = d;
            }
            "weir.sandbox.memory-limit" => self.memory_limit = parse_memory(value).map_err(bad)?,
            "pipeline.operator-chaining.enabled" => {
                self.chaining = value
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{value:?} is not true or false")))?
            }
            "weir.state.max-bytes" => self.state_max_bytes = parse_memory(value).map_err(bad)?,
            "state.backend.type" => {
                self.backend.kind = match value.trim().to_ascii_lowercase().as_str() {
                    "hashmap" => BackendKind::HashMap,
                    "rocksdb" if cfg!(feature = "rocksdb") => BackendKind::RocksDb,
                    "rocksdb" => {
                        return Err(bad(
                            "this weir was built without the `rocksdb` feature".to_owned()
                        ));
                    }
                    _ => return Err(bad(format!("{value:?} is not hashmap or rocksdb"))),
                }
            }
            "state.backend.incremental" => {
                self.backend.incremental = value
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{value:?} is not true or false")))?
            }
            "state.backend.rocksdb.localdir" => {
                self.backend.rocksdb_dir = PathBuf::from(value.trim())
            }
            "state.backend.rocksdb.block.cache-size" => {
                self.backend.rocksdb_block_cache = parse_memory(value).map_err(bad)?
            }
            "state.backend.rocksdb.writebuffer.size" => {
                self.backend.rocksdb_write_buffer = parse_memory(value).map_err(bad)?
            }
            "state.backend.rocksdb.write-cache.size" => {
                self.backend.rocksdb_write_cache = parse_memory(value).map_err(bad)?
            }
            "state.backend.rocksdb.writebuffer.count" => {
                self.backend.rocksdb_write_buffers = parse_positive(value).map_err(bad)?
            }
            "weir.sandbox.cache-dir" => self.cache_dir = PathBuf::from(value),
            "weir.batch.size" => {
                self.batch_size = parse_at_most(value, MAX_BATCH_SIZE).map_err(bad)? as usize
            }
            "weir.channel.capacity" => {
                self.channel_capacity =
                    parse_at_most(value, MAX_CHANNEL_CAPACITY).map_err(bad)? as usize
            }
            "weir.progress.interval" => {
                self.progress_interval = parse_duration(value).map_err(bad)?
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.to_owned(),
                    hint: suggest(key),
                });
            }
        }
        Ok(())
    }

    /// Reads `weir.yaml`: flat `key: value` lines or nested maps (joined with
    /// dots), as Flink's `config.yaml` allows.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let file_err = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        let mut flat = BTreeMap::new();
        if !doc.is_null() {
            flatten("", &doc, &mut flat).map_err(file_err)?;
        }
        for (k, v) in flat {
            self.set(&k, &v)?;
        }
        Ok(())
    }
}

fn flatten(
    prefix: &str,
    v: &serde_yaml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => {
            for (k, v) in m {
                let k = match k {
                    Value::String(s) => s.clone(),
                    other => return Err(format!("key {other:?} is not text")),
                };
                let full = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&full, v, out)?;
            }
            Ok(())
        }
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
            Ok(())
        }
        Value::Number(n) => {
            out.insert(prefix.to_owned(), n.to_string());
            Ok(())
        }
        Value::Bool(b) => {
            out.insert(prefix.to_owned(), b.to_string());
            Ok(())
        }
        other => Err(format!("key `{prefix}`: value {other:?} is not a scalar")),
    }
}

/// The known key closest to `key`, if it is a plausible typo.
fn suggest(key: &str) -> String {
    KEYS.iter()
        .map(|(k, _, _)| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Largest `weir.batch.size`: beyond it a batch buys nothing and its
/// buffers could exhaust memory.
pub const MAX_BATCH_SIZE: u32 = 1 << 16;
/// Largest `weir.channel.capacity` (batches per channel).
pub const MAX_CHANNEL_CAPACITY: u32 = 1 << 12;

fn parse_at_most(value: &str, max: u32) -> Result<u32, String> {
    let n = parse_positive(value)?;
    if n > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(n)
}

fn parse_count(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("{value:?} is not a whole number: {e}"))
}

fn parse_float(value: &str, min: f64, max: f64) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(x) if (min..=max).contains(&x) => Ok(x),
        Ok(_) => Err(format!("must be between {min} and {max}")),
        Err(_) => Err(format!("{value:?} is not a number")),
    }
}

fn parse_positive(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{value:?} is not a whole number: {e}")),
    }
}

/// Parses a Flink-style duration: `250ms`, `10 s`, `2min`, `1h`, or a bare
/// number of milliseconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a duration (like 500ms, 10s, 1min)"))?;
    let unit_ms: u64 = match unit.trim() {
        "" | "ms" | "milli" | "millis" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => return Err(format!("unknown time unit {other:?} in {value:?}")),
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value:?} is out of range"))
}

/// Parses a memory size: `64mb`, `1 gb`, `512k`, or a bare number of bytes.
pub fn parse_memory(value: &str) -> Result<u64, String> {
    let v = value.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a memory size (like 64mb)"))?;
    let mult: u64 = match unit.trim() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown memory unit {other:?} in {value:?}")),
    };
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{value:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_like_flink() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_memory("64mb"), Ok(64 << 20));
        assert_eq!(parse_memory("1 GB"), Ok(1 << 30));
        assert!(parse_memory("0").is_err());
    }

    #[test]
    fn unknown_keys_are_refused_with_a_hint() {
        let mut c = Config::default();
        let err = c
            .set("weir.sandbox.memory-limt", "1mb")
            .expect_err("unknown");
        assert!(matches!(err, ConfigError::UnknownKey { .. }));
        let err = c.set("parallelism", "2").expect_err("unknown");
        assert!(
            err.to_string().contains("unknown key `parallelism`"),
            "{err}"
        );
        assert!(c.set("weir.sandbox.memory-limit", "1mb").is_ok());
        assert_eq!(c.memory_limit, 1 << 20);
        assert!(matches!(
            c.set("parallelism.default", "0"),
            Err(ConfigError::BadValue { .. })
        ));
    }

    #[test]
    fn checkpoint_and_restart_keys_follow_flink() {
        let mut c = Config::default();
        assert_eq!(c.restart_strategy(), RestartStrategy::None);
        c.set("execution.checkpointing.interval", "1s")
            .expect("set");
        assert_eq!(c.checkpoint.interval, Some(Duration::from_secs(1)));
        assert_eq!(c.restart_strategy(), RestartStrategy::exponential_default());
        // Flink 1.x and 2.x names of the same key.
        c.set("execution.checkpointing.dir", "file:///tmp/cp")
            .expect("set");
        assert_eq!(c.checkpoint.dir, PathBuf::from("/tmp/cp"));
        c.set("state.checkpoints.num-retained", "3").expect("set");
        assert_eq!(c.checkpoint.num_retained, 3);
        c.set("restart-strategy", "fixed-delay").expect("set");
        c.set("restart-strategy.fixed-delay.attempts", "4")
            .expect("set");
        assert_eq!(
            c.restart_strategy(),
            RestartStrategy::FixedDelay {
                attempts: 4,
                delay: Duration::from_secs(1)
            }
        );
        assert!(c.set("execution.checkpointing.mode", "twice").is_err());
        assert!(c.set("restart-strategy.type", "sometimes").is_err());
    }

    #[test]
    fn every_listed_key_is_settable_with_its_default() {
        let mut c = Config::default();
        for (k, default, _) in KEYS {
            let v = match *k {
                "weir.sandbox.cache-dir" => "/tmp/x",
                "weir.server.token" => "0123456789abcdef0123",
                _ => default,
            };
            c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }
}
