//! Where every backend keeps its bytes, in one place.
//!
//! The filesystem store, under its root directory:
//! ```text
//! <root>/blobs/<algorithm>/<first two hex>/<hex>   committed blobs, immutable
//! <root>/uploads/<uuid>                             upload data, appended in place
//! <root>/quarantine/<algorithm>/<hex>.<ms>-<nonce>  bytes `berth fsck --repair` took out of
//!                                                   service (they did not match their digest)
//! ```
//! The object store, under the `storage_path` prefix in its bucket:
//! ```text
//! <prefix>/blobs/<algorithm>/<first two hex>/<hex>  committed blobs
//! <prefix>/uploads/<uuid>/data                      the finished multipart upload
//! <prefix>/uploads/<uuid>/tail-<length>-<nonce>     bytes after the last full part
//! <prefix>/quarantine/<algorithm>/<hex>.<ms>-<nonce> quarantined bytes, as on the filesystem
//! ```
//! Nothing berth serves, lists or collects lives under `quarantine/`: its entries stay until
//! an operator removes them. Each name carries the time of the quarantine (milliseconds since
//! the epoch) and a random nonce, so quarantining the same digest twice keeps both copies.
//! The multipart upload of an upload session writes `uploads/<uuid>/data`; until it is
//! completed its parts are not objects.
//! Names come only from validated `Digest` and `UploadId` values (and tail names the store
//! made and checks when reading them back), so no path component can escape the root or prefix.

use std::path::{Path, PathBuf};

use object_store::path::Path as Key;
use oci::Digest;

use super::UploadId;

pub(crate) fn blobs_dir(root: &Path) -> PathBuf {
    root.join("blobs")
}

/// Health probes' files; see [`ObjectKeys::probe`].
pub(crate) fn probe_path(root: &Path, name: &str) -> PathBuf {
    root.join("health").join(name)
}

pub(crate) fn uploads_dir(root: &Path) -> PathBuf {
    root.join("uploads")
}

pub(crate) fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    blobs_dir(root)
        .join(digest.algorithm().as_str())
        .join(&hex[..2])
        .join(hex)
}

pub(crate) fn upload_path(root: &Path, id: &UploadId) -> PathBuf {
    uploads_dir(root).join(id.as_str())
}

/// Where a quarantined copy of `digest` goes, relative to the root or prefix: the directory
/// segments and a fresh file name.
pub(crate) fn quarantine_entry(digest: &Digest) -> ([&'static str; 2], String) {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let nonce: u32 = rand::random();
    (
        ["quarantine", digest.algorithm().as_str()],
        format!("{}.{millis}-{nonce:08x}", digest.hex()),
    )
}

pub(crate) fn quarantine_path(root: &Path, digest: &Digest) -> PathBuf {
    let ([area, algorithm], name) = quarantine_entry(digest);
    root.join(area).join(algorithm).join(name)
}

/// Object keys of a store rooted at a prefix (possibly empty) of its bucket.
#[derive(Debug, Clone)]
pub(crate) struct ObjectKeys {
    prefix: Key,
}

impl ObjectKeys {
    /// Keys under `prefix`: `/`-separated segments that the config checked (no empty, `.` or
    /// `..` segments).
    pub(crate) fn new(prefix: &str) -> Self {
        ObjectKeys {
            prefix: Key::from_iter(prefix.split('/').filter(|s| !s.is_empty())),
        }
    }

    /// Health probes' objects, outside blobs and uploads so listings never meet them.
    pub(crate) fn probe(&self, name: &str) -> Key {
        self.prefix.clone().join("health").join(name)
    }

    pub(crate) fn blobs_root(&self) -> Key {
        self.prefix.clone().join("blobs")
    }

    pub(crate) fn uploads_root(&self) -> Key {
        self.prefix.clone().join("uploads")
    }

    /// A fresh key for a quarantined copy of `digest`.
    pub(crate) fn quarantine(&self, digest: &Digest) -> Key {
        let ([area, algorithm], name) = quarantine_entry(digest);
        self.prefix.clone().join(area).join(algorithm).join(name)
    }

    pub(crate) fn blob(&self, digest: &Digest) -> Key {
        let hex = digest.hex();
        self.blobs_root()
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// The digest a key under `blobs/` names, if it is a well-formed blob key.
    pub(crate) fn parse_blob(&self, key: &Key) -> Option<Digest> {
        let parts: Vec<_> = key.prefix_match(&self.blobs_root())?.collect();
        let [algorithm, two, hex] = parts.as_slice() else {
            return None;
        };
        let digest: Digest = format!("{}:{}", algorithm.as_ref(), hex.as_ref())
            .parse()
            .ok()?;
        (digest.hex().get(..2) == Some(two.as_ref())).then_some(digest)
    }

    /// The folder of everything an upload session stored.
    pub(crate) fn upload_dir(&self, id: &UploadId) -> Key {
        self.uploads_root().join(id.as_str())
    }

    /// The object a session's multipart upload writes.
    pub(crate) fn upload_data(&self, id: &UploadId) -> Key {
        self.upload_dir(id).join("data")
    }

    /// A tail object; `name` is a [`tail_name`] the store made.
    pub(crate) fn upload_tail(&self, id: &UploadId, name: &str) -> Key {
        self.upload_dir(id).join(name)
    }

    /// The upload id a key directly under `uploads/` names.
    pub(crate) fn parse_upload_dir(&self, key: &Key) -> Option<UploadId> {
        let parts: Vec<_> = key.prefix_match(&self.uploads_root())?.collect();
        match parts.as_slice() {
            [id] => UploadId::parse(id.as_ref()),
            _ => None,
        }
    }
}

/// The name of a tail object holding an upload's bytes up to `len`: unique per state (the
/// nonce keeps two appends racing from the same state apart).
pub(crate) fn tail_name(len: u64, nonce: u64) -> String {
    format!("tail-{len}-{nonce:016x}")
}

/// Whether `name` has the form [`tail_name`] makes.
pub(crate) fn is_tail_name(name: &str) -> bool {
    let Some((len, nonce)) = name
        .strip_prefix("tail-")
        .and_then(|rest| rest.split_once('-'))
    else {
        return false;
    };
    !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && nonce.len() == 16
        && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys() {
        let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let id = UploadId::parse("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        let keys = ObjectKeys::new("registry/berth");
        let blob = keys.blob(&digest);
        assert_eq!(
            blob.as_ref(),
            format!("registry/berth/blobs/sha256/ab/{}", "ab".repeat(32))
        );
        assert_eq!(keys.parse_blob(&blob), Some(digest.clone()));
        assert_eq!(
            keys.upload_data(&id).as_ref(),
            "registry/berth/uploads/0f8fad5b-d9cb-469f-a165-70867728950e/data"
        );
        assert_eq!(keys.parse_upload_dir(&keys.upload_dir(&id)), Some(id));
        assert_eq!(
            ObjectKeys::new("").blob(&digest).as_ref(),
            blob.as_ref().strip_prefix("registry/berth/").unwrap()
        );
        for junk in [
            format!("registry/berth/blobs/sha256/cd/{}", "ab".repeat(32)),
            "registry/berth/blobs/sha256/ab/xyz".to_string(),
            "registry/berth/blobs/README".to_string(),
            format!("other/blobs/sha256/ab/{}", "ab".repeat(32)),
        ] {
            assert_eq!(keys.parse_blob(&Key::from(junk.as_str())), None, "{junk}");
        }
        assert!(is_tail_name(&tail_name(42, u64::MAX)));
        for bad in [
            "tail-",
            "tail-1-xyz",
            "tail--0000000000000001",
            "../tail-1-0000000000000001",
        ] {
            assert!(!is_tail_name(bad), "{bad}");
        }
    }
}
