//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use oci::{Digest, RepoName};

use super::range::RangeRequest;
use super::{reply, Caller, V2Request};
use crate::app::AppState;
use crate::error::ApiError;
use crate::registry::{BlobBody, Registry};

pub async fn get(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let registry: &Registry = &state.registry;
    let size = registry.stat_blob(repo, digest).await?;
    super::trust_gate(
        state,
        caller,
        repo,
        crate::trust::service::Target::Blob(digest),
    )
    .await?;
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
    match registry.blob_body(repo, digest, range).await? {
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
