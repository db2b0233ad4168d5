//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use oci::{Digest, RepoName};

use super::{reply, V2Request};
use crate::error::ApiError;
use crate::registry::{BlobBody, Registry};
use crate::storage::ByteRange;

/// A `Range` request against a blob of known size.
enum RangeRequest {
    Whole,
    Part(ByteRange),
    Unsatisfiable,
}

/// Reads a single `bytes=` range. Syntax berth does not serve (several ranges, other units)
/// is ignored and the whole blob is sent, as RFC 9110 allows.
fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first, last) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if size > 0 => RangeRequest::Part(ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            }),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Whole,
        },
        (start, end) => match (
            num(start),
            if end.is_empty() {
                Some(None)
            } else {
                num(end).map(Some)
            },
        ) {
            (Some(s), Some(e)) => {
                let e = e.unwrap_or(u64::MAX).min(size.saturating_sub(1));
                if s >= size || e < s {
                    RangeRequest::Unsatisfiable
                } else {
                    RangeRequest::Part(ByteRange { start: s, end: e })
                }
            }
            _ => RangeRequest::Whole,
        },
    }
}

pub async fn get(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let size = registry.stat_blob(repo, digest).await?;
    let range = parse_range(req.header(header::RANGE), size);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(v: &str, size: u64) -> Option<(u64, u64)> {
        match parse_range(Some(v), size) {
            RangeRequest::Part(r) => Some((r.start, r.end)),
            _ => None,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(part("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(part("bytes=90-", 100), Some((90, 99)));
        assert_eq!(part("bytes=-10", 100), Some((90, 99)));
        assert_eq!(part("bytes=50-1000", 100), Some((50, 99)));
        assert!(matches!(
            parse_range(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        ));
        assert!(matches!(
            parse_range(Some("bytes=5-2"), 100),
            RangeRequest::Unsatisfiable
        ));
        assert!(matches!(
            parse_range(Some("bytes=0-1,3-4"), 100),
            RangeRequest::Whole
        ));
        assert!(matches!(
            parse_range(Some("items=0-1"), 100),
            RangeRequest::Whole
        ));
        assert!(matches!(
            parse_range(Some("bytes=x-1"), 100),
            RangeRequest::Whole
        ));
        assert!(matches!(parse_range(None, 100), RangeRequest::Whole));
    }
}
