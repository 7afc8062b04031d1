//! A scalar value of a spec's `config` map or a connector's `properties`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A scalar config value: written as a string, number or boolean, handed to
/// operators and the config parser as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A decimal number.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Text(s) => f.write_str(s),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Bool(b) => write!(f, "{b}"),
        }
    }
}
