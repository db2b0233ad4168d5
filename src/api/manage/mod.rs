//! The management API under `/api/v1`, with Quay's paths and JSON shapes for the common
//! operations, so Quay scripts and habits carry over.
//!
//! Callers authenticate with a bearer API token (`POST /api/v1/user/apptoken`, the dashboard or
//! `berth token create`), or HTTP Basic with a user's password or a robot's token; anonymous
//! callers may read public repositories.
//! Registry (JWT) tokens are for /v2 only.

mod apptoken;
mod logs;
mod mirror;
mod notification;
mod organization;
mod proxycache;
mod repository;
mod trust;
mod user;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use super::request_log::Notes;
use crate::app::AppState;
use crate::auth::{AuthError, Credential, Identity};
use crate::metadata::MetadataError;
use crate::registry::RegistryError;

/// An error of the management API, answered as Quay does: a JSON problem with a message.
#[derive(Debug)]
pub enum ManageError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden,
    /// A 403 that says why (a change the repository's state refuses).
    Denied(String),
    NotFound(String),
    Conflict(String),
    TooManyRequests,
    /// The metadata database or the blob store has no room left.
    StorageFull,
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl ManageError {
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            ManageError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ManageError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ManageError::Forbidden => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ManageError::Denied(_) => (StatusCode::FORBIDDEN, "denied"),
            ManageError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ManageError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ManageError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ManageError::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage"),
            ManageError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ManageError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        let message = match &self {
            ManageError::BadRequest(m)
            | ManageError::Unauthorized(m)
            | ManageError::NotFound(m)
            | ManageError::Denied(m)
            | ManageError::Conflict(m) => m.clone(),
            ManageError::Forbidden => "you are not allowed to do this".into(),
            ManageError::TooManyRequests => "too many failed logins; try again later".into(),
            ManageError::StorageFull => "storage is full; nothing was changed".into(),
            ManageError::Internal(e) => {
                tracing::error!(error = %e, "management API request failed");
                "internal server error".into()
            }
        };
        let failure = super::request_log::Failure(format!("{kind}: {message}"));
        let body = json!({
            "status": status.as_u16(),
            "error_message": message,
            "error_type": kind,
            "title": kind,
            "detail": message,
        });
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(failure);
        response
    }
}

impl From<MetadataError> for ManageError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::NotFound => ManageError::NotFound("not found".into()),
            MetadataError::Conflict => ManageError::Conflict("already exists".into()),
            MetadataError::Refused(why) => ManageError::BadRequest(why.into()),
            MetadataError::Full => ManageError::StorageFull,
            other => ManageError::Internal(Box::new(other)),
        }
    }
}

impl From<RegistryError> for ManageError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Metadata(m) => m.into(),
            RegistryError::Storage(s) => ManageError::Internal(Box::new(s)),
            RegistryError::StorageFull => ManageError::StorageFull,
            other => ManageError::BadRequest(other.to_string()),
        }
    }
}

/// The caller of a management request, and the client's address.
pub struct ApiCaller(pub Option<Identity>, pub Option<std::net::IpAddr>);

impl ApiCaller {
    /// A usage-log event of `kind` performed by this caller.
    pub fn event(&self, kind: &'static str) -> crate::usage_log::Event {
        crate::usage_log::Event::new(
            kind,
            crate::usage_log::Performer::of(self.0.as_ref()),
            self.1,
        )
    }

    /// The identity, or 401.
    pub fn required(&self) -> Result<&Identity, ManageError> {
        self.0
            .as_ref()
            .ok_or_else(|| ManageError::Unauthorized("authentication required".into()))
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ManageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ManageError> {
        let client = state.client(&parts.extensions, &parts.headers).addr;
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        let service = super::challenge::Origin::of(state, &parts.headers).host;
        let notes = parts.extensions.get::<Notes>().cloned().unwrap_or_default();
        match state.auth.credential(value, client, &service).await {
            Ok(Credential::Anonymous) => {
                notes.account(None);
                Ok(ApiCaller(None, client))
            }
            Ok(Credential::Account(identity)) => {
                notes.account(Some(&identity.name));
                Ok(ApiCaller(Some(identity), client))
            }
            Ok(Credential::Token { .. }) => Err(ManageError::Unauthorized(
                "registry tokens are for /v2; use an API token or Basic credentials".into(),
            )),
            Err(AuthError::TooManyAttempts) => Err(ManageError::TooManyRequests),
            Err(AuthError::Metadata(e)) => Err(e.into()),
            Err(e) => {
                if matches!(e, AuthError::BadCredentials) {
                    let username = value
                        .and_then(crate::auth::parse_authorization)
                        .and_then(|a| match a {
                            crate::auth::Authorization::Basic { user, .. } => Some(user),
                            _ => None,
                        });
                    state.usage.login_failure(
                        username.as_deref(),
                        client,
                        "quayauth",
                        &e.to_string(),
                    );
                }
                Err(ManageError::Unauthorized(e.to_string()))
            }
        }
    }
}

/// The largest request body the management API reads.
const MAX_BODY: usize = 64 * 1024;

/// Reads a request body of at most [`MAX_BODY`] bytes, answering a longer (or broken) one
/// with a 400 in the API's format.
pub async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, ManageError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ManageError::BadRequest("request body too large".into()))
}

/// Path parameters, with an unusable path (say, not UTF-8 once decoded) answered with a 400
/// in the API's format instead of axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<T> FromRequestParts<AppState> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ManageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ManageError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e| ManageError::BadRequest(format!("invalid path: {}", e.body_text())))
    }
}

/// Reads a JSON body into `T`, answering malformed bodies with a 400 in the API's format.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for JsonBody<T> {
    type Rejection = ManageError;

    async fn from_request(req: axum::extract::Request, _: &AppState) -> Result<Self, ManageError> {
        let bytes = read_body(req.into_body()).await?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes)
            .map(JsonBody)
            .map_err(|e| ManageError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// The `/api/v1` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/repository",
            get(repository::list).post(repository::create),
        )
        .route(
            "/api/v1/repository/",
            get(repository::list).post(repository::create),
        )
        .route(
            "/api/v1/repository/{*rest}",
            axum::routing::any(repository::dispatch),
        )
        .route("/api/v1/organization/", post(organization::create))
        .route("/api/v1/organization", post(organization::create))
        .route(
            "/api/v1/organization/{org}",
            get(organization::get).delete(organization::delete),
        )
        .route(
            "/api/v1/organization/{org}/members",
            get(organization::members),
        )
        .route(
            "/api/v1/organization/{org}/team/{team}",
            put(organization::put_team).delete(organization::delete_team),
        )
        .route(
            "/api/v1/organization/{org}/team/{team}/members",
            get(organization::team_members),
        )
        .route(
            "/api/v1/organization/{org}/team/{team}/members/{member}",
            put(organization::add_member).delete(organization::remove_member),
        )
        .route(
            "/api/v1/organization/{org}/robots",
            get(organization::robots),
        )
        .route(
            "/api/v1/organization/{org}/robots/{short}",
            put(organization::create_robot)
                .get(organization::get_robot)
                .delete(organization::delete_robot),
        )
        .route(
            "/api/v1/organization/{org}/robots/{short}/regenerate",
            post(organization::regenerate_robot),
        )
        .route(
            "/api/v1/organization/{org}/proxycache",
            get(proxycache::get)
                .post(proxycache::create)
                .delete(proxycache::delete),
        )
        .route(
            "/api/v1/organization/{org}/validateproxycache",
            post(proxycache::validate),
        )
        .route(
            "/api/v1/organization/{org}/trust/keys",
            get(trust::org_keys).post(trust::org_add_key),
        )
        .route(
            "/api/v1/organization/{org}/trust/keys/{id}",
            axum::routing::delete(trust::org_delete_key),
        )
        .route(
            "/api/v1/organization/{org}/trust/policy",
            get(trust::org_policy).put(trust::org_put_policy),
        )
        .route("/api/v1/user/", get(user::me).post(user::register))
        .route("/api/v1/user", get(user::me).post(user::register))
        .route(
            "/api/v1/user/apptoken",
            get(apptoken::list).post(apptoken::create),
        )
        .route(
            "/api/v1/user/apptoken/{uuid}",
            get(apptoken::get).delete(apptoken::revoke),
        )
        .route("/api/v1/user/robots", get(user::robots))
        .route("/api/v1/user/logs", get(logs::user_logs))
        .route("/api/v1/user/aggregatelogs", get(logs::user_aggregate))
        .route(
            "/api/v1/organization/{org}/logs",
            get(logs::organization_logs),
        )
        .route(
            "/api/v1/organization/{org}/aggregatelogs",
            get(logs::organization_aggregate),
        )
        .route("/api/v1/superuser/logs", get(logs::superuser_logs))
        .route(
            "/api/v1/superuser/aggregatelogs",
            get(logs::superuser_aggregate),
        )
        .route(
            "/api/v1/user/robots/{short}",
            put(user::create_robot)
                .get(user::get_robot)
                .delete(user::delete_robot),
        )
        .route(
            "/api/v1/superuser/users/",
            get(user::list_users).post(user::create_user),
        )
        .fallback_service(axum::routing::any(not_found))
}

async fn not_found() -> ManageError {
    ManageError::NotFound("no such API endpoint".into())
}
