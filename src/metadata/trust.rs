//! Trusted keys, trust policies and the stored signature verdicts (issue 19).
//!
//! Verdicts are stored per (repository, manifest) and carry two marks that say whether they
//! are current: the manifest's signature *version*, moved (by a trigger) whenever a signature
//! of it is stored or deleted, and the *trust generation*, moved whenever a trusted key is
//! added or removed anywhere. A verdict computed under an older version or generation is stale:
//! the background worker recomputes it, and a request that must enforce a policy recomputes it
//! before deciding.

use async_trait::async_trait;
use oci::{Digest, RepoName};

use super::Result;
use crate::trust::{KeyKind, Verdict};

/// Where a key or policy applies: an organization (or user namespace), or one repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrustScope {
    Namespace(String),
    Repository(RepoName),
}

/// A trusted key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// A UUID.
    pub id: String,
    pub scope: TrustScope,
    pub name: String,
    pub kind: KeyKind,
    /// The PEM.
    pub material: String,
    /// `sha256:<hex>` (see [`crate::trust::KeyInfo`]).
    pub fingerprint: String,
    pub description: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// What a trust policy requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing: everything is served.
    None,
    /// Only verified manifests (and signatures, attestations and SBOMs) are served.
    Verified,
}

/// A stored verdict and whether it is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVerdict {
    pub digest: Digest,
    pub verdict: Verdict,
    /// Computed under the manifest's current signature version and the current generation.
    pub current: bool,
    /// Milliseconds since the Unix epoch.
    pub computed_at: i64,
}

/// A verdict to (re)compute: the marks it must be stored with to count as current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingVerdict {
    pub repository: RepoName,
    pub digest: Digest,
    pub version: i64,
    pub generation: i64,
}

/// One signature manifest of a subject, as verification reads it.
#[derive(Debug, Clone)]
pub struct SignatureManifest {
    pub digest: Digest,
    pub content: bytes::Bytes,
}

#[async_trait]
pub trait TrustStore: Send + Sync + 'static {
    /// Adds a key; `Conflict` when the scope already has a key of that name.
    async fn add_trust_key(&self, key: &StoredKey) -> Result<()>;
    /// The keys of exactly this scope, oldest first.
    async fn trust_keys(&self, scope: &TrustScope) -> Result<Vec<StoredKey>>;
    /// Deletes a key of this scope; whether it existed.
    async fn delete_trust_key(&self, scope: &TrustScope, id: &str) -> Result<bool>;
    /// The keys that apply to a repository: its own and its namespace's.
    async fn keys_for(&self, repo: &RepoName) -> Result<Vec<StoredKey>>;

    /// Sets (or with `Requirement::None`, removes) the policy of exactly this scope.
    async fn set_trust_policy(&self, scope: &TrustScope, require: Requirement) -> Result<()>;
    /// The policy of exactly this scope.
    async fn trust_policy(&self, scope: &TrustScope) -> Result<Requirement>;
    /// The scope whose policy requires verified signatures of `repo`: its namespace's when that
    /// requires it (a repository cannot opt out of it), else the repository's own; `None` when
    /// neither does. (Added by the store branch.)
    async fn policy_in_force(&self, repo: &RepoName) -> Result<Option<TrustScope>>;

    /// The stored verdicts of these manifests of a repository (absent: never signed).
    async fn verdicts(&self, repo: &RepoName, digests: &[Digest]) -> Result<Vec<StoredVerdict>>;
    /// The marks a verdict of this manifest must carry now (see [`PendingVerdict`]).
    async fn pending_marks(&self, repo: &RepoName, digest: &Digest) -> Result<PendingVerdict>;
    /// Up to `limit` verdicts that are stale, oldest first.
    async fn stale_verdicts(&self, limit: u32) -> Result<Vec<PendingVerdict>>;
    /// Stores a verdict computed under `marks`, unless a newer one is stored already.
    async fn store_verdict(&self, marks: &PendingVerdict, verdict: &Verdict) -> Result<()>;
    /// The signature manifests (kind `signature`) in a repository that sign `subject`.
    async fn signature_manifests(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Vec<SignatureManifest>>;

    /// The kind (`signature`, `image`, `index`, ...) of a manifest of a repository; `None` when
    /// it has no such manifest. (Added by the store branch, for enforcement.)
    async fn manifest_kind(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>>;
    /// The manifests of a repository (indexes) that list `digest` as a child manifest. (Added
    /// by the store branch, for enforcement.)
    async fn parent_manifests(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Digest>>;
    /// The manifests of a repository that reference the blob `digest`, with their kinds.
    /// (Added by the store branch, for enforcement.)
    async fn blob_users(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<(Digest, String)>>;
}
