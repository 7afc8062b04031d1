//! The `weir.yaml` loader: flat `key: value` lines or nested maps (joined
//! with dots), as Flink's `config.yaml` allows.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ConfigError;
use super::settings::Config;

impl Config {
    /// The configuration `weir` runs with: the defaults, overridden by
    /// `path` if given, else by `./weir.yaml` if it exists.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        match path {
            Some(p) => config.load_file(p)?,
            None => {
                let default = Path::new("weir.yaml");
                if default.is_file() {
                    config.load_file(default)?;
                }
            }
        }
        Ok(config)
    }

    /// Reads `weir.yaml`: flat `key: value` lines or nested maps (joined with
    /// dots), as Flink's `config.yaml` allows.
    pub fn load_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let file_err = |message: String| ConfigError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        let mut flat = BTreeMap::new();
        if !doc.is_null() {
            flatten("", &doc, &mut flat).map_err(file_err)?;
        }
        let pairs: Vec<(String, String)> = flat.into_iter().collect();
        match self.set_all(&pairs).into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

fn flatten(
    prefix: &str,
    v: &serde_yaml_ng::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    use serde_yaml_ng::Value;
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
