//! The object-store blob store: a bucket of an S3-compatible service (AWS, Garage, MinIO,
//! Ceph RADOS Gateway), shared by every berth replica (see `layout.rs` for the keys).
//!
//! An upload session is an S3 multipart upload of `uploads/<id>/data` in parts of
//! [`PART_SIZE`] bytes, plus a *tail* object holding the bytes after the last full part
//! (clients send chunks of any size; S3 parts but the last must be at least 5 MiB). Where a
//! session stands (the multipart id, each part's ETag, the tail's name and length) is its
//! [`UploadProgress`], which the registry saves in the shared metadata with the session, so
//! any replica can continue it. Nothing an append writes replaces what the recorded progress
//! names: a new tail gets a new name and a new part a number past the recorded ones, so a
//! failed append leaves the recorded state intact, and its stray objects are overwritten by a
//! retry or removed with the session.
//!
//! Limits: a blob has at most 10,000 parts, so at most [`MAX_BLOB_SIZE`] bytes (78 GiB). A
//! commit copies the finished upload to its blob key with one server-side `CopyObject`, which
//! AWS limits to 5 GiB per object; Garage, MinIO and Ceph have no such limit.
//! An append of small chunks re-writes the tail (up to one part) each time.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::{Method, Signer};
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use oci::{Digest, Hasher};

use super::layout::{tail_name, ObjectKeys};
use super::{
    Appended, BlobStat, BlobStore, ByteRange, ByteStream, StorageError, UploadId, UploadProgress,
};
use crate::config::S3Settings;
use progress::{corrupt, PartBuffer, Progress, Tail};

mod progress;
mod read;

/// The most a download buffers when it reads ahead: the part being sent and the parts
/// fetched ahead of it (see `read.rs`; at most two downloads per process read ahead).
pub const READ_AHEAD_BYTES: u64 = (read::AHEAD as u64 + 1) * read::PART;

/// Bytes in each multipart part but the last (S3 needs at least 5 MiB). Parts are uploaded
/// one at a time, so an upload holds at most one part in memory plus a received chunk.
/// (Uploading a part while the next one fills gained no throughput against Garage on
/// loopback and cost 16 MiB more resident memory per upload.)
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// The most parts an S3 multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;

/// The largest blob this store accepts: [`MAX_PARTS`] parts of [`PART_SIZE`].
pub const MAX_BLOB_SIZE: u64 = PART_SIZE * MAX_PARTS;

/// How long start-up waits for the bucket to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Blob store in an S3 bucket.
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    keys: ObjectKeys,
    /// `s3://bucket/prefix at endpoint`, for messages (no credentials).
    name: String,
}

fn backend(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        e => StorageError::Backend(io::Error::other(e)),
    }
}

impl S3BlobStore {
    /// Connects to the bucket `settings` name and checks that it answers (a listing of the
    /// uploads folder), so a wrong endpoint, bucket or key fails at start-up, not at a push.
    pub async fn connect(settings: &S3Settings) -> Result<Self, StorageError> {
        let store = Self::build(settings)?;
        let root = store.keys.uploads_root();
        let probe = store.store.list_with_delimiter(Some(&root));
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(StorageError::Backend(io::Error::other(format!(
                "cannot list {}: {e}",
                store.name
            )))),
            Err(_) => Err(StorageError::Backend(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} did not answer within {}s",
                    store.name,
                    PROBE_TIMEOUT.as_secs()
                ),
            ))),
        }
    }

    /// Builds the client without contacting the service.
    pub fn build(settings: &S3Settings) -> Result<Self, StorageError> {
        // No limit on a whole request, which would cut long blob downloads short; a stalled
        // read still fails (and is retried) after a minute.
        let client = ClientOptions::new()
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(60))
            .with_allow_http(true);
        let retry = RetryConfig {
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_client_options(client)
            .with_retry(retry);
        builder = match &settings.endpoint {
            Some(endpoint) => builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false),
            None => builder.with_virtual_hosted_style_request(true),
        };
        if let Some(credentials) = &settings.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key)
                .with_secret_access_key(&credentials.secret_key);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Backend(io::Error::other(e)))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            keys: ObjectKeys::new(&settings.prefix),
            name: settings.to_string(),
        })
    }

    /// Reads a whole (small: under one part) object into a buffer.
    async fn read_object(&self, key: &Key, into: &mut PartBuffer) -> Result<(), StorageError> {
        let mut stream = self.store.get(key).await.map_err(backend)?.into_stream();
        while let Some(chunk) = stream.next().await {
            into.push(chunk.map_err(backend)?);
        }
        Ok(())
    }

    /// Best-effort removal of an object nothing refers to any more.
    async fn discard(&self, key: &Key) {
        if let Err(e) = self.store.delete(key).await {
            if !matches!(e, object_store::Error::NotFound { .. }) {
                tracing::debug!(%key, error = %e, "cannot delete a replaced upload tail");
            }
        }
    }

    /// The size of an object, or `None` if it does not exist.
    async fn size_of(&self, key: &Key) -> Result<Option<u64>, StorageError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// Reads `body` into parts and a new tail. Returns the new state; `state` is the recorded
    /// one. On failure nothing `state` names was changed.
    async fn append_parts(
        &self,
        id: &UploadId,
        state: &Progress,
        hasher: &mut Hasher,
        mut body: ByteStream,
        created: &mut Option<String>,
    ) -> Result<Option<Progress>, StorageError> {
        let data = self.keys.upload_data(id);
        let part_size = state.part_size;
        let mut buffer = PartBuffer::default();
        let mut received = 0u64;
        let mut tail_loaded = false;
        let mut next_part = state.parts.len() as u64;
        let mut etags = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            if chunk.is_empty() {
                continue;
            }
            if !tail_loaded {
                // The recorded tail starts the next part (or the new tail).
                if let Some(tail) = &state.tail {
                    self.read_object(&self.keys.upload_tail(id, &tail.name), &mut buffer)
                        .await?;
                    if buffer.len != tail.len {
                        return Err(corrupt("tail object has the wrong length"));
                    }
                }
                tail_loaded = true;
            }
            hasher.update(&chunk);
            received += chunk.len() as u64;
            buffer.push(chunk);
            while buffer.len >= part_size {
                if next_part >= MAX_PARTS {
                    return Err(StorageError::Backend(io::Error::other(format!(
                        "blob exceeds the S3 store's limit of {MAX_BLOB_SIZE} bytes"
                    ))));
                }
                let multipart = match (&state.multipart, &*created) {
                    (Some(m), _) | (None, Some(m)) => m.clone(),
                    (None, None) => {
                        let m = self.store.create_multipart(&data).await.map_err(backend)?;
                        *created = Some(m.clone());
                        m
                    }
                };
                // One part at a time: reading the body pauses while a part uploads, so an
                // upload holds at most one part (see PART_SIZE).
                let part = buffer.take(part_size);
                let etag = self
                    .store
                    .put_part(&data, &multipart, next_part as usize, part)
                    .await
                    .map_err(backend)?;
                etags.push(etag.content_id);
                next_part += 1;
            }
        }
        if received == 0 {
            return Ok(None);
        }
        let len = state.len() + received;
        let tail = if buffer.len > 0 {
            let name = tail_name(len, rand::random());
            let bytes = buffer.len;
            self.store
                .put(&self.keys.upload_tail(id, &name), buffer.take(bytes))
                .await
                .map_err(backend)?;
            Some(Tail { name, len: bytes })
        } else {
            None
        };
        let mut parts = state.parts.clone();
        parts.extend(etags);
        Ok(Some(Progress {
            part_size,
            multipart: state.multipart.clone().or_else(|| created.clone()),
            parts,
            tail,
            stale_tail: state.tail.as_ref().map(|t| t.name.clone()),
        }))
    }

    /// Completes the multipart upload of `state` into `data` (its tail as the last part).
    async fn complete(
        &self,
        id: &UploadId,
        state: &Progress,
        multipart: &String,
        len: u64,
    ) -> Result<(), StorageError> {
        let data = self.keys.upload_data(id);
        let mut parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|etag| PartId {
                content_id: etag.clone(),
            })
            .collect();
        if let Some(tail) = &state.tail {
            let mut buffer = PartBuffer::default();
            self.read_object(&self.keys.upload_tail(id, &tail.name), &mut buffer)
                .await?;
            let bytes = buffer.len;
            let part = self
                .store
                .put_part(&data, multipart, parts.len(), buffer.take(bytes))
                .await
                .map_err(backend)?;
            parts.push(part);
        }
        match self.store.complete_multipart(&data, multipart, parts).await {
            Ok(_) => Ok(()),
            // A commit running at the same time (a client retrying) may have completed it.
            Err(e) => match self.size_of(&data).await {
                Ok(Some(size)) if size == len => Ok(()),
                _ => Err(backend(e)),
            },
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobStat>, StorageError> {
        match self.store.head(&self.keys.blob(digest)).await {
            Ok(meta) => Ok(Some(BlobStat {
                size: meta.size,
                modified: meta.last_modified.into(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.keys.blob(digest), options)
            .await
            .map_err(backend)?;
        let served = result.range.clone();
        let turn = (served.end - served.start > read::PARALLEL_THRESHOLD)
            .then(read::parallel_turn)
            .flatten();
        let Some(turn) = turn else {
            return Ok(result.into_stream().map_err(io::Error::other).boxed());
        };
        Ok(read::parallel(
            self.store.clone(),
            self.keys.blob(digest),
            result.into_stream(),
            served,
            turn,
        ))
    }

    async fn presigned_url(
        &self,
        digest: &Digest,
        ttl: Duration,
    ) -> Result<Option<String>, StorageError> {
        let url = self
            .store
            .signed_url(Method::GET, &self.keys.blob(digest), ttl)
            .await
            .map_err(backend)?;
        Ok(Some(url.to_string()))
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<(), StorageError> {
        match self.store.delete(&self.keys.blob(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    fn list_blobs(&self) -> BoxStream<'_, Result<(Digest, BlobStat), StorageError>> {
        let keys = &self.keys;
        self.store
            .list(Some(&keys.blobs_root()))
            .map_err(backend)
            .try_filter_map(move |meta| async move {
                // Keys that are not blobs (left by hand or another tool) are not ours to list.
                Ok(keys.parse_blob(&meta.location).map(|digest| {
                    (
                        digest,
                        BlobStat {
                            size: meta.size,
                            modified: SystemTime::from(meta.last_modified),
                        },
                    )
                }))
            })
            .boxed()
    }

    /// S3 has no rename: a server-side copy to the quarantine key, checked to have the blob's
    /// size, then the deletion of the blob's key. Answers the quarantine object's key in the
    /// bucket. A failure before the deletion leaves the
    /// blob where it was (and possibly a copy in quarantine).
    async fn quarantine_blob(&self, digest: &Digest) -> Result<Option<String>, StorageError> {
        let blob = self.keys.blob(digest);
        let Some(size) = self.size_of(&blob).await? else {
            return Ok(None);
        };
        let target = self.keys.quarantine(digest);
        match self.store.copy(&blob, &target).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(backend(e)),
        }
        match self.size_of(&target).await? {
            Some(copied) if copied == size => {}
            other => {
                return Err(StorageError::Backend(io::Error::other(format!(
                    "quarantined copy of {digest} has {other:?} bytes, not {size}"
                ))))
            }
        }
        self.delete_blob(digest).await?;
        Ok(Some(target.to_string()))
    }

    async fn upload_data_present(
        &self,
        id: &UploadId,
        len: u64,
        progress: UploadProgress,
    ) -> Result<bool, StorageError> {
        let state = Progress::decode(progress.as_deref())?;
        if state.len() != len {
            return Ok(false);
        }
        match &state.tail {
            Some(tail) => {
                Ok(self.size_of(&self.keys.upload_tail(id, &tail.name)).await? == Some(tail.len))
            }
            None => Ok(true),
        }
    }

    /// A session exists only in metadata until its first bytes arrive: nothing to write.
    async fn create_upload(&self, _id: &UploadId) -> Result<(), StorageError> {
        Ok(())
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        progress: UploadProgress,
        mut hasher: Hasher,
        body: ByteStream,
    ) -> Result<Appended, StorageError> {
        let state = Progress::decode(progress.as_deref())?;
        if state.len() != offset {
            return Err(corrupt("length differs from the session's"));
        }
        if let Some(stale) = &state.stale_tail {
            // This state was recorded (it came back from the session), so the tail it replaced
            // is referenced by nothing.
            self.discard(&self.keys.upload_tail(id, stale)).await;
        }
        let mut created = None;
        match self
            .append_parts(id, &state, &mut hasher, body, &mut created)
            .await
        {
            Ok(None) => Ok(Appended {
                len: offset,
                hasher,
                progress,
            }),
            Ok(Some(next)) => Ok(Appended {
                len: next.len(),
                hasher,
                progress: Some(next.encode()),
            }),
            Err(e) => {
                if let Some(multipart) = created {
                    // Begun by this append, named by no recorded state: nothing can use it.
                    let _ = self
                        .store
                        .abort_multipart(&self.keys.upload_data(id), &multipart)
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Upload bytes are parts of an unfinished multipart upload, which S3 cannot read back;
    /// the registry always has the hash state saved, so this answers `NotFound`.
    async fn read_upload(&self, _id: &UploadId, _len: u64) -> Result<ByteStream, StorageError> {
        Err(StorageError::NotFound)
    }

    /// Completes the multipart upload into `uploads/<id>/data` (or, with no full part, takes
    /// the tail object as it is) and copies it to the blob's key, which gives the blob a fresh
    /// modification time. Repeatable: once the data object exists, a repeat only copies.
    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        progress: UploadProgress,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let state = Progress::decode(progress.as_deref())?;
        if state.len() != len {
            return Err(corrupt("length differs from the session's"));
        }
        let blob = self.keys.blob(digest);
        let source = match (&state.multipart, &state.tail) {
            (Some(multipart), _) => {
                let data = self.keys.upload_data(id);
                if self.size_of(&data).await? != Some(len) {
                    self.complete(id, &state, multipart, len).await?;
                }
                data
            }
            (None, Some(tail)) => self.keys.upload_tail(id, &tail.name),
            (None, None) => {
                self.store
                    .put(&blob, PutPayload::new())
                    .await
                    .map_err(backend)?;
                blob.clone()
            }
        };
        if source != blob {
            self.store.copy(&source, &blob).await.map_err(backend)?;
        }
        match self.size_of(&blob).await? {
            Some(size) if size == len => Ok(()),
            other => Err(StorageError::Backend(io::Error::other(format!(
                "committed blob has {other:?} bytes, not {len}"
            )))),
        }
    }

    async fn delete_upload(
        &self,
        id: &UploadId,
        progress: UploadProgress,
    ) -> Result<(), StorageError> {
        // Progress that does not decode still names no multipart upload we could abort; the
        // objects go all the same.
        let state = Progress::decode(progress.as_deref()).ok();
        if let Some(multipart) = state.as_ref().and_then(|p| p.multipart.as_ref()) {
            match self
                .store
                .abort_multipart(&self.keys.upload_data(id), multipart)
                .await
            {
                // Completed (by a commit) or aborted before.
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        // The objects the progress names go by their keys: a listing on a replicated store may
        // not show an object written moments ago yet (the data object a commit completed, a tail).
        let mut named: Vec<Key> = vec![self.keys.upload_data(id)];
        if let Some(p) = &state {
            named.extend(p.tail.as_ref().map(|t| self.keys.upload_tail(id, &t.name)));
            named.extend(p.stale_tail.iter().map(|t| self.keys.upload_tail(id, t)));
        }
        for key in named {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        let keys = self
            .store
            .list(Some(&self.keys.upload_dir(id)))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = self.store.delete_stream(keys);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn probe(&self, probe: &str) -> Result<(), StorageError> {
        let key = self.keys.probe(probe);
        let written = bytes::Bytes::copy_from_slice(probe.as_bytes());
        self.store
            .put(&key, PutPayload::from_bytes(written.clone()))
            .await
            .map_err(backend)?;
        let read = async { self.store.get(&key).await?.bytes().await };
        let result = match read.await {
            Ok(bytes) if bytes == written => Ok(()),
            Ok(_) => Err(StorageError::Backend(io::Error::other(
                "the probe read back other bytes",
            ))),
            Err(e) => Err(backend(e)),
        };
        let removed = self.store.delete(&key).await.map_err(backend);
        result.and(removed)
    }

    /// A commit here is a server-side copy: it leaves no temporary object behind, and
    /// unfinished uploads belong to garbage collection's stale-upload sweep.
    async fn remove_leftovers(&self) -> Result<u64, StorageError> {
        Ok(0)
    }

    /// The sessions that have objects under `uploads/`, each with length 0 (a shared store's
    /// recovery does not use this; the length lives in the progress).
    async fn list_uploads(&self) -> Result<Vec<(UploadId, u64)>, StorageError> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.keys.uploads_root()))
            .await
            .map_err(backend)?;
        Ok(listing
            .common_prefixes
            .iter()
            .filter_map(|dir| self.keys.parse_upload_dir(dir))
            .map(|id| (id, 0))
            .collect())
    }

    /// A no-op: the recorded progress is the truth, and bytes past it (parts or a tail that an
    /// unrecorded append wrote) are never read; a retry overwrites them.
    async fn truncate_upload(&self, _id: &UploadId, _len: u64) -> Result<(), StorageError> {
        Ok(())
    }
}
