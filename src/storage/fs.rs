//! The embedded blob store: a local directory (see `layout.rs`).
//!
//! Durability: upload bytes are `fdatasync`ed before an append returns; a commit renames the
//! finished upload into the content-addressed tree and syncs the directory, so a blob either
//! exists complete under its digest or not at all, whatever the moment of a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use oci::{Digest, Hasher};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

use super::layout::{blob_path, blobs_dir, upload_path, uploads_dir};
use super::{Appended, BlobStore, ByteRange, ByteStream, StorageError, UploadId};

/// Read size when streaming blobs out: large enough to keep syscalls and blocking-pool hops
/// rare, small enough that memory per download stays modest.
const READ_CHUNK: usize = 512 * 1024;

/// How many received body chunks may queue for the writer thread. Bounded, so a slow disk
/// pushes back on the client instead of buffering the body in memory.
const WRITE_QUEUE: usize = 32;

/// Blob store on a local filesystem.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(blobs_dir(&root))?;
        fs::create_dir_all(uploads_dir(&root))?;
        Ok(FsBlobStore { root })
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents, syncing each parent whose entry list changed, so a
/// rename into `dir` cannot be lost because the directory itself was not durable.
fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(io::Error::other(e)))?
        .map_err(StorageError::from)
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        match tokio::fs::metadata(blob_path(&self.root, digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let mut file = tokio::fs::File::open(blob_path(&self.root, digest)).await?;
        let stream = match range {
            None => ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
            Some(r) => {
                file.seek(SeekFrom::Start(r.start)).await?;
                ReaderStream::with_capacity(file.take(r.end - r.start + 1), READ_CHUNK).boxed()
            }
        };
        Ok(stream)
    }

    async fn create_upload(&self, id: &UploadId) -> Result<(), StorageError> {
        let path = upload_path(&self.root, id);
        blocking(move || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            Ok(())
        })
        .await
    }

    async fn append_upload(
        &self,
        id: &UploadId,
        offset: u64,
        hasher: Hasher,
        mut body: ByteStream,
    ) -> Result<Appended, StorageError> {
        let path = upload_path(&self.root, id);
        let (tx, mut rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        // Writing and hashing run on one blocking thread while this task keeps reading the
        // network: the two overlap, and no chunk is copied on the way.
        let writer = tokio::task::spawn_blocking(move || -> io::Result<(File, Appended)> {
            let mut file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut hasher = hasher;
            let mut len = offset;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
                hasher.update(&chunk);
                len += chunk.len() as u64;
            }
            Ok((file, Appended { len, hasher }))
        });
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) if c.is_empty() => {}
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        break; // The writer failed; its error is reported below.
                    }
                }
                Err(e) => {
                    body_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let written = writer
            .await
            .map_err(|e| StorageError::Backend(io::Error::other(e)))?;
        let outcome = match (written, body_error) {
            (Ok((file, appended)), None) => {
                blocking(move || {
                    file.sync_data()?;
                    Ok(appended)
                })
                .await
            }
            (Ok(_), Some(e)) => Err(StorageError::Body(e)),
            (Err(e), _) => Err(StorageError::from(e)),
        };
        if outcome.is_err() {
            // All-or-nothing: cut the upload back to where this append started.
            let path = upload_path(&self.root, id);
            let _ =
                blocking(move || OpenOptions::new().write(true).open(&path)?.set_len(offset)).await;
        }
        outcome
    }

    async fn read_upload(&self, id: &UploadId, len: u64) -> Result<ByteStream, StorageError> {
        let file = tokio::fs::File::open(upload_path(&self.root, id)).await?;
        Ok(ReaderStream::with_capacity(file.take(len), READ_CHUNK).boxed())
    }

    async fn commit_upload(&self, id: &UploadId, digest: &Digest) -> Result<(), StorageError> {
        let from = upload_path(&self.root, id);
        let to = blob_path(&self.root, digest);
        blocking(move || {
            let dir = to.parent().expect("blob paths have a parent");
            create_dir_durable(dir)?;
            // The upload's bytes were synced by the append that wrote them; the rename is
            // atomic, and syncing the directory makes the new name durable.
            fs::rename(&from, &to)?;
            sync_dir(dir)?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(&self, id: &UploadId) -> Result<(), StorageError> {
        match tokio::fs::remove_file(upload_path(&self.root, id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_uploads(&self) -> Result<Vec<(UploadId, u64)>, StorageError> {
        let dir = uploads_dir(&self.root);
        blocking(move || {
            let mut out = Vec::new();
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                match name.to_str().and_then(UploadId::parse) {
                    Some(id) => out.push((id, entry.metadata()?.len())),
                    // Not ours (a stray temp file): remove it so it cannot accumulate.
                    None => {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn truncate_upload(&self, id: &UploadId, len: u64) -> Result<(), StorageError> {
        let path = upload_path(&self.root, id);
        blocking(move || {
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(len)?;
            f.sync_data()
        })
        .await
    }
}
