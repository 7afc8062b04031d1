//! `s3.*`: how Weir reaches S3-compatible object storage for `s3://`
//! checkpoint and savepoint locations, with Flink's key names. Keys left
//! unset fall back to the usual AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`).

/// A secret: kept as given, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// The settings of the S3 client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Config {
    /// `s3.endpoint`: the server (`http://127.0.0.1:9000`); unset, AWS.
    pub endpoint: Option<String>,
    /// `s3.path.style.access`: `bucket` in the path, not the host name;
    /// unset, path style when an endpoint is set.
    pub path_style: Option<bool>,
    /// `s3.access-key`.
    pub access_key: Option<String>,
    /// `s3.secret-key`.
    pub secret_key: Option<Secret>,
    /// `s3.region` (default `us-east-1`).
    pub region: Option<String>,
}

/// A text value, or `None` for `none` or nothing.
pub(super) fn optional_text(v: &str) -> Result<Option<String>, String> {
    match v.trim() {
        "" | "none" => Ok(None),
        t => Ok(Some(t.to_owned())),
    }
}
