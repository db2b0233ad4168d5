//! Turns a /v2 path into a typed [`Endpoint`]. Pure, so every routing rule is unit-tested.
//!
//! Repository names contain `/`, so the path is read from its end: the last segments say
//! which resource is meant, and everything before them is the name. The raw (undecoded) path
//! is used, so `%2e%2e` and friends reach the name validator as they were sent and fail it.

use oci::digest::DigestError;
use oci::{Digest, ErrorCode, Reference, RepoName};

use crate::auth::scope::Actions;
use crate::error::ApiError;
use crate::storage::UploadId;

/// A /v2 resource, with every path parameter parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<text>` where the text is neither a tag nor a digest. No manifest
    /// can exist under it: reads answer `MANIFEST_UNKNOWN`, a push `MANIFEST_INVALID`.
    ManifestBadTag(RepoName),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Endpoint {
    /// The route template, for request logs.
    pub fn template(&self) -> &'static str {
        match self {
            Endpoint::Base => "/v2/",
            Endpoint::Catalog => "/v2/_catalog",
            Endpoint::Tags(_) => "/v2/{name}/tags/list",
            Endpoint::Manifest(..) | Endpoint::ManifestBadTag(_) => {
                "/v2/{name}/manifests/{reference}"
            }
            Endpoint::Blob(..) => "/v2/{name}/blobs/{digest}",
            Endpoint::UploadStart(_) => "/v2/{name}/blobs/uploads/",
            Endpoint::Upload(..) => "/v2/{name}/blobs/uploads/{uuid}",
            Endpoint::Referrers(..) => "/v2/{name}/referrers/{digest}",
        }
    }

    /// The repository the endpoint is about, if one.
    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags(r)
            | Endpoint::Manifest(r, _)
            | Endpoint::ManifestBadTag(r)
            | Endpoint::Blob(r, _)
            | Endpoint::UploadStart(r)
            | Endpoint::Upload(r, _)
            | Endpoint::Referrers(r, _) => Some(r),
        }
    }

    /// The methods this endpoint serves, for the `Allow` header of a 405.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Endpoint::Base => "GET, HEAD",
            Endpoint::Catalog | Endpoint::Tags(_) | Endpoint::Referrers(..) => "GET",
            Endpoint::Manifest(..) | Endpoint::ManifestBadTag(_) => "GET, HEAD, PUT, DELETE",
            Endpoint::Blob(..) => "GET, HEAD, DELETE",
            Endpoint::UploadStart(_) => "POST",
            Endpoint::Upload(..) => "GET, PATCH, PUT, DELETE",
        }
    }

    /// The repository and actions a request on this endpoint needs, or `None` for endpoints
    /// that are not about one repository (and for methods no handler serves).
    pub fn repository_access(&self, method: &axum::http::Method) -> Option<(&RepoName, Actions)> {
        use axum::http::Method as M;
        let push = Actions {
            pull: false,
            push: true,
            delete: false,
        };
        let delete = Actions {
            pull: false,
            push: false,
            delete: true,
        };
        match (self, method) {
            (Endpoint::Tags(r) | Endpoint::Referrers(r, _), &M::GET) => Some((r, Actions::PULL)),
            (
                Endpoint::Manifest(r, _) | Endpoint::ManifestBadTag(r) | Endpoint::Blob(r, _),
                &M::GET | &M::HEAD,
            ) => Some((r, Actions::PULL)),
            (Endpoint::Manifest(r, _) | Endpoint::ManifestBadTag(r), &M::PUT) => Some((r, push)),
            (Endpoint::UploadStart(r), &M::POST) => Some((r, push)),
            (Endpoint::Upload(r, _), &M::GET | &M::PATCH | &M::PUT | &M::DELETE) => Some((r, push)),
            (
                Endpoint::Manifest(r, _) | Endpoint::ManifestBadTag(r) | Endpoint::Blob(r, _),
                &M::DELETE,
            ) => Some((r, delete)),
            _ => None,
        }
    }
}

/// Maps a digest parse failure to its error: unknown algorithms are `UNSUPPORTED`, anything
/// else `DIGEST_INVALID`.
pub fn digest_error(e: DigestError) -> ApiError {
    match e {
        DigestError::Malformed => ApiError::new(ErrorCode::DigestInvalid, "invalid digest"),
        DigestError::Unsupported(alg) => ApiError::new(
            ErrorCode::Unsupported,
            format!("digest algorithm {alg:?} is not supported; use sha256 or sha512"),
        ),
    }
}

/// Parses a digest from a request (path or query).
pub fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(digest_error)
}

fn name(segments: &[&str]) -> Result<RepoName, ApiError> {
    let joined = segments.join("/");
    joined.parse().map_err(|e: oci::NameError| {
        ApiError::new(ErrorCode::NameInvalid, e.to_string()).with_detail(
            serde_json::json!({ "name": joined.chars().take(300).collect::<String>() }),
        )
    })
}

fn unknown() -> ApiError {
    ApiError::new(ErrorCode::EndpointUnknown, "no such endpoint")
}

/// Parses the part of the path after `/v2/`.
pub fn parse(path: &str) -> Result<Endpoint, ApiError> {
    if path.is_empty() {
        return Ok(Endpoint::Base);
    }
    if path == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    let segs: Vec<&str> = path.split('/').collect();
    let n = segs.len();
    let tail = |k: usize| segs[n - k];
    if n >= 3 && tail(3) == "blobs" && tail(2) == "uploads" && tail(1).is_empty() {
        return Ok(Endpoint::UploadStart(name(&segs[..n - 3])?));
    }
    if n >= 3 && tail(3) == "blobs" && tail(2) == "uploads" {
        let repo = name(&segs[..n - 3])?;
        let id = UploadId::parse(tail(1)).ok_or_else(|| {
            ApiError::new(ErrorCode::BlobUploadUnknown, "upload session is not known")
        })?;
        return Ok(Endpoint::Upload(repo, id));
    }
    if n >= 3 && tail(2) == "blobs" && tail(1) == "uploads" {
        return Ok(Endpoint::UploadStart(name(&segs[..n - 2])?));
    }
    if n >= 3 && tail(2) == "blobs" {
        let repo = name(&segs[..n - 2])?;
        return Ok(Endpoint::Blob(repo, parse_digest(tail(1))?));
    }
    if n >= 3 && tail(2) == "manifests" {
        let repo = name(&segs[..n - 2])?;
        return match tail(1).parse::<Reference>() {
            Ok(reference) => Ok(Endpoint::Manifest(repo, reference)),
            Err(oci::reference::ReferenceError::Digest(d)) => Err(digest_error(d)),
            Err(oci::reference::ReferenceError::Tag(_)) => Ok(Endpoint::ManifestBadTag(repo)),
        };
    }
    if n >= 3 && tail(2) == "tags" && tail(1) == "list" {
        return Ok(Endpoint::Tags(name(&segs[..n - 2])?));
    }
    if n >= 3 && tail(2) == "referrers" {
        let repo = name(&segs[..n - 2])?;
        return Ok(Endpoint::Referrers(repo, parse_digest(tail(1))?));
    }
    Err(unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn code(path: &str) -> &'static str {
        parse(path).unwrap_err().code().as_str()
    }

    #[test]
    fn routes() {
        assert_eq!(parse("").unwrap(), Endpoint::Base);
        assert_eq!(parse("_catalog").unwrap(), Endpoint::Catalog);
        assert!(
            matches!(parse("a/b/tags/list").unwrap(), Endpoint::Tags(n) if n.as_str() == "a/b")
        );
        assert!(matches!(
            parse("a/manifests/latest").unwrap(),
            Endpoint::Manifest(..)
        ));
        assert!(matches!(
            parse(&format!("a/manifests/{D}")).unwrap(),
            Endpoint::Manifest(_, Reference::Digest(_))
        ));
        assert!(matches!(
            parse(&format!("x/blobs/{D}")).unwrap(),
            Endpoint::Blob(..)
        ));
        assert!(
            matches!(parse("x/y/blobs/uploads/").unwrap(), Endpoint::UploadStart(n) if n.as_str() == "x/y")
        );
        assert!(matches!(
            parse("x/blobs/uploads").unwrap(),
            Endpoint::UploadStart(_)
        ));
        let id = uuid::Uuid::new_v4().to_string();
        assert!(matches!(
            parse(&format!("x/blobs/uploads/{id}")).unwrap(),
            Endpoint::Upload(..)
        ));
        assert!(matches!(
            parse(&format!("x/referrers/{D}")).unwrap(),
            Endpoint::Referrers(..)
        ));
        // Names may contain resource words.
        assert!(
            matches!(parse("blobs/manifests/tags/list").unwrap(), Endpoint::Tags(n) if n.as_str() == "blobs/manifests")
        );
    }

    #[test]
    fn errors() {
        assert_eq!(code("A/tags/list"), "NAME_INVALID");
        assert_eq!(code("%2e%2e/tags/list"), "NAME_INVALID");
        assert_eq!(code("../x/tags/list"), "NAME_INVALID");
        assert_eq!(code("/x/tags/list"), "NAME_INVALID");
        assert_eq!(code("x/blobs/sha256:abc"), "DIGEST_INVALID");
        assert_eq!(code("x/blobs/md5:abc"), "UNSUPPORTED");
        assert!(matches!(
            parse("x/manifests/-bad").unwrap(),
            Endpoint::ManifestBadTag(_)
        ));
        assert_eq!(code("x/blobs/uploads/not-a-uuid"), "BLOB_UPLOAD_UNKNOWN");
        assert_eq!(code("x/nothing"), "UNSUPPORTED");
        assert_eq!(code("tags/list"), "UNSUPPORTED");
        assert_eq!(
            code(&format!("{}/tags/list", "a".repeat(300))),
            "NAME_INVALID"
        );
    }
}
