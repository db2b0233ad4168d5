//! The OCI vocabulary berth speaks: digests, repository names, tags and references, media types,
//! manifests and the distribution-spec error codes.
//!
//! This crate does no I/O. Every type here is parsed once at the edge of the server and then
//! passed around already validated, so code deeper in berth never re-checks a name or a digest.

pub mod digest;
pub mod error_code;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod reference;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use error_code::ErrorCode;
pub use manifest::{Descriptor, ManifestError, ParsedManifest};
pub use name::{NameError, RepoName};
pub use reference::{Reference, Tag};
