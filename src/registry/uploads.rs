//! Blob uploads: monolithic, streamed and chunked, resumable across restarts.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use oci::{Algorithm, Digest, Hasher, RepoName};

use super::{Registry, RegistryError, UploadSlot};
use crate::metadata::{MetadataError, QuotaExceeded, UploadQuota, UploadRecord};
use crate::storage::{rehash_upload, ByteStream, StorageError, UploadId};

/// Who opens an upload session, for the limit on sessions open per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploader {
    /// A signed-in account (user or robot), by id.
    Account(i64),
    /// A client without an account (an open registry), by its address when known.
    Client(Option<IpAddr>),
    /// berth itself, supplying a blob whose content the spec fixes.
    Registry,
}

impl Uploader {
    /// The key its sessions are counted under. An IPv6 client counts by its /64 network,
    /// the block one host is usually given, so it cannot dodge the limit by changing
    /// addresses inside it.
    fn key(self) -> String {
        match self {
            Uploader::Account(id) => format!("account:{id}"),
            Uploader::Client(Some(IpAddr::V4(ip))) => format!("address:{ip}"),
            Uploader::Client(Some(IpAddr::V6(ip))) => match ip.to_ipv4_mapped() {
                Some(v4) => format!("address:{v4}"),
                None => {
                    let network = u128::from(ip) & !((1u128 << 64) - 1);
                    format!("address:{}/64", std::net::Ipv6Addr::from(network))
                }
            },
            Uploader::Client(None) => "address:unknown".to_string(),
            Uploader::Registry => "registry".to_string(),
        }
    }
}

/// The body error that stops a blob at the configured size limit (`MAXIMUM_LAYER_SIZE`).
#[derive(Debug, thiserror::Error)]
#[error("the blob is larger than the registry accepts")]
struct OverSizeLimit;

/// `body`, failing with [`OverSizeLimit`] as soon as it carries more than `allowed` bytes, so
/// no byte past the limit is written.
fn capped(body: ByteStream, allowed: u64) -> ByteStream {
    let mut seen: u64 = 0;
    Box::pin(body.map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len() as u64);
        if seen > allowed {
            Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                OverSizeLimit,
            ))
        } else {
            Ok(chunk)
        }
    }))
}

/// Whether a body failed because it went past the size limit.
fn over_size_limit(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverSizeLimit>())
}

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
    /// Opens an upload session in `repo` for `uploader`, whose digest will be computed with
    /// `algorithm`; refused while the uploader or the repository has as many sessions open
    /// as the limits allow.
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
        uploader: Uploader,
    ) -> Result<UploadState, RegistryError> {
        self.open_session(repo, algorithm, true, uploader).await
    }

    async fn open_session(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
        resumable: bool,
        uploader: Uploader,
    ) -> Result<UploadState, RegistryError> {
        let limits = self.options().limits;
        let quota = UploadQuota {
            per_owner: limits.uploads_per_account,
            per_repository: limits.uploads_per_repository,
        };
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
        let refusal = match self
            .meta
            .create_upload(&record, &uploader.key(), quota)
            .await
        {
            Ok(Ok(())) => return Ok(UploadState { id, length: 0 }),
            Ok(Err(QuotaExceeded::Owner)) => RegistryError::TooManyUploads {
                limit: quota.per_owner,
                per: match uploader {
                    Uploader::Account(_) | Uploader::Registry => "account",
                    Uploader::Client(_) => "client address",
                },
            },
            Ok(Err(QuotaExceeded::Repository)) => RegistryError::TooManyUploads {
                limit: quota.per_repository,
                per: "repository",
            },
            Err(e) => e.into(),
        };
        let _ = self.blobs.delete_upload(&id, None).await;
        Err(refusal)
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
        // Announced sizes are refused before a byte is read; the bytes that actually arrive
        // are counted as they stream.
        let limit = self.options().limits.max_blob_bytes;
        let allowed = limit.saturating_sub(offset);
        if expected_len.is_some_and(|n| n > allowed) {
            return Err(RegistryError::BlobTooLarge { limit });
        }
        let hasher = self.hasher_at(slot, record, record.algorithm).await?;
        let appended = match self
            .blobs
            .append_upload(
                &record.id,
                offset,
                record.progress.clone(),
                hasher,
                capped(body, allowed),
            )
            .await
            .map_err(RegistryError::from)
        {
            Err(RegistryError::Body(e)) if over_size_limit(&e) => {
                return Err(RegistryError::BlobTooLarge { limit })
            }
            other => other?,
        };
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
        let limit = self.options().limits.max_blob_bytes;
        let outcome = match self.hasher_at(&mut slot, &record, digest.algorithm()).await {
            // A session that grew under a higher limit, before a config reload lowered it.
            Ok(_) if record.length > limit => Err(RegistryError::BlobTooLarge { limit }),
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

    /// Pushes a whole blob in one request (`POST ?digest=`) for `uploader`.
    pub async fn push_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        content_length: Option<u64>,
        body: ByteStream,
        uploader: Uploader,
    ) -> Result<(), RegistryError> {
        let limit = self.options().limits.max_blob_bytes;
        if content_length.is_some_and(|n| n > limit) {
            return Err(RegistryError::BlobTooLarge { limit });
        }
        let upload = self
            .open_session(repo, digest.algorithm(), false, uploader)
            .await?;
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
    use super::{ChunkRange, Uploader};

    #[test]
    fn sessions_count_per_account_and_per_client_network() {
        let key = |u: Uploader| u.key();
        assert_eq!(key(Uploader::Account(42)), "account:42");
        let v4 = "192.0.2.7".parse().ok();
        assert_eq!(key(Uploader::Client(v4)), "address:192.0.2.7");
        let mapped = "::ffff:192.0.2.7".parse().ok();
        assert_eq!(key(Uploader::Client(mapped)), "address:192.0.2.7");
        let a = key(Uploader::Client("2001:db8:1:2:aaaa::1".parse().ok()));
        let b = key(Uploader::Client("2001:db8:1:2:bbbb::9".parse().ok()));
        let other = key(Uploader::Client("2001:db8:1:3::1".parse().ok()));
        assert_eq!(a, "address:2001:db8:1:2::/64");
        assert_eq!(a, b, "one /64 is one client");
        assert_ne!(a, other);
        assert_eq!(key(Uploader::Client(None)), "address:unknown");
    }

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
