//! `/v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use oci::{ErrorCode, Reference, RepoName, Tag};

use super::{reply, V2Request};
use crate::error::ApiError;
use crate::registry::{Registry, RegistryError};

pub async fn get(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let manifest = registry.get_manifest(repo, reference).await?;
    let headers = vec![
        ("content-type", manifest.media_type.clone()),
        ("docker-content-digest", manifest.digest.to_string()),
        ("content-length", manifest.content.len().to_string()),
        ("etag", format!("\"{}\"", manifest.digest)),
    ];
    let body = if req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(manifest.content)
    };
    Ok(reply(StatusCode::OK, headers, body))
}

pub async fn put(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
    req: &V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = registry.options().max_manifest_bytes;
    if req.content_length()?.is_some_and(|n| n > limit as u64) {
        return Err(RegistryError::ManifestTooLarge { limit }.into());
    }
    let tag_limit = registry.options().limits.tags_per_request;
    if req.query_all("tag").count() > tag_limit as usize {
        return Err(RegistryError::TooManyTags { limit: tag_limit }.into());
    }
    let extra_tags = req
        .query_all("tag")
        .map(|t| {
            t.parse::<Tag>()
                .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, format!("tag {t:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let content_type = req.header(header::CONTENT_TYPE).unwrap_or("").to_string();
    let bytes = axum::body::to_bytes(body, limit + 1).await.map_err(|e| {
        // to_bytes fails either on the limit or on a broken body; the limit is the one a
        // client can act on, the other never reaches a live client.
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            ApiError::from(RegistryError::ManifestTooLarge { limit })
        } else {
            ApiError::new(
                ErrorCode::ManifestInvalid,
                "reading the manifest body failed",
            )
        }
    })?;
    let pushed = registry
        .put_manifest(repo, reference, extra_tags, &content_type, bytes.to_vec())
        .await?;
    let mut headers = vec![
        (
            "location",
            format!("/v2/{repo}/manifests/{}", pushed.digest),
        ),
        ("docker-content-digest", pushed.digest.to_string()),
        ("content-length", "0".into()),
    ];
    if let Some(subject) = &pushed.subject {
        headers.push(("oci-subject", subject.to_string()));
    }
    for tag in &pushed.tags {
        headers.push(("oci-tag", tag.to_string()));
    }
    Ok(reply(StatusCode::CREATED, headers, Body::empty()))
}

pub async fn delete(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Response, ApiError> {
    registry.delete_manifest(repo, reference).await?;
    Ok(reply(
        StatusCode::ACCEPTED,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}
