//! Where checkpoints and savepoints live, written as Flink writes it: a
//! path or a URI. Weir keeps them in local files, so a plain path and a
//! `file:` URI are accepted; any other scheme is refused, never taken for
//! a relative folder whose name happens to hold a colon.

use std::path::PathBuf;

use thiserror::Error;

/// The URI schemes a location may use, as error messages list them.
pub const SUPPORTED: &str = "a local path or a file:// URI";

/// Why a location cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocationError {
    /// Nothing was given.
    #[error("the location is empty")]
    Empty,
    /// `s3://`: object storage, which Weir does not have yet.
    #[error(
        "scheme `s3` (object storage) is not supported yet, so checkpoints and savepoints cannot go to {given:?}; Weir supports {SUPPORTED}"
    )]
    ObjectStorage {
        /// The location as written.
        given: String,
    },
    /// Another scheme: `hdfs://`, `gs://`, `abfs://`, or a bare `name:`.
    #[error("scheme `{scheme}` is not supported (in {given:?}); Weir supports {SUPPORTED}{hint}")]
    Unsupported {
        /// The scheme, as written.
        scheme: String,
        /// The location as written.
        given: String,
        /// How to name a local folder of that name, when it could be one.
        hint: String,
    },
    /// A `file:` URI that names another machine or is not a path.
    #[error("{given:?} is not a local file URI: write file:///absolute/path")]
    NotLocal {
        /// The location as written.
        given: String,
    },
}

/// Parses a checkpoint or savepoint location: a plain path (absolute, or
/// relative to what the caller resolves it against) or a `file:` URI
/// (`file:///path`, `file:/path`, `file://localhost/path`), as a path.
pub fn parse_location(given: &str) -> Result<PathBuf, LocationError> {
    let given = given.trim();
    if given.is_empty() {
        return Err(LocationError::Empty);
    }
    // Only text that starts with a scheme (a letter, then letters, digits,
    // `+`, `-` or `.`, then `:`) parses as an absolute URI; `./a:b`,
    // `dir/a:b` and `/a:b` stay paths.
    let url = match url::Url::parse(given) {
        Ok(url) => url,
        Err(_) => return Ok(PathBuf::from(given)),
    };
    match url.scheme() {
        "file" => url.to_file_path().map_err(|()| LocationError::NotLocal {
            given: given.to_owned(),
        }),
        "s3" | "s3a" | "s3p" => Err(LocationError::ObjectStorage {
            given: given.to_owned(),
        }),
        _ => Err(LocationError::Unsupported {
            scheme: given.split(':').next().unwrap_or_default().to_owned(),
            given: given.to_owned(),
            hint: if given.contains("//") {
                String::new()
            } else {
                format!(" (a local folder of that name is ./{given})")
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_uris_are_local_paths() {
        for (given, path) in [
            ("checkpoints", "checkpoints"),
            ("/var/weir/cp", "/var/weir/cp"),
            ("./hdfs:", "./hdfs:"),
            ("dir/a:b", "dir/a:b"),
            ("2024:01", "2024:01"),
            ("file:///tmp/cp", "/tmp/cp"),
            ("file:/tmp/cp", "/tmp/cp"),
            ("file://localhost/tmp/cp", "/tmp/cp"),
            ("file:///tmp/my%20cp", "/tmp/my cp"),
            (" /tmp/x ", "/tmp/x"),
        ] {
            assert_eq!(parse_location(given), Ok(PathBuf::from(path)), "{given}");
        }
    }

    #[test]
    fn other_schemes_are_refused_naming_the_scheme() {
        for (given, scheme) in [
            ("hdfs://namenode/flink/checkpoints", "hdfs"),
            ("gs://bucket/cp", "gs"),
            ("abfs://c@a.dfs.core.windows.net/cp", "abfs"),
            ("HDFS://x/y", "HDFS"),
            ("hdfs:", "hdfs"),
            ("hdfs:cp", "hdfs"),
        ] {
            let err = parse_location(given).expect_err(given);
            let text = err.to_string();
            assert!(
                matches!(err, LocationError::Unsupported { .. })
                    && text.contains(&format!("scheme `{scheme}`"))
                    && text.contains("file://"),
                "{given}: {text}"
            );
        }
        let err = parse_location("s3://bucket/flink/").expect_err("s3");
        assert!(err.to_string().contains("not supported yet"), "{err}");
        assert_eq!(parse_location("  "), Err(LocationError::Empty));
        assert!(matches!(
            parse_location("file://namenode/cp"),
            Err(LocationError::NotLocal { .. })
        ));
    }
}
