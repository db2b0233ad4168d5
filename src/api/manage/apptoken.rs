//! `/api/v1/user/apptoken`: the caller's API tokens, with the paths and JSON of Quay's
//! application-specific tokens. Only users have them (robots get 403); a token's secret is in
//! the answer that creates it and nowhere else, since berth keeps only its hash.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiCaller, ApiPath, JsonBody, ManageError};
use crate::api::dates::http_date;
use crate::app::AppState;
use crate::auth::api_token::{now_millis, ApiTokenError};
use crate::auth::{parse_authorization, Authorization, Identity};
use crate::metadata::accounts::{AccountKind, ApiToken};

/// Quay's window for `?expiring=true` when `APP_SPECIFIC_TOKEN_EXPIRATION` is not set: four
/// weeks, of which a tenth counts as soon.
const DEFAULT_EXPIRING_WINDOW_MS: i64 = 28 * 86_400 * 1000;

/// Quay's view of a token: `token_code`, the secret, only when it was just created.
/// `last_accessed` is to the minute (see `API_TOKEN_ACCESS_RESOLUTION`).
fn token_view(token: &ApiToken, secret: Option<&str>) -> Value {
    let mut view = json!({
        "uuid": token.uuid.to_string(),
        "title": token.name,
        "last_accessed": token.last_accessed.map(http_date),
        "created": http_date(token.created_at),
        "expiration": token.expires_at.map(http_date),
    });
    if let Some(secret) = secret {
        view["token_code"] = json!(secret);
    }
    view
}

/// The calling user; robots have no API tokens.
fn user(caller: &ApiCaller) -> Result<&Identity, ManageError> {
    let who = caller.required()?;
    match who.kind {
        AccountKind::User => Ok(who),
        _ => Err(ManageError::Forbidden),
    }
}

/// A token's uuid from the path: anything else names no token.
fn token_uuid(text: &str) -> Result<uuid::Uuid, ManageError> {
    uuid::Uuid::parse_str(text).map_err(|_| ManageError::NotFound("no such API token".into()))
}

#[derive(Deserialize)]
pub struct ListQuery {
    expiring: Option<String>,
}

/// `GET /api/v1/user/apptoken[?expiring=true]`: the caller's tokens (only those expiring
/// within a tenth of `APP_SPECIFIC_TOKEN_EXPIRATION` with `expiring`, as Quay).
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ManageError> {
    let who = user(&caller)?;
    let expiring = query
        .expiring
        .map(|v| ["true", "1", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
    let mut tokens = state.auth.api_tokens(who).await?;
    if expiring == Some(true) {
        let lifetime = state.auth.settings().api_token_expiration;
        let window = lifetime.map_or(DEFAULT_EXPIRING_WINDOW_MS, |l| {
            i64::try_from(l.as_millis()).unwrap_or(i64::MAX)
        });
        let now = now_millis();
        let soon = now.saturating_add((window / 10).max(1000));
        tokens.retain(|t| t.expires_at.is_some_and(|at| at > now && at <= soon));
    }
    let views: Vec<Value> = tokens.iter().map(|t| token_view(t, None)).collect();
    Ok(Json(json!({ "tokens": views, "only_expiring": expiring })))
}

#[derive(Deserialize)]
pub struct NewToken {
    title: Option<String>,
}

/// `POST /api/v1/user/apptoken` with `{"title": ...}`: a new token, its secret in
/// `token.token_code`. It expires after `APP_SPECIFIC_TOKEN_EXPIRATION` (Quay takes no expiry
/// in the request). As Quay asks for a fresh login here, an API token may not make another:
/// one that leaked could otherwise leave a copy behind that outlives its revocation.
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ManageError> {
    let who = user(&caller)?;
    let by_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization)
        .is_some_and(|a| matches!(a, Authorization::ApiToken(_)));
    if by_token {
        return Err(ManageError::Unauthorized(
            "creating an API token needs the account's password (HTTP Basic), not an API token"
                .into(),
        ));
    }
    let title = body
        .title
        .ok_or_else(|| ManageError::BadRequest("title is required".into()))?;
    let (token, secret) = match state.auth.create_api_token(who, &title).await {
        Ok(created) => created,
        Err(ApiTokenError::Metadata(e)) => return Err(e.into()),
        Err(e) => return Err(ManageError::BadRequest(e.to_string())),
    };
    tracing::info!(user = %who.name, token = %token.uuid, "API token created");
    state.usage.record(
        caller
            .event("create_app_specific_token")
            .namespace(&who.name)
            .detail("app_specific_token_title", title.as_str())
            .detail("app_specific_token", token.uuid.to_string()),
    );
    let view = token_view(&token, Some(&secret));
    Ok((StatusCode::OK, Json(json!({ "token": view }))).into_response())
}

/// `GET /api/v1/user/apptoken/{uuid}`: one of the caller's tokens (without its secret, which
/// berth no longer has).
pub async fn get(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Json<Value>, ManageError> {
    let who = user(&caller)?;
    let uuid = token_uuid(&uuid)?;
    let tokens = state.auth.api_tokens(who).await?;
    let token = tokens
        .iter()
        .find(|t| t.uuid == uuid)
        .ok_or_else(|| ManageError::NotFound("no such API token".into()))?;
    Ok(Json(json!({ "token": token_view(token, None) })))
}

/// `DELETE /api/v1/user/apptoken/{uuid}`: revokes one of the caller's tokens; the next request
/// with it is refused.
pub async fn revoke(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(uuid): ApiPath<String>,
) -> Result<Response, ManageError> {
    let who = user(&caller)?;
    let uuid = token_uuid(&uuid)?;
    if !state.auth.revoke_api_token(who, uuid).await? {
        return Err(ManageError::NotFound("no such API token".into()));
    }
    tracing::info!(user = %who.name, token = %uuid, "API token revoked");
    state.usage.record(
        caller
            .event("revoke_app_specific_token")
            .namespace(&who.name)
            .detail("app_specific_token", uuid.to_string()),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}
