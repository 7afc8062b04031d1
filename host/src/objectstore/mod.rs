//! S3-compatible object storage for `s3://` checkpoint and savepoint
//! locations, through the `object_store` crate (Apache Arrow's: retries
//! with backoff, conditional puts, multipart uploads).
//!
//! [`Bucket`] is a blocking client over one bucket, usable from any
//! thread (it runs the crate's futures on a runtime of its own);
//! [`ObjectError`] is what a request that failed for good reports, always
//! naming the `s3://` URI and never a credential. Above it,
//! `checkpoint::object` stores a job's checkpoints in a bucket.
//!
//! A layer above [`crate::config`] and [`crate::state`]'s checksum only.

mod bucket;
mod client;

use std::sync::Arc;

pub use bucket::{Bucket, Listed};
pub use client::ObjectError;

use crate::config::{ObjectUri, S3Config};

/// Opens bucket `uri.bucket` with the settings of `s3`, falling back to the
/// AWS environment variables, and checks that location `uri` can be
/// listed: a missing bucket, refused credentials or an unreachable
/// server fail here, at start, rather than at the first checkpoint.
pub fn open_bucket(uri: &ObjectUri, s3: &S3Config) -> Result<Arc<Bucket>, ObjectError> {
    let bucket = Arc::new(Bucket::new(uri.bucket.clone(), client::build(uri, s3)?));
    bucket.probe(&uri.key)?;
    Ok(bucket)
}

/// A client of bucket `uri.bucket` that has not asked the bucket anything
/// (for tests that never reach it).
#[cfg(test)]
pub(crate) fn client_of(uri: &ObjectUri, s3: &S3Config) -> Result<Arc<Bucket>, ObjectError> {
    Ok(Arc::new(Bucket::new(
        uri.bucket.clone(),
        client::build(uri, s3)?,
    )))
}
