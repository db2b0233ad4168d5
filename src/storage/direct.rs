//! Writing the bulk of a large upload with `O_DIRECT`, past the page cache.
//!
//! Measured on the machines berth runs on, copying into the page cache costs more CPU than
//! hashing the same bytes, and the pages are then written out again at the closing
//! `fdatasync`. A large blob is hashed on one core while it is received on the other, so the
//! page-cache copy is what limits a big push. With direct I/O the device reads the bytes from
//! an aligned buffer of ours; the CPU only copies them into it.
//!
//! The first part of every append stays buffered (small blobs, the common case, never take
//! this path and stay in the page cache for the pull that usually follows), and so does the
//! unaligned tail. Where the filesystem refuses direct I/O (tmpfs, some network filesystems),
//! everything stays buffered.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Appends larger than this continue with direct I/O.
pub const DIRECT_AFTER: u64 = 16 << 20;
/// Direct I/O needs offsets, lengths and memory aligned to the device's block; 4 KiB covers
/// every block size in use.
const ALIGN: usize = 4096;
const BUFFER: usize = 4 << 20;

/// An upload file: buffered writes at first, then direct ones.
pub struct UploadWriter {
    file: File,
    len: u64,
    appended: u64,
    direct: Option<Direct>,
    /// Set when the filesystem refused direct I/O: everything stays buffered.
    buffered_only: bool,
}

struct Direct {
    file: File,
    memory: Vec<u8>,
    start: usize,
    filled: usize,
    /// The file offset of the buffer's first byte.
    at: u64,
}

impl Direct {
    fn buffer(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + BUFFER]
    }

    fn write_out(&mut self, upto: usize) -> io::Result<()> {
        let (start, at) = (self.start, self.at);
        self.file
            .write_all_at(&self.memory[start..start + upto], at)?;
        self.memory
            .copy_within(start + upto..start + self.filled, start);
        self.filled -= upto;
        self.at += upto as u64;
        Ok(())
    }
}

fn open_direct(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT);
    }
    #[cfg(not(target_os = "linux"))]
    return Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no O_DIRECT here",
    ));
    #[cfg(target_os = "linux")]
    options.open(path)
}

impl UploadWriter {
    /// The upload at `path`, cut to and positioned at `offset`.
    pub fn open(path: &Path, offset: u64) -> io::Result<UploadWriter> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(UploadWriter {
            file,
            len: offset,
            appended: 0,
            direct: None,
            buffered_only: false,
        })
    }

    /// The buffered handle (for writeback hints and the final sync).
    pub fn buffered(&self) -> &File {
        &self.file
    }

    /// The length of the upload, counting bytes still in the direct buffer.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether writes now bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    pub fn write(&mut self, mut data: &[u8], path: &Path) -> io::Result<()> {
        if self.direct.is_none() && !self.buffered_only && self.appended >= DIRECT_AFTER {
            // Buffered up to the next aligned offset, then direct.
            let head = ((ALIGN as u64 - self.len % ALIGN as u64) % ALIGN as u64) as usize;
            let head = head.min(data.len());
            self.write_buffered(&data[..head])?;
            data = &data[head..];
            if self.len.is_multiple_of(ALIGN as u64) {
                match open_direct(path) {
                    Ok(file) => {
                        let memory = vec![0u8; BUFFER + ALIGN];
                        let start = memory.as_ptr().align_offset(ALIGN);
                        self.direct = Some(Direct {
                            file,
                            memory,
                            start,
                            filled: 0,
                            at: self.len,
                        });
                    }
                    Err(_) => self.buffered_only = true,
                }
            }
        }
        match self.direct.as_mut() {
            None => self.write_buffered(data),
            Some(_) => {
                while !data.is_empty() {
                    let direct = self.direct.as_mut().expect("direct writes");
                    let filled = direct.filled;
                    let n = (BUFFER - filled).min(data.len());
                    direct.buffer()[filled..filled + n].copy_from_slice(&data[..n]);
                    direct.filled += n;
                    data = &data[n..];
                    self.len += n as u64;
                    self.appended += n as u64;
                    if direct.filled == BUFFER {
                        if let Err(e) = direct.write_out(BUFFER) {
                            self.fall_back(e)?;
                            return self.write_buffered(data);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn write_buffered(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        self.appended += data.len() as u64;
        Ok(())
    }

    /// After a refused direct write: the buffered handle writes what the buffer holds and
    /// everything after it. Other errors (a full disk) are the caller's.
    fn fall_back(&mut self, error: io::Error) -> io::Result<()> {
        if error.kind() != io::ErrorKind::InvalidInput {
            return Err(error);
        }
        let direct = self.direct.take().expect("falling back from direct writes");
        self.buffered_only = true;
        let start = direct.start;
        self.file
            .write_all_at(&direct.memory[start..start + direct.filled], direct.at)?;
        self.file.seek(SeekFrom::Start(self.len))?;
        Ok(())
    }

    /// Writes out what is still buffered: the aligned part directly, the tail buffered.
    /// The caller then syncs [`UploadWriter::buffered`].
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        if let Some(mut direct) = self.direct.take() {
            let aligned = direct.filled / ALIGN * ALIGN;
            if aligned > 0 {
                if let Err(e) = direct.write_out(aligned) {
                    self.direct = Some(direct);
                    self.fall_back(e)?;
                    return Ok((self.file, self.len));
                }
            }
            let start = direct.start;
            self.file
                .write_all_at(&direct.memory[start..start + direct.filled], direct.at)?;
        }
        Ok((self.file, self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn every_byte_lands_where_it_belongs_with_odd_offsets_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let first = pattern(1_000_003, 1);
        std::fs::write(&path, &first).unwrap();
        let mut w = UploadWriter::open(&path, first.len() as u64).unwrap();
        let body = pattern(DIRECT_AFTER as usize + 3 * BUFFER + 12_345, 7);
        for chunk in body.chunks(65_521) {
            w.write(chunk, &path).unwrap();
        }
        let (file, len) = w.finish().unwrap();
        file.sync_data().unwrap();
        assert_eq!(len, (first.len() + body.len()) as u64);
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(stored.len() as u64, len);
        assert!(stored[..first.len()] == first[..]);
        assert!(stored[first.len()..] == body[..]);
    }

    #[test]
    fn a_reopened_upload_is_cut_to_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        std::fs::write(&path, pattern(10_000, 3)).unwrap();
        let mut w = UploadWriter::open(&path, 4_000).unwrap();
        w.write(b"tail", &path).unwrap();
        let (_, len) = w.finish().unwrap();
        assert_eq!(len, 4_004);
        let stored = std::fs::read(&path).unwrap();
        assert_eq!(&stored[4_000..], b"tail");
    }
}
