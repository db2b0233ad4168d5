//! `/v2/<name>/blobs/uploads/`: starting, mounting, chunking, finishing and cancelling uploads.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use oci::{Algorithm, Digest, ErrorCode, RepoName};

use super::route::{digest_error, parse_digest};
use super::{body_stream, reply, Caller, V2Request};
use crate::app::AppState;
use crate::auth::scope::Actions;
use crate::error::{upload_range, ApiError};
use crate::registry::{ChunkRange, Registry, UploadState};
use crate::storage::UploadId;

fn upload_location(repo: &RepoName, id: &UploadId) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn upload_reply(status: StatusCode, repo: &RepoName, state: &UploadState) -> Response {
    reply(
        status,
        vec![
            ("location", upload_location(repo, &state.id)),
            ("range", upload_range(state.length)),
            ("docker-upload-uuid", state.id.to_string()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    reply(
        StatusCode::CREATED,
        vec![
            ("location", format!("/v2/{repo}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

/// `Content-Range` of a chunk, if sent. A malformed one is answered like an out-of-order one.
fn chunk_range(req: &V2Request, current: u64) -> Result<Option<ChunkRange>, ApiError> {
    match req.headers.get(header::CONTENT_RANGE) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(ChunkRange::parse)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::RangeInvalid, "invalid Content-Range")
                    .with_header("range", upload_range(current))
            }),
    }
}

pub async fn start(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    req: &V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    if let Some(mount) = req.query("mount") {
        let digest = parse_digest(mount)?;
        let from = match req.query("from") {
            Some(f) => Some(
                f.parse::<RepoName>()
                    .map_err(|e| ApiError::new(ErrorCode::NameInvalid, format!("from: {e}")))?,
            ),
            None => None,
        };
        if mount_readable(state, caller, repo, &digest, from).await? {
            return Ok(blob_created(repo, &digest));
        }
    } else if let Some(d) = req.query("digest") {
        let digest = parse_digest(d)?;
        let content_length = req.content_length()?;
        registry
            .push_blob(
                repo,
                &digest,
                content_length,
                body_stream(body),
                caller.uploader(),
            )
            .await?;
        return Ok(blob_created(repo, &digest));
    }
    let algorithm = match req.query("digest-algorithm") {
        None => Algorithm::Sha256,
        Some(a) => a.parse::<Algorithm>().map_err(digest_error)?,
    };
    let upload = registry
        .start_upload(repo, algorithm, caller.uploader())
        .await?;
    Ok(upload_reply(StatusCode::ACCEPTED, repo, &upload))
}

/// How many repositories holding the digest a mount without `from` tries.
const MOUNT_CANDIDATES: u32 = 8;

/// Mounts `digest` into `repo` from `from`, or with no `from` from a repository holding it,
/// but only from a repository the caller may pull from: a mount must never let a caller read
/// a blob it could not read before. Without `from`, the database is asked only for
/// repositories the caller may read, so neither the answer nor its timing says whether the
/// digest sits in a repository the caller cannot see.
async fn mount_readable(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
    from: Option<RepoName>,
) -> Result<bool, ApiError> {
    let candidates = match from {
        Some(f) => vec![f],
        None => state
            .auth
            .readable_repositories_with_blob(caller.credential.identity(), digest, MOUNT_CANDIDATES)
            .await
            .map_err(ApiError::internal)?,
    };
    for source in candidates {
        let readable = state
            .auth
            .authorize(&caller.credential, &source, Actions::PULL)
            .await
            .map_err(ApiError::internal)?
            .is_ok();
        if readable && state.registry.mount_blob(repo, digest, &source).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn status(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
) -> Result<Response, ApiError> {
    let state = registry.upload_status(repo, id).await?;
    Ok(upload_reply(StatusCode::NO_CONTENT, repo, &state))
}

pub async fn patch(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
    req: &V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let current = registry.upload_status(repo, id).await?;
    let range = chunk_range(req, current.length)?;
    let content_length = req.content_length()?;
    let state = registry
        .append_chunk(repo, id, range, content_length, body_stream(body))
        .await?;
    Ok(upload_reply(StatusCode::ACCEPTED, repo, &state))
}

pub async fn finish(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
    req: &V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = match req.query("digest") {
        Some(d) => parse_digest(d)?,
        None => {
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                "the digest query parameter is required",
            ))
        }
    };
    let current = registry.upload_status(repo, id).await?;
    let range = chunk_range(req, current.length)?;
    let content_length = req.content_length()?;
    let has_body = content_length != Some(0) || range.is_some();
    let last_chunk = has_body.then(|| (range, content_length, body_stream(body)));
    registry
        .finish_upload(repo, id, &digest, last_chunk)
        .await?;
    Ok(blob_created(repo, &digest))
}

pub async fn cancel(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
) -> Result<Response, ApiError> {
    registry.cancel_upload(repo, id).await?;
    Ok(reply(
        StatusCode::NO_CONTENT,
        vec![("content-length", "0".into())],
        Body::empty(),
    ))
}
