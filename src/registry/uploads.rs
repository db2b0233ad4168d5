//! Blob uploads: monolithic, streamed and chunked, resumable across restarts.

use oci::{Algorithm, Digest, Hasher, RepoName};

use super::{Registry, RegistryError, UploadSlot};
use std::time::{Duration, Instant};

use crate::metadata::{MetadataError, UploadRecord};
use crate::storage::{rehash_upload, ByteStream, StorageError, UploadId};

/// Where an upload session stands.
#[derive(Debug, Clone)]
pub struct UploadState {
    pub id: UploadId,
    /// Bytes received so far.
    pub length: u64,
}

/// A chunk's position from `Content-Range` (`start-end`, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Parses `start-end`, also accepting the `bytes=start-end` and `bytes start-end/total`
    /// forms some clients send. `None` when malformed, when `end < start`, or when the length
    /// does not fit in a `u64` (`0-18446744073709551615`).
    pub fn parse(value: &str) -> Option<ChunkRange> {
        let v = value.trim();
        let v = v
            .strip_prefix("bytes=")
            .or_else(|| v.strip_prefix("bytes "))
            .unwrap_or(v);
        let v = v.split_once('/').map_or(v, |(range, _total)| range);
        let (start, end) = v.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(start) || !digits(end) {
            return None;
        }
        let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
        // `length` must not overflow: a range may not cover all 2^64 offsets.
        (end >= start && end - start < u64::MAX).then_some(ChunkRange { start, end })
    }

    /// The number of bytes the range covers (both ends are inclusive).
    pub fn length(self) -> u64 {
        self.end - self.start + 1
    }
}

/// How long a push waits for garbage collection to finish deleting an old copy of the blob it
/// is committing (milliseconds per blob in practice).
const BLOB_DELETION_WAIT: Duration = Duration::from_secs(30);

impl Registry {
    /// Opens an upload session in `repo` whose digest will be computed with `algorithm`.
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
    ) -> Result<UploadState, RegistryError> {
        self.open_session(repo, algorithm, true).await
    }

    async fn open_session(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
        resumable: bool,
    ) -> Result<UploadState, RegistryError> {
        let id = UploadId::generate();
        self.blobs.create_upload(&id).await?;
        let record = UploadRecord {
            id: id.clone(),
            repository: repo.clone(),
            algorithm,
            length: 0,
            resumable,
            hash_state: None,
            progress: None,
            updated_at: 0,
        };
        if let Err(e) = self.meta.create_upload(&record).await {
            let _ = self.blobs.delete_upload(&id, None).await;
            return Err(e.into());
        }
        Ok(UploadState { id, length: 0 })
    }

    async fn session(&self, repo: &RepoName, id: &UploadId) -> Result<UploadRecord, RegistryError> {
        match self.meta.upload(id).await? {
            Some(record) if &record.repository == repo => Ok(record),
            _ => Err(RegistryError::UploadUnknown),
        }
    }

    /// Where an upload stands.
    pub async fn upload_status(
        &self,
        repo: &RepoName,
        id: &UploadId,
    ) -> Result<UploadState, RegistryError> {
        let record = self.session(repo, id).await?;
        Ok(UploadState {
            id: record.id,
            length: record.length,
        })
    }

    /// Appends a chunk (or a whole streamed body) to an upload.
    pub async fn append_chunk(
        &self,
        repo: &RepoName,
        id: &UploadId,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadState, RegistryError> {
        let hold = self.slots.hold(id);
        let mut slot = hold.lock().await;
        let mut record = self.session(repo, id).await?;
        self.append_locked(&mut slot, &mut record, range, content_length, body)
            .await?;
        Ok(UploadState {
            id: record.id,
            length: record.length,
        })
    }

    async fn append_locked(
        &self,
        slot: &mut UploadSlot,
        record: &mut UploadRecord,
        range: Option<ChunkRange>,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<(), RegistryError> {
        let offset = record.length;
        if let Some(r) = range {
            if r.start != offset {
                return Err(RegistryError::UploadOutOfOrder { expected: offset });
            }
            if content_length.is_some_and(|n| n != r.length()) {
                return Err(RegistryError::UploadInvalid(
                    "Content-Length does not match Content-Range".into(),
                ));
            }
        }
        let expected_len = range.map(ChunkRange::length).or(content_length);
        let hasher = self.hasher_at(slot, record, record.algorithm).await?;
        let appended = self
            .blobs
            .append_upload(&record.id, offset, record.progress.clone(), hasher, body)
            .await?;
        let received = appended.len - offset;
        if expected_len.is_some_and(|n| n != received) {
            self.blobs.truncate_upload(&record.id, offset).await?;
            return Err(RegistryError::UploadInvalid(format!(
                "chunk carried {received} bytes, not the {} announced",
                expected_len.unwrap_or_default()
            )));
        }
        if received > 0 {
            let hash_state = appended.hasher.save_state();
            if let Err(e) = self
                .meta
                .advance_upload(
                    &record.id,
                    offset,
                    appended.len,
                    &hash_state,
                    appended.progress.as_deref(),
                )
                .await
            {
                self.blobs.truncate_upload(&record.id, offset).await?;
                return Err(e.into());
            }
            record.hash_state = Some(hash_state);
            record.progress = appended.progress;
        }
        record.length = appended.len;
        slot.hashed = Some((appended.len, appended.hasher));
        Ok(())
    }

    /// The hash state of the upload's bytes so far: from this process's cache, else from the
    /// state saved with the session (another replica, or before a restart), else by re-reading
    /// the bytes.
    async fn hasher_at(
        &self,
        slot: &mut UploadSlot,
        record: &UploadRecord,
        algorithm: Algorithm,
    ) -> Result<Hasher, RegistryError> {
        if let Some((len, hasher)) = slot.hashed.take() {
            if len == record.length && hasher.algorithm() == algorithm {
                return Ok(hasher);
            }
        }
        if record.length == 0 {
            return Ok(algorithm.hasher());
        }
        if let Some(hasher) = record
            .hash_state
            .as_deref()
            .and_then(|saved| Hasher::restore(algorithm, saved))
        {
            return Ok(hasher);
        }
        Ok(rehash_upload(&*self.blobs, &record.id, record.length, algorithm.hasher()).await?)
    }

    /// Completes an upload: appends the optional last chunk, verifies the digest, and makes
    /// the blob readable in `repo`. On a digest mismatch the session and its bytes are
    /// discarded and nothing becomes visible.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<(Option<ChunkRange>, Option<u64>, ByteStream)>,
    ) -> Result<(), RegistryError> {
        let hold = self.slots.hold(id);
        let mut slot = hold.lock().await;
        let mut record = self.session(repo, id).await?;
        if let Some((range, content_length, body)) = last_chunk {
            self.append_locked(&mut slot, &mut record, range, content_length, body)
                .await?;
        }
        let outcome = match self.hasher_at(&mut slot, &record, digest.algorithm()).await {
            Ok(hasher) => {
                let actual = hasher.finish();
                if &actual != digest {
                    Err(RegistryError::DigestMismatch {
                        expected: digest.clone(),
                        actual,
                    })
                } else {
                    self.commit_blob(repo, &record, digest).await
                }
            }
            // An object store cannot read back the parts of an unfinished upload, so only the
            // algorithm hashed on arrival (the one the session started with) can verify it.
            Err(RegistryError::Storage(StorageError::NotFound)) => {
                Err(RegistryError::DigestInvalid(format!(
                    "this upload was hashed with its session's algorithm as it arrived, and its storage cannot read the bytes back to compute {}; push it again with that digest",
                    digest.algorithm().as_str()
                )))
            }
            Err(e) => return Err(e),
        };
        // Whether committed or refused, this session is over.
        self.meta.delete_upload(id).await?;
        self.blobs
            .delete_upload(id, record.progress.clone())
            .await?;
        outcome
    }

    async fn commit_blob(
        &self,
        repo: &RepoName,
        record: &UploadRecord,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        // Garbage collection may be deleting this digest's bytes at this moment (an old orphan
        // with the same content); linking then reports a conflict until it is done, and the
        // commit, which rewrites the bytes from the upload that is still there, is repeated.
        let mut pause = Duration::from_millis(5);
        let deadline = Instant::now() + BLOB_DELETION_WAIT;
        loop {
            self.blobs
                .commit_upload(&record.id, record.length, record.progress.clone(), digest)
                .await?;
            match self.meta.link_blob(repo, digest, record.length).await {
                Err(MetadataError::Conflict) if Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return Ok(other?),
            }
        }
    }

    /// Pushes a whole blob in one request (`POST ?digest=`).
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
    ) -> Result<(), RegistryError> {
        let upload = self.open_session(repo, digest.algorithm(), false).await?;
        let result = self
            .finish_upload(repo, &upload.id, digest, Some((None, content_length, body)))
            .await;
        if result.is_err() {
            // finish_upload discards the session on a digest mismatch; other failures
            // (body errors) leave it, and a monolithic push has no client to resume it.
            let progress = match self.meta.upload(&upload.id).await {
                Ok(Some(record)) => record.progress,
                _ => None,
            };
            let _ = self.meta.delete_upload(&upload.id).await;
            let _ = self.blobs.delete_upload(&upload.id, progress).await;
        }
        result
    }

    /// Cancels an upload and discards its bytes.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<(), RegistryError> {
        let hold = self.slots.hold(id);
        let _slot = hold.lock().await;
        let record = self.session(repo, id).await?;
        self.meta.delete_upload(id).await?;
        self.blobs.delete_upload(id, record.progress).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkRange;

    #[test]
    fn parses_content_range_forms() {
        let r = Some(ChunkRange { start: 0, end: 99 });
        assert_eq!(ChunkRange::parse("0-99"), r);
        assert_eq!(ChunkRange::parse("bytes=0-99"), r);
        assert_eq!(ChunkRange::parse("bytes 0-99/100"), r);
        for bad in [
            "",
            "-",
            "5-",
            "-5",
            "9-3",
            "a-b",
            "0-99-1",
            " -1-2",
            "0x1-2",
            "1-18446744073709551616",
        ] {
            assert_eq!(ChunkRange::parse(bad), None, "{bad}");
        }
    }

    /// Found while writing the `content_range` fuzz property: `0-18446744073709551615` was
    /// accepted, and its length (2^64) overflowed in `length`, a panic in debug builds and a
    /// length of 0 in release builds.
    #[test]
    fn refuses_a_range_whose_length_overflows() {
        assert_eq!(ChunkRange::parse("0-18446744073709551615"), None);
        assert_eq!(ChunkRange::parse("bytes 0-18446744073709551615/*"), None);
        let widest = ChunkRange::parse("1-18446744073709551615").expect("fits");
        assert_eq!(widest.length(), u64::MAX);
        let last =
            ChunkRange::parse("18446744073709551615-18446744073709551615").expect("one byte");
        assert_eq!(last.length(), 1);
    }
}
