//! `/api/v1/organization/{org}/proxycache` and `.../validateproxycache`: Quay's proxy cache
//! configuration, behind `FEATURE_PROXY_CACHE` (off: the paths do not exist, as in Quay).
//!
//! Reading the configuration is for the organization's members (and superusers); creating,
//! deleting and validating one for its admins (and superusers). The credentials are never
//! answered: they are sealed before they are stored (`crate::sealed`).

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::organization::org_admin;
use super::{read_body, ApiCaller, ApiPath, ManageError};
use crate::app::AppState;
use crate::metadata::MetadataError;
use crate::upstream::proxy_cache::{
    validate_upstream, ProxyCacheError, ProxyCacheRequest, Validation,
};

/// Quay's answer when validation cannot log in to (or reach) the upstream.
const FAILED_LOGIN: &str =
    "Failed login to remote registry. Please verify entered details and try again.";

/// 404 as for an unknown path while `FEATURE_PROXY_CACHE` is off.
fn feature_enabled(state: &AppState) -> Result<(), ManageError> {
    if state.settings().proxy_cache {
        Ok(())
    } else {
        Err(ManageError::NotFound("no such API endpoint".into()))
    }
}

impl From<ProxyCacheError> for ManageError {
    fn from(e: ProxyCacheError) -> Self {
        match e {
            ProxyCacheError::Metadata(m) => m.into(),
            other => ManageError::Internal(Box::new(other)),
        }
    }
}

/// Reads and validates the body for `org`.
async fn config_of(
    body: Body,
    org: &str,
) -> Result<crate::upstream::proxy_cache::ValidConfig, ManageError> {
    let bytes = read_body(body).await?;
    ProxyCacheRequest::from_json(&bytes)
        .and_then(|r| r.validate(org))
        .map_err(ManageError::BadRequest)
}

/// `GET /api/v1/organization/{org}/proxycache`: the configuration without its credentials;
/// Quay's empty values when the organization has none.
pub async fn get(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ManageError> {
    feature_enabled(&state)?;
    let who = caller.required()?;
    let is_admin = state.auth.is_namespace_admin(who, &org).await?;
    let is_member = is_admin
        || state
            .auth
            .accounts()
            .organization_members(&org)
            .await?
            .iter()
            .any(|m| m.id == who.id);
    if !is_member {
        return Err(ManageError::Forbidden);
    }
    match state.auth.accounts().account(&org).await? {
        Some(a) if a.kind == crate::metadata::accounts::AccountKind::Organization => {}
        _ => {
            return Err(ManageError::NotFound(format!(
                "organization {org} not found"
            )))
        }
    }
    Ok(Json(match state.proxy_caches.get(&org).await? {
        Some(c) => json!({
            "upstream_registry": c.upstream_registry,
            "expiration_s": c.expiration_s,
            "insecure": c.insecure,
        }),
        None => json!({ "upstream_registry": "", "expiration_s": "", "insecure": "" }),
    }))
}

/// `POST /api/v1/organization/{org}/proxycache`: 201 `"Created"`; 400 when the organization
/// already has one.
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
    body: Body,
) -> Result<Response, ManageError> {
    feature_enabled(&state)?;
    org_admin(&state, &caller, &org).await?;
    let config = config_of(body, &org).await?;
    match state.proxy_caches.create(&org, &config).await {
        Ok(()) => {}
        Err(ProxyCacheError::Metadata(MetadataError::Conflict)) => {
            return Err(ManageError::BadRequest(
                "Proxy Cache Configuration already exists".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    state.usage.record(
        caller
            .event("create_proxy_cache_config")
            .namespace(&org)
            .detail("upstream_registry", config.registry.to_string()),
    );
    Ok((StatusCode::CREATED, Json(json!("Created"))).into_response())
}

/// `DELETE /api/v1/organization/{org}/proxycache`: Quay answers 201 `"Deleted"`; 404 when the
/// organization has none.
pub async fn delete(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Response, ManageError> {
    feature_enabled(&state)?;
    org_admin(&state, &caller, &org).await?;
    if !state.proxy_caches.delete(&org).await? {
        return Err(ManageError::NotFound(
            "organization has no proxy cache configuration".into(),
        ));
    }
    state
        .usage
        .record(caller.event("delete_proxy_cache_config").namespace(&org));
    Ok((StatusCode::CREATED, Json(json!("Deleted"))).into_response())
}

/// `POST /api/v1/organization/{org}/validateproxycache`: contacts the upstream with the given
/// credentials. 202 `"Valid"`, or `"Anonymous"` when no credentials were given and the
/// upstream asks for some; 400 with Quay's message (and the reason) otherwise.
pub async fn validate(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
    body: Body,
) -> Result<Response, ManageError> {
    feature_enabled(&state)?;
    org_admin(&state, &caller, &org).await?;
    let config = config_of(body, &org).await?;
    match validate_upstream(&config).await {
        Ok(Validation::Valid) => Ok((StatusCode::ACCEPTED, Json(json!("Valid"))).into_response()),
        Ok(Validation::Anonymous) => {
            Ok((StatusCode::ACCEPTED, Json(json!("Anonymous"))).into_response())
        }
        Err(e) => Err(ManageError::BadRequest(format!("{FAILED_LOGIN} ({e})"))),
    }
}
