//! What the integrity check (`berth fsck`, [`crate::fsck`]) asks of the metadata database:
//! every blob, manifest and tag row in pages, and the two steps that take a bad blob out of
//! service without racing a push of the same digest.
//!
//! Taking a blob out of service reuses garbage collection's pending-deletion mark
//! ([`crate::metadata::gc`]): while it stands, `link_blob` answers `Conflict` and a push of
//! the digest waits, then writes the bytes again.
//! 1. [`FsckStore::begin_blob_quarantine`] marks the deletion under the per-digest lock;
//! 2. the checker moves the bytes to the quarantine area (never deleting them);
//! 3. [`FsckStore::forget_quarantined_blob`] removes the blob's rows and the mark in one
//!    transaction, so clients see the blob as unknown and push it again.
//!
//! A checker that dies between the steps leaves the mark; garbage collection clears it once it
//! is stale, since the blob's rows are still there (step 3 removes rows and mark together).

use async_trait::async_trait;
use oci::{Digest, RepoName};

use super::Result;

/// A manifest row with its content, as the integrity check reads it.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    pub repository: RepoName,
    pub digest: Digest,
    pub media_type: String,
    /// The stored bytes; `None` when the content row is missing.
    pub content: Option<Vec<u8>>,
    /// Accepted sparse: it named a layer or child manifest that was absent when it was pushed
    /// (see [`crate::registry::SparseSettings`]), so absent ones are not a problem.
    pub sparse: bool,
}

/// What metadata recorded a manifest as referencing (`manifest_references`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedReferences {
    /// Config and layers, sorted and without duplicates.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index, sorted and without duplicates.
    pub children: Vec<Digest>,
}

/// A tag whose manifest is not stored in its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DanglingTag {
    pub repository: RepoName,
    pub tag: String,
    pub digest: Digest,
}

/// The integrity check's queries and repair steps.
#[async_trait]
pub trait FsckStore: Send + Sync + 'static {
    /// How many blob rows there are and the sum of their recorded sizes.
    async fn blob_totals(&self) -> Result<(u64, u64)>;

    /// Blob rows (digest, recorded size) in digest order, strictly after `after`, at most
    /// `limit`.
    async fn blobs_after(&self, after: Option<&Digest>, limit: u32) -> Result<Vec<(Digest, u64)>>;

    /// Manifests with their content in (repository, digest) order, strictly after `after`, at
    /// most `limit`.
    async fn manifests_after(
        &self,
        after: Option<(&RepoName, &Digest)>,
        limit: u32,
    ) -> Result<Vec<ManifestRecord>>;

    /// The references recorded for one manifest (empty when it is not stored).
    async fn recorded_references(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<RecordedReferences>;

    /// How many tags there are.
    async fn tag_count(&self) -> Result<u64>;

    /// Tags pointing at a manifest their repository does not store, by repository and name.
    async fn dangling_tags(&self) -> Result<Vec<DanglingTag>>;

    /// Step 1: under the per-digest lock a push also takes, records a pending deletion of
    /// `digest` if metadata knows the blob, and returns its recorded size; `None` (and nothing
    /// changed) when it is not known any more.
    async fn begin_blob_quarantine(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Step 3: removes the blob's row, its links and the pending deletion in one transaction.
    /// Returns the repositories that linked it, by name.
    async fn forget_quarantined_blob(&self, digest: &Digest) -> Result<Vec<RepoName>>;
}
