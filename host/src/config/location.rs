//! Where checkpoints and savepoints live, written as Flink writes it: a
//! path or a URI. A plain path and a `file:` URI are local folders; an
//! `s3://bucket/prefix` URI (also `s3a://`, `s3p://`) is a prefix in
//! S3-compatible object storage, kept as the path `s3://bucket/prefix`
//! and recognised by [`ObjectUri::of`]. Any other scheme is refused,
//! never taken for a relative folder whose name happens to hold a colon.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The URI schemes a location may use, as error messages list them.
pub const SUPPORTED: &str = "a local path, a file:// URI or an s3:// URI";

/// Why a location cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LocationError {
    /// Nothing was given.
    #[error("the location is empty")]
    Empty,
    /// An `s3://` URI without a bucket, or with a bucket name S3 refuses.
    #[error("{given:?} names no usable bucket: write s3://<bucket>/<prefix>")]
    NoBucket {
        /// The location as written.
        given: String,
    },
    /// An `s3://` key prefix with characters other than letters, digits,
    /// `.`, `_` and `-` between its `/`.
    #[error(
        "{given:?}: the key prefix of an s3:// location may hold only letters, digits, `.`, `_` and `-` between its `/`"
    )]
    KeyCharacters {
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
        "s3" | "s3a" | "s3p" => object_location(&url, given),
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

/// An `s3://` location as the path `s3://<bucket>/<prefix>` (no trailing
/// `/`, no empty or `.` segments).
fn object_location(url: &url::Url, given: &str) -> Result<PathBuf, LocationError> {
    let bucket = url.host_str().unwrap_or_default();
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid || url.port().is_some() || !url.username().is_empty() {
        return Err(LocationError::NoBucket {
            given: given.to_owned(),
        });
    }
    let key: Vec<&str> = url
        .path()
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    // Characters the client would percent-encode would make listed keys
    // differ from the ones written.
    let plain = |part: &&str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if !key.iter().all(plain) {
        return Err(LocationError::KeyCharacters {
            given: given.to_owned(),
        });
    }
    let mut out = format!("{OBJECT_SCHEME}{bucket}");
    for part in key {
        out.push('/');
        out.push_str(part);
    }
    Ok(PathBuf::from(out))
}

/// Location `loc` as seen from folder `base` (a job spec's): an
/// object-storage location or an absolute path as it is, a relative path
/// beneath `base`.
pub fn resolve_location(base: &Path, loc: &Path) -> PathBuf {
    if ObjectUri::of(loc).is_some() {
        loc.to_path_buf()
    } else {
        base.join(loc)
    }
}

/// How an object-storage location starts once parsed.
const OBJECT_SCHEME: &str = "s3://";

/// A location in S3-compatible object storage: a bucket and a key prefix
/// (`""` for the bucket's root; never starting or ending with `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectUri {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, segments joined by `/`.
    pub key: String,
}

impl ObjectUri {
    /// The object-storage location `path` names, if it is one (a path
    /// [`parse_location`] made from an `s3://` URI).
    pub fn of(path: &Path) -> Option<ObjectUri> {
        let rest = path.to_str()?.strip_prefix(OBJECT_SCHEME)?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        Some(ObjectUri {
            bucket: bucket.to_owned(),
            key: key.trim_matches('/').to_owned(),
        })
    }

    /// The location `name` (one or more `/`-separated segments) below
    /// this one.
    pub fn join(&self, name: &str) -> ObjectUri {
        let name = name.trim_matches('/');
        ObjectUri {
            bucket: self.bucket.clone(),
            key: match (self.key.is_empty(), name.is_empty()) {
                (_, true) => self.key.clone(),
                (true, false) => name.to_owned(),
                (false, false) => format!("{}/{name}", self.key),
            },
        }
    }

    /// The location above this one (the bucket's root stays itself), and
    /// the last segment of this one.
    pub fn split_last(&self) -> (ObjectUri, &str) {
        let (parent, last) = self.key.rsplit_once('/').unwrap_or(("", &self.key));
        (
            ObjectUri {
                bucket: self.bucket.clone(),
                key: parent.to_owned(),
            },
            last,
        )
    }

    /// The location as a path, as [`parse_location`] gives it.
    pub fn to_path(&self) -> PathBuf {
        PathBuf::from(self.to_string())
    }
}

impl std::fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{OBJECT_SCHEME}{}", self.bucket)
        } else {
            write!(f, "{OBJECT_SCHEME}{}/{}", self.bucket, self.key)
        }
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
        for bad in ["s3:///cp", "s3://B/cp", "s3://ab/cp", "s3://bucket:9000/cp"] {
            assert!(
                matches!(parse_location(bad), Err(LocationError::NoBucket { .. })),
                "{bad}"
            );
        }
        assert_eq!(parse_location("  "), Err(LocationError::Empty));
        assert!(matches!(
            parse_location("file://namenode/cp"),
            Err(LocationError::NotLocal { .. })
        ));
    }

    #[test]
    fn s3_key_prefixes_hold_only_plain_characters() {
        for bad in [
            "s3://bucket/my cp",
            "s3://bucket/a%2Fb",
            "s3://bucket/a~b",
            "s3://bucket/[x]",
        ] {
            assert!(
                matches!(
                    parse_location(bad),
                    Err(LocationError::KeyCharacters { .. })
                ),
                "{bad}"
            );
        }
        // `..` is resolved as in any URI, never left in a key.
        let path = parse_location("s3://bucket/a/../b").expect("resolved");
        assert_eq!(path, PathBuf::from("s3://bucket/b"));
    }

    #[test]
    fn s3_uris_are_object_locations() {
        for (given, bucket, key) in [
            ("s3://weir-checkpoints/jobs", "weir-checkpoints", "jobs"),
            ("s3a://weir-checkpoints/jobs/", "weir-checkpoints", "jobs"),
            ("s3://bucket", "bucket", ""),
            ("s3p://bucket//a/./b/", "bucket", "a/b"),
        ] {
            let path = parse_location(given).expect(given);
            let uri = ObjectUri::of(&path).expect(given);
            assert_eq!(
                (uri.bucket.as_str(), uri.key.as_str()),
                (bucket, key),
                "{given}"
            );
            assert_eq!(uri.to_path(), path);
        }
        let uri = ObjectUri::of(Path::new("s3://b-1/jobs")).expect("uri");
        assert_eq!(uri.join("j/chk-3").to_string(), "s3://b-1/jobs/j/chk-3");
        let job = uri.join("j");
        assert_eq!(job.split_last(), (uri.clone(), "j"));
        assert_eq!(ObjectUri::of(Path::new("/tmp/s3://x")), None);
    }
}
