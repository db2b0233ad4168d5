//! What garbage collection asks of the metadata database: which manifests and blobs nothing
//! keeps alive, and the steps that remove them without racing concurrent pushes.
//!
//! A manifest is alive when a tag points at it, when a deleted or moved tag pointed at it less
//! than `DEFAULT_TAG_EXPIRATION` ago, when it was pushed within the grace period, or when a live
//! manifest reaches it (an index through its children, a subject through its referrers). A blob
//! is alive when a live manifest references it or it was linked within the grace period.
//!
//! Deleting bytes races with pushes of the same digest, so it is a protocol with the push path
//! ([`crate::metadata::MetadataStore::link_blob`] and `put_manifest`):
//! 1. [`GcStore::begin_blob_deletion`] re-checks the blob under a per-digest lock, removes its
//!    rows and records a pending deletion;
//! 2. the collector deletes the bytes unless a push rewrote them since the cutoff;
//! 3. [`GcStore::end_blob_deletion`] clears the pending deletion.
//!
//! While a deletion is pending, linking the digest answers `Conflict`; the push waits and
//! writes the bytes again. Under the same lock, a manifest push checks that its blobs still
//! exist.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use oci::{Digest, RepoName};

use super::Result;

/// A pending deletion older than this was left by a collector that died between its steps
/// (each step takes milliseconds); pushes ignore it and the next collection clears it.
pub const STALE_DELETION: Duration = Duration::from_secs(600);

/// Garbage collection's queries and steps.
#[async_trait]
pub trait GcStore: Send + Sync + 'static {
    /// Takes or renews the lease `name` for `holder` until `ttl` from now. Returns false when
    /// another holder has it and it has not expired.
    async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Gives the lease up if `holder` has it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Forgets tag history that ended before `before` (milliseconds since the epoch), and
    /// history whose manifest is gone. Returns how many entries were removed.
    async fn expire_tag_history(&self, before: i64) -> Result<u64>;

    /// Manifests nothing keeps alive (see the module doc), by repository and digest, when
    /// manifests pushed since `created_since` and history ended since `history_since` count
    /// as alive.
    async fn unreachable_manifests(
        &self,
        created_since: i64,
        history_since: i64,
    ) -> Result<Vec<(RepoName, Digest)>>;

    /// Deletes one manifest found unreachable, after checking again, under a lock, that no
    /// tag, live history entry, recent or tagged index, or tagged subject has appeared since.
    /// Returns whether it was deleted.
    async fn delete_unreachable_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        created_since: i64,
        history_since: i64,
    ) -> Result<bool>;

    /// Blobs no live manifest references and that were last linked before `linked_before`,
    /// with their sizes, by digest (what a run would delete, counting the manifests it would
    /// delete as gone).
    async fn unreachable_blobs(
        &self,
        linked_before: i64,
        created_since: i64,
        history_since: i64,
    ) -> Result<Vec<(Digest, u64)>>;

    /// Step 1 for a blob found unreachable: checks again that no manifest references it and no
    /// link is newer than `linked_before`, then removes its rows and records the deletion as
    /// pending. Returns false (and changes nothing) when the blob is alive after all.
    async fn begin_blob_deletion(&self, digest: &Digest, linked_before: i64) -> Result<bool>;

    /// Step 1 for bytes that metadata does not know (an orphan in storage): records the
    /// deletion as pending unless the blob is known now. Returns whether it may proceed.
    async fn begin_orphan_deletion(&self, digest: &Digest) -> Result<bool>;

    /// Step 3: clears a pending deletion.
    async fn end_blob_deletion(&self, digest: &Digest) -> Result<()>;

    /// Pending deletions, with when each began (a collector that died leaves them).
    async fn pending_blob_deletions(&self) -> Result<Vec<(Digest, i64)>>;

    /// Which of `digests` metadata knows as blobs.
    async fn known_blobs(&self, digests: &[Digest]) -> Result<HashSet<Digest>>;
}
