//! Streaming a file's bytes out: blob downloads and re-reading an upload.
//!
//! A chunk the page cache holds is copied straight into the buffer that goes to the client,
//! on the task that sends it (`preadv2` with `RWF_NOWAIT` refuses instead of waiting for the
//! disk); only a chunk that must come from the disk goes to the blocking pool, and then the
//! next chunk is read there while this one is sent. Compared with `tokio::fs::File` under a
//! `ReaderStream`, that saves a copy of every byte (tokio reads into a buffer of its own
//! first), two thread switches per chunk for cached blobs, and the wait for the disk between
//! chunks of uncached ones. At most two chunks of a download are in memory at once.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::task::JoinHandle;

use super::ByteStream;

/// Read size: large enough to keep syscalls and wake-ups rare, small enough that memory per
/// download stays modest (and below the 4 MiB from which allocations are mapped one by one).
pub const READ_CHUNK: usize = 1 << 20;

/// `len` bytes of `file` from offset `at`, in chunks of [`READ_CHUNK`]. A file that ends
/// early ends the stream with `UnexpectedEof`.
pub fn file_stream(file: File, at: u64, len: u64) -> ByteStream {
    file_stream_in(file, at, len, READ_CHUNK)
}

/// [`file_stream`] in chunks of `chunk` bytes (at least 4 KiB): for many downloads at once
/// that should hold less memory each (the proxy cache's pulls that waited for one fetch).
pub fn file_stream_in(file: File, at: u64, len: u64, chunk: usize) -> ByteStream {
    Box::pin(FileStream {
        file: Arc::new(file),
        at,
        end: at.saturating_add(len),
        chunk: chunk.max(4096),
        reading: None,
        failed: false,
    })
}

struct FileStream {
    file: Arc<File>,
    /// The offset of the next chunk to read (one in the blocking pool is already counted).
    at: u64,
    end: u64,
    /// Read size.
    chunk: usize,
    /// A chunk being read in the blocking pool.
    reading: Option<JoinHandle<io::Result<Bytes>>>,
    failed: bool,
}

impl FileStream {
    /// The length of the next chunk, 0 at the end.
    fn next_len(&self) -> usize {
        (self.end - self.at).min(self.chunk as u64) as usize
    }

    /// Starts reading the next chunk in the blocking pool.
    fn read_in_pool(&mut self) {
        let len = self.next_len();
        if len == 0 {
            return;
        }
        let (file, at) = (self.file.clone(), self.at);
        self.at += len as u64;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::with_capacity(len);
            while buf.len() < len {
                if read_into(&file, &mut buf, at, len, false)? == Some(0) {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok(buf.freeze())
        }));
    }
}

impl Stream for FileStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        if let Some(reading) = this.reading.as_mut() {
            let read = match Pin::new(reading).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(read) => read.unwrap_or_else(|e| Err(io::Error::other(e))),
            };
            this.reading = None;
            return Poll::Ready(Some(match read {
                Ok(chunk) => {
                    // The disk is being read: the next chunk is read while this one is sent.
                    this.read_in_pool();
                    Ok(chunk)
                }
                Err(e) => {
                    this.failed = true;
                    Err(e)
                }
            }));
        }
        let len = this.next_len();
        if len == 0 {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::with_capacity(len);
        match read_into(&this.file, &mut buf, this.at, len, true) {
            Ok(Some(0)) => {
                this.failed = true;
                Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())))
            }
            Ok(Some(n)) => {
                this.at += n as u64;
                Poll::Ready(Some(Ok(buf.freeze())))
            }
            // Not (all) in the page cache: the blocking pool waits for the disk.
            Ok(None) => {
                this.read_in_pool();
                self.poll_next(cx)
            }
            Err(e) => {
                this.failed = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

/// Reads up to `len - buf.len()` bytes at `at + buf.len()` into `buf`'s spare room. With
/// `cached_only`, answers `None` instead of waiting for the disk (nothing of the range in the
/// page cache, or a system without `RWF_NOWAIT`); `Some(0)` is the end of the file.
fn read_into(
    file: &File,
    buf: &mut BytesMut,
    at: u64,
    len: usize,
    cached_only: bool,
) -> io::Result<Option<usize>> {
    let filled = buf.len();
    let offset = at + filled as u64;
    let room = &mut buf.spare_capacity_mut()[..len - filled];
    let n = if cached_only {
        match read_cached(file, room, offset)? {
            Some(n) => n,
            None => return Ok(None),
        }
    } else {
        // SAFETY: `room` is writable memory of `room.len()` bytes that the read only writes
        // to; u8 has no invalid values, and only the bytes it reports written are used.
        let room =
            unsafe { std::slice::from_raw_parts_mut(room.as_mut_ptr().cast::<u8>(), room.len()) };
        loop {
            match file.read_at(room, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        }
    };
    // SAFETY: the read initialized the first `n` bytes of the spare room.
    unsafe { buf.set_len(filled + n) };
    Ok(Some(n))
}

/// `preadv2(RWF_NOWAIT)`: the bytes the page cache holds from `offset`, `None` if it holds
/// none of them (or the system cannot tell without waiting).
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
fn read_cached(
    file: &File,
    room: &mut [std::mem::MaybeUninit<u8>],
    offset: u64,
) -> io::Result<Option<usize>> {
    use std::os::fd::AsRawFd;
    let iov = libc::iovec {
        iov_base: room.as_mut_ptr().cast(),
        iov_len: room.len(),
    };
    loop {
        // SAFETY: one iovec describing `room`, writable for its whole length; the descriptor
        // is open for the duration of the call.
        let n = unsafe {
            libc::preadv2(
                file.as_raw_fd(),
                &iov,
                1,
                offset as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Not cached; or a kernel or filesystem without RWF_NOWAIT.
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => return Ok(None),
            _ => return Err(e),
        }
    }
}

#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
fn read_cached(
    _file: &File,
    _room: &mut [std::mem::MaybeUninit<u8>],
    _offset: u64,
) -> io::Result<Option<usize>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    async fn collect(mut stream: ByteStream) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            assert!(!chunk.is_empty() && chunk.len() <= READ_CHUNK);
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn streams_whole_files_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = pattern(3 * READ_CHUNK + 12_345);
        std::fs::write(&path, &data).unwrap();
        let open = || File::open(&path).unwrap();
        let len = data.len() as u64;
        assert_eq!(collect(file_stream(open(), 0, len)).await.unwrap(), data);
        let (at, n) = (READ_CHUNK as u64 - 5, READ_CHUNK as u64 + 10);
        let small = collect(file_stream_in(open(), at, n, 8192)).await.unwrap();
        assert_eq!(small, data[at as usize..(at + n) as usize]);
        let part = collect(file_stream(open(), at, n)).await.unwrap();
        assert_eq!(part, data[at as usize..(at + n) as usize]);
        assert!(collect(file_stream(open(), 7, 0)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_blocking_path_reads_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = pattern(2 * READ_CHUNK + 99);
        std::fs::write(&path, &data).unwrap();
        let mut stream = FileStream {
            file: Arc::new(File::open(&path).unwrap()),
            at: 0,
            end: data.len() as u64,
            chunk: READ_CHUNK,
            reading: None,
            failed: false,
        };
        stream.read_in_pool();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, pattern(1000)).unwrap();
        let e = collect(file_stream(File::open(&path).unwrap(), 0, 2000))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
