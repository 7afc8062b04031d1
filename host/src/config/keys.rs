//! Every configuration key Weir knows, once: one row of [`KEYS`] holds its
//! name, its default as written, what it means, and how a value is parsed
//! into a [`Config`]. An unknown key is an error with a hint, never
//! silently ignored.

use std::path::PathBuf;

use super::backend_names::set_backend;
use super::checkpoint::ClaimMode;
use super::error::ConfigError;
use super::reporters;
use super::s3::{Secret, optional_text};
use super::settings::Config;
use super::units::{
    parse_at_most, parse_count, parse_duration, parse_float, parse_memory, parse_memory_or_zero,
    parse_positive,
};
use super::values::{
    FAILOVERS, MODES, RETENTIONS, STORAGES, backend_kind, boolean, interval, local_folder,
    location, max_parallelism, memory_or_zero, nice, one_of, optional_path, port,
    positive_duration, prefer_checkpoint, put, restart_type, token,
};

/// Largest `weir.batch.size`: beyond it a batch buys nothing and its
/// buffers could exhaust memory.
pub const MAX_BATCH_SIZE: u32 = 1 << 16;
/// Largest `weir.channel.capacity` (batches per channel).
pub const MAX_CHANNEL_CAPACITY: u32 = 1 << 12;

/// The smallest RocksDB memory budget per subtask: below it the memtables'
/// first allocations alone would fill it and force a flush at every write.
const MIN_ROCKSDB_MEMORY: u64 = 16 << 20;

/// How a key's value is parsed and stored into a [`Config`].
type Setter = fn(&mut Config, &str) -> Result<(), String>;

/// One configuration key.
pub struct Key {
    /// The key as written in `weir.yaml` or a job's `config:`.
    pub name: &'static str,
    /// Its default, as written.
    pub default: &'static str,
    /// What it is for.
    pub doc: &'static str,
    set: Setter,
}

const fn key(name: &'static str, default: &'static str, doc: &'static str, set: Setter) -> Key {
    Key {
        name,
        default,
        doc,
        set,
    }
}

/// Every configuration key, in the order `weir` lists them.
#[rustfmt::skip]
pub static KEYS: &[Key] = &[
    key("parallelism.default", "1",
        "parallelism of nodes that do not set one",
        |c, v| put(&mut c.default_parallelism, parse_positive(v))),
    key("pipeline.max-parallelism", "128",
        "number of key groups of keyed state",
        |c, v| put(&mut c.max_parallelism, max_parallelism(v))),
    key("weir.sandbox.call-timeout", "10s",
        "longest a single guest call may run (epoch deadline)",
        |c, v| put(&mut c.call_timeout, positive_duration(v))),
    key("weir.sandbox.memory-limit", "128mb",
        "largest linear memory of one guest instance",
        |c, v| put(&mut c.memory_limit, parse_memory(v))),
    key("weir.sandbox.output-limit", "64mb",
        "most output one guest call may emit; past it the call traps",
        |c, v| put(&mut c.output_limit, parse_memory(v))),
    key("pipeline.operator-chaining.enabled", "true",
        "run an operator or sink behind a forward edge in its upstream subtask's thread",
        |c, v| put(&mut c.chaining, boolean(v))),
    key("state.backend.type", "hashmap",
        "keyed state backend: hashmap (on the heap) or rocksdb (embedded RocksDB, larger than memory)",
        |c, v| put(&mut c.backend.kind, backend_kind(v))),
    key("state.backend", "hashmap",
        "Flink 1.x's backend names: jobmanager (hashmap, checkpoints in memory), filesystem (hashmap, checkpoints under state.checkpoints.dir), hashmap or rocksdb",
        set_backend),
    key("state.backend.incremental", "false",
        "incremental checkpoints of the rocksdb backend: upload only the SST files not in shared/ yet",
        |c, v| put(&mut c.backend.incremental, boolean(v))),
    key("state.backend.rocksdb.localdir", "<temp>/weir-rocksdb-<uid>",
        "working folder of the RocksDB instances (one per subtask)",
        |c, v| put(&mut c.backend.rocksdb_dir, Ok(PathBuf::from(v.trim())))),
    key("state.backend.rocksdb.block.cache-size", "8mb",
        "RocksDB block cache per subtask",
        |c, v| put(&mut c.backend.rocksdb_block_cache, parse_memory(v))),
    key("state.backend.rocksdb.memory.fixed-per-slot", "256mb",
        "memory of each subtask's RocksDB: its block cache and memtables share it, as Flink's managed memory (0: off, block.cache-size sizes the cache)",
        |c, v| put(&mut c.backend.rocksdb_memory, parse_memory_or_zero(v).and_then(|b| match b {
            1..MIN_ROCKSDB_MEMORY => Err(format!("{v:?} is below 16mb (0 switches the budget off)")),
            b => Ok(b),
        }))),
    key("state.backend.rocksdb.memory.write-buffer-ratio", "0.5",
        "share of state.backend.rocksdb.memory.fixed-per-slot the memtables may take",
        |c, v| put(&mut c.backend.rocksdb_write_buffer_ratio, parse_float(v, 0.01, 1.0))),
    key("state.backend.rocksdb.writebuffer.size", "64mb",
        "RocksDB memtable size per state",
        |c, v| put(&mut c.backend.rocksdb_write_buffer, parse_memory(v))),
    key("state.backend.rocksdb.writebuffer.count", "2",
        "RocksDB memtables per state",
        |c, v| put(&mut c.backend.rocksdb_write_buffers, parse_positive(v))),
    key("state.backend.rocksdb.write-cache.size", "32mb",
        "value-state writes per subtask held in memory and written to RocksDB in one batch (Weir's own; 0: none)",
        |c, v| put(&mut c.backend.rocksdb_write_cache, parse_memory_or_zero(v))),
    key("weir.state.max-bytes", "1gb",
        "most keyed state one operator subtask may hold (in memory on hashmap; as RocksDB estimates it on rocksdb)",
        |c, v| put(&mut c.state_max_bytes, parse_memory(v))),
    key("weir.sink.file.allow-new-folder", "false",
        "a restore whose file sink writes to another folder than the snapshot's, one without the files it pre-committed, starts that folder afresh instead of being refused",
        |c, v| put(&mut c.sink_allow_new_folder, boolean(v))),
    key("weir.dead-letter.enabled", "false",
        "quarantine a record that makes an operator trap, time out or run out of memory more than max-failures times in a row: it goes to the dead-letter file and is skipped from then on",
        |c, v| put(&mut c.dead_letter.enabled, boolean(v))),
    key("weir.dead-letter.max-failures", "1",
        "failures of one record in a row, the last one alone, that are tolerated before it is quarantined",
        |c, v| put(&mut c.dead_letter.max_failures, parse_count(v))),
    key("weir.dead-letter.dir", "dead-letters",
        "the folder of the dead-letter files, <dir>/<job-id>.jsonl (relative to the spec's folder; on a server, <data-dir>/dead-letters)",
        |c, v| put(&mut c.dead_letter.dir, local_folder(v))),
    key("weir.sandbox.cache-dir", "~/.cache/weir/components",
        "where compiled components are cached by content hash",
        |c, v| put(&mut c.cache_dir, Ok(PathBuf::from(v)))),
    key("weir.sandbox.cache-max-bytes", "1gb",
        "most bytes the compiled components in the cache folder may take; past it the least recently used are evicted",
        |c, v| put(&mut c.cache_max_bytes, parse_memory(v))),
    key("weir.batch.size", "1024",
        "elements per batch on channels and per guest call",
        |c, v| put(&mut c.batch_size, parse_at_most(v, MAX_BATCH_SIZE).map(|n| n as usize),)),
    key("weir.batch.max-bytes", "1mb",
        "bytes after which a batch is sent whatever its count, so a channel holds at most its capacity times this (plus one element)",
        |c, v| put(&mut c.batch_max_bytes, parse_memory(v).map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1)))),
    key("weir.channel.capacity", "16",
        "batches a channel holds before its sender waits (backpressure)",
        |c, v| put(&mut c.channel_capacity, parse_at_most(v, MAX_CHANNEL_CAPACITY).map(|n| n as usize),)),
    key("weir.progress.interval", "1s",
        "how often `weir run` prints progress on stderr (0 disables)",
        |c, v| put(&mut c.progress_interval, parse_duration(v))),
    key("execution.checkpointing.interval", "none",
        "how often a checkpoint is triggered; none disables checkpoints",
        |c, v| put(&mut c.checkpoint.interval, interval(v))),
    key("execution.checkpointing.timeout", "10min",
        "a checkpoint not complete after this long is aborted and counts as failed",
        |c, v| put(&mut c.checkpoint.timeout, positive_duration(v))),
    key("execution.checkpointing.min-pause", "0ms",
        "least time between the end of one checkpoint and the start of the next",
        |c, v| put(&mut c.checkpoint.min_pause, parse_duration(v))),
    key("execution.checkpointing.max-concurrent-checkpoints", "1",
        "most checkpoints in progress at once",
        |c, v| put(&mut c.checkpoint.max_concurrent, parse_positive(v))),
    key("execution.checkpointing.tolerable-failed-checkpoints", "0",
        "failed checkpoints in a row tolerated before the job fails over",
        |c, v| put(&mut c.checkpoint.tolerable_failed, parse_count(v))),
    key("execution.checkpointing.mode", "EXACTLY_ONCE",
        "EXACTLY_ONCE (aligned barriers) or AT_LEAST_ONCE (nothing held)",
        |c, v| put(&mut c.checkpoint.mode, one_of(v, true, MODES))),
    key("execution.checkpointing.externalized-checkpoint-retention", "NO_EXTERNALIZED_CHECKPOINTS",
        "RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS",
        |c, v| put(&mut c.checkpoint.retention, one_of(v, true, RETENTIONS))),
    key("execution.checkpointing.storage", "filesystem",
        "filesystem (files under state.checkpoints.dir) or jobmanager (memory)",
        |c, v| put(&mut c.checkpoint.storage, one_of(v, false, STORAGES))),
    key("execution.checkpointing.unaligned.enabled", "false",
        "barriers overtake the in-flight data, which is stored in the checkpoint (needs EXACTLY_ONCE and one checkpoint at a time; alias execution.checkpointing.unaligned)",
        |c, v| put(&mut c.checkpoint.unaligned.enabled, boolean(v))),
    key("execution.checkpointing.unaligned.forced", "false",
        "unaligned checkpoints over forward edges too (implies unaligned.enabled; such a checkpoint restores only at the same parallelism)",
        |c, v| put(&mut c.checkpoint.unaligned.forced, boolean(v))),
    key("execution.checkpointing.aligned-checkpoint-timeout", "0ms",
        "with unaligned checkpoints: start aligned and go unaligned once a checkpoint is older than this; 0 is unaligned from the start (alias execution.checkpointing.alignment-timeout)",
        |c, v| put(&mut c.checkpoint.unaligned.aligned_timeout, parse_duration(v))),
    key("state.checkpoints.dir", "checkpoints",
        "folder that holds <job-id>/chk-<n>/, relative to the job spec's folder (Flink 2: execution.checkpointing.dir)",
        |c, v| put(&mut c.checkpoint.dir, location(v))),
    key("s3.endpoint", "none",
        "the S3-compatible server of s3:// locations (http://127.0.0.1:9000); none: AWS (or AWS_ENDPOINT_URL)",
        |c, v| put(&mut c.s3.endpoint, optional_text(v))),
    key("s3.path.style.access", "none",
        "bucket in the path rather than the host name; none: true when s3.endpoint is set",
        |c, v| put(&mut c.s3.path_style, optional_text(v).and_then(|t| t.map(|t| boolean(&t)).transpose()))),
    key("s3.access-key", "none",
        "access key id for s3:// locations (alias s3.access.key); none: AWS_ACCESS_KEY_ID",
        |c, v| put(&mut c.s3.access_key, optional_text(v))),
    key("s3.secret-key", "none",
        "secret access key for s3:// locations (alias s3.secret.key; never shown); none: AWS_SECRET_ACCESS_KEY",
        |c, v| put(&mut c.s3.secret_key, optional_text(v).map(|t| t.map(Secret::from)))),
    key("s3.region", "none",
        "region of s3:// locations; none: AWS_REGION, else us-east-1",
        |c, v| put(&mut c.s3.region, optional_text(v))),
    key("execution.checkpointing.savepoint-dir", "none",
        "folder a savepoint triggered without a target folder goes to (alias state.savepoints.dir); for `weir serve`, relative to its data folder (default there: savepoints), and the only other root a restore path may lie under",
        |c, v| put(&mut c.checkpoint.savepoint_dir, optional_path(v))),
    key("execution.state-recovery.path", "none",
        "savepoint or retained checkpoint `weir run` starts from when no -s is given (alias execution.savepoint.path)",
        |c, v| put(&mut c.checkpoint.recovery.path, optional_path(v))),
    key("execution.state-recovery.claim-mode", "NO_CLAIM",
        "NO_CLAIM (the job never deletes nor depends on the snapshot it started from) or CLAIM (the job owns it and deletes it once subsumed); alias execution.savepoint-restore-mode",
        |c, v| put(&mut c.checkpoint.recovery.claim_mode, ClaimMode::parse(v))),
    key("execution.state-recovery.ignore-unclaimed-state", "false",
        "start even if the snapshot holds state the job has no place for, dropping it (what -n sets; alias execution.savepoint.ignore-unclaimed-state)",
        |c, v| put(&mut c.checkpoint.recovery.ignore_unclaimed_state, boolean(v))),
    key("execution.checkpointing.prefer-checkpoint-for-recovery", "true",
        "accepted for Flink 1.x configurations: automatic recovery always uses the latest checkpoint, never a savepoint",
        |_, v| prefer_checkpoint(v)),
    key("state.checkpoints.num-retained", "1",
        "completed checkpoints kept (Flink 2: execution.checkpointing.num-retained)",
        |c, v| put(&mut c.checkpoint.num_retained, parse_positive(v))),
    key("rest.bind-address", "127.0.0.1",
        "address `weir serve` listens on",
        |c, v| put(&mut c.server.bind_address, Ok(v.trim().to_owned()))),
    key("rest.port", "8081",
        "port `weir serve` listens on",
        |c, v| put(&mut c.server.port, port(v))),
    key("weir.server.data-dir", "weir-data",
        "folder of `weir serve`: bundles, jobs, the token",
        |c, v| put(&mut c.server.data_dir, Ok(PathBuf::from(v.trim())))),
    key("weir.server.files-dir", "files",
        "folder, relative to the data folder, that the source and sink paths of submitted jobs resolve under and may not leave",
        |c, v| put(&mut c.server.files_dir, Ok(PathBuf::from(v.trim())))),
    key("weir.server.cache-ttl", "100ms",
        "how long a rendered job detail or checkpoint statistics answer is reused by later requests (0: never)",
        |c, v| put(&mut c.server.cache_ttl, parse_duration(v))),
    key("rest.async.store-duration", "5min",
        "how long the result of a savepoint, stop or disposal is kept for its trigger id",
        |c, v| put(&mut c.server.async_store_duration, positive_duration(v))),
    key("weir.server.api-nice", "10",
        "nice value (0-19) of the REST API's threads, so that requests never take the CPU from running jobs",
        |c, v| put(&mut c.server.api_nice, nice(v))),
    key("weir.server.token", "generated",
        "bearer token the API requires; generated at first start into <data-dir>/token if unset",
        |c, v| put(&mut c.server.token, token(v))),
    key("weir.server.max-upload", "64mb",
        "largest operator bundle upload",
        |c, v| put(&mut c.server.max_upload, parse_memory(v))),
    key("weir.server.max-body", "1mb",
        "largest request body other than an upload",
        |c, v| put(&mut c.server.max_body, parse_memory(v))),
    key("weir.server.header-read-timeout", "10s",
        "time a connection has to send a request head; also how long an idle connection stays open",
        |c, v| put(&mut c.server.header_read_timeout, positive_duration(v))),
    key("weir.server.max-connections", "512",
        "connections kept at once; past it the oldest idle one is closed",
        |c, v| put(&mut c.server.max_connections, parse_positive(v).map(|n| n as usize))),
    key("weir.server.request-timeout", "60s",
        "time a request other than an upload may take, reading its body included",
        |c, v| put(&mut c.server.request_timeout, positive_duration(v))),
    key("weir.server.min-checkpoint-interval", "100ms",
        "shortest execution.checkpointing.interval a submitted job may ask for (a job may lower no other resource limit of the server's either: see docs/configuration.md)",
        |c, v| put(&mut c.server.min_checkpoint_interval, parse_duration(v))),
    key("weir.server.max-retained-checkpoints", "10",
        "most state.checkpoints.num-retained a submitted job may ask for",
        |c, v| put(&mut c.server.max_retained_checkpoints, parse_positive(v).map(u64::from))),
    key("weir.server.max-subtasks", "4096",
        "most subtasks a submitted job may have, over all its nodes",
        |c, v| put(&mut c.server.max_subtasks, parse_positive(v).map(u64::from))),
    key("weir.server.memory-budget", "0",
        "memory all of a server's running jobs may use at most, as their limits add up (0: the machine's memory); a job that does not fit is refused",
        |c, v| put(&mut c.server.memory_budget, memory_or_zero(v))),
    key("weir.server.max-job-memory", "0",
        "memory one submitted job may use at most, as its limits add up (0: the memory budget)",
        |c, v| put(&mut c.server.max_job_memory, memory_or_zero(v))),
    key("weir.server.max-concurrent-uploads", "2",
        "bundle uploads read, checked and stored at once; more are answered 503",
        |c, v| put(&mut c.server.max_concurrent_uploads, parse_positive(v).map(|n| n as usize))),
    key("weir.server.upload-timeout", "5min",
        "time a bundle upload may take, reading and checking it included",
        |c, v| put(&mut c.server.upload_timeout, positive_duration(v))),
    key("weir.server.compile-timeout", "2min",
        "time an uploaded component's background compile may take; past it the bundle shows failed and jobs naming it are refused until the compile, which cannot be interrupted, ends and says how it went",
        |c, v| put(&mut c.server.compile_timeout, positive_duration(v))),
    key("weir.server.max-concurrent-compiles", "1",
        "uploaded bundles compiled at once in the background; others wait their turn",
        |c, v| put(&mut c.server.max_concurrent_compiles, parse_positive(v).map(|n| n as usize))),
    key("restart-strategy.type", "none",
        "none, fixed-delay, exponential-delay or failure-rate; without it: exponential-delay if checkpointing is on, else none",
        |c, v| put(&mut c.restart_type, restart_type(v))),
    key("jobmanager.execution.failover-strategy", "region",
        "region (a failure restarts only its failover region: the subtasks joined to it along forward edges, or the whole job if any edge is hash or rebalance) or full (the whole job)",
        |c, v| put(&mut c.failover, one_of(v, false, FAILOVERS))),
    key("restart-strategy.fixed-delay.attempts", "1",
        "restarts before the job fails",
        |c, v| put(&mut c.restart.fixed_attempts, parse_count(v))),
    key("restart-strategy.fixed-delay.delay", "1s",
        "wait before each restart",
        |c, v| put(&mut c.restart.fixed_delay, parse_duration(v))),
    key("restart-strategy.exponential-delay.initial-backoff", "1s",
        "first wait",
        |c, v| put(&mut c.restart.initial_backoff, parse_duration(v))),
    key("restart-strategy.exponential-delay.max-backoff", "1min",
        "longest wait",
        |c, v| put(&mut c.restart.max_backoff, parse_duration(v))),
    key("restart-strategy.exponential-delay.backoff-multiplier", "1.5",
        "factor by which the wait grows",
        |c, v| put(&mut c.restart.multiplier, parse_float(v, 1.0, 1e6))),
    key("restart-strategy.exponential-delay.reset-backoff-threshold", "1h",
        "a failure this long after the last one starts from the initial backoff",
        |c, v| put(&mut c.restart.reset_threshold, parse_duration(v))),
    key("restart-strategy.exponential-delay.jitter-factor", "0.1",
        "share by which each wait varies either way",
        |c, v| put(&mut c.restart.jitter, parse_float(v, 0.0, 1.0))),
    key("restart-strategy.exponential-delay.attempts-before-reset-backoff", "2147483647",
        "restarts before the job fails unless the backoff resets",
        |c, v| put(&mut c.restart.exp_attempts, parse_positive(v))),
    key("restart-strategy.failure-rate.max-failures-per-interval", "1",
        "failures within the interval that are still restarted",
        |c, v| put(&mut c.restart.max_failures, parse_positive(v))),
    key("restart-strategy.failure-rate.failure-rate-interval", "1min",
        "the window over which failures are counted",
        |c, v| put(&mut c.restart.failure_interval, parse_duration(v))),
    key("restart-strategy.failure-rate.delay", "1s",
        "wait before each restart",
        |c, v| put(&mut c.restart.failure_delay, parse_duration(v))),
];

/// Older (Flink 1.x) or newer (Flink 2.x) names accepted for a key in
/// [`KEYS`]: (alias, key).
pub const ALIASES: &[(&str, &str)] = &[
    (
        "execution.checkpointing.incremental",
        "state.backend.incremental",
    ),
    ("execution.checkpointing.dir", "state.checkpoints.dir"),
    ("s3.access.key", "s3.access-key"),
    ("s3.secret.key", "s3.secret-key"),
    (
        "execution.checkpointing.unaligned",
        "execution.checkpointing.unaligned.enabled",
    ),
    (
        "execution.checkpointing.alignment-timeout",
        "execution.checkpointing.aligned-checkpoint-timeout",
    ),
    (
        "execution.checkpointing.num-retained",
        "state.checkpoints.num-retained",
    ),
    (
        "state.checkpoint-storage",
        "execution.checkpointing.storage",
    ),
    ("restart-strategy", "restart-strategy.type"),
    (
        "state.savepoints.dir",
        "execution.checkpointing.savepoint-dir",
    ),
    ("execution.savepoint.path", "execution.state-recovery.path"),
    (
        "execution.savepoint-restore-mode",
        "execution.state-recovery.claim-mode",
    ),
    (
        "execution.savepoint.ignore-unclaimed-state",
        "execution.state-recovery.ignore-unclaimed-state",
    ),
];

/// The key Weir uses for `key`, which may be one of its [`ALIASES`].
pub fn canonical_key(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, k)| *k)
}

impl Config {
    /// Applies one `key: value` setting.
    /// An error names `key` as written.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |message| ConfigError::BadValue {
            key: key.to_owned(),
            message,
        };
        if reporters::is_reporter_key(key) {
            return reporters::set(&mut self.reporters, key, value).map_err(bad);
        }
        let name = canonical_key(key);
        let row = KEYS
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| ConfigError::UnknownKey {
                key: key.to_owned(),
                hint: suggest(key),
            })?;
        (row.set)(self, value).map_err(bad)
    }
}

/// The known key closest to `key`, if it is a plausible typo.
fn suggest(key: &str) -> String {
    KEYS.iter()
        .map(|k| (strsim::levenshtein(key, k.name), k.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unknown_keys_are_refused_with_a_hint() {
        let mut c = Config::default();
        let err = c
            .set("weir.sandbox.memory-limt", "1mb")
            .expect_err("unknown");
        assert!(matches!(err, ConfigError::UnknownKey { .. }));
        assert!(
            err.to_string()
                .contains("did you mean `weir.sandbox.memory-limit`"),
            "{err}"
        );
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
    fn checkpoint_keys_follow_flink() {
        let mut c = Config::default();
        c.set("execution.checkpointing.interval", "1s")
            .expect("set");
        assert_eq!(c.checkpoint.interval, Some(Duration::from_secs(1)));
        // Flink 1.x and 2.x names of the same key.
        c.set("execution.checkpointing.dir", "file:///tmp/cp")
            .expect("set");
        assert_eq!(c.checkpoint.dir, PathBuf::from("/tmp/cp"));
        c.set("state.checkpoints.num-retained", "3").expect("set");
        assert_eq!(c.checkpoint.num_retained, 3);
        c.set("restart-strategy", "fixed-delay").expect("set");
        assert_eq!(c.restart_type.as_deref(), Some("fixed-delay"));
        let err = c
            .set("execution.checkpointing.mode", "twice")
            .expect_err("bad");
        assert!(
            err.to_string()
                .contains("is not EXACTLY_ONCE or AT_LEAST_ONCE"),
            "{err}"
        );
        let err = c
            .set(
                "execution.checkpointing.externalized-checkpoint-retention",
                "x",
            )
            .expect_err("bad");
        assert!(
            err.to_string().contains(
                "is not RETAIN_ON_CANCELLATION, DELETE_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS"
            ),
            "{err}"
        );
        assert!(c.set("restart-strategy.type", "sometimes").is_err());
    }

    /// A row's default, as written, is what [`Config::default`] holds: the
    /// table and the typed defaults cannot drift apart.
    #[test]
    fn every_listed_default_is_the_typed_default() {
        let base = Config::default();
        for k in KEYS {
            let mut c = base.clone();
            let v = match k.name {
                "weir.sandbox.cache-dir" | "state.backend.rocksdb.localdir" => continue,
                "weir.server.token" => {
                    c.set(k.name, "0123456789abcdef0123")
                        .unwrap_or_else(|e| panic!("{e}"));
                    continue;
                }
                "restart-strategy.type" => {
                    c.set(k.name, k.default).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(c.restart_type.as_deref(), Some("none"));
                    continue;
                }
                _ => k.default,
            };
            c.set(k.name, v)
                .unwrap_or_else(|e| panic!("{}: {e}", k.name));
            assert_eq!(
                c, base,
                "{}: default {:?} differs from Config::default()",
                k.name, k.default
            );
        }
    }

    #[test]
    fn every_alias_names_a_key() {
        for (alias, k) in ALIASES {
            assert!(KEYS.iter().any(|r| r.name == *k), "{alias} -> {k}");
        }
    }
}
