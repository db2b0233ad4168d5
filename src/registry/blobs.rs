//! Reading, deleting and mounting blobs.

use std::time::Duration;

use oci::{Digest, RepoName};

use super::{Registry, RegistryError};
use crate::storage::{ByteRange, ByteStream};

/// How long a presigned blob URL handed to a client stays valid.
pub const PRESIGNED_URL_TTL: Duration = Duration::from_secs(10 * 60);

/// How a blob download is answered.
pub enum BlobBody {
    /// The client fetches the bytes from the store itself, at this presigned URL.
    Redirect(String),
    /// berth streams the bytes (the whole blob or the requested range).
    Stream(ByteStream),
}

impl Registry {
    /// The size of a blob readable in `repo`.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64, RegistryError> {
        self.meta
            .linked_blob(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
    }

    /// Streams a blob readable in `repo`, or a range of it (already checked against its size).
    pub async fn open_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, RegistryError> {
        match self.blobs.open(digest, range).await {
            Ok(stream) => Ok(stream),
            Err(crate::storage::StorageError::NotFound) => {
                tracing::error!(%repo, %digest, "blob recorded in metadata is missing from storage");
                Err(RegistryError::BlobUnknown(digest.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The body of a blob download from `repo` (whose link the caller checked with
    /// [`Registry::stat_blob`]): a presigned URL when the store can sign one and
    /// `FEATURE_PROXY_STORAGE` is off, else the bytes of `range` (or the whole blob).
    pub async fn blob_body(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobBody, RegistryError> {
        self.blob_body_with(repo, digest, range, false).await
    }

    /// [`Registry::blob_body`]; `lean` reads in smaller pieces, for the many pulls of one blob
    /// that a proxy cache's fetch lets go at once.
    pub async fn blob_body_with(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
        lean: bool,
    ) -> Result<BlobBody, RegistryError> {
        if !self.options().proxy_storage {
            match self.blobs.presigned_url(digest, PRESIGNED_URL_TTL).await {
                Ok(Some(url)) => return Ok(BlobBody::Redirect(url)),
                Ok(None) => {}
                // Streaming still works when signing does not (credentials being refreshed).
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "cannot presign a blob URL; streaming the blob instead")
                }
            }
        }
        if lean {
            return match self.blobs.open_lean(digest, range).await {
                Ok(stream) => Ok(BlobBody::Stream(stream)),
                Err(crate::storage::StorageError::NotFound) => {
                    tracing::error!(%repo, %digest, "blob recorded in metadata is missing from storage");
                    Err(RegistryError::BlobUnknown(digest.clone()))
                }
                Err(e) => Err(e.into()),
            };
        }
        Ok(BlobBody::Stream(self.open_blob(repo, digest, range).await?))
    }

    /// The size of a blob whose bytes are stored, in whatever repository.
    pub async fn stored_blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        Ok(self.meta.blob_size(digest).await?)
    }

    /// Removes `repo`'s access to a blob. The bytes stay until garbage collection.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), RegistryError> {
        if self.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.clone()))
        }
    }

    /// Makes a blob the store already holds (in any repository) readable in `repo`, when its
    /// size is `size`; the caller has established that `repo` may have it (the mirror worker
    /// and a proxy cache: its upstream has the blob in that repository). Returns whether it linked; when it did not, the caller
    /// uploads the bytes.
    pub async fn link_stored_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<bool, RegistryError> {
        if self.meta.blob_size(digest).await? != Some(size) {
            return Ok(false);
        }
        match self.meta.link_blob(repo, digest, size).await {
            Ok(()) => Ok(true),
            // Garbage collection is deleting the bytes: upload them instead.
            Err(crate::metadata::MetadataError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a blob readable in `repo` without uploading it again, when it is readable in
    /// `source` (the caller has checked that it may read `source`). Returns whether it mounted;
    /// when it did not, the caller starts an ordinary upload.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        source: &RepoName,
    ) -> Result<bool, RegistryError> {
        match self.meta.linked_blob(source, digest).await? {
            Some(size) => match self.meta.link_blob(repo, digest, size).await {
                Ok(()) => Ok(true),
                // Garbage collection is deleting the bytes: the client uploads them instead.
                Err(crate::metadata::MetadataError::Conflict) => Ok(false),
                Err(e) => Err(e.into()),
            },
            None => Ok(false),
        }
    }
}
