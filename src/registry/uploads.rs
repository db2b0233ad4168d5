//! Blob uploads: monolithic, streamed and chunked, resumable across restarts.

use oci::{Algorithm, Digest, Hasher, RepoName};

use super::{Registry, RegistryError, UploadSlot};
use crate::metadata::UploadRecord;
use crate::storage::{rehash_upload, ByteStream, UploadId};

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
    /// forms some clients send. `None` when malformed or when `end < start`.
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
        let (start, end) = (start.parse().ok()?, end.parse().ok()?);
        (end >= start).then_some(ChunkRange { start, end })
    }

    fn len(self) -> u64 {
        self.end - self.start + 1
    }
}

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
        };
        if let Err(e) = self.meta.create_upload(&record).await {
            let _ = self.blobs.delete_upload(&id).await;
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
        let slot = self.upload_slot(id);
        let mut slot = slot.lock().await;
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
            if content_length.is_some_and(|n| n != r.len()) {
                return Err(RegistryError::UploadInvalid(
                    "Content-Length does not match Content-Range".into(),
                ));
            }
        }
        let expected_len = range.map(ChunkRange::len).or(content_length);
        let hasher = self.hasher_at(slot, record, record.algorithm).await?;
        let appended = self
            .blobs
            .append_upload(&record.id, offset, hasher, body)
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
            if let Err(e) = self
                .meta
                .advance_upload(&record.id, offset, appended.len)
                .await
            {
                self.blobs.truncate_upload(&record.id, offset).await?;
                return Err(e.into());
            }
        }
        record.length = appended.len;
        slot.hashed = Some((appended.len, appended.hasher));
        Ok(())
    }

    /// The hash state of the upload's bytes so far, from the cache or by re-reading them.
    async fn hasher_at(
        &self,
        slot: &mut UploadSlot,
        record: &UploadRecord,
        algorithm: Algorithm,
    ) -> Result<Hasher, RegistryError> {
        match slot.hashed.take() {
            Some((len, hasher)) if len == record.length && hasher.algorithm() == algorithm => {
                Ok(hasher)
            }
            _ => Ok(
                rehash_upload(&*self.blobs, &record.id, record.length, algorithm.hasher()).await?,
            ),
        }
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
        let slot_handle = self.upload_slot(id);
        let mut slot = slot_handle.lock().await;
        let mut record = self.session(repo, id).await?;
        if let Some((range, content_length, body)) = last_chunk {
            self.append_locked(&mut slot, &mut record, range, content_length, body)
                .await?;
        }
        let actual = self
            .hasher_at(&mut slot, &record, digest.algorithm())
            .await?
            .finish();
        let outcome = if &actual != digest {
            Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            })
        } else {
            self.commit_blob(repo, &record, digest).await
        };
        // Whether committed or refused, this session is over.
        self.meta.delete_upload(id).await?;
        self.blobs.delete_upload(id).await?;
        drop(slot);
        self.forget_upload_slot(id);
        outcome
    }

    async fn commit_blob(
        &self,
        repo: &RepoName,
        record: &UploadRecord,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        match self.blobs.stat(digest).await? {
            // Content addressing: the stored bytes are these bytes; keep the existing file.
            Some(size) if size == record.length => {}
            _ => self.blobs.commit_upload(&record.id, digest).await?,
        }
        self.meta.link_blob(repo, digest, record.length).await?;
        Ok(())
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
            let _ = self.meta.delete_upload(&upload.id).await;
            let _ = self.blobs.delete_upload(&upload.id).await;
            self.forget_upload_slot(&upload.id);
        }
        result
    }

    /// Cancels an upload and discards its bytes.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<(), RegistryError> {
        let slot_handle = self.upload_slot(id);
        let _slot = slot_handle.lock().await;
        self.session(repo, id).await?;
        self.meta.delete_upload(id).await?;
        self.blobs.delete_upload(id).await?;
        self.forget_upload_slot(id);
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
}
