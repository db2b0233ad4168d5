//! What an upload session's progress records, and the buffer that turns received chunks into
//! parts.

use bytes::Bytes;
use object_store::PutPayload;
use serde::{Deserialize, Serialize};

use super::{MAX_PARTS, PART_SIZE};
use crate::storage::layout::is_tail_name;
use crate::storage::StorageError;

pub(super) fn corrupt(what: &str) -> StorageError {
    StorageError::Backend(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("upload progress: {what}"),
    ))
}

/// Where an upload stands: what the store hands the registry after each append, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Progress {
    /// Bytes in each part (recorded, so a change of [`PART_SIZE`] leaves running uploads be).
    pub(super) part_size: u64,
    /// The multipart upload writing `uploads/<id>/data`, made with the first part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) multipart: Option<String>,
    /// ETags of parts 1, 2, … in order, each `part_size` bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) parts: Vec<String>,
    /// The object holding the bytes after the last part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tail: Option<Tail>,
    /// The tail this state replaced: garbage once this state is recorded, which the next call
    /// that hands this state back proves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) stale_tail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Tail {
    pub(super) name: String,
    pub(super) len: u64,
}

impl Progress {
    pub(super) fn new() -> Self {
        Progress {
            part_size: PART_SIZE,
            multipart: None,
            parts: Vec::new(),
            tail: None,
            stale_tail: None,
        }
    }

    /// Reads and checks recorded progress; `None` is an upload with no bytes yet.
    pub(super) fn decode(progress: Option<&[u8]>) -> Result<Self, StorageError> {
        let Some(bytes) = progress else {
            return Ok(Progress::new());
        };
        let p: Progress =
            serde_json::from_slice(bytes).map_err(|_| corrupt("not the S3 store's format"))?;
        if !(5 * 1024 * 1024..=5 * 1024 * 1024 * 1024).contains(&p.part_size) {
            return Err(corrupt("part size out of range"));
        }
        if p.parts.len() as u64 > MAX_PARTS || p.parts.is_empty() != p.multipart.is_none() {
            return Err(corrupt("inconsistent parts"));
        }
        if let Some(tail) = &p.tail {
            if !is_tail_name(&tail.name) || tail.len == 0 || tail.len >= p.part_size {
                return Err(corrupt("bad tail"));
            }
        }
        if p.stale_tail.as_deref().is_some_and(|n| !is_tail_name(n)) {
            return Err(corrupt("bad stale tail"));
        }
        Ok(p)
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("progress serializes")
    }

    /// The upload's length.
    pub(super) fn len(&self) -> u64 {
        self.parts.len() as u64 * self.part_size + self.tail.as_ref().map_or(0, |t| t.len)
    }
}

/// Received bytes not yet in a part, as the chunks they arrived in (no copying).
#[derive(Default)]
pub(super) struct PartBuffer {
    pub(super) chunks: Vec<Bytes>,
    pub(super) len: u64,
}

impl PartBuffer {
    pub(super) fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len() as u64;
        self.chunks.push(chunk);
    }

    /// Takes the first `n` bytes (`n <= len`), splitting a chunk if needed.
    pub(super) fn take(&mut self, n: u64) -> PutPayload {
        let mut taken = Vec::new();
        let mut want = n;
        let mut rest = std::mem::take(&mut self.chunks).into_iter();
        for mut chunk in rest.by_ref() {
            let len = chunk.len() as u64;
            if len <= want {
                want -= len;
                taken.push(chunk);
            } else {
                taken.push(chunk.split_to(want as usize));
                self.chunks.push(chunk);
                want = 0;
            }
            if want == 0 {
                break;
            }
        }
        self.chunks.extend(rest);
        self.len -= n;
        taken.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::layout::tail_name;

    #[test]
    fn part_buffer_takes_exact_parts() {
        let mut b = PartBuffer::default();
        for n in [3usize, 5, 7] {
            b.push(Bytes::from(vec![n as u8; n]));
        }
        let part: Bytes = b.take(6).into();
        assert_eq!(&part[..], &[3, 3, 3, 5, 5, 5]);
        assert_eq!(b.len, 9);
        let rest: Bytes = b.take(9).into();
        assert_eq!(&rest[..], &[5, 5, 7, 7, 7, 7, 7, 7, 7]);
        assert_eq!(b.len, 0);
        assert!(b.chunks.is_empty());
    }

    #[test]
    fn progress_round_trips_and_is_checked() {
        let p = Progress {
            part_size: PART_SIZE,
            multipart: Some("m".into()),
            parts: vec!["\"e1\"".into()],
            tail: Some(Tail {
                name: tail_name(PART_SIZE + 10, 7),
                len: 10,
            }),
            stale_tail: None,
        };
        let bytes = p.encode();
        assert_eq!(Progress::decode(Some(&bytes)).unwrap(), p);
        assert_eq!(p.len(), PART_SIZE + 10);
        assert_eq!(Progress::decode(None).unwrap(), Progress::new());
        for bad in [
            &br#"{"part_size": 1024}"#[..],
            br#"{"part_size": 8388608, "parts": ["e"]}"#,
            br#"{"part_size": 8388608, "tail": {"name": "../x", "len": 1}}"#,
            br#"{"part_size": 8388608, "tail": {"name": "tail-1-0000000000000001", "len": 8388608}}"#,
            b"[]",
        ] {
            assert!(Progress::decode(Some(bad)).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
