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
use std::sync::LazyLock;
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

/// The advisory-lock class berth's per-digest locks use on PostgreSQL ("blob").
pub(crate) const BLOB_LOCK_CLASS: i32 = 0x626c_6f62;

/// The per-digest lock key: the first 32 bits of the digest.
pub(crate) fn blob_lock_key(digest: &Digest) -> i32 {
    u32::from_str_radix(&digest.hex()[..8], 16).unwrap_or(0) as i32
}

/// The manifests nothing keeps alive; `$1` = created since, `$2` = history ended since.
/// Edges run from a manifest to what it keeps alive: an index to its children, a subject to
/// its referrers.
const LIVE_MANIFESTS: &str = "
WITH RECURSIVE edges(repository_id, parent, digest) AS (
    SELECT repository_id, manifest_digest, child_digest FROM manifest_references
        WHERE child_kind = 'manifest'
    UNION ALL
    SELECT repository_id, subject_digest, digest FROM manifests
        WHERE subject_digest IS NOT NULL
),
live(repository_id, digest) AS (
    SELECT repository_id, manifest_digest FROM tags
    UNION
    SELECT repository_id, manifest_digest FROM tag_history WHERE ended_at >= $2
    UNION
    SELECT repository_id, digest FROM manifests WHERE created_at >= $1
    UNION
    SELECT e.repository_id, e.digest FROM edges e
        JOIN live l ON e.repository_id = l.repository_id AND e.parent = l.digest
)";

pub(crate) static UNREACHABLE_MANIFESTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{LIVE_MANIFESTS}
SELECT r.name, m.digest FROM manifests m
JOIN repositories r ON r.id = m.repository_id
LEFT JOIN live l ON l.repository_id = m.repository_id AND l.digest = m.digest
WHERE l.digest IS NULL
ORDER BY r.name, m.digest"
    )
});

/// `$3` = linked before.
pub(crate) static UNREACHABLE_BLOBS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{LIVE_MANIFESTS},
live_blobs(digest) AS (
    SELECT DISTINCT mr.child_digest FROM manifest_references mr
    JOIN live l ON l.repository_id = mr.repository_id AND l.digest = mr.manifest_digest
    WHERE mr.child_kind = 'blob'
)
SELECT b.digest, b.size FROM blobs b
LEFT JOIN live_blobs lb ON lb.digest = b.digest
WHERE b.linked_at < $3 AND lb.digest IS NULL
ORDER BY b.digest"
    )
});

/// Whether one manifest (`$1` repository id, `$2` digest) is still unreachable by the direct
/// conditions a concurrent writer can change; `$3` = created since, `$4` = history ended since.
pub(crate) const STILL_UNREACHABLE: &str = "
SELECT 1 FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2 AND m.created_at < $3
AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $1 AND t.manifest_digest = $2)
AND NOT EXISTS (SELECT 1 FROM tag_history h
    WHERE h.repository_id = $1 AND h.manifest_digest = $2 AND h.ended_at >= $4)
AND NOT EXISTS (SELECT 1 FROM manifest_references mr JOIN manifests p
        ON p.repository_id = mr.repository_id AND p.digest = mr.manifest_digest
    WHERE mr.repository_id = $1 AND mr.child_kind = 'manifest' AND mr.child_digest = $2
    AND (p.created_at >= $3
         OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = $1 AND t.manifest_digest = p.digest)))
AND NOT EXISTS (SELECT 1 FROM tags t
    WHERE t.repository_id = $1 AND m.subject_digest IS NOT NULL AND t.manifest_digest = m.subject_digest)";

/// Whether a blob (`$1`) is still unreachable: no manifest references it and no link is newer
/// than `$2`.
pub(crate) const BLOB_STILL_UNREACHABLE: &str = "
SELECT 1 FROM blobs b WHERE b.digest = $1 AND b.linked_at < $2
AND NOT EXISTS (SELECT 1 FROM manifest_references mr
    WHERE mr.child_kind = 'blob' AND mr.child_digest = $1)";

pub(crate) const EXPIRE_HISTORY: &str = "
DELETE FROM tag_history WHERE ended_at < $1
OR NOT EXISTS (SELECT 1 FROM manifests m
    WHERE m.repository_id = tag_history.repository_id AND m.digest = tag_history.manifest_digest)";

pub(crate) const TAKE_LEASE: &str = "
INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at < $4";
