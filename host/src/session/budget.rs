//! Memory budgets: the most memory a job can use, as its enforced limits
//! add up, checked at admission against the server's budget
//! (`weir.server.memory-budget`, the machine's memory by default) and its
//! per-job maximum (`weir.server.max-job-memory`).
//!
//! Each part is a limit that is enforced while the job runs (a guest's
//! memory, a subtask's keyed state on either backend, RocksDB's caches and
//! write buffers, a call's output, a channel's batches), so a job that
//! reaches one fails alone with that limit's message, and the sum of the
//! admitted jobs' worst cases stays within the server's budget.

use std::fmt;

use super::error::SessionError;
use super::manager::JobManager;
use crate::config::{BackendKind, Config};
use crate::spec::Partitioning;
use crate::spec::graph::{JobGraph, NodeKind};

/// What a job may use at most, by part (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Guests' linear memory: operator subtasks × `weir.sandbox.memory-limit`.
    pub guests: u64,
    /// One call's output per operator subtask (`weir.sandbox.output-limit`).
    pub output: u64,
    /// Keyed state: `weir.state.max-bytes` per keyed subtask on the hashmap
    /// backend; RocksDB's block cache, write buffers and write cache.
    pub state: u64,
    /// Batches in flight: channels × `weir.channel.capacity` ×
    /// `weir.batch.max-bytes`.
    pub channels: u64,
    /// Buffers of Kafka clients (sources' fetched records, sinks' records
    /// not yet acknowledged).
    pub clients: u64,
}

impl MemoryEstimate {
    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.guests
            .saturating_add(self.output)
            .saturating_add(self.state)
            .saturating_add(self.channels)
            .saturating_add(self.clients)
    }
}

/// `bytes` as MiB, for messages.
fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (guest memory {}, call output {}, keyed state {}, batches in flight {}",
            mib(self.total()),
            mib(self.guests),
            mib(self.output),
            mib(self.state),
            mib(self.channels)
        )?;
        if self.clients > 0 {
            write!(f, ", Kafka client buffers {}", mib(self.clients))?;
        }
        f.write_str(")")
    }
}

/// The keyed state one subtask may hold in memory under `config`.
fn state_per_subtask(config: &Config) -> u64 {
    let b = &config.backend;
    match b.kind {
        BackendKind::HashMap => config.state_max_bytes,
        BackendKind::RocksDb if b.rocksdb_memory > 0 => {
            b.rocksdb_memory.saturating_add(b.rocksdb_write_cache)
        }
        BackendKind::RocksDb => b
            .rocksdb_block_cache
            .saturating_add(
                b.rocksdb_write_buffer
                    .saturating_mul(b.rocksdb_write_buffers.into()),
            )
            .saturating_add(b.rocksdb_write_cache),
    }
}

/// The most memory `graph` may use.
pub fn estimate(graph: &JobGraph) -> MemoryEstimate {
    let c = &graph.config;
    let mut e = MemoryEstimate::default();
    for (i, node) in graph.nodes.iter().enumerate() {
        let p = u64::from(node.parallelism);
        let client = match &node.kind {
            NodeKind::Source(s) => s.kafka.as_ref().map(|k| k.buffer_bytes()),
            NodeKind::Sink(s) => s.kafka.as_ref().map(|k| k.buffer_bytes()),
            _ => None,
        };
        e.clients = e
            .clients
            .saturating_add(p.saturating_mul(client.unwrap_or(0)));
        if !matches!(node.kind, NodeKind::Operator { .. }) {
            continue;
        }
        e.guests = e.guests.saturating_add(p.saturating_mul(c.memory_limit));
        e.output = e.output.saturating_add(p.saturating_mul(c.output_limit));
        let keyed = graph
            .edges
            .iter()
            .any(|edge| edge.to == i && edge.partition == Partitioning::Hash);
        if keyed {
            e.state = e
                .state
                .saturating_add(p.saturating_mul(state_per_subtask(c)));
        }
    }
    let per_channel = (c.channel_capacity as u64).saturating_mul(c.batch_max_bytes as u64);
    for edge in &graph.edges {
        let (up, down) = (
            u64::from(graph.nodes[edge.from].parallelism),
            u64::from(graph.nodes[edge.to].parallelism),
        );
        let channels = match edge.partition {
            Partitioning::Forward => up,
            _ => up.saturating_mul(down),
        };
        e.channels = e
            .channels
            .saturating_add(channels.saturating_mul(per_channel));
    }
    e
}

/// The machine's memory, from `/proc/meminfo` (none if unreadable).
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

impl JobManager {
    /// The server's memory budget for all running jobs.
    fn memory_budget(&self) -> u64 {
        match self.config.server.memory_budget {
            0 => machine_memory().unwrap_or(u64::MAX),
            b => b,
        }
    }

    /// Refuses `graph` if it may use more memory than one job may, or than
    /// the budget the running jobs leave; the message has the numbers.
    /// A job that alone asks too much is a bad request; one that does not
    /// fit beside the running jobs, a conflict.
    pub(super) fn check_memory(&self, graph: &JobGraph) -> Result<(), SessionError> {
        let need = estimate(graph);
        let budget = self.memory_budget();
        let most = match self.config.server.max_job_memory {
            0 => budget,
            m => m.min(budget),
        };
        if need.total() > most {
            return Err(SessionError::bad_request(format!(
                "the job may use up to {need}; the server allows at most {} per job \
                 (weir.server.max-job-memory, weir.server.memory-budget): lower its \
                 parallelism or its limits",
                mib(most)
            )));
        }
        let running: u64 = self
            .list()
            .iter()
            .filter(|j| j.is_running())
            .map(|j| estimate(&j.graph).total())
            .fold(0u64, u64::saturating_add);
        let left = budget.saturating_sub(running);
        if need.total() > left {
            return Err(SessionError::conflict(format!(
                "the job may use up to {need}, but the running jobs leave {} of the \
                 server's memory budget of {} (weir.server.memory-budget)",
                mib(left),
                mib(budget)
            )));
        }
        Ok(())
    }
}
