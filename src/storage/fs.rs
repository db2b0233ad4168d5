//! The embedded blob store: a local directory (see `layout.rs`).
//!
//! Durability: upload bytes are `fdatasync`ed before an append returns; a commit renames the
//! finished upload into the content-addressed tree and syncs the directory, so a blob either
//! exists complete under its digest or not at all, whatever the moment of a crash.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use oci::{Digest, Hasher};
use tokio::sync::mpsc;

use super::direct::UploadWriter;
use super::layout::{blob_path, blobs_dir, probe_path, quarantine_path, upload_path, uploads_dir};
use super::prefetch::update_prefetching;
use super::read::file_stream;
use super::{
    Appended, BlobStat, BlobStore, ByteRange, ByteStream, StorageError, UploadId, UploadProgress,
};

/// Received body chunks travel to the hashing and writing threads in batches of about this
/// many bytes: hyper hands over a chunk per socket read (tens to hundreds of KiB), and waking
/// two threads for each cost more CPU than it took them to handle it.
const BATCH: usize = 1 << 20;

/// How many batches may queue for the hashing thread, and for the writing thread. Bounded, so
/// a slow disk or core pushes back on the client instead of buffering the body in memory.
/// Four batches keep the hasher, the slowest of the three, busy for about as long as the disk
/// takes for a direct write of a full buffer (3.2 and 2.6 ms on the benchmark machine), so it
/// does not run dry while the writer is blocked.
const QUEUE: usize = 4;
/// Read size of [`BlobStore::open_lean`].
const LEAN_CHUNK: usize = 128 * 1024;

/// While an upload is written, the kernel is asked to start writing back every this many
/// bytes, so the closing `fdatasync` finds little left to do and disk and network overlap.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts writeback of a written range without waiting for it (durability still comes from
/// the `fdatasync` that ends every append).
fn start_writeback(file: &File, from: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call; the call only reads
        // its arguments and has no memory effects on this process.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, len);
}

/// Tells the kernel a blob is read front to back, so it reads ahead further: large blobs are
/// written past the page cache and their first pull comes from the disk.
fn read_ahead(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call, which only passes it
        // and plain integers to the kernel.
        unsafe {
            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

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

    /// A stored blob's file, read-ahead advised, and its length.
    async fn open_blob_file(&self, digest: &Digest) -> Result<(File, u64), StorageError> {
        let path = blob_path(&self.root, digest);
        blocking(move || {
            let file = File::open(path)?;
            read_ahead(&file);
            let len = file.metadata()?.len();
            Ok((file, len))
        })
        .await
    }
}

/// Ending of the second name a commit gives an upload before renaming it over the blob.
const STAGED_SUFFIX: &str = ".staged";

/// Staged names older than this were left by a crash between link and rename.
const STAGED_LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Walks `blobs/<algorithm>/<two hex>/<hex>`, returning every blob whose name is a valid digest
/// of its directory's algorithm, and removing staged names left by a crash.
fn list_blob_files(root: &Path) -> io::Result<Vec<(Digest, BlobStat)>> {
    let mut out = Vec::new();
    let read = |dir: &Path| match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    };
    let Some(algorithms) = read(root)? else {
        return Ok(out);
    };
    for algorithm in algorithms {
        let algorithm = algorithm?;
        let Some(prefixes) = read(&algorithm.path())? else {
            continue;
        };
        for prefix in prefixes {
            let Some(files) = read(&prefix?.path())? else {
                continue;
            };
            for file in files {
                let file = file?;
                let meta = file.metadata()?;
                let name = file.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(STAGED_SUFFIX) {
                    let old = meta
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > STAGED_LEFTOVER_AGE);
                    if old {
                        let _ = fs::remove_file(file.path());
                    }
                    continue;
                }
                let text = format!("{}:{name}", algorithm.file_name().to_string_lossy());
                if let Ok(digest) = text.parse::<Digest>() {
                    out.push((
                        digest,
                        BlobStat {
                            size: meta.len(),
                            modified: meta.modified()?,
                        },
                    ));
                }
            }
        }
    }
    Ok(out)
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
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobStat>, StorageError> {
        match tokio::fs::metadata(blob_path(&self.root, digest)).await {
            Ok(m) => Ok(Some(BlobStat {
                size: m.len(),
                modified: m.modified()?,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let (file, len) = self.open_blob_file(digest).await?;
        Ok(match range {
            None => file_stream(file, 0, len),
            Some(r) => file_stream(file, r.start, r.end - r.start + 1),
        })
    }

    async fn open_lean(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StorageError> {
        let (file, len) = self.open_blob_file(digest).await?;
        let (at, len) = match range {
            None => (0, len),
            Some(r) => (r.start, r.end - r.start + 1),
        };
        Ok(crate::storage::read::file_stream_in(
            file, at, len, LEAN_CHUNK,
        ))
    }

    async fn presigned_url(
        &self,
        _digest: &Digest,
        _ttl: Duration,
    ) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<(), StorageError> {
        let path = blob_path(&self.root, digest);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().expect("blob paths have a parent")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
    }

    fn list_blobs(&self) -> BoxStream<'_, Result<(Digest, BlobStat), StorageError>> {
        let root = blobs_dir(&self.root);
        futures::stream::once(blocking(move || list_blob_files(&root)))
            .map(|listed| match listed {
                Ok(blobs) => futures::stream::iter(blobs.into_iter().map(Ok)).left_stream(),
                Err(e) => futures::stream::iter([Err(e)]).right_stream(),
            })
            .flatten()
            .boxed()
    }

    /// A rename within the root (one filesystem), so the bytes are never copied and never
    /// absent from both places; both directories are synced.
    async fn quarantine_blob(&self, digest: &Digest) -> Result<Option<String>, StorageError> {
        let from = blob_path(&self.root, digest);
        let to = quarantine_path(&self.root, digest);
        blocking(move || {
            if !from.exists() {
                return Ok(None);
            }
            let dir = to.parent().expect("quarantine paths have a parent");
            create_dir_durable(dir)?;
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
            sync_dir(dir)?;
            sync_dir(from.parent().expect("blob paths have a parent"))?;
            Ok(Some(to.display().to_string()))
        })
        .await
    }

    async fn upload_data_present(
        &self,
        id: &UploadId,
        len: u64,
        _progress: UploadProgress,
    ) -> Result<bool, StorageError> {
        match tokio::fs::metadata(upload_path(&self.root, id)).await {
            Ok(m) => Ok(m.len() >= len),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
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
        _progress: UploadProgress,
        hasher: Hasher,
        mut body: ByteStream,
    ) -> Result<Appended, StorageError> {
        let path = upload_path(&self.root, id);
        let (tx, mut rx) = mpsc::channel::<Arc<Vec<Bytes>>>(QUEUE);
        let (hash_tx, mut hash_rx) = mpsc::channel::<Arc<Vec<Bytes>>>(QUEUE);
        // Writing and hashing run on two blocking threads while this task keeps reading the
        // network: all three overlap, and each batch is shared, never copied. Hashing is the
        // slowest of the three, so it gets a core of its own.
        let hashing = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            while let Some(batch) = hash_rx.blocking_recv() {
                for chunk in batch.iter() {
                    update_prefetching(&mut hasher, chunk);
                }
            }
            hasher
        });
        let writer = tokio::task::spawn_blocking(move || -> io::Result<(File, u64)> {
            let mut upload = UploadWriter::open(&path, offset)?;
            let mut flushed = offset;
            while let Some(batch) = rx.blocking_recv() {
                for chunk in batch.iter() {
                    upload.write(chunk, &path)?;
                }
                if !upload.is_direct() && upload.len() - flushed >= WRITEBACK_STEP {
                    start_writeback(upload.buffered(), flushed, upload.len() - flushed);
                    flushed = upload.len();
                }
            }
            upload.finish()
        });
        let mut body_error = None;
        let mut batch = Vec::new();
        let mut batched = 0;
        loop {
            let end = match body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => false,
                Some(Ok(chunk)) => {
                    batched += chunk.len();
                    batch.push(chunk);
                    false
                }
                Some(Err(e)) => {
                    body_error = Some(e);
                    break;
                }
                None => true,
            };
            if batched >= BATCH || (end && batched > 0) {
                let full = Arc::new(std::mem::take(&mut batch));
                batched = 0;
                if hash_tx.send(full.clone()).await.is_err() || tx.send(full).await.is_err() {
                    break; // The writer failed; its error is reported below.
                }
            }
            if end {
                break;
            }
        }
        drop(tx);
        drop(hash_tx);
        let written = writer
            .await
            .map_err(|e| StorageError::Backend(io::Error::other(e)))?;
        let hasher = hashing
            .await
            .map_err(|e| StorageError::Backend(io::Error::other(e)))?;
        let outcome = match (written, body_error) {
            (Ok((file, len)), None) => {
                blocking(move || {
                    file.sync_data()?;
                    Ok(Appended {
                        len,
                        hasher,
                        progress: None,
                    })
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
        let path = upload_path(&self.root, id);
        let file = blocking(move || File::open(path)).await?;
        Ok(file_stream(file, 0, len))
    }

    async fn commit_upload(
        &self,
        id: &UploadId,
        len: u64,
        _progress: UploadProgress,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let from = upload_path(&self.root, id);
        let to = blob_path(&self.root, digest);
        let staged = to.with_file_name(format!(".{}.{}{STAGED_SUFFIX}", digest.hex(), id));
        blocking(move || {
            let upload = File::open(&from)?;
            if upload.metadata()?.len() != len {
                return Err(io::Error::other("upload length differs from its session"));
            }
            // A commit marks the bytes as just written (see the trait's contract), whenever
            // the last chunk arrived.
            upload.set_modified(SystemTime::now())?;
            let dir = to.parent().expect("blob paths have a parent");
            create_dir_durable(dir)?;
            // A second name for the upload's inode, then an atomic rename over the blob: the
            // upload itself stays, so the commit can be repeated. The bytes were synced by the
            // append that wrote them; syncing the directory makes the new name durable.
            let _ = fs::remove_file(&staged);
            fs::hard_link(&from, &staged)?;
            if let Err(e) = fs::rename(&staged, &to) {
                let _ = fs::remove_file(&staged);
                return Err(e);
            }
            sync_dir(dir)?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(
        &self,
        id: &UploadId,
        _progress: UploadProgress,
    ) -> Result<(), StorageError> {
        match tokio::fs::remove_file(upload_path(&self.root, id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn probe(&self, probe: &str) -> Result<(), StorageError> {
        let path = probe_path(&self.root, probe);
        let written = probe.as_bytes().to_vec();
        blocking(move || {
            fs::create_dir_all(path.parent().expect("a probe has a directory"))?;
            let result = (|| {
                let mut file = File::create(&path)?;
                io::Write::write_all(&mut file, &written)?;
                // Durable, as a blob would be: a disk that takes writes but cannot sync them
                // does not pass.
                file.sync_data()?;
                if fs::read(&path)? != written {
                    return Err(io::Error::other("the probe read back other bytes"));
                }
                Ok(())
            })();
            let removed = fs::remove_file(&path);
            result.and(removed)
        })
        .await
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

    async fn remove_leftovers(&self) -> Result<u64, StorageError> {
        let root = blobs_dir(&self.root);
        blocking(move || remove_staged_names(&root)).await
    }
}

/// Removes every staged name under `blobs/<algorithm>/<two hex>/`: a commit that was cut off
/// between its link and its rename. The blob itself is either absent (the push got no answer
/// and will be repeated) or already in place.
fn remove_staged_names(root: &Path) -> io::Result<u64> {
    let mut removed = 0;
    let dirs = |dir: &Path| -> io::Result<Vec<PathBuf>> {
        match fs::read_dir(dir) {
            Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    };
    for algorithm in dirs(root)? {
        for prefix in dirs(&algorithm)? {
            let mut changed = false;
            for file in dirs(&prefix)? {
                let staged = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(STAGED_SUFFIX));
                if staged {
                    fs::remove_file(&file)?;
                    removed += 1;
                    changed = true;
                }
            }
            if changed {
                sync_dir(&prefix)?;
            }
        }
    }
    Ok(removed)
}
