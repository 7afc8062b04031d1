//! Sinks: where a job's elements go. Each writes an element as one line:
//! `key<TAB>value`, or just `value` for an element without a key (bytes
//! that are not UTF-8 are replaced). The `file` sink is exactly-once when
//! checkpoints are on (two-phase commit, see [`file`]); the `kafka` sink
//! with `delivery-guarantee: exactly-once` (one Kafka transaction per
//! checkpoint).
//!
//! A sink knows nothing of the runtime or the coordinator: its task hands
//! it barriers ([`SinkWriter::pre_commit`]) and completions
//! ([`SinkWriter::notify_checkpoint_complete`]), and the runtime drives a
//! [`TransactionalSink`] through recovery and commits.

pub mod dead_letter;
pub mod file;
mod folder;
#[cfg(feature = "kafka")]
mod kafka;
pub mod latency;
mod relocation;

use std::io::Write;
use std::path::Path;

use thiserror::Error;
use weir_wire::BatchReader;

pub use file::{FileSink, FileSinkCommitter};

use crate::channel::Batch;
use crate::config::CheckpointConfig;
use crate::spec::{SinkSpec, SinkType};

/// A sink that cannot write.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SinkError {
    /// It failed, for the reason given; a restart may help.
    #[error("{0}")]
    Failed(String),
    /// A file the snapshot being restored pre-committed is gone (its path
    /// given): a defect of the snapshot, which no restart from it fixes.
    #[error("pre-committed file {0} is missing")]
    MissingPrecommitted(String),
}

/// One subtask's writer of a sink.
pub trait SinkWriter: Send {
    /// Writes a batch.
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;
    /// Flushes everything to its destination at the end of input.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// Pre-commits what was written before the barrier of checkpoint `id`
    /// and returns the sink's operator state: what the coordinator commits
    /// once the checkpoint is complete. Sinks without transactions flush.
    fn pre_commit(&mut self, id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        let _ = id;
        self.finish()?;
        Ok(Vec::new())
    }
    /// Checkpoint `id` (and every one before it) is complete: what was
    /// pre-committed for it is committed and need not be remembered.
    fn notify_checkpoint_complete(&mut self, id: u64) {
        let _ = id;
    }
}

/// A sink whose output becomes visible only with the checkpoint that
/// covers it (two-phase commit, as Flink's `TwoPhaseCommitSinkFunction`).
///
/// Per attempt: [`Self::recover`] once before any subtask starts (commit
/// what the restored checkpoint pre-committed, drop everything after it);
/// [`Self::begin`] per subtask, whose writer pre-commits on each barrier;
/// [`Self::commit`] with the subtasks' states once a checkpoint is
/// complete. Committing the same state twice must be harmless.
pub trait TransactionalSink: Send + Sync {
    /// Brings the destination back to what the restored checkpoint saw
    /// (`None`: a fresh start), from `copies` where the restored snapshot
    /// (a savepoint) kept its own, and returns the first transaction
    /// number the new writers use.
    fn recover(
        &self,
        restored: Option<&[Vec<u8>]>,
        copies: Option<&Copies<'_>>,
    ) -> Result<u64, SinkError>;
    /// Keeps a copy in `copies` of everything the subtasks' `states` name
    /// (for a savepoint, so that it restores whatever happens to the
    /// destination meanwhile).
    fn preserve(&self, states: &[Vec<u8>], copies: &Copies<'_>) -> Result<(), SinkError> {
        let _ = (states, copies);
        Ok(())
    }
    /// The writer of subtask `subtask`, numbering its transactions from
    /// `first`.
    fn begin(&self, subtask: u32, first: u64) -> Result<Box<dyn SinkWriter>, SinkError>;
    /// Commits what the subtasks pre-committed for a completed checkpoint
    /// (their operator states in it).
    fn commit(&self, states: &[Vec<u8>]) -> Result<(), SinkError>;
    /// [`Self::recover`] for subtask `subtask` alone, while the others
    /// keep writing (a region failover); `restored` holds every subtask's
    /// state, of which only its own counts.
    fn recover_subtask(&self, subtask: u32, restored: Option<&[Vec<u8>]>)
    -> Result<u64, SinkError>;
}

/// Where a snapshot keeps its copies of a sink's files: `<dir>/<prefix><name>`.
#[derive(Debug, Clone, Copy)]
pub struct Copies<'a> {
    /// The snapshot's folder.
    pub dir: &'a Path,
    /// What the sink's file names are prefixed with there (one sink's
    /// files apart from another's).
    pub prefix: &'a str,
}

impl Copies<'_> {
    /// Where the copy of file `name` is.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(format!("{}{name}", self.prefix))
    }
}

/// The two-phase-commit side of sink `spec`, if it has one (a `file`
/// sink, an exactly-once `kafka` sink); relative paths resolve against `base_dir`, and the folder stays
/// beneath `root` if given (a server's files root).
pub fn transactional(
    spec: &SinkSpec,
    base_dir: &Path,
    root: Option<&Path>,
) -> Result<Option<Box<dyn TransactionalSink>>, SinkError> {
    Ok(match spec.sink_type {
        SinkType::File => Some(Box::new(FileSinkCommitter::open(
            &sink_folder(spec, base_dir)?,
            root,
        )?)),
        SinkType::Kafka => transactional_kafka(spec)?,
        SinkType::Stdout | SinkType::Discard => None,
    })
}

/// The two-phase-commit side of an exactly-once Kafka sink.
#[cfg(feature = "kafka")]
fn transactional_kafka(spec: &SinkSpec) -> Result<Option<Box<dyn TransactionalSink>>, SinkError> {
    Ok(exactly_once_kafka(spec)
        .map(|k| Box::new(kafka::KafkaTxnSink::new(k)) as Box<dyn TransactionalSink>))
}

/// A Kafka sink, in a weir built without Kafka: none.
#[cfg(not(feature = "kafka"))]
fn transactional_kafka(_: &SinkSpec) -> Result<Option<Box<dyn TransactionalSink>>, SinkError> {
    Ok(None)
}

pub(crate) fn write_lines(w: &mut impl Write, batch: &Batch) -> Result<(), SinkError> {
    for e in BatchReader::new(&batch.data) {
        let e = e.map_err(|e| SinkError::Failed(e.to_string()))?;
        let r = match e.key {
            Some(k) => writeln!(
                w,
                "{}\t{}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(e.value)
            ),
            None => writeln!(w, "{}", String::from_utf8_lossy(e.value)),
        };
        r.map_err(|e| SinkError::Failed(format!("write failed: {e}")))?;
    }
    Ok(())
}

/// Lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl SinkWriter for StdoutSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        write_lines(&mut out, batch)?;
        out.flush()
            .map_err(|e| SinkError::Failed(format!("stdout: {e}")))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        std::io::stdout()
            .flush()
            .map_err(|e| SinkError::Failed(format!("stdout: {e}")))
    }
}

/// Drops everything.
#[derive(Debug, Default)]
pub struct DiscardSink;

impl SinkWriter for DiscardSink {
    fn write(&mut self, _batch: &Batch) -> Result<(), SinkError> {
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The folder of a `file` sink, resolved against `base_dir`.
pub fn sink_folder(spec: &SinkSpec, base_dir: &Path) -> Result<std::path::PathBuf, SinkError> {
    let folder = spec
        .path
        .as_deref()
        .ok_or_else(|| SinkError::Failed("a file sink needs `path`".into()))?;
    Ok(base_dir.join(folder))
}

/// Whether a job with sink `spec` must fail over as a whole rather than
/// by region: an exactly-once Kafka sink recovers only with every one of
/// its producers fenced (see `sink/kafka/committer.rs`).
pub fn needs_whole_failover(spec: &SinkSpec) -> bool {
    exactly_once_kafka(spec).is_some()
}

/// The `kafka` block of sink `spec` if it is an exactly-once Kafka sink.
fn exactly_once_kafka(spec: &SinkSpec) -> Option<&crate::spec::KafkaSinkSpec> {
    spec.kafka
        .as_ref()
        .filter(|k| spec.sink_type == SinkType::Kafka && k.is_exactly_once())
}

/// Whether `e` says that a file a snapshot pre-committed is gone: a defect
/// of the snapshot, which no restart from it can fix (unlike a folder that
/// cannot be written just now).
pub fn is_missing_precommitted(e: &SinkError) -> bool {
    matches!(e, SinkError::MissingPrecommitted(_))
}

/// What the states a sink left in a snapshot say about restoring them into
/// a job's sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoredSink {
    /// They restore there.
    Fits,
    /// They were committed to folder `from`, and the job's folder `to`
    /// lacks files they pre-committed.
    Moved {
        /// The snapshot's folder.
        from: String,
        /// The job's.
        to: String,
    },
}

/// Checks the states the subtasks of a sink of `spec` left in a snapshot,
/// before a job restores them: a damaged or hostile state is refused with
/// the reason, rather than failing every attempt of the job; a sink that
/// now writes to another folder is told apart.
pub fn check_restored_states(
    spec: &SinkSpec,
    states: &[Vec<u8>],
    base_dir: &Path,
    copies: Option<&Copies<'_>>,
) -> Result<RestoredSink, String> {
    if spec.sink_type == SinkType::Kafka {
        #[cfg(feature = "kafka")]
        if let Some(k) = exactly_once_kafka(spec) {
            kafka::check_states(k, states)?;
        }
        return Ok(RestoredSink::Fits);
    }
    if spec.sink_type != SinkType::File {
        return Ok(RestoredSink::Fits);
    }
    file::check_states(states)?;
    let folder = sink_folder(spec, base_dir).map_err(|e| e.to_string())?;
    Ok(match relocation::moved_from(states, &folder, copies)? {
        Some((from, to)) => RestoredSink::Moved {
            from,
            to: to.display().to_string(),
        },
        None => RestoredSink::Fits,
    })
}

/// Opens subtask `subtask` of a sink that is not transactional (no
/// checkpoints, or a sink without transactions); relative paths resolve
/// against `base_dir`, and the folder stays beneath `root` if given.
pub fn open_sink(
    spec: &SinkSpec,
    subtask: u32,
    base_dir: &Path,
    root: Option<&Path>,
) -> Result<Box<dyn SinkWriter>, SinkError> {
    Ok(match spec.sink_type {
        SinkType::Stdout => Box::new(StdoutSink),
        SinkType::Discard => Box::new(DiscardSink),
        SinkType::File => {
            let folder = sink_folder(spec, base_dir)?;
            Box::new(FileSink::create(&folder, subtask, root)?)
        }
        SinkType::Kafka => open_kafka(spec)?,
    })
}

/// Checks, before a job starts, that sink `spec` can write where it names
/// (a Kafka sink's topic exists, or is created if its spec asks) and, if
/// it is exactly-once, that it can under `checkpoint`.
pub fn check_ready(spec: &SinkSpec, checkpoint: &CheckpointConfig) -> Result<(), SinkError> {
    #[cfg(not(feature = "kafka"))]
    let _ = checkpoint;
    match (&spec.kafka, spec.sink_type) {
        #[cfg(feature = "kafka")]
        (Some(k), SinkType::Kafka) => {
            kafka::max_block(k).map_err(SinkError::Failed)?;
            if k.is_exactly_once() {
                kafka::check_exactly_once(k, checkpoint).map_err(SinkError::Failed)?;
            }
            kafka::prepare_topic(k)
        }
        #[cfg(not(feature = "kafka"))]
        (_, SinkType::Kafka) => Err(SinkError::Failed(
            "this weir was built without Kafka (the `kafka` feature)".into(),
        )),
        _ => Ok(()),
    }
}

/// A Kafka sink's writer, without transactions.
#[cfg(feature = "kafka")]
fn open_kafka(spec: &SinkSpec) -> Result<Box<dyn SinkWriter>, SinkError> {
    let k = spec
        .kafka
        .as_ref()
        .ok_or_else(|| SinkError::Failed("a kafka sink needs its `kafka` block".into()))?;
    if k.is_exactly_once() {
        return Err(SinkError::Failed(
            "kafka sink: exactly-once commits with checkpoints: set execution.checkpointing.interval"
                .into(),
        ));
    }
    Ok(Box::new(kafka::KafkaSink::open(k)?))
}

/// A Kafka sink's writer, in a weir built without Kafka.
#[cfg(not(feature = "kafka"))]
fn open_kafka(_: &SinkSpec) -> Result<Box<dyn SinkWriter>, SinkError> {
    Err(SinkError::Failed(
        "this weir was built without Kafka (the `kafka` feature)".into(),
    ))
}
