//! The blob phase: every blob row against its bytes, and the repair of bad blobs.

use futures::StreamExt;
use oci::Digest;

use super::{BadBlob, BadBlobs, Checker, ChildState, FsckError, Problem, Repair, Run, PAGE};
use crate::storage::{BlobStat, StorageError};

/// What hashing a stored blob found.
enum Hashed {
    /// The digest and length of the bytes read.
    Read(Digest, u64),
    /// The bytes disappeared while being read.
    Gone,
}

impl Checker {
    /// Checks every blob row, page by page (memory stays flat whatever the store's size).
    pub(super) async fn check_blobs(
        &self,
        run: &mut Run<'_>,
        repair: bool,
    ) -> Result<BadBlobs, FsckError> {
        let (count, total) = self.meta.blob_totals().await?;
        run.progress(&format!("checking {count} blobs ({total} bytes)"));
        let mut bad = BadBlobs::new();
        let mut after: Option<Digest> = None;
        loop {
            let page = self.meta.blobs_after(after.as_ref(), PAGE).await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (digest, size) in page {
                self.keep_lease(run, repair).await?;
                if let Some((problem, found)) = self.check_blob(run, &digest, size).await? {
                    run.problem(problem);
                    if let Some(found) = found {
                        bad.insert(digest, found);
                    }
                }
                run.report.blobs += 1;
                run.report.bytes += size;
                if run.progress_due() {
                    let line = format!(
                        "blobs: {} of {count} checked, {} of {total} bytes",
                        run.report.blobs, run.report.bytes
                    );
                    run.progress(&line);
                }
            }
        }
        Ok(bad)
    }

    /// Checks one blob. A problem comes with the blob's entry for the manifest check and the
    /// repair (none for a wrong recorded size: the bytes are right).
    async fn check_blob(
        &self,
        run: &mut Run<'_>,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<(Problem, Option<BadBlob>)>, FsckError> {
        // A second look when the bytes changed under the first (a push rewrote them, or a
        // collection deleted them).
        for attempt in 0..2 {
            let last = attempt == 1;
            let Some(seen) = self.blobs.stat(digest).await? else {
                // A collection deletes a blob's rows before its bytes: with the row still
                // there, the bytes are missing for good.
                if self.meta.blob_size(digest).await?.is_none() {
                    return Ok(None);
                }
                let found = BadBlob {
                    digest: digest.clone(),
                    state: ChildState::Missing,
                    seen: None,
                };
                return Ok(Some((
                    Problem::MissingBlob {
                        digest: digest.clone(),
                        size,
                    },
                    Some(found),
                )));
            };
            let (actual, len) = match self.hash(run, digest).await? {
                Hashed::Read(actual, len) => (actual, len),
                Hashed::Gone if last => return Ok(None),
                Hashed::Gone => continue,
            };
            if &actual == digest && len == size {
                return Ok(None);
            }
            if !last && self.blobs.stat(digest).await? != Some(seen) {
                continue;
            }
            if self.meta.blob_size(digest).await?.is_none() {
                return Ok(None);
            }
            if &actual == digest {
                return Ok(Some((
                    Problem::WrongSizeBlob {
                        digest: digest.clone(),
                        recorded: size,
                        stored: len,
                    },
                    None,
                )));
            }
            let found = BadBlob {
                digest: digest.clone(),
                state: ChildState::Corrupt,
                seen: Some(seen),
            };
            return Ok(Some((
                Problem::CorruptBlob {
                    digest: digest.clone(),
                    expected_size: size,
                    actual_digest: actual,
                    actual_size: len,
                },
                Some(found),
            )));
        }
        Ok(None)
    }

    /// Streams a blob through its digest's hasher.
    async fn hash(&self, run: &mut Run<'_>, digest: &Digest) -> Result<Hashed, FsckError> {
        let mut stream = match self.blobs.open(digest, None).await {
            Ok(s) => s,
            Err(StorageError::NotFound) => return Ok(Hashed::Gone),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = digest.algorithm().hasher();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(StorageError::from)?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
            if run.progress_due() {
                run.progress(&format!("hashing {digest}: {len} bytes so far"));
            }
        }
        Ok(Hashed::Read(hasher.finish(), len))
    }

    /// Takes every bad blob out of service; those repaired leave `bad` (metadata no longer
    /// knows them, so the manifest check sees them as missing).
    pub(super) async fn repair_blobs(
        &self,
        run: &mut Run<'_>,
        bad: &mut BadBlobs,
    ) -> Result<(), FsckError> {
        if bad.is_empty() {
            return Ok(());
        }
        run.progress(&format!("repairing {} blobs", bad.len()));
        let mut list: Vec<BadBlob> = bad.values().cloned().collect();
        list.sort_by(|a, b| a.digest.cmp(&b.digest));
        for blob in list {
            self.keep_lease(run, true).await?;
            let repair = self.repair_blob(&blob).await?;
            if !matches!(repair, Repair::Kept { .. }) {
                bad.remove(&blob.digest);
            }
            run.repaired(repair);
        }
        Ok(())
    }

    /// The quarantine protocol of [`crate::metadata::fsck`] for one blob.
    async fn repair_blob(&self, blob: &BadBlob) -> Result<Repair, FsckError> {
        let digest = &blob.digest;
        let kept = |reason| Repair::Kept {
            digest: digest.clone(),
            reason,
        };
        if self.meta.begin_blob_quarantine(digest).await?.is_none() {
            return Ok(kept("metadata no longer knows it"));
        }
        // From here a push of the digest cannot link it; it waits for the mark to go.
        let outcome = self.take_out_of_service(blob).await;
        // Forgetting clears the mark with the rows; in every other case it is cleared here.
        match &outcome {
            Ok(Repair::Quarantined { .. } | Repair::Forgotten { .. }) => {}
            Ok(Repair::Kept { .. }) => self.meta.end_blob_deletion(digest).await?,
            Err(_) => {
                // The error that stopped the repair is the one to report; a mark left behind
                // goes stale and garbage collection clears it (the rows are still there).
                let _ = self.meta.end_blob_deletion(digest).await;
            }
        }
        outcome
    }

    async fn take_out_of_service(&self, blob: &BadBlob) -> Result<Repair, FsckError> {
        let digest = &blob.digest;
        let kept = |reason| Repair::Kept {
            digest: digest.clone(),
            reason,
        };
        let now: Option<BlobStat> = self.blobs.stat(digest).await?;
        match blob.state {
            ChildState::Missing if now.is_some() => Ok(kept("its bytes are back")),
            ChildState::Missing => Ok(Repair::Forgotten {
                digest: digest.clone(),
                repositories: self.meta.forget_quarantined_blob(digest).await?,
            }),
            // A commit gives the blob a fresh modification time: different bytes from those
            // found corrupt, which a push of the digest verified.
            _ if now != blob.seen => Ok(kept("its bytes changed since the check")),
            _ => match self.blobs.quarantine_blob(digest).await? {
                Some(location) => Ok(Repair::Quarantined {
                    digest: digest.clone(),
                    location,
                    repositories: self.meta.forget_quarantined_blob(digest).await?,
                }),
                None => Ok(kept("its bytes changed since the check")),
            },
        }
    }
}
