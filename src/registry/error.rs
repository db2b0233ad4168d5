//! Errors of registry operations, each naming what was wrong in the request's own terms.

use oci::{Digest, RepoName};

use crate::metadata::MetadataError;
use crate::storage::StorageError;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("repository {0} is not known")]
    NameUnknown(RepoName),
    #[error("blob {0} is not known in this repository")]
    BlobUnknown(Digest),
    #[error("upload session is not known")]
    UploadUnknown,
    #[error("chunk must start at offset {expected}")]
    UploadOutOfOrder { expected: u64 },
    #[error("{0}")]
    UploadInvalid(String),
    #[error("content digest {actual} does not match {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("manifest is not known")]
    ManifestUnknown,
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("{0}")]
    PolicyDenied(Box<crate::policy::Violation>),
    #[error("manifest references {0}, which is not known in this repository")]
    ManifestBlobUnknown(Digest),
    #[error("manifest is larger than the limit of {limit} bytes")]
    ManifestTooLarge { limit: usize },
    #[error("{0}")]
    SizeInvalid(String),
    #[error("blob is larger than the limit of {limit} bytes")]
    BlobTooLarge { limit: u64 },
    #[error("too many upload sessions open (limit {limit} per {per}); finish or cancel some, or wait for abandoned ones to expire")]
    TooManyUploads { limit: u32, per: &'static str },
    #[error("too many tags in one push (limit {limit})")]
    TooManyTags { limit: u32 },
    #[error("storage is full")]
    StorageFull,
    #[error("reading the request body failed")]
    Body(#[source] std::io::Error),
    #[error(transparent)]
    Storage(StorageError),
    #[error(transparent)]
    Metadata(MetadataError),
}

impl From<MetadataError> for RegistryError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::Full => RegistryError::StorageFull,
            other => RegistryError::Metadata(other),
        }
    }
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Full => RegistryError::StorageFull,
            StorageError::Body(e) => RegistryError::Body(e),
            other => RegistryError::Storage(other),
        }
    }
}
