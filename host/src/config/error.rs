//! What is wrong with a configuration value or file.

use thiserror::Error;

/// A config value that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// The key is not one of [`super::KEYS`].
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
    /// Two keys written together set one thing differently (a Flink 1.x
    /// name and a newer one).
    #[error("`{first}` and `{second}` disagree: keep one of them")]
    Conflict {
        /// The first key and value, as written.
        first: String,
        /// The second key and value, as written.
        second: String,
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
