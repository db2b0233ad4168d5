//! The integrity check (`berth fsck`): does what metadata says agree with the bytes in storage,
//! and does every fact in metadata agree with the others?
//!
//! A check reads, in order: every blob row (its bytes exist, stream-hash to its digest and have
//! the recorded size), every manifest (its stored bytes hash to its digest and parse, every
//! blob and child manifest it references is whole and readable in its repository, and the
//! references recorded for garbage collection match its content), every tag (its manifest is
//! stored), every upload session (its data is in storage), and finally the blob store (bytes
//! older than the check that metadata does not know are orphans: a warning, since garbage
//! collection deletes them after its grace period).
//!
//! Without repair a check only reads, so it may run while berth serves. A problem seen while a
//! collection or a push changes the same blob is checked again before it is reported.
//!
//! With repair, each corrupt blob's bytes move to the quarantine area (never deleted) and
//! metadata forgets the blob, as it does for a blob whose bytes are missing, so berth stops
//! serving it and a client's next push of the blob uploads it again. Manifests, tags and
//! uploads are only reported: deleting them would lose what an operator may restore by
//! pushing the missing blob. A repair holds the garbage collection lease (so no collector runs
//! meanwhile) and takes each blob out of service with garbage collection's pending-deletion
//! protocol ([`crate::metadata::fsck`]), so a push of the same digest waits and writes the
//! bytes again.

mod blobs;
mod finding;
mod manifests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use oci::Digest;

pub use finding::{ChildState, Note, Problem, Reference, Repair, Report, Warning};

use crate::gc::{LEASE, LEASE_TTL};
use crate::metadata::{MetadataError, Store};
use crate::storage::{BlobStat, BlobStore, StorageError};

/// Rows read per query.
const PAGE: u32 = 500;
/// How often a long phase reports how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How often a repair renews the lease (well inside its lifetime).
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// Why a check could not finish.
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("another process took the gc lease during the repair")]
    LeaseLost,
}

/// A blob found bad, as the manifest check and the repair need it.
#[derive(Debug, Clone)]
struct BadBlob {
    digest: Digest,
    state: ChildState,
    /// The stat the check saw before hashing (for a corrupt blob), so a repair can tell
    /// whether a push rewrote the bytes since.
    seen: Option<BlobStat>,
}

/// An integrity checker over a berth's stores.
pub struct Checker {
    meta: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    /// Who holds the lease while this checker repairs (unique per process).
    holder: String,
}

/// The state of one run.
struct Run<'a> {
    report: Report,
    out: &'a (dyn Fn(Note<'_>) + Send + Sync),
    started: SystemTime,
    last_progress: Instant,
    last_renewal: Instant,
}

impl Run<'_> {
    fn problem(&mut self, problem: Problem) {
        (self.out)(Note::Problem(&problem));
        self.report.problems.push(problem);
    }

    fn warning(&mut self, warning: Warning) {
        (self.out)(Note::Warning(&warning));
        self.report.warnings.push(warning);
    }

    fn repaired(&mut self, repair: Repair) {
        (self.out)(Note::Repair(&repair));
        self.report.repairs.push(repair);
    }

    fn progress(&self, line: &str) {
        (self.out)(Note::Progress(line));
    }

    /// Whether a progress line is due (and, if so, restarts the clock).
    fn progress_due(&mut self) -> bool {
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            return true;
        }
        false
    }
}

impl Checker {
    /// A checker over the registry's stores.
    pub fn new(meta: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Self {
        Checker {
            meta,
            blobs,
            holder: format!("fsck-{}-{}", std::process::id(), uuid::Uuid::new_v4()),
        }
    }

    /// Runs one check, repairing bad blobs when `repair` is set. `out` hears of each phase,
    /// problem, warning and repair as it happens.
    pub async fn run(
        &self,
        repair: bool,
        out: &(dyn Fn(Note<'_>) + Send + Sync),
    ) -> Result<Report, FsckError> {
        let mut run = Run {
            report: Report {
                repair,
                ..Report::default()
            },
            out,
            started: SystemTime::now(),
            last_progress: Instant::now(),
            last_renewal: Instant::now(),
        };
        if repair {
            if !self.meta.try_lease(LEASE, &self.holder, LEASE_TTL).await? {
                run.report.busy = true;
                return Ok(run.report);
            }
            let outcome = self.check(&mut run, true).await;
            let released = self.meta.release_lease(LEASE, &self.holder).await;
            outcome?;
            released?;
        } else {
            self.check(&mut run, false).await?;
        }
        Ok(run.report)
    }

    async fn check(&self, run: &mut Run<'_>, repair: bool) -> Result<(), FsckError> {
        let mut bad = self.check_blobs(run, repair).await?;
        if repair {
            self.repair_blobs(run, &mut bad).await?;
        }
        self.check_manifests(run, &bad, repair).await?;
        self.check_tags(run).await?;
        self.check_uploads(run).await?;
        self.find_orphans(run).await?;
        Ok(())
    }

    /// Renews the lease of a repair when it is due.
    async fn keep_lease(&self, run: &mut Run<'_>, repair: bool) -> Result<(), FsckError> {
        if !repair || run.last_renewal.elapsed() < RENEW_EVERY {
            return Ok(());
        }
        if !self.meta.try_lease(LEASE, &self.holder, LEASE_TTL).await? {
            return Err(FsckError::LeaseLost);
        }
        run.last_renewal = Instant::now();
        Ok(())
    }

    async fn check_tags(&self, run: &mut Run<'_>) -> Result<(), FsckError> {
        run.progress("checking tags");
        run.report.tags = self.meta.tag_count().await?;
        for tag in self.meta.dangling_tags().await? {
            run.problem(Problem::DanglingTag {
                repository: tag.repository,
                tag: tag.tag,
                digest: tag.digest,
            });
        }
        Ok(())
    }

    async fn check_uploads(&self, run: &mut Run<'_>) -> Result<(), FsckError> {
        run.progress("checking uploads");
        let sessions = self.meta.list_uploads().await?;
        run.report.uploads = sessions.len() as u64;
        for session in sessions {
            let present = self
                .blobs
                .upload_data_present(&session.id, session.length, session.progress.clone())
                .await?;
            if present {
                continue;
            }
            // An append or the end of the session may have moved on since the listing.
            let now = self.meta.upload(&session.id).await?;
            if now.is_some_and(|n| n.length == session.length && n.progress == session.progress) {
                run.problem(Problem::BrokenUpload {
                    repository: session.repository,
                    id: session.id.to_string(),
                    length: session.length,
                });
            }
        }
        Ok(())
    }

    /// Bytes in storage, older than the check, that metadata does not know.
    async fn find_orphans(&self, run: &mut Run<'_>) -> Result<(), FsckError> {
        run.progress("looking for orphaned bytes in storage");
        let mut listing = self.blobs.list_blobs();
        let mut batch: Vec<(Digest, u64)> = Vec::new();
        let mut orphans = Vec::new();
        loop {
            let next = listing.next().await;
            let done = next.is_none();
            if let Some(item) = next {
                let (digest, stat) = item?;
                // Bytes written since the check began may be a push between its commit and
                // its link, which the blob phase could not have seen either way.
                if stat.modified < run.started {
                    batch.push((digest, stat.size));
                }
            }
            if batch.len() >= PAGE as usize || (done && !batch.is_empty()) {
                let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
                let known = self.meta.known_blobs(&digests).await?;
                orphans.extend(batch.drain(..).filter(|(d, _)| !known.contains(d)));
            }
            if done {
                break;
            }
        }
        drop(listing);
        orphans.sort();
        for (digest, size) in orphans {
            run.warning(Warning::OrphanBlob { digest, size });
        }
        Ok(())
    }
}

/// Bad blobs by digest, for the manifest check.
type BadBlobs = HashMap<Digest, BadBlob>;
