//! Online garbage collection: mark from metadata, sweep metadata and storage, expire stale
//! uploads and old tag history, with the registry serving throughout.
//!
//! What is alive is decided by the metadata database ([`crate::metadata::gc`]): tags, tag
//! history younger than `DEFAULT_TAG_EXPIRATION`, anything pushed within the grace period, and
//! whatever those reach. A run deletes, in order: unreachable manifests, blobs no manifest
//! references any more, bytes in storage that metadata does not know, and upload sessions idle
//! for longer than their maximum age. Each deletion re-checks under a lock that a concurrent
//! push has not revived what it deletes, and bytes go only after their rows (see the protocol
//! in [`crate::metadata::gc`]), so a push never ends up referring to deleted bytes.
//!
//! One replica collects at a time: a run holds the lease `gc` in the shared database and
//! renews it as it goes.

mod settings;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use oci::{Digest, RepoName};

pub use settings::{parse_expiration, GcSettings};

use crate::metadata::gc::STALE_DELETION;
use crate::metadata::{MetadataError, Store};
use crate::storage::{BlobStore, StorageError, UploadId};

/// The lease that makes one collector run at a time (`berth fsck --repair` holds it too).
pub(crate) const LEASE: &str = "gc";
/// How long a lease lasts unless renewed; a collector that dies frees it after this.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(300);
/// Renew the lease after this many deletions (each takes milliseconds).
const RENEW_EVERY: usize = 200;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("another process took the collection lease")]
    LeaseLost,
}

/// One thing a run deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collected {
    /// A manifest nothing keeps alive.
    Manifest {
        repository: RepoName,
        digest: Digest,
    },
    /// A blob no manifest references, with its rows and bytes.
    Blob { digest: Digest, size: u64 },
    /// Bytes in storage that metadata does not know.
    OrphanBytes { digest: Digest, size: u64 },
    /// An upload session idle for longer than the maximum age.
    Upload { id: String, repository: RepoName },
}

impl fmt::Display for Collected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Collected::Manifest { repository, digest } => {
                write!(f, "manifest {repository}@{digest}")
            }
            Collected::Blob { digest, size } => write!(f, "blob {digest} {size}"),
            Collected::OrphanBytes { digest, size } => write!(f, "orphan {digest} {size}"),
            Collected::Upload { id, repository } => write!(f, "upload {repository} {id}"),
        }
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Whether nothing was deleted because this was a dry run.
    pub dry_run: bool,
    /// Whether the run did nothing because another process was collecting.
    pub busy: bool,
    /// What was (or would be) deleted, in the order of the run.
    pub collected: Vec<Collected>,
    /// Tag history entries forgotten.
    pub history_expired: u64,
    /// Candidates a re-check found alive (revived by a concurrent push).
    pub kept: u64,
}

impl Report {
    /// Bytes of blob storage freed (or that would be).
    pub fn bytes_freed(&self) -> u64 {
        self.collected
            .iter()
            .map(|c| match c {
                Collected::Blob { size, .. } | Collected::OrphanBytes { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    /// What was deleted, by kind, for the metrics.
    pub fn deletions(&self) -> crate::metrics::GcDeletions {
        let mut d = crate::metrics::GcDeletions {
            bytes_freed: self.bytes_freed(),
            ..Default::default()
        };
        for c in &self.collected {
            match c {
                Collected::Manifest { .. } => d.manifests += 1,
                Collected::Blob { .. } => d.blobs += 1,
                Collected::OrphanBytes { .. } => d.orphan_bytes += 1,
                Collected::Upload { .. } => d.uploads += 1,
            }
        }
        d
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        if self.busy {
            return "another replica is collecting; nothing done".into();
        }
        let count = |f: fn(&Collected) -> bool| self.collected.iter().filter(|c| f(c)).count();
        format!(
            "{}{} manifests, {} blobs, {} orphaned blobs, {} uploads, {} bytes{}; {} tag history entries expired; {} kept after a re-check",
            if self.dry_run { "would delete " } else { "deleted " },
            count(|c| matches!(c, Collected::Manifest { .. })),
            count(|c| matches!(c, Collected::Blob { .. })),
            count(|c| matches!(c, Collected::OrphanBytes { .. })),
            count(|c| matches!(c, Collected::Upload { .. })),
            self.bytes_freed(),
            if self.dry_run { " would be freed" } else { " freed" },
            self.history_expired,
            self.kept,
        )
    }
}

/// The garbage collector of one berth process.
pub struct Collector {
    meta: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    /// Who holds the lease while this collector runs (unique per process).
    holder: String,
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Collector {
    /// A collector over the registry's stores.
    pub fn new(meta: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Self {
        Collector {
            meta,
            blobs,
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
        }
    }

    async fn renew(&self) -> Result<(), GcError> {
        if self.meta.try_lease(LEASE, &self.holder, LEASE_TTL).await? {
            Ok(())
        } else {
            Err(GcError::LeaseLost)
        }
    }

    /// Runs one collection. `progress` hears of each phase and of each thing collected.
    pub async fn run(
        &self,
        settings: &GcSettings,
        dry_run: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Report, GcError> {
        let started = std::time::Instant::now();
        let result = self.run_once(settings, dry_run, progress).await;
        // A dry run deletes nothing: only real runs are counted.
        if !dry_run {
            let outcome = match &result {
                Ok(report) if report.busy => None,
                Ok(report) => Some(Ok(report.deletions())),
                Err(_) => Some(Err(())),
            };
            crate::metrics::metrics().gc_run(outcome, started.elapsed());
        }
        result
    }

    async fn run_once(
        &self,
        settings: &GcSettings,
        dry_run: bool,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Report, GcError> {
        let mut report = Report {
            dry_run,
            ..Report::default()
        };
        if !self.meta.try_lease(LEASE, &self.holder, LEASE_TTL).await? {
            report.busy = true;
            return Ok(report);
        }
        let outcome = self.collect(settings, &mut report, progress).await;
        let released = self.meta.release_lease(LEASE, &self.holder).await;
        outcome?;
        released?;
        Ok(report)
    }

    async fn collect(
        &self,
        settings: &GcSettings,
        report: &mut Report,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), GcError> {
        let now = SystemTime::now();
        let cutoff = now - settings.grace;
        let (created_since, linked_before) = (millis(cutoff), millis(cutoff));
        let history_since = millis(now - settings.tag_expiration);
        let dry = report.dry_run;

        if !dry {
            self.finish_abandoned_deletions(cutoff).await?;
            report.history_expired = self.meta.expire_tag_history(history_since).await?;
        }

        progress("marking manifests");
        let manifests = self
            .meta
            .unreachable_manifests(created_since, history_since)
            .await?;
        progress(&format!("{} unreachable manifests", manifests.len()));
        for (n, (repository, digest)) in manifests.into_iter().enumerate() {
            if !dry {
                if n % RENEW_EVERY == RENEW_EVERY - 1 {
                    self.renew().await?;
                }
                let deleted = self
                    .meta
                    .delete_unreachable_manifest(&repository, &digest, created_since, history_since)
                    .await?;
                if !deleted {
                    report.kept += 1;
                    continue;
                }
            }
            self.record(report, progress, Collected::Manifest { repository, digest });
        }

        progress("marking blobs");
        let blobs = self
            .meta
            .unreachable_blobs(linked_before, created_since, history_since)
            .await?;
        progress(&format!("{} unreachable blobs", blobs.len()));
        for (n, (digest, size)) in blobs.into_iter().enumerate() {
            if !dry {
                if n % RENEW_EVERY == RENEW_EVERY - 1 {
                    self.renew().await?;
                }
                if !self
                    .meta
                    .begin_blob_deletion(&digest, linked_before)
                    .await?
                {
                    report.kept += 1;
                    continue;
                }
                self.delete_bytes(&digest, cutoff).await?;
            }
            self.record(report, progress, Collected::Blob { digest, size });
        }

        progress("sweeping storage");
        self.renew().await?;
        let orphans = self.orphaned_bytes(cutoff).await?;
        progress(&format!("{} orphaned blobs in storage", orphans.len()));
        for (digest, size) in orphans {
            if !dry {
                if !self.meta.begin_orphan_deletion(&digest).await? {
                    report.kept += 1;
                    continue;
                }
                self.delete_bytes(&digest, cutoff).await?;
            }
            self.record(report, progress, Collected::OrphanBytes { digest, size });
        }

        progress("expiring uploads");
        self.renew().await?;
        self.expire_uploads(settings, now, report, progress).await?;
        Ok(())
    }

    fn record(
        &self,
        report: &mut Report,
        progress: &(dyn Fn(&str) + Send + Sync),
        item: Collected,
    ) {
        progress(&item.to_string());
        report.collected.push(item);
    }

    /// Steps 2 and 3 of a blob deletion: deletes the bytes unless a push wrote them again
    /// since `cutoff` (it will link them once the deletion is cleared), then clears it.
    async fn delete_bytes(&self, digest: &Digest, cutoff: SystemTime) -> Result<(), GcError> {
        match self.blobs.stat(digest).await? {
            Some(stat) if stat.modified >= cutoff => {}
            Some(_) => self.blobs.delete_blob(digest).await?,
            None => {}
        }
        self.meta.end_blob_deletion(digest).await?;
        Ok(())
    }

    /// Deletions a collector began but did not finish (it died): their rows are gone, so the
    /// bytes go unless metadata knows the blob again.
    async fn finish_abandoned_deletions(&self, cutoff: SystemTime) -> Result<(), GcError> {
        let stale_before = millis(SystemTime::now() - STALE_DELETION);
        for (digest, started_at) in self.meta.pending_blob_deletions().await? {
            if started_at >= stale_before {
                continue;
            }
            if self
                .meta
                .known_blobs(std::slice::from_ref(&digest))
                .await?
                .is_empty()
            {
                self.delete_bytes(&digest, cutoff).await?;
            } else {
                self.meta.end_blob_deletion(&digest).await?;
            }
        }
        Ok(())
    }

    /// Stored blobs written before `cutoff` that metadata does not know.
    async fn orphaned_bytes(&self, cutoff: SystemTime) -> Result<Vec<(Digest, u64)>, GcError> {
        let mut old = Vec::new();
        let mut listing = self.blobs.list_blobs();
        while let Some(item) = listing.next().await {
            let (digest, stat) = item?;
            if stat.modified < cutoff {
                old.push((digest, stat.size));
            }
        }
        drop(listing);
        let digests: Vec<Digest> = old.iter().map(|(d, _)| d.clone()).collect();
        let known = self.meta.known_blobs(&digests).await?;
        let mut orphans: Vec<(Digest, u64)> = old
            .into_iter()
            .filter(|(d, _)| !known.contains(d))
            .collect();
        orphans.sort();
        Ok(orphans)
    }

    async fn expire_uploads(
        &self,
        settings: &GcSettings,
        now: SystemTime,
        report: &mut Report,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<(), GcError> {
        // Listing storage before metadata: an upload begun in between is not in the first
        // list, so it cannot be mistaken for one without a session.
        let stored: Vec<UploadId> = if self.blobs.is_shared() {
            self.blobs
                .list_uploads()
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        } else {
            Vec::new()
        };
        let sessions = self.meta.list_uploads().await?;
        let idle_before = millis(now - settings.upload_max_age);
        let mut live: HashSet<UploadId> = HashSet::new();
        let mut idle = Vec::new();
        for session in sessions {
            if session.updated_at < idle_before {
                idle.push(session);
            } else {
                live.insert(session.id);
            }
        }
        idle.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        for session in idle {
            if !report.dry_run {
                self.meta.delete_upload(&session.id).await?;
                self.blobs
                    .delete_upload(&session.id, session.progress.clone())
                    .await?;
            }
            self.record(
                report,
                progress,
                Collected::Upload {
                    id: session.id.to_string(),
                    repository: session.repository,
                },
            );
        }
        // Upload data in a shared store whose session is gone (a replica died between
        // forgetting the session and deleting the data): nothing can resume it.
        if !report.dry_run {
            for id in stored.into_iter().filter(|id| !live.contains(id)) {
                if self.meta.upload(&id).await?.is_none() {
                    self.blobs.delete_upload(&id, None).await?;
                }
            }
        }
        Ok(())
    }
}
