//! Blob storage: content-addressed bytes and in-progress uploads.
//!
//! Storage knows nothing about repositories, tags or manifests; which repository may read which
//! blob is metadata. The trait is implemented by the embedded filesystem backend
//! ([`fs::FsBlobStore`]) and by an S3 bucket shared between replicas ([`s3::S3BlobStore`]).

mod direct;
pub mod fs;
mod layout;
mod prefetch;
mod read;
pub mod s3;

use std::io;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use oci::{Digest, Hasher};

/// A stream of body bytes, as received from a client or read from storage.
pub type ByteStream = BoxStream<'static, Result<Bytes, io::Error>>;

/// An upload session identifier (a UUID in its hyphenated text form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    /// A fresh random id.
    pub fn generate() -> Self {
        UploadId(uuid::Uuid::new_v4().to_string())
    }

    /// Parses an id from a URL; only canonical hyphenated UUIDs are accepted, so an id is always
    /// safe to use as a file or key name.
    pub fn parse(s: &str) -> Option<Self> {
        let u = uuid::Uuid::parse_str(s).ok()?;
        let canonical = u.hyphenated().to_string();
        (canonical == s).then_some(UploadId(canonical))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The blob or upload does not exist.
    #[error("not found")]
    NotFound,
    /// The backing store has no room left.
    #[error("storage is full")]
    Full,
    /// Reading the client's body failed (disconnect, timeout, malformed chunking).
    #[error("reading the request body failed: {0}")]
    Body(#[source] io::Error),
    /// Any other backend failure.
    #[error("storage backend failure")]
    Backend(#[source] io::Error),
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound,
            io::ErrorKind::StorageFull => StorageError::Full,
            _ => StorageError::Backend(e),
        }
    }
}

/// The result of appending to an upload.
pub struct Appended {
    /// Total bytes in the upload after the append.
    pub len: u64,
    /// The hasher, fed with every byte of the upload so far.
    pub hasher: Hasher,
    /// The backend's resumable state after the append (see [`UploadProgress`]).
    pub progress: UploadProgress,
}

/// What a backend needs to continue an upload that another process may have begun: for an
/// object store, the multipart upload's id and the parts written so far. Opaque to callers,
/// who persist it with the upload session (in the shared metadata) and hand it back on the next
/// call; `None` for backends that keep everything in the upload's own bytes (the filesystem).
pub type UploadProgress = Option<Vec<u8>>;

/// A stored blob's size and when its bytes were last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStat {
    pub size: u64,
    pub modified: SystemTime,
}

/// A byte range `start..=end` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Where blobs and upload data live.
///
/// Contract shared by every backend:
/// - A blob is written only through [`BlobStore::commit_upload`], which verifies nothing itself
///   (the caller has verified the digest) but guarantees that once it returns, the blob is
///   durable and complete under its digest; before that, nothing is visible under the digest.
/// - Committing rewrites the blob even when the digest already exists (the bytes are the same,
///   by content addressing), so the blob's modification time says a push just wrote it; garbage
///   collection relies on that. The upload stays until [`BlobStore::delete_upload`], so a commit
///   may be repeated.
/// - Appends are all-or-nothing: when [`BlobStore::append_upload`] fails, the upload is left
///   at its previous length and progress.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The size and modification time of a stored blob, or `None` if the store does not hold
    /// it.
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobStat>, StorageError>;

    /// Streams a blob, or one range of it. `NotFound` if the blob is absent.
    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError>;

    /// [`BlobStore::open`], holding less memory per stream where the backend can (smaller
    /// reads), for many concurrent downloads of one blob.
    async fn open_lean(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        self.open(digest, range).await
    }

    /// A URL from which a client may fetch the blob directly for `ttl`, for backends that can
    /// sign one (object stores); `None` when the backend cannot, and berth streams the bytes.
    async fn presigned_url(
        &self,
        digest: &Digest,
        ttl: Duration,
    ) -> Result<Option<String>, StorageError>;

    /// Deletes a blob's bytes (garbage collection). Absent blobs are not an error.
    async fn delete_blob(&self, digest: &Digest) -> Result<(), StorageError>;

    /// Every stored blob with its stat (garbage collection's sweep of bytes that metadata does
    /// not know).
    fn list_blobs(&self) -> BoxStream<'_, Result<(Digest, BlobStat), StorageError>>;

    /// Moves a blob's bytes out of the served location into the quarantine area (see
    /// `layout.rs`), under a name no earlier quarantine used, and returns where they went (a
    /// path or object key, for the operator). `None` when the blob is absent. Never deletes
    /// bytes: afterwards the bytes exist in the quarantine area, and the blob is absent (until
    /// a commit writes it again). Nothing reads, lists or deletes quarantined bytes.
    async fn quarantine_blob(&self, digest: &Digest) -> Result<Option<String>, StorageError>;

    /// Whether the data of an upload that metadata records at `len` bytes with `progress` is
    /// present, as far as the backend can tell without reading it: the filesystem checks the
    /// upload's file holds at least `len` bytes; an object store checks the tail object the
    /// progress names (the parts of an unfinished multipart upload are not objects, so they
    /// cannot be checked).
    async fn upload_data_present(
        &self,
        id: &UploadId,
        len: u64,
        progress: UploadProgress,
    ) -> Result<bool, StorageError>;

    /// Creates an empty upload.
    async fn create_upload(&self, id: &UploadId) -> Result<(), StorageError>;

    /// Appends `body` to an upload that currently holds `offset` bytes and has `progress`,
    /// feeding `hasher` with every byte written. The appended bytes are durable when this
    /// returns, and the returned progress is what the next call needs.
    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        progress: UploadProgress,
        hasher: Hasher,
        body: ByteStream,
    ) -> Result<Appended, StorageError>;

    /// Streams the first `len` bytes of an upload (to rebuild a hash state that was not
    /// saved). Backends that always have the hash state saved may answer `NotFound`.
    async fn read_upload(&self, id: &UploadId, len: u64) -> Result<ByteStream, StorageError>;

    /// Makes the upload's `len` bytes the blob `digest`, durably. The upload stays (see the
    /// trait's contract) until [`BlobStore::delete_upload`].
    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        progress: UploadProgress,
        digest: &Digest,
    ) -> Result<(), StorageError>;

    /// Discards an upload (and, for object stores, its unfinished multipart upload). Absent
    /// uploads are not an error.
    async fn delete_upload(
        &self,
        id: &UploadId,
        progress: UploadProgress,
    ) -> Result<(), StorageError>;

    /// Writes a small object of its own (named `probe`, unique to the caller), reads it back
    /// and removes it: whether the store answers a real write and read (`/health/endtoend`).
    /// Touches no blob or upload.
    async fn probe(&self, probe: &str) -> Result<(), StorageError>;

    /// Whether several berth processes share this store. A shared store's uploads may belong to
    /// another replica's live session, so start-up recovery leaves them alone and garbage
    /// collection's stale-upload sweep reclaims abandoned ones.
    fn is_shared(&self) -> bool;

    /// Lists uploads present in storage with their current length (for start-up recovery of
    /// a store that is not shared).
    async fn list_uploads(&self) -> Result<Vec<(UploadId, u64)>, StorageError>;

    /// Shortens an upload to `len` bytes (start-up recovery after a crash mid-append).
    async fn truncate_upload(&self, id: &UploadId, len: u64) -> Result<(), StorageError>;

    /// Removes the temporary names a crash can leave behind (start-up recovery of a store that
    /// is not shared, so none of them can belong to a commit still running); returns how many.
    async fn remove_leftovers(&self) -> Result<u64, StorageError>;
}

/// Rebuilds the hash state of an upload's first `len` bytes by reading them back.
pub async fn rehash_upload(
    store: &dyn BlobStore,
    id: &UploadId,
    len: u64,
    mut hasher: Hasher,
) -> Result<Hasher, StorageError> {
    use futures::StreamExt;
    let mut stream = store.read_upload(id, len).await?;
    while let Some(chunk) = stream.next().await {
        prefetch::update_prefetching(&mut hasher, &chunk.map_err(StorageError::from)?);
    }
    Ok(hasher)
}
