//! [`Bucket`]: the blocking requests checkpoint storage makes of one
//! bucket: put (plain, conditional, multipart for large files), get,
//! list and delete.

use std::io::{Read, Write};

use futures_util::StreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};

use super::client::{ObjectError, block_on};
use crate::state::snapshot::checksum;

/// Files larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 16 << 20;
/// The size of each part (S3 wants at least 5 MiB but for the last).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// An object a listing found: its key and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The whole key.
    pub key: String,
    /// Bytes.
    pub size: u64,
}

/// A blocking client of one bucket; keys are whole keys in it.
pub struct Bucket {
    name: String,
    store: AmazonS3,
}

impl std::fmt::Debug for Bucket {
    /// The bucket's name only: the client's settings stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({})", self.name)
    }
}

impl Bucket {
    /// A client of bucket `name` through `store`.
    pub(super) fn new(name: String, store: AmazonS3) -> Self {
        Bucket { name, store }
    }

    /// `s3://<bucket>/<key>`, for messages and external paths.
    pub fn uri(&self, key: &str) -> String {
        if key.is_empty() {
            format!("s3://{}", self.name)
        } else {
            format!("s3://{}/{key}", self.name)
        }
    }

    fn err(&self, key: &str, e: object_store::Error) -> ObjectError {
        ObjectError::from_store(self.uri(key), e)
    }

    /// Lists `prefix` once: a missing bucket, refused credentials or a
    /// server that does not answer are reported as such.
    pub(super) fn probe(&self, prefix: &str) -> Result<(), ObjectError> {
        let key = Key::from(prefix);
        match block_on(
            &self.uri(prefix),
            self.store.list_with_delimiter(Some(&key)),
        )? {
            Ok(_) => Ok(()),
            Err(e) => Err(match self.err(prefix, e) {
                ObjectError::NotFound { uri } => ObjectError::NoBucket {
                    uri,
                    bucket: self.name.clone(),
                },
                other => other,
            }),
        }
    }

    /// Writes `bytes` at `key`, replacing what is there.
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        if bytes.len() > MULTIPART_THRESHOLD {
            return self.put_parts(key, &mut bytes.as_slice()).map(drop);
        }
        let k = Key::from(key);
        block_on(&self.uri(key), self.store.put(&k, PutPayload::from(bytes)))?
            .map(drop)
            .map_err(|e| self.err(key, e))
    }

    /// Writes `bytes` at `key` only if nothing is there
    /// ([`ObjectError::AlreadyExists`] otherwise): a completed
    /// checkpoint's `_metadata` is never overwritten.
    pub fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let k = Key::from(key);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        block_on(
            &self.uri(key),
            self.store.put_opts(&k, PutPayload::from(bytes), opts),
        )?
        .map(drop)
        .map_err(|e| self.err(key, e))
    }

    /// Uploads everything `from` yields to `key` (in parts when it is
    /// large); its size and xxh3-64 in hex, as local checkpoint files
    /// record them.
    pub fn upload(
        &self,
        key: &str,
        from: &mut (dyn Read + Send),
    ) -> Result<(u64, String), ObjectError> {
        let failed = |e: std::io::Error| ObjectError::Failed {
            uri: self.uri(key),
            message: format!("reading the file to upload: {e}"),
        };
        let mut first = Vec::new();
        from.take(MULTIPART_THRESHOLD as u64 + 1)
            .read_to_end(&mut first)
            .map_err(failed)?;
        if first.len() <= MULTIPART_THRESHOLD {
            let sum = checksum(&first);
            let size = first.len() as u64;
            self.put(key, first)?;
            return Ok((size, sum));
        }
        self.put_parts(key, &mut first.as_slice().chain(from))
    }

    /// A multipart upload of everything `from` yields, aborted if any part
    /// fails; its size and checksum. It runs on the client's runtime
    /// throughout: the writer starts each part as a task of it.
    fn put_parts(
        &self,
        key: &str,
        from: &mut (dyn Read + Send),
    ) -> Result<(u64, String), ObjectError> {
        let uri = self.uri(key);
        let k = Key::from(key);
        let upload = async {
            let upload = self
                .store
                .put_multipart(&k)
                .await
                .map_err(|e| self.err(key, e))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            let mut size = 0u64;
            let mut buf = vec![0u8; PART_SIZE];
            let written = loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) => {
                        break Err(ObjectError::Failed {
                            uri: uri.clone(),
                            message: format!("reading the file to upload: {e}"),
                        });
                    }
                };
                hasher.update(&buf[..n]);
                size += n as u64;
                writer.write(&buf[..n]);
                if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    break Err(self.err(key, e));
                }
            };
            if let Err(e) = written {
                // Dropping an upload leaves its parts billed in the bucket.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!("cannot abort the upload of {uri}: {abort}");
                }
                return Err(e);
            }
            writer.finish().await.map_err(|e| self.err(key, e))?;
            Ok((size, format!("{:016x}", hasher.digest())))
        };
        block_on(&self.uri(key), upload)?
    }

    /// The object at `key`, refused unread if it holds more than `max`
    /// bytes.
    pub fn get(&self, key: &str, max: u64) -> Result<Vec<u8>, ObjectError> {
        let mut out = Vec::new();
        self.download(key, max, &mut out)?;
        Ok(out)
    }

    /// Streams the object at `key` into `to`, refused unread if it holds
    /// more than `max` bytes; its size.
    pub fn download(
        &self,
        key: &str,
        max: u64,
        to: &mut (dyn Write + Send),
    ) -> Result<u64, ObjectError> {
        let uri = self.uri(key);
        let k = Key::from(key);
        let too_large = |size: u64| ObjectError::Failed {
            uri: uri.clone(),
            message: format!("{size} bytes, more than the {max} expected"),
        };
        let fetch = async {
            let got = self.store.get(&k).await.map_err(|e| self.err(key, e))?;
            if got.meta.size > max {
                return Err(too_large(got.meta.size));
            }
            let mut stream = got.into_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.err(key, e))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(too_large(size));
                }
                to.write_all(&chunk).map_err(|e| ObjectError::Failed {
                    uri: uri.clone(),
                    message: format!("writing the download: {e}"),
                })?;
            }
            Ok(size)
        };
        block_on(&uri, fetch)?
    }

    /// Every object whose key starts with `prefix/`, at any depth.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, ObjectError> {
        let k = Key::from(prefix);
        let walk = async {
            let mut stream = self.store.list(Some(&k));
            let mut out = Vec::new();
            while let Some(meta) = stream.next().await {
                let meta = meta.map_err(|e| self.err(prefix, e))?;
                out.push(Listed {
                    key: meta.location.to_string(),
                    size: meta.size,
                });
            }
            Ok(out)
        };
        block_on(&self.uri(prefix), walk)?
    }

    /// The names of the "folders" directly under `prefix/` (the next
    /// segment of the keys below it).
    pub fn children(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let k = Key::from(prefix);
        let listed = block_on(&self.uri(prefix), self.store.list_with_delimiter(Some(&k)))?
            .map_err(|e| self.err(prefix, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Deletes the object at `key`; one already gone is no error.
    pub fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let k = Key::from(key);
        match block_on(&self.uri(key), self.store.delete(&k))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Deletes every object under `prefix/`; how many.
    pub fn delete_all(&self, prefix: &str) -> Result<usize, ObjectError> {
        let listed = self.list(prefix)?;
        for o in &listed {
            self.delete(&o.key)?;
        }
        Ok(listed.len())
    }
}
