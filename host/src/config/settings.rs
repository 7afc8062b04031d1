//! The effective configuration of a job as typed settings, with their
//! defaults. The keys that set them are in [`super::keys`].

use std::path::PathBuf;
use std::time::Duration;

use super::checkpoint::CheckpointConfig;
use super::reporters::Reporters;
use crate::keygroup::DEFAULT_MAX_PARALLELISM;

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
    /// `weir.sandbox.output-limit`, in bytes.
    pub output_limit: u64,
    /// `pipeline.operator-chaining.enabled`.
    pub chaining: bool,
    /// `weir.state.max-bytes`.
    pub state_max_bytes: u64,
    /// `weir.sink.file.allow-new-folder`.
    pub sink_allow_new_folder: bool,
    /// `weir.dead-letter.*`.
    pub dead_letter: super::DeadLetterConfig,
    /// `state.backend.*`.
    pub backend: BackendConfig,
    /// `weir.sandbox.cache-dir`.
    pub cache_dir: PathBuf,
    /// `weir.sandbox.cache-max-bytes`.
    pub cache_max_bytes: u64,
    /// The folder every source and sink file of a job must stay beneath,
    /// opened through `cap-std` handles (a server's files root; no key:
    /// `weir run` has none).
    pub files_root: Option<PathBuf>,
    /// `weir.batch.size`.
    pub batch_size: usize,
    /// `weir.batch.max-bytes`.
    pub batch_max_bytes: usize,
    /// `weir.channel.capacity`.
    pub channel_capacity: usize,
    /// `weir.progress.interval`; zero disables progress lines.
    pub progress_interval: Duration,
    /// `execution.checkpointing.*` and `state.checkpoints.*`.
    pub checkpoint: CheckpointConfig,
    /// `restart-strategy.type`, if set (`none`, `fixed-delay`,
    /// `exponential-delay` or `failure-rate`); unset, the runtime picks
    /// Flink's default.
    pub restart_type: Option<String>,
    /// The parameters of every restart strategy, as set or defaulted.
    pub restart: RestartParams,
    /// `jobmanager.execution.failover-strategy`.
    pub failover: FailoverStrategy,
    /// `rest.*` and `weir.server.*`: the settings of `weir serve`.
    pub server: ServerConfig,
    /// `metrics.reporter.<name>.*` and `metrics.reporters`.
    pub reporters: Reporters,
    /// `s3.*`: the client of `s3://` checkpoint and savepoint locations.
    pub s3: super::S3Config,
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
    /// `state.backend.rocksdb.memory.fixed-per-slot`, bytes (0: off).
    pub rocksdb_memory: u64,
    /// `state.backend.rocksdb.memory.write-buffer-ratio`.
    pub rocksdb_write_buffer_ratio: f64,
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
            // One per user: a shared one could be pre-created by another.
            rocksdb_dir: std::env::temp_dir().join(format!(
                "weir-rocksdb-{}",
                rustix::process::geteuid().as_raw()
            )),
            rocksdb_block_cache: 8 << 20,
            rocksdb_memory: 256 << 20,
            rocksdb_write_buffer_ratio: 0.5,
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

/// `jobmanager.execution.failover-strategy`: what a task failure restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverStrategy {
    /// Only the failed task's region (subtasks joined along pipelined
    /// exchanges); the rest keeps running.
    Region,
    /// The whole job.
    Full,
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
    /// `rest.async.store-duration`: how long the result of an
    /// asynchronous operation (a savepoint, a stop, a disposal) is kept.
    pub async_store_duration: Duration,
    /// `weir.server.token`; `None`: generated at first start.
    pub token: Option<String>,
    /// `weir.server.max-upload`, bytes.
    pub max_upload: u64,
    /// `weir.server.max-body`, bytes.
    pub max_body: u64,
    /// `weir.server.header-read-timeout`: time a connection has to send a
    /// request head (also how long an idle one stays open).
    pub header_read_timeout: Duration,
    /// `weir.server.max-connections`: connections kept at once.
    pub max_connections: usize,
    /// `weir.server.request-timeout`: time a request other than an upload
    /// may take, body included.
    pub request_timeout: Duration,
    /// `weir.server.upload-timeout`: time an upload may take, compile
    /// included.
    pub upload_timeout: Duration,
    /// `weir.server.compile-timeout`.
    pub compile_timeout: Duration,
    /// `weir.server.min-checkpoint-interval`: the shortest checkpoint
    /// interval a submitted job may ask for.
    pub min_checkpoint_interval: Duration,
    /// `weir.server.max-subtasks`: the most subtasks a submitted job may
    /// have, over all its nodes.
    pub max_subtasks: u64,
    /// `weir.server.memory-budget` (0: the machine's memory).
    pub memory_budget: u64,
    /// `weir.server.max-job-memory` (0: the memory budget).
    pub max_job_memory: u64,
    /// `weir.server.max-retained-checkpoints`: the most
    /// `state.checkpoints.num-retained` a submitted job may ask for.
    pub max_retained_checkpoints: u64,
    /// `weir.server.max-concurrent-uploads`: uploads read, checked and
    /// stored at once; more are answered 503.
    pub max_concurrent_uploads: usize,
    /// `weir.server.max-concurrent-compiles`: uploaded bundles compiled at
    /// once in the background.
    pub max_concurrent_compiles: usize,
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
            async_store_duration: Duration::from_secs(300),
            token: None,
            max_upload: 64 << 20,
            max_body: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 512,
            request_timeout: Duration::from_secs(60),
            upload_timeout: Duration::from_secs(300),
            compile_timeout: Duration::from_secs(120),
            min_checkpoint_interval: Duration::from_millis(100),
            max_subtasks: 4096,
            memory_budget: 0,
            max_job_memory: 0,
            max_retained_checkpoints: 10,
            max_concurrent_uploads: 2,
            max_concurrent_compiles: 1,
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
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            call_timeout: Duration::from_secs(10),
            memory_limit: 128 << 20,
            output_limit: 64 << 20,
            chaining: true,
            state_max_bytes: 1 << 30,
            sink_allow_new_folder: false,
            dead_letter: super::DeadLetterConfig::default(),
            backend: BackendConfig::default(),
            cache_dir: default_cache_dir(),
            cache_max_bytes: 1 << 30,
            files_root: None,
            batch_size: 1024,
            batch_max_bytes: 1 << 20,
            channel_capacity: 16,
            progress_interval: Duration::from_secs(1),
            checkpoint: CheckpointConfig::default(),
            restart_type: None,
            restart: RestartParams::default(),
            failover: FailoverStrategy::Region,
            server: ServerConfig::default(),
            reporters: Reporters::default(),
            s3: super::S3Config::default(),
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
