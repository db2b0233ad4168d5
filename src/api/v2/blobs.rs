//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use oci::{Digest, RepoName};

use super::range::RangeRequest;
use super::{reply, Caller, V2Request};
use crate::app::AppState;
use crate::error::ApiError;
use crate::proxy::BlobMiss;
use crate::registry::{BlobBody, Registry, RegistryError};

pub async fn get(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let registry: &Registry = &state.registry;
    // Pulls that waited for a proxy cache's fetch all start at once: they read in smaller
    // pieces.
    let mut lean = false;
    let size = match registry.stat_blob(repo, digest).await {
        Ok(size) => size,
        Err(RegistryError::BlobUnknown(_)) => {
            // A repository of a proxy cache fetches what it does not have.
            let head = req.method == Method::HEAD;
            match crate::proxy::blob_miss(state, caller.generation, repo, digest, head).await? {
                BlobMiss::NotProxied => {
                    return Err(RegistryError::BlobUnknown(digest.clone()).into())
                }
                BlobMiss::Local => {
                    lean = true;
                    registry.stat_blob(repo, digest).await?
                }
                BlobMiss::Head { size } => {
                    blob_gate(state, caller, repo, digest).await?;
                    let headers = vec![
                        ("docker-content-digest", digest.to_string()),
                        ("content-type", "application/octet-stream".to_string()),
                        ("content-length", size.to_string()),
                    ];
                    return Ok(reply(StatusCode::OK, headers, Body::empty()));
                }
                BlobMiss::Streaming { size, body } => {
                    blob_gate(state, caller, repo, digest).await?;
                    // The whole blob (a range of a blob not yet stored is answered whole,
                    // which HTTP allows); its last chunk arrives once it is verified and stored.
                    let mut headers = vec![
                        ("docker-content-digest", digest.to_string()),
                        ("etag", format!("\"{digest}\"")),
                        ("content-type", "application/octet-stream".to_string()),
                    ];
                    if let Some(size) = size {
                        headers.push(("content-length", size.to_string()));
                    }
                    return Ok(reply(StatusCode::OK, headers, Body::from_stream(body)));
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    blob_gate(state, caller, repo, digest).await?;
    let range = RangeRequest::parse(req.header(header::RANGE), size);
    let mut headers = vec![
        ("docker-content-digest", digest.to_string()),
        ("accept-ranges", "bytes".to_string()),
        ("etag", format!("\"{digest}\"")),
    ];
    let (status, range) = match range {
        RangeRequest::Whole => (StatusCode::OK, None),
        RangeRequest::Part(r) => {
            headers.push((
                "content-range",
                format!("bytes {}-{}/{size}", r.start, r.end),
            ));
            (StatusCode::PARTIAL_CONTENT, Some(r))
        }
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                oci::ErrorCode::RangeInvalid,
                "requested range is not satisfiable",
            )
            .with_header("content-range", format!("bytes */{size}")));
        }
    };
    let length = range.map_or(size, |r| r.end - r.start + 1);
    headers.push(("content-type", "application/octet-stream".to_string()));
    if req.method == Method::HEAD {
        headers.push(("content-length", length.to_string()));
        return Ok(reply(status, headers, Body::empty()));
    }
    match registry.blob_body_with(repo, digest, range, lean).await? {
        BlobBody::Redirect(url) => Ok(reply(
            StatusCode::TEMPORARY_REDIRECT,
            vec![
                ("location", url),
                ("docker-content-digest", digest.to_string()),
                ("content-length", "0".to_string()),
            ],
            Body::empty(),
        )),
        BlobBody::Stream(stream) => {
            headers.push(("content-length", length.to_string()));
            Ok(reply(status, headers, Body::from_stream(stream)))
        }
    }
}

async fn blob_gate(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
) -> Result<(), ApiError> {
    super::trust_gate(
        state,
        caller,
        repo,
        crate::trust::service::Target::Blob(digest),
    )
    .await
}

pub async fn delete(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Response, ApiError> {
    registry.delete_blob(repo, digest).await?;
    Ok(reply(
        StatusCode::ACCEPTED,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}
