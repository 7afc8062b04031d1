//! What a session operation refuses or fails with, and whose fault it is;
//! the server maps each kind to an HTTP status.

/// A refused or failed operation on jobs or bundles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The request is wrong (a bad spec, a path outside the roots, a bad
    /// component): the caller's to fix.
    #[error("{0}")]
    BadRequest(String),
    /// No such job or bundle.
    #[error("{0}")]
    NotFound(String),
    /// The job or bundle is not in a state that allows it (a job that is
    /// not running, a bundle a job uses).
    #[error("{0}")]
    Conflict(String),
    /// The server could not do it (a file it could not write): logged in
    /// full, reported in general.
    #[error("{0}")]
    Internal(String),
}

impl SessionError {
    /// The caller's mistake.
    pub fn bad_request(message: impl Into<String>) -> Self {
        SessionError::BadRequest(message.into())
    }

    /// Nothing by that name.
    pub fn not_found(message: impl Into<String>) -> Self {
        SessionError::NotFound(message.into())
    }

    /// Not possible in the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        SessionError::Conflict(message.into())
    }

    /// The server's own failure: `error` is logged with `context`, and only
    /// `context` is reported (no host paths or internals reach a client).
    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        SessionError::Internal(format!("{context} (see the server log)"))
    }
}
