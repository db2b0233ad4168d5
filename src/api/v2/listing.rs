//! Tag lists, the catalog and referrers.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use oci::media_type::OCI_INDEX;
use oci::{Digest, ErrorCode, RepoName};
use serde_json::json;

use super::route::parse_digest;
use super::{reply, Caller, V2Request};
use crate::app::AppState;
use crate::error::ApiError;
use crate::registry::Registry;

/// Reads the `n` page-size parameter.
fn page_size(req: &V2Request) -> Result<Option<u32>, ApiError> {
    req.query("n")
        .map(|n| {
            n.parse::<u32>().map_err(|_| {
                ApiError::new(
                    ErrorCode::PaginationNumberInvalid,
                    format!("n must be a non-negative integer, not {n:?}"),
                )
            })
        })
        .transpose()
}

fn json_reply(
    status: StatusCode,
    content_type: &str,
    value: impl serde::Serialize,
    link: Option<String>,
) -> Response {
    // Serialized straight from borrowed values: a list of 10,000 tags through a
    // `serde_json::Value` would copy every name once more.
    let body = serde_json::to_string(&value).unwrap_or_default();
    let mut headers = vec![
        ("content-type", content_type.to_string()),
        ("content-length", body.len().to_string()),
    ];
    if let Some(link) = link {
        headers.push(("link", format!("<{link}>; rel=\"next\"")));
    }
    reply(status, headers, Body::from(body))
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn tags(
    registry: &Registry,
    repo: &RepoName,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let n = page_size(req)?;
    let page = registry.list_tags(repo, n, req.query("last")).await?;
    let link = page.next_after.map(|last| {
        format!(
            "/v2/{repo}/tags/list?n={}&last={}",
            page.items.len(),
            encode(&last)
        )
    });
    #[derive(serde::Serialize)]
    struct TagList<'a> {
        name: &'a str,
        tags: Vec<&'a str>,
    }
    let tags = page.items.iter().map(|t| t.as_str()).collect();
    Ok(json_reply(
        StatusCode::OK,
        "application/json",
        TagList {
            name: repo.as_str(),
            tags,
        },
        link,
    ))
}

/// The catalog lists only repositories the caller may pull. The database applies that rule
/// while it pages (see `Auth::reader`), so a page costs one query over what it returns,
/// however many repositories the caller may not see.
pub async fn catalog(
    state: &AppState,
    caller: &Caller,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let max = state.registry.options().max_page_size;
    let want = page_size(req)?.unwrap_or(max).min(max);
    let mut names: Vec<RepoName> = if want == 0 {
        Vec::new()
    } else {
        state
            .auth
            .readable_repositories(
                caller.credential.identity(),
                None,
                req.query("last"),
                want + 1,
            )
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|info| info.name)
            .collect()
    };
    let more = names.len() > want as usize;
    names.truncate(want as usize);
    let link = more.then(|| {
        let last = names.last().map(|r| r.to_string()).unwrap_or_default();
        format!("/v2/_catalog?n={want}&last={}", encode(&last))
    });
    let names: Vec<&str> = names.iter().map(|r| r.as_str()).collect();
    Ok(json_reply(
        StatusCode::OK,
        "application/json",
        json!({ "repositories": names }),
        link,
    ))
}

pub async fn referrers(
    registry: &Registry,
    repo: &RepoName,
    subject: &Digest,
    req: &V2Request,
) -> Result<Response, ApiError> {
    let artifact_type = req.query("artifactType").filter(|t| !t.is_empty());
    let n = page_size(req)?;
    let last = req.query("last").map(parse_digest).transpose()?;
    let page = registry
        .referrers(repo, subject, artifact_type, n, last.as_ref())
        .await?;
    let manifests: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = &r.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = &r.annotations {
                d["annotations"] = json!(a);
            }
            d
        })
        .collect();
    let link = page.next_after.map(|last| {
        let mut url = format!(
            "/v2/{repo}/referrers/{subject}?n={}&last={}",
            page.items.len(),
            encode(&last)
        );
        if let Some(t) = artifact_type {
            url.push_str(&format!("&artifactType={}", encode(t)));
        }
        url
    });
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response = json_reply(StatusCode::OK, OCI_INDEX, body, link);
    if artifact_type.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            axum::http::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
