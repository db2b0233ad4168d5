//! `/v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use oci::{ErrorCode, Reference, RepoName, Tag};

use super::{reply, Caller, V2Request};
use crate::app::AppState;
use crate::error::ApiError;
use crate::registry::RegistryError;
use crate::usage_log::Event;

/// A usage-log event on `repo` naming `reference` as Quay does (`tag` or `manifest_digest`).
fn on_reference(event: Event, repo: &RepoName, reference: &Reference) -> Event {
    let event = event.repository(repo);
    match reference {
        Reference::Tag(tag) => event.detail("tag", tag.as_str()),
        Reference::Digest(digest) => event.detail("manifest_digest", digest.to_string()),
    }
}

pub async fn get(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let manifest = crate::proxy::get_manifest(state, caller.generation, repo, reference).await?;
    let target = match reference {
        Reference::Digest(_) if req.method == Method::HEAD => {
            crate::trust::service::Target::Descriptor(&manifest.digest)
        }
        _ => crate::trust::service::Target::Manifest(&manifest.digest),
    };
    super::trust_gate(state, caller, repo, target).await?;
    // A pull is queued for the usage logs' writer, never written here.
    if req.method == Method::GET {
        state.usage.pull(&crate::usage_log::Pull {
            performer: caller.credential.identity().map(|i| i.name.as_str()),
            ip: caller.client,
            repository: repo,
            tag: match reference {
                Reference::Tag(tag) => Some(tag.as_str()),
                Reference::Digest(_) => None,
            },
            digest: &manifest.digest,
        });
    }
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
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
    req: &V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
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
    if pushed.kind == crate::registry::facts::ManifestKind::Signature {
        state.trust.signature_stored();
    }
    let tags: Vec<&str> = pushed.tags.iter().map(|t| t.as_str()).collect();
    let mut event = caller
        .event("push_repo")
        .repository(repo)
        .detail("manifest_digest", pushed.digest.to_string());
    if let Some(first) = tags.first() {
        event = event.detail("tag", *first).detail("tags", tags.clone());
    }
    state.usage.record(event);
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
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Response, ApiError> {
    state.registry.delete_manifest(repo, reference).await?;
    let kind = match reference {
        Reference::Tag(_) => "delete_tag",
        Reference::Digest(_) => "delete_manifest",
    };
    state
        .usage
        .record(on_reference(caller.event(kind), repo, reference));
    Ok(reply(
        StatusCode::ACCEPTED,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}
