//! The OCI distribution API under `/v2`.
//!
//! One wildcard route receives every /v2 request; [`route::parse`] names the endpoint and the
//! method picks the handler. Handlers turn headers and bodies into one registry call and its
//! result into a response.

mod blobs;
mod listing;
mod manifests;
pub mod route;
mod uploads;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use oci::ErrorCode;

use crate::app::AppState;
use crate::error::ApiError;
use crate::storage::ByteStream;
use route::Endpoint;

/// Everything a handler may read from the request besides the path.
pub struct V2Request {
    pub method: Method,
    pub headers: HeaderMap,
    query: Vec<(String, String)>,
}

impl V2Request {
    /// The first value of a query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated query parameter.
    pub fn query_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text, if present and valid text.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The declared body length, if any. A malformed value is an error.
    pub fn content_length(&self) -> Result<Option<u64>, ApiError> {
        match self.headers.get(header::CONTENT_LENGTH) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| ApiError::new(ErrorCode::SizeInvalid, "invalid Content-Length")),
        }
    }
}

/// A request body as a byte stream.
pub fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// Entry point of every /v2 request.
pub async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri.path();
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let endpoint = match route::parse(rest) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let query = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = V2Request {
        method,
        headers,
        query,
    };
    match handle(&state, endpoint, req, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: &AppState,
    endpoint: Endpoint,
    req: V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    let m = req.method.clone();
    match (endpoint, m) {
        (Endpoint::Base, Method::GET | Method::HEAD) => Ok(base()),
        (Endpoint::Catalog, Method::GET) => listing::catalog(registry, &req).await,
        (Endpoint::Tags(repo), Method::GET) => listing::tags(registry, &repo, &req).await,
        (Endpoint::Referrers(repo, subject), Method::GET) => {
            listing::referrers(registry, &repo, &subject, &req).await
        }
        (Endpoint::Manifest(repo, r), Method::GET | Method::HEAD) => {
            manifests::get(registry, &repo, &r, &req).await
        }
        (Endpoint::Manifest(repo, r), Method::PUT) => {
            manifests::put(registry, &repo, &r, &req, body).await
        }
        (Endpoint::Manifest(repo, r), Method::DELETE) => {
            manifests::delete(registry, &repo, &r).await
        }
        (Endpoint::ManifestBadTag(_), Method::GET | Method::HEAD | Method::DELETE) => Err(
            ApiError::new(ErrorCode::ManifestUnknown, "manifest is not known"),
        ),
        (Endpoint::ManifestBadTag(_), Method::PUT) => Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
        )),
        (Endpoint::Blob(repo, d), Method::GET | Method::HEAD) => {
            blobs::get(registry, &repo, &d, &req).await
        }
        (Endpoint::Blob(repo, d), Method::DELETE) => blobs::delete(registry, &repo, &d).await,
        (Endpoint::UploadStart(repo), Method::POST) => {
            uploads::start(registry, &repo, &req, body).await
        }
        (Endpoint::Upload(repo, id), Method::GET) => uploads::status(registry, &repo, &id).await,
        (Endpoint::Upload(repo, id), Method::PATCH) => {
            uploads::patch(registry, &repo, &id, &req, body).await
        }
        (Endpoint::Upload(repo, id), Method::PUT) => {
            uploads::finish(registry, &repo, &id, &req, body).await
        }
        (Endpoint::Upload(repo, id), Method::DELETE) => uploads::cancel(registry, &repo, &id).await,
        (_, method) => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("method {method} is not allowed on this endpoint"),
        )),
    }
}

fn base() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{}",
    )
        .into_response()
}

/// Builds a response from a status and headers whose values are known to be valid text.
pub(crate) fn reply(
    status: axum::http::StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Body,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, v);
        }
    }
    response
}
