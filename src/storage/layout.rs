//! The on-disk layout of the filesystem blob store, in one place.
//!
//! ```text
//! <root>/blobs/<algorithm>/<first two hex>/<hex>   committed blobs, immutable
//! <root>/uploads/<uuid>                             upload data, appended in place
//! ```
//! Names come only from validated `Digest` and `UploadId` values, so no path component can
//! escape the root.

use std::path::{Path, PathBuf};

use oci::Digest;

use super::UploadId;

pub(crate) fn blobs_dir(root: &Path) -> PathBuf {
    root.join("blobs")
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
