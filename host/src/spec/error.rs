//! What is wrong with a job spec: every problem, each naming its field.

use std::fmt;

use thiserror::Error;

/// One problem with a job spec, naming the field it is in.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpecError {
    /// The document does not parse, or a field has the wrong type or name.
    #[error("{}{message}", at(field))]
    Parse {
        /// Field path, empty for the whole document.
        field: String,
        /// What the parser said.
        message: String,
    },
    /// An edge names a node that does not exist.
    #[error("{field}: unknown node `{name}`")]
    UnknownReference {
        /// The edge field.
        field: String,
        /// The name as written.
        name: String,
    },
    /// The edges form a cycle.
    #[error("edges: cycle through {}", nodes.join(" -> "))]
    Cycle {
        /// The nodes on the cycle.
        nodes: Vec<String>,
    },
    /// An operator has no `uid`.
    #[error("{field}: missing uid (every operator needs a stable uid for its state)")]
    MissingUid {
        /// The node field.
        field: String,
    },
    /// Two nodes share a uid or an id.
    #[error("{field}: duplicate {what} `{value}` (also at {first})")]
    Duplicate {
        /// The second occurrence.
        field: String,
        /// `uid` or `id`.
        what: &'static str,
        /// The value.
        value: String,
        /// The first occurrence.
        first: String,
    },
    /// A parallelism of zero.
    #[error("{field}: parallelism must be at least 1")]
    ParallelismZero {
        /// The field.
        field: String,
    },
    /// Parallelism above max parallelism.
    #[error("{field}: parallelism {parallelism} exceeds max parallelism {max}")]
    ParallelismAboveMax {
        /// The field.
        field: String,
        /// The parallelism.
        parallelism: u32,
        /// The max parallelism.
        max: u32,
    },
    /// A forward edge between different parallelisms.
    #[error(
        "{field}: forward edge from `{from}` (parallelism {from_parallelism}) to `{to}` \
         (parallelism {to_parallelism}) needs equal parallelism; use rebalance or hash"
    )]
    ForwardMismatch {
        /// The edge field.
        field: String,
        /// Upstream id.
        from: String,
        /// Downstream id.
        to: String,
        /// Upstream parallelism.
        from_parallelism: u32,
        /// Downstream parallelism.
        to_parallelism: u32,
    },
    /// The operator's `.wasm` file does not exist.
    #[error("{field}: wasm file {path} does not exist")]
    MissingWasm {
        /// The field.
        field: String,
        /// The resolved path.
        path: String,
    },
    /// The `.wasm` file is not a component of the Weir world.
    #[error("{field}: {message}")]
    InvalidComponent {
        /// The field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A config key the job overrides is unknown or has a bad value.
    #[error("{field}: {message}")]
    Config {
        /// The field (`config.<key>`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Something else about the graph's shape or a node's settings.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

pub(super) fn at(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// Every problem found in a spec.
#[derive(Debug, Error, Clone, PartialEq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid job spec:")?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl From<SpecError> for SpecErrors {
    fn from(e: SpecError) -> Self {
        SpecErrors(vec![e])
    }
}
