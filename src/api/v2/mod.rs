//! The OCI distribution API under `/v2`.
//!
//! One wildcard route receives every /v2 request; [`route::parse`] names the endpoint and the
//! method picks the handler. Handlers turn headers and bodies into one registry call and its
//! result into a response.

mod blobs;
mod listing;
mod manifests;
pub mod range;
pub mod route;
mod uploads;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use oci::{ErrorCode, RepoName};

use super::challenge::Origin;
use super::request_log::Notes;
use crate::app::AppState;
use crate::auth::scope::Actions;
use crate::auth::{AuthError, Credential, Denial, Identity, PushTarget};
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

/// Who is calling, as far as handlers need to know.
pub struct Caller {
    pub credential: Credential,
    /// The client's address, when known.
    pub client: Option<std::net::IpAddr>,
    /// The access generation the request was authorized under, if one was read.
    pub generation: Option<u64>,
}

impl Caller {
    /// A usage-log event of `kind` performed by this caller.
    pub fn event(&self, kind: &'static str) -> crate::usage_log::Event {
        crate::usage_log::Event::new(
            kind,
            crate::usage_log::Performer::of(self.credential.identity()),
            self.client,
        )
    }

    /// Who upload sessions opened by this request count against: the account, or for a
    /// client without one (an open registry) its address.
    pub fn uploader(&self) -> crate::registry::Uploader {
        match self.credential.identity() {
            Some(identity) => crate::registry::Uploader::Account(identity.id),
            None => crate::registry::Uploader::Client(self.client),
        }
    }
}

/// Entry point of every /v2 request.
pub async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let client = state.client(request.extensions(), request.headers()).addr;
    let notes = request.extensions().get::<Notes>().cloned();
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let path = uri.path();
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let endpoint = match route::parse(rest) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    if let Some(notes) = &notes {
        notes.route(endpoint.template());
        if let Some(repo) = endpoint.repository() {
            notes.repository(repo.as_str());
        }
    }
    let origin = Origin::of(&state, &headers);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let credential = match state
        .auth
        .credential(authorization, client, &origin.host)
        .await
    {
        Ok(c) => {
            if let Some(notes) = &notes {
                notes.account(c.identity().map(|i| i.name.as_str()));
            }
            c
        }
        Err(AuthError::TooManyAttempts) => {
            return ApiError::new(
                ErrorCode::TooManyRequests,
                "too many failed logins; try again later",
            )
            .into_response()
        }
        Err(AuthError::Metadata(e)) => return ApiError::internal(e).into_response(),
        Err(e) => {
            if matches!(e, AuthError::BadCredentials) {
                let username = authorization
                    .and_then(crate::auth::parse_authorization)
                    .and_then(|a| match a {
                        crate::auth::Authorization::Basic { user, .. } => Some(user),
                        _ => None,
                    });
                state
                    .usage
                    .login_failure(username.as_deref(), client, "v2auth", &e.to_string());
            }
            let error = matches!(e, AuthError::BadToken(_)).then_some("invalid_token");
            return ApiError::new(ErrorCode::Unauthorized, e.to_string())
                .with_header("www-authenticate", origin.bearer_challenge(None, error))
                .into_response();
        }
    };
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    // A cross-repository mount also reads `from`: the challenge asks for that too, so the
    // client's token can carry both and the mount succeeds (201) instead of falling back.
    let mount_source = match &endpoint {
        Endpoint::UploadStart(_) if query.iter().any(|(k, _)| k == "mount") => query
            .iter()
            .find(|(k, _)| k == "from")
            .and_then(|(_, v)| v.parse::<RepoName>().ok()),
        _ => None,
    };
    let (created, generation) = match authorize(
        &state,
        &origin,
        &endpoint,
        &method,
        &credential,
        mount_source.as_ref(),
    )
    .await
    {
        Ok(authorized) => authorized,
        Err(e) => {
            let mut response = e.into_response();
            if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
        }
    };
    let has_body = matches!(method, Method::POST | Method::PUT | Method::PATCH);
    let repo = endpoint.repository_access(&method).map(|(r, _)| r.clone());
    let req = V2Request {
        method,
        headers,
        query,
    };
    let caller = Caller {
        credential,
        client,
        generation,
    };
    match handle(&state, &caller, endpoint, req, body).await {
        Ok(r) => r,
        Err(e) => {
            if let (Some(repo), true) = (repo, created) {
                // A refused first push leaves no empty repository behind.
                if let Err(err) = state
                    .auth
                    .accounts()
                    .delete_repository_if_empty(&repo)
                    .await
                {
                    tracing::warn!(%repo, error = %err, "cannot remove the repository a failed push created");
                }
            }
            let mut response = e.into_response();
            if has_body {
                // The body may be unread, so the connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// The one authorization path of /v2: the endpoint names the repository and actions, the
/// auth service decides, and a push that is allowed to create a repository creates it.
/// Returns whether this request created the repository, and the access generation the
/// decision was taken under (for the request's trust decision).
async fn authorize(
    state: &AppState,
    origin: &Origin,
    endpoint: &Endpoint,
    method: &Method,
    credential: &Credential,
    mount_source: Option<&RepoName>,
) -> Result<(bool, Option<u64>), ApiError> {
    let Some((repo, wanted)) = endpoint.repository_access(method) else {
        let settings = state.auth.settings();
        if settings.open_registry || credential.identity().is_some() {
            return Ok((false, None));
        }
        // Clients send credentials only after a challenge: an anonymous catalog that answered
        // an empty list would never show a logged-in user their repositories.
        return match endpoint {
            Endpoint::Base if matches!(credential, Credential::Anonymous) => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required",
            )
            .with_header("www-authenticate", origin.bearer_challenge(None, None))),
            Endpoint::Catalog if !settings.public_catalog => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required",
            )
            .with_detail(
                serde_json::json!([{ "Type": "registry", "Name": "catalog", "Action": "*" }]),
            )
            .with_header(
                "www-authenticate",
                origin.bearer_challenge(Some("registry:catalog:*"), None),
            )),
            _ => Ok((false, None)),
        };
    };
    let (decision, generation) = state
        .auth
        .authorize_at(credential, repo, wanted)
        .await
        .map_err(ApiError::internal)?;
    if decision.is_ok() && (wanted.push || wanted.delete) {
        // A READ_ONLY or MIRROR repository refuses every change of its content, whoever asks;
        // its state is remembered with its other facts under the access generation the
        // decision was taken under, so this costs no query (an open registry, which decides
        // nothing, reads the generation here).
        if let Some(why) = crate::mirror::content_refusal(state, generation, repo)
            .await
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::new(ErrorCode::Denied, why));
        }
    }
    if decision.is_ok() && wanted.push {
        // Nothing is pushed into a proxy cache organization, whoever asks (deletes, which
        // evict cached content, stay with those who may delete).
        if let Some(why) = crate::proxy::push_refusal(state, generation, repo)
            .await
            .map_err(ApiError::internal)?
        {
            return Err(ApiError::new(ErrorCode::Denied, why));
        }
    }
    match decision {
        Ok(()) => match (wanted.push, credential.identity()) {
            (true, Some(identity)) => {
                let target = state.auth.create_on_push(identity, repo).await;
                if matches!(target, Ok(PushTarget::Denied)) {
                    return Err(denied(state, identity, repo, wanted).await);
                }
                push_target(target).map(|created| (created, generation))
            }
            (true, None) if state.auth.settings().open_registry => {
                push_target(state.auth.create_on_open_push(repo).await)
                    .map(|created| (created, generation))
            }
            _ => Ok((false, generation)),
        },
        Err(Denial::Unauthorized { insufficient_scope }) => {
            let actions = if wanted.push {
                "pull,push"
            } else if wanted.delete {
                "delete"
            } else {
                "pull"
            };
            let mut scope = format!("repository:{repo}:{actions}");
            if let Some(from) = mount_source.filter(|from| *from != repo) {
                scope.push_str(&format!(" repository:{from}:pull"));
            }
            let error = insufficient_scope.then_some("insufficient_scope");
            Err(ApiError::new(ErrorCode::Unauthorized, "authentication required")
                .with_detail(serde_json::json!([{ "Type": "repository", "Name": repo.as_str(), "Action": actions }]))
                .with_header("www-authenticate", origin.bearer_challenge(Some(&scope), error)))
        }
        Err(Denial::Forbidden) => Err(match credential.identity() {
            Some(identity) => denied(state, identity, repo, wanted).await,
            None => ApiError::new(ErrorCode::Denied, DENIED),
        }),
    }
}

const DENIED: &str = "requested access to the resource is denied";

/// A 403 that says what is missing, where the caller may learn it (`Auth::why_denied`).
async fn denied(state: &AppState, who: &Identity, repo: &RepoName, wanted: Actions) -> ApiError {
    match state.auth.why_denied(who, repo, wanted).await {
        Ok(Some(why)) => {
            ApiError::new(ErrorCode::Denied, format!("{DENIED}: {why}")).with_detail(why.into())
        }
        Ok(None) => ApiError::new(ErrorCode::Denied, DENIED),
        Err(e) => ApiError::internal(e),
    }
}

/// Whether a push may go on, and whether it created its repository.
fn push_target(
    target: Result<PushTarget, crate::metadata::MetadataError>,
) -> Result<bool, ApiError> {
    match target.map_err(ApiError::internal)? {
        PushTarget::Existing => Ok(false),
        PushTarget::Created => Ok(true),
        PushTarget::Denied => Err(ApiError::new(ErrorCode::Denied, DENIED)),
    }
}

/// The trust policy's decision on a read (`crate::trust::service::Trust::gate`): a refusal
/// is a 403 `DENIED` naming the policy and the status.
pub(crate) async fn trust_gate(
    state: &AppState,
    caller: &Caller,
    repo: &RepoName,
    target: crate::trust::service::Target<'_>,
) -> Result<(), ApiError> {
    match state
        .trust
        .gate(&state.auth, caller.generation, repo, target)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(()) => Ok(()),
        Err(refusal) => Err(ApiError::new(ErrorCode::Denied, refusal.0)),
    }
}

async fn handle(
    state: &AppState,
    caller: &Caller,
    endpoint: Endpoint,
    req: V2Request,
    body: Body,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    let m = req.method.clone();
    match (endpoint, m) {
        (Endpoint::Base, Method::GET | Method::HEAD) => Ok(base()),
        (Endpoint::Catalog, Method::GET) => listing::catalog(state, caller, &req).await,
        (Endpoint::Tags(repo), Method::GET) => listing::tags(registry, &repo, &req).await,
        (Endpoint::Referrers(repo, subject), Method::GET) => {
            // A proxy cache first caches what its upstream lists, on the first page.
            if req.query("last").is_none() {
                crate::proxy::refresh_referrers(state, caller.generation, &repo, &subject).await?;
            }
            listing::referrers(registry, &repo, &subject, &req).await
        }
        (Endpoint::Manifest(repo, r), Method::GET | Method::HEAD) => {
            manifests::get(state, caller, &repo, &r, &req).await
        }
        (Endpoint::Manifest(repo, r), Method::PUT) => {
            manifests::put(state, caller, &repo, &r, &req, body).await
        }
        (Endpoint::Manifest(repo, r), Method::DELETE) => {
            manifests::delete(state, caller, &repo, &r).await
        }
        (Endpoint::ManifestBadTag(_), Method::GET | Method::HEAD | Method::DELETE) => Err(
            ApiError::new(ErrorCode::ManifestUnknown, "manifest is not known"),
        ),
        (Endpoint::ManifestBadTag(_), Method::PUT) => Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
        )),
        (Endpoint::Blob(repo, d), Method::GET | Method::HEAD) => {
            blobs::get(state, caller, &repo, &d, &req).await
        }
        (Endpoint::Blob(repo, d), Method::DELETE) => blobs::delete(registry, &repo, &d).await,
        (Endpoint::UploadStart(repo), Method::POST) => {
            uploads::start(state, caller, &repo, &req, body).await
        }
        (Endpoint::Upload(repo, id), Method::GET) => uploads::status(registry, &repo, &id).await,
        (Endpoint::Upload(repo, id), Method::PATCH) => {
            uploads::patch(registry, &repo, &id, &req, body).await
        }
        (Endpoint::Upload(repo, id), Method::PUT) => {
            uploads::finish(registry, &repo, &id, &req, body).await
        }
        (Endpoint::Upload(repo, id), Method::DELETE) => uploads::cancel(registry, &repo, &id).await,
        (endpoint, method) => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("method {method} is not allowed on this endpoint"),
        )
        .with_header("allow", endpoint.allowed_methods().to_string())),
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
