//! Metadata: repositories, which blobs each may read, manifests, tags, referrers and uploads.
//!
//! Facts live here; bytes live in the blob store. The traits are implemented once, on SQL
//! ([`sql::SqlStore`]), for the embedded SQLite database ([`sqlite::open`]) and for the
//! PostgreSQL database that several replicas share ([`postgres::open`]); both behave the same.
//! Every method that writes more than one row does so in one transaction.

pub mod accounts;
pub mod fsck;
pub mod gc;
pub mod mirror;
pub mod notifications;
pub mod postgres;
pub mod proxy_cache;
pub mod sql;
pub mod sqlite;
pub mod trust;
pub mod usage_log;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use oci::{Algorithm, Digest, RepoName, Tag};

use crate::storage::{UploadId, UploadProgress};

/// A whole metadata backend: registry metadata, accounts, garbage collection's queries, the
/// integrity check's, repository notifications, the usage logs, signature trust and proxy
/// cache configurations.
pub trait Store:
    MetadataStore
    + accounts::AccountStore
    + gc::GcStore
    + fsck::FsckStore
    + notifications::NotificationStore
    + usage_log::UsageLogStore
    + trust::TrustStore
    + proxy_cache::ProxyCacheStore
    + mirror::MirrorStore
{
}

impl<
        T: MetadataStore
            + accounts::AccountStore
            + gc::GcStore
            + fsck::FsckStore
            + notifications::NotificationStore
            + usage_log::UsageLogStore
            + trust::TrustStore
            + proxy_cache::ProxyCacheStore
            + mirror::MirrorStore,
    > Store for T
{
}

/// Metadata failures.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// A row the operation needs does not exist (e.g. the repository of an upload).
    #[error("not found")]
    NotFound,
    /// A concurrent change won; the caller may retry or report a conflict.
    #[error("conflicting concurrent change")]
    Conflict,
    /// The change would break an access-control rule (e.g. a robot granted rights outside
    /// its namespace).
    #[error("{0}")]
    Refused(&'static str),
    /// The database has no room left on its disk; nothing of the change was written.
    #[error("the metadata database is full")]
    Full,
    /// The database failed.
    #[error("database failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What the metadata stores return.
pub type Result<T, E = MetadataError> = std::result::Result<T, E>;

impl From<sqlx::Error> for MetadataError {
    fn from(e: sqlx::Error) -> MetadataError {
        backend(e)
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> MetadataError {
    if is_disk_full(&e) {
        return MetadataError::Full;
    }
    MetadataError::Backend(Box::new(e))
}

/// Whether a database error says its disk is full: SQLite's `SQLITE_FULL` (13, also seen as
/// the extended `SQLITE_IOERR_WRITE` family's `ENOSPC`), PostgreSQL's `disk_full` (53100), or
/// an I/O error of that kind.
fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    match e.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("13") | Some("53100"))
                || db.message().contains("database or disk is full")
        }
        Some(sqlx::Error::Io(io)) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses a value this store wrote itself; a failure means the database was edited by hand.
fn stored<T: FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T> {
    s.parse::<T>()
        .map_err(|e| MetadataError::Backend(format!("corrupt metadata value {s:?}: {e}").into()))
}

/// An upload session as recorded in metadata.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    pub id: UploadId,
    pub repository: RepoName,
    pub algorithm: Algorithm,
    /// Bytes received and durable so far.
    pub length: u64,
    /// Whether a client knows the session and may resume it (false inside a single-request
    /// push, whose session nobody can resume after a crash).
    pub resumable: bool,
    /// The hash state of the first `length` bytes ([`oci::Hasher::save_state`]), so any
    /// replica can continue the upload without re-reading it; `None` before the first byte.
    pub hash_state: Option<Vec<u8>>,
    /// The blob store's progress at `length` bytes ([`crate::storage::UploadProgress`]).
    pub progress: UploadProgress,
    /// When the session last changed (milliseconds since the Unix epoch).
    pub updated_at: i64,
}

/// Caps on the upload sessions open at once, checked as a session opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    /// Sessions one owner (account or client address) may have open.
    pub per_owner: u32,
    /// Sessions one repository may have open.
    pub per_repository: u32,
}

impl UploadQuota {
    /// Which cap a new session would break, given the sessions the owner and the repository
    /// have open.
    pub(crate) fn exceeded(self, owner_open: i64, repository_open: i64) -> Option<QuotaExceeded> {
        if owner_open >= i64::from(self.per_owner) {
            Some(QuotaExceeded::Owner)
        } else if repository_open >= i64::from(self.per_repository) {
            Some(QuotaExceeded::Repository)
        } else {
            None
        }
    }
}

/// Which cap kept an upload session from opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    /// The owner has as many sessions open as it may.
    Owner,
    /// The repository has as many sessions open as it may.
    Repository,
}

/// A manifest about to be stored.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
    pub artifact_type: Option<String>,
    pub config_media_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Blobs it references (config and layers).
    pub blobs: Vec<Digest>,
    /// Manifests it references (an index's children).
    pub children: Vec<Digest>,
    /// Which of `blobs` and `children` may be absent from the repository (a sparse manifest's,
    /// see [`crate::registry::SparseSettings`]), sorted; empty for an ordinary manifest. The
    /// manifest is recorded as sparse when one of them is absent as it is stored.
    pub optional: Vec<Digest>,
    /// Facts recorded for listings (kind, total size, what it signs, details).
    pub facts: crate::registry::facts::ManifestFacts,
}

/// A stored manifest, as served to clients.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A manifest that names another as its subject, as the referrers API lists it.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A tag with what the registry knows about the manifest it points at.
#[derive(Debug, Clone)]
pub struct TagDetail {
    pub name: String,
    pub digest: Digest,
    pub media_type: String,
    /// Manifest kind recorded at push (`image`, `index`, `helm-chart`, ...).
    pub kind: String,
    pub artifact_type: Option<String>,
    pub total_size: u64,
    /// When the tag last moved (milliseconds since the Unix epoch).
    pub updated_at: i64,
    /// The manifest this one signs or describes.
    pub signed: Option<Digest>,
    /// Kind-specific facts (JSON object text).
    pub details: Option<String>,
}

/// Which tags [`MetadataStore::tag_details`] returns.
#[derive(Debug, Clone, Default)]
pub struct TagQuery<'a> {
    /// Only tags whose name contains this.
    pub filter: Option<&'a str>,
    /// Whether cosign's `sha256-<hex>.sig|.att|.sbom` tags are included.
    pub cosign_tags: bool,
    pub offset: u32,
    pub limit: u32,
}

/// A manifest that signs, attests or describes another (through its `subject` or a cosign
/// tag).
#[derive(Debug, Clone)]
pub struct Describer {
    /// The manifest described.
    pub target: Digest,
    pub digest: Digest,
    pub kind: String,
    pub artifact_type: Option<String>,
    pub total_size: u64,
    /// One of its tags, if it has any.
    pub tag: Option<String>,
}

/// What the registry recorded about one manifest of a repository.
#[derive(Debug, Clone)]
pub struct ManifestSummary {
    pub digest: Digest,
    pub media_type: String,
    pub kind: String,
    pub artifact_type: Option<String>,
    pub total_size: u64,
    /// When it was pushed (milliseconds since the Unix epoch).
    pub created_at: i64,
    pub signed: Option<Digest>,
    /// Kind-specific facts (JSON object text).
    pub details: Option<String>,
    /// Its tags, by name.
    pub tags: Vec<String>,
}

/// Where a tag pointed before it was deleted or moved.
#[derive(Debug, Clone)]
pub struct TagHistoryEntry {
    pub name: String,
    pub digest: Digest,
    /// When the tag began pointing there (milliseconds since the Unix epoch).
    pub started_at: i64,
    /// When it stopped (milliseconds since the Unix epoch).
    pub ended_at: i64,
}

/// Registry-wide totals, as [`MetadataStore::totals`] reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub uploads: u64,
}

/// How a manifest is looked up.
#[derive(Debug, Clone)]
pub enum ManifestKey<'a> {
    Tag(&'a Tag),
    Digest(&'a Digest),
}

/// The metadata database.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Writes a row of its own (named `probe`, unique to the caller), reads it back and
    /// deletes it: whether the database answers a real write and read (`/health/endtoend`).
    async fn probe(&self, probe: &str) -> Result<()>;

    /// The registry's totals now: blobs stored, their bytes, open upload sessions. Counts the
    /// whole database (what every replica shares), for the metrics a scrape reads.
    async fn totals(&self) -> Result<Totals>;

    // ---- repositories ----

    /// Creates the repository if it does not exist yet. Idempotent.
    async fn ensure_repository(&self, repo: &RepoName) -> Result<()>;

    /// Whether the repository exists.
    async fn repository_exists(&self, repo: &RepoName) -> Result<bool>;

    /// Repository names in lexical order, strictly after `after`, at most `limit`.
    async fn list_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<RepoName>>;

    // ---- blobs ----

    /// Records that `digest` (of `size` bytes, already durable in the blob store) is readable
    /// in `repo`. Creates the repository if needed. Idempotent.
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()>;

    /// Removes `repo`'s link to a blob; the bytes stay for garbage collection. Returns whether a
    /// link existed.
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// The size of a blob if `repo` may read it.
    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>>;

    /// Sizes of those of `digests` that `repo` may read.
    async fn linked_blobs(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, u64>>;

    /// The size of a durable blob, whichever repositories link it.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;

    // ---- uploads ----

    /// Records a new upload session opened by `owner` (a key naming who opened it: an
    /// account or a client address), creating the repository if needed, unless `owner` or
    /// the repository already has as many sessions open as `quota` allows. Sessions are
    /// counted in the database under a lock, so the caps hold for all replicas together;
    /// a session that ends (finished, cancelled, expired) frees its place.
    async fn create_upload(
        &self,
        upload: &UploadRecord,
        owner: &str,
        quota: UploadQuota,
    ) -> Result<Result<(), QuotaExceeded>>;

    /// The upload session, if it exists.
    async fn upload(&self, id: &UploadId) -> Result<Option<UploadRecord>>;

    /// Moves an upload's length from `from` to `to`, recording the hash state and the blob
    /// store's progress at `to`; `Conflict` if it was not at `from`.
    async fn advance_upload(
        &self,
        id: &UploadId,
        from: u64,
        to: u64,
        hash_state: &[u8],
        progress: Option<&[u8]>,
    ) -> Result<()>;

    /// Forgets an upload session. Absent sessions are not an error.
    async fn delete_upload(&self, id: &UploadId) -> Result<()>;

    /// Every recorded upload session (start-up recovery).
    async fn list_uploads(&self) -> Result<Vec<UploadRecord>>;

    // ---- manifests and tags ----

    /// Stores a manifest in `repo` with its references, and points `tags` at it, in one
    /// transaction. Storing an existing manifest again only moves the tags.
    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tags: &[Tag],
    ) -> Result<()>;

    /// Looks a manifest up by tag or digest.
    async fn manifest(
        &self,
        repo: &RepoName,
        key: ManifestKey<'_>,
    ) -> Result<Option<StoredManifest>>;

    /// Which of `digests` are manifests stored in `repo`.
    async fn present_manifests(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashSet<Digest>>;

    /// Deletes a manifest and every tag pointing at it. Returns whether it existed.
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Deletes one tag; the manifest stays. Returns whether the tag existed.
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool>;

    /// Tags in lexical order, strictly after `after`, at most `limit`.
    async fn list_tags(&self, repo: &RepoName, after: Option<&str>, limit: u32)
        -> Result<Vec<Tag>>;

    /// Tags with their manifests' facts, by name, as `query` selects.
    async fn tag_details(&self, repo: &RepoName, query: &TagQuery<'_>) -> Result<Vec<TagDetail>>;

    /// Manifests of `repo` that sign, attest or describe any of `targets`.
    async fn describers(&self, repo: &RepoName, targets: &[Digest]) -> Result<Vec<Describer>>;

    /// One page of the manifests of `repo` that sign, attest or describe `target`, in the
    /// order of [`MetadataStore::describers`], and how many there are in all.
    async fn describers_page(
        &self,
        repo: &RepoName,
        target: &Digest,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<Describer>, u64)>;

    /// What was recorded about a manifest of `repo`, with its tags.
    async fn manifest_summary(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestSummary>>;

    /// Points `tag` at the manifest `digest` of the same repository. Returns false when the
    /// manifest is not there.
    async fn move_tag(&self, repo: &RepoName, tag: &Tag, digest: &Digest) -> Result<bool>;

    /// Where tags of `repo` pointed before (only `tag`, when given), newest first: history
    /// that ended at or after `since` (milliseconds since the epoch) and whose manifest is
    /// still stored, at most `limit` entries.
    async fn tag_history(
        &self,
        repo: &RepoName,
        tag: Option<&Tag>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<TagHistoryEntry>>;

    /// Points `tag` back at `digest`, when the tag's history since `since` says it pointed
    /// there and the manifest is still stored. Returns whether it did.
    async fn restore_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        since: i64,
    ) -> Result<bool>;

    /// Manifests in `repo` whose subject is `subject`, ordered by digest, strictly after
    /// `after`, at most `limit`, optionally only those of one artifact type.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<Referrer>>;
}
