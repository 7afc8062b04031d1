//! Building the S3 client from `s3.*` and the AWS environment, the
//! runtime its futures run on, and the errors it reports.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use thiserror::Error;

use crate::config::{ObjectUri, S3Config};

/// A request to object storage that failed for good (after retries).
/// Messages name the `s3://` URI and the `s3.*` keys, never a secret.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ObjectError {
    /// No such object (or no such bucket).
    #[error("{uri}: not found")]
    NotFound {
        /// The object.
        uri: String,
    },
    /// A conditional put found the object there already.
    #[error("{uri}: already exists")]
    AlreadyExists {
        /// The object.
        uri: String,
    },
    /// The bucket does not exist.
    #[error(
        "{uri}: bucket `{bucket}` does not exist (create it, or fix the bucket in the location)"
    )]
    NoBucket {
        /// The location.
        uri: String,
        /// The bucket.
        bucket: String,
    },
    /// The server refused the credentials or the request.
    #[error(
        "{uri}: access denied ({message}); check s3.access-key and s3.secret-key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    Denied {
        /// The object or location.
        uri: String,
        /// What the server said.
        message: String,
    },
    /// The client cannot be made: no credentials, a bad endpoint.
    #[error("{uri}: {message}")]
    Config {
        /// The location.
        uri: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The server did not answer (no connection, a request cut off or
    /// timed out, after the retries): a passing failure, not damage.
    #[error("{uri}: {message}")]
    Unreachable {
        /// The object.
        uri: String,
        /// What went wrong.
        message: String,
    },
    /// Any other failure (a server error, a damaged object).
    #[error("{uri}: {message}")]
    Failed {
        /// The object.
        uri: String,
        /// What went wrong.
        message: String,
    },
}

impl ObjectError {
    /// The error of a request for `uri` that `object_store` reported. A
    /// listing's failures arrive as generic errors holding the server's
    /// answer, so S3's error code in it decides.
    pub(super) fn from_store(uri: String, e: object_store::Error) -> Self {
        let text = e.to_string();
        let code = s3_code(&text);
        match (e, code) {
            (object_store::Error::NotFound { .. }, _) => ObjectError::NotFound { uri },
            (_, Some("NoSuchBucket")) => ObjectError::NoBucket {
                bucket: ObjectUri::of(std::path::Path::new(&uri))
                    .map(|u| u.bucket)
                    .unwrap_or_default(),
                uri,
            },
            (_, Some("NoSuchKey")) => ObjectError::NotFound { uri },
            (
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
                _,
            ) => ObjectError::AlreadyExists { uri },
            (
                object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. },
                code,
            )
            | (
                _,
                code @ Some(
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken",
                ),
            ) => ObjectError::Denied {
                uri,
                message: code.unwrap_or("refused").to_owned(),
            },
            (e, _) if did_not_answer(&e) => ObjectError::Unreachable { uri, message: text },
            (_, _) => ObjectError::Failed { uri, message: text },
        }
    }

    /// Whether the server did not answer: a passing failure, not damage.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ObjectError::Unreachable { .. })
    }

    /// The URI the error is about.
    pub fn uri(&self) -> &str {
        match self {
            ObjectError::NotFound { uri }
            | ObjectError::AlreadyExists { uri }
            | ObjectError::NoBucket { uri, .. }
            | ObjectError::Denied { uri, .. }
            | ObjectError::Config { uri, .. }
            | ObjectError::Unreachable { uri, .. }
            | ObjectError::Failed { uri, .. } => uri,
        }
    }
}

/// Whether `e` comes from a request that reached no answer: a failed
/// connection, a request cut off, or a timeout (object_store's HTTP
/// error kinds, or reqwest's where object_store could not tell, found in
/// the error's chain of causes).
fn did_not_answer(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(http) = c.downcast_ref::<HttpError>() {
            match http.kind() {
                HttpErrorKind::Connect
                | HttpErrorKind::Request
                | HttpErrorKind::Timeout
                | HttpErrorKind::Interrupted => return true,
                // object_store could not tell: reqwest's own error, below
                // it, may ("error sending request" on a connection the
                // server dropped).
                HttpErrorKind::Unknown => {}
                _ => return false,
            }
        }
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            return r.is_request() || r.is_connect() || r.is_timeout();
        }
        cause = c.source();
    }
    false
}

/// S3's error code (`<Code>NoSuchBucket</Code>`) in an error's text.
fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// How long one request may take, and how it is retried: a server away
/// for a few seconds is ridden out, one away for longer fails the request
/// (and so the checkpoint) within about half a minute.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY: RetryConfig = RetryConfig {
    backoff: BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
    },
    max_retries: 4,
    retry_timeout: Duration::from_secs(15),
};

/// Makes ring the process's TLS crypto provider, which the client's
/// rustls needs (Weir builds it without aws-lc-rs, the default, whose C
/// build costs minutes); once set, setting it again does nothing.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client of `uri`'s bucket.
pub(super) fn build(
    uri: &ObjectUri,
    s3: &S3Config,
) -> Result<object_store::aws::AmazonS3, ObjectError> {
    let config_err = |message: String| ObjectError::Config {
        uri: uri.to_string(),
        message,
    };
    install_crypto_provider();
    let mut b = AmazonS3Builder::from_env().with_bucket_name(&uri.bucket);
    if let Some(e) = &s3.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(k) = &s3.access_key {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = &s3.secret_key {
        b = b.with_secret_access_key(k.expose());
    }
    match &s3.region {
        Some(r) => b = b.with_region(r),
        None if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() => {
            b = b.with_region("us-east-1");
        }
        None => {}
    }
    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let path_style = s3.path_style.unwrap_or(endpoint.is_some());
    b = b.with_virtual_hosted_style_request(!path_style);
    // Without keys the crate would ask the EC2 metadata service, which
    // off EC2 hangs until its timeout: say what is missing instead.
    let has = |k| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
    if !has(AmazonS3ConfigKey::AccessKeyId) || !has(AmazonS3ConfigKey::SecretAccessKey) {
        return Err(config_err(
            "no S3 credentials: set s3.access-key and s3.secret-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into(),
        ));
    }
    let http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let options = ClientOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT);
    // `with_allow_http` after the client options, which would reset it.
    b.with_client_options(options)
        .with_allow_http(http)
        .with_retry(RETRY)
        .build()
        // The builder's own errors name keys and values it was given, but
        // never the secret (only its `Debug` would).
        .map_err(|e| config_err(format!("s3.endpoint or s3.region: {e}")))
}

/// The runtime the client's futures run on: one for the process, never
/// dropped (a runtime cannot be dropped inside another's thread).
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("weir-s3")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the S3 client's runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `fut` to its end from a blocking caller: on the client's runtime,
/// from a thread of its own when the caller is itself inside a runtime
/// (the server's handlers), where blocking on another would panic.
pub(super) fn block_on<F>(uri: &str, fut: F) -> Result<F::Output, ObjectError>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime().map_err(|message| ObjectError::Failed {
        uri: uri.to_owned(),
        message,
    })?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(fut));
    }
    std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join()).map_err(|_| ObjectError::Failed {
        uri: uri.to_owned(),
        message: "the S3 request panicked".into(),
    })
}
