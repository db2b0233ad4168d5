//! Signature trust (issue 19): trusted keys and trust policies of an organization (or user
//! namespace) and of a repository, and the signature verdict of a manifest.
//!
//! - `GET|POST /api/v1/organization/{org}/trust/keys`, `DELETE .../trust/keys/{id}`,
//!   `GET|PUT .../trust/policy`; the same under `/api/v1/repository/{ns}/{repo}/trust/...`.
//! - `GET /api/v1/repository/{ns}/{repo}/manifest/{digest}/signatures` (berth's extension).
//!
//! Writes need admin on the namespace (superusers everywhere; a user administers their own
//! namespace) or on the repository; reads need membership of the organization (or admin) or
//! read access to the repository. Every decision goes through `Auth`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use oci::{Digest, RepoName};
use serde_json::{json, Value};

use super::repository::Ctx;
use super::{ApiCaller, ApiPath, ManageError};
use crate::app::AppState;
use crate::metadata::accounts::AccountKind;
use crate::metadata::trust::{Requirement, StoredKey, TrustScope};
use crate::trust::{KeyKind, Status};

/// A key as the API shows it (never its material).
fn key_json(k: &StoredKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "kind": k.kind.as_str(),
        "fingerprint": k.fingerprint,
        "description": k.description,
        "created": crate::api::dates::http_date(k.created_at),
    })
}

fn requirement_text(r: Requirement) -> &'static str {
    match r {
        Requirement::None => "none",
        Requirement::Verified => "verified",
    }
}

fn scope_text(scope: &TrustScope) -> String {
    match scope {
        TrustScope::Namespace(ns) => ns.clone(),
        TrustScope::Repository(r) => r.to_string(),
    }
}

/// A usage-log event about `scope`.
fn on_scope(event: crate::usage_log::Event, scope: &TrustScope) -> crate::usage_log::Event {
    match scope {
        TrustScope::Namespace(ns) => event.namespace(ns),
        TrustScope::Repository(r) => event.repository(r),
    }
}

/// Checks a new key's request body; the key to store, or 400 naming what is wrong.
fn new_key(scope: TrustScope, body: &Value) -> Result<StoredKey, ManageError> {
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    let name = text("name").ok_or_else(|| ManageError::BadRequest("name is required".into()))?;
    let kind = text("kind").ok_or_else(|| {
        ManageError::BadRequest("kind is required (\"cosign\" or \"notation\")".into())
    })?;
    let kind = KeyKind::parse(kind).ok_or_else(|| {
        ManageError::BadRequest(format!(
            "unknown kind {kind:?} (\"cosign\" or \"notation\")"
        ))
    })?;
    let field = match kind {
        KeyKind::Cosign => "public_key",
        KeyKind::Notation => "certificate",
    };
    let pem = text(field).ok_or_else(|| {
        ManageError::BadRequest(format!(
            "{field} is required for a {} key (PEM)",
            kind.as_str()
        ))
    })?;
    let mut key = crate::trust::new_key(scope, name, kind, pem)
        .map_err(|e| ManageError::BadRequest(e.to_string()))?;
    if let Some(description) = text("description") {
        if description.len() > 512 {
            return Err(ManageError::BadRequest(
                "the description is longer than 512 bytes".into(),
            ));
        }
        key.description = description.to_string();
    }
    Ok(key)
}

fn parse_requirement(body: &Value) -> Result<Requirement, ManageError> {
    match body.get("require").and_then(Value::as_str) {
        Some("verified") => Ok(Requirement::Verified),
        Some("none") => Ok(Requirement::None),
        _ => Err(ManageError::BadRequest(
            "require must be \"verified\" or \"none\"".into(),
        )),
    }
}

/// What the shared handlers need of a scope's permission checks.
struct Scoped<'a> {
    state: &'a AppState,
    caller: &'a ApiCaller,
    scope: TrustScope,
}

impl Scoped<'_> {
    async fn list_keys(&self) -> Result<Response, ManageError> {
        let keys = self.state.trust.store().trust_keys(&self.scope).await?;
        let keys: Vec<Value> = keys.iter().map(key_json).collect();
        Ok(Json(json!({ "keys": keys })).into_response())
    }

    async fn add_key(&self, body: &Value) -> Result<Response, ManageError> {
        let key = new_key(self.scope.clone(), body)?;
        match self.state.trust.store().add_trust_key(&key).await {
            Err(crate::metadata::MetadataError::Conflict) => {
                return Err(ManageError::Conflict(format!(
                    "a key named {:?} already exists here",
                    key.name
                )))
            }
            other => other?,
        }
        tracing::info!(scope = %scope_text(&self.scope), key = %key.name,
            fingerprint = %key.fingerprint, "trusted key added");
        self.state.usage.record(on_scope(
            self.caller
                .event("add_trust_key")
                .detail("name", key.name.as_str())
                .detail("kind", key.kind.as_str())
                .detail("fingerprint", key.fingerprint.as_str())
                .detail("scope", scope_text(&self.scope)),
            &self.scope,
        ));
        Ok((StatusCode::CREATED, Json(key_json(&key))).into_response())
    }

    async fn delete_key(&self, id: &str) -> Result<Response, ManageError> {
        let store = self.state.trust.store();
        let known = store
            .trust_keys(&self.scope)
            .await?
            .into_iter()
            .find(|k| k.id == id);
        let Some(key) = known else {
            return Err(ManageError::NotFound(format!("no trusted key {id}")));
        };
        if !store.delete_trust_key(&self.scope, id).await? {
            return Err(ManageError::NotFound(format!("no trusted key {id}")));
        }
        tracing::info!(scope = %scope_text(&self.scope), key = %key.name, "trusted key deleted");
        self.state.usage.record(on_scope(
            self.caller
                .event("delete_trust_key")
                .detail("name", key.name.as_str())
                .detail("kind", key.kind.as_str())
                .detail("fingerprint", key.fingerprint.as_str())
                .detail("scope", scope_text(&self.scope)),
            &self.scope,
        ));
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn get_policy(&self) -> Result<Response, ManageError> {
        let require = self.state.trust.store().trust_policy(&self.scope).await?;
        Ok(Json(json!({ "require": requirement_text(require) })).into_response())
    }

    async fn put_policy(&self, body: &Value) -> Result<Response, ManageError> {
        let require = parse_requirement(body)?;
        let store = self.state.trust.store();
        store.set_trust_policy(&self.scope, require).await?;
        tracing::info!(scope = %scope_text(&self.scope), require = requirement_text(require),
            "trust policy changed");
        self.state.usage.record(on_scope(
            self.caller
                .event("change_trust_policy")
                .detail("require", requirement_text(require))
                .detail("scope", scope_text(&self.scope)),
            &self.scope,
        ));
        Ok(Json(json!({ "require": requirement_text(require) })).into_response())
    }
}

/// Parses a JSON body of an organization endpoint.
fn json_of(body: &[u8]) -> Result<Value, ManageError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ManageError::BadRequest(format!("invalid JSON body: {e}")))
}

/// The namespace scope, if the caller may act on it: writes need admin, reads membership
/// (or admin). Whoever may not gets the same 403 whether the namespace exists or not.
async fn namespace_scope<'a>(
    state: &'a AppState,
    caller: &'a ApiCaller,
    org: &str,
    write: bool,
) -> Result<Scoped<'a>, ManageError> {
    let who = caller.required()?;
    let auth = &state.auth;
    let mut allowed = auth.is_namespace_admin(who, org).await?;
    if !allowed && !write {
        let members = auth.accounts().organization_members(org).await?;
        allowed = members.iter().any(|m| m.id == who.id);
    }
    if !allowed {
        return Err(ManageError::Forbidden);
    }
    match auth.accounts().account(org).await? {
        Some(a) if matches!(a.kind, AccountKind::Organization | AccountKind::User) => {}
        _ => return Err(ManageError::NotFound(format!("namespace {org} not found"))),
    }
    Ok(Scoped {
        state,
        caller,
        scope: TrustScope::Namespace(org.to_string()),
    })
}

/// `GET /api/v1/organization/{org}/trust/keys`.
pub async fn org_keys(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Response, ManageError> {
    namespace_scope(&state, &caller, &org, false)
        .await?
        .list_keys()
        .await
}

/// `POST /api/v1/organization/{org}/trust/keys`.
pub async fn org_add_key(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
    body: axum::body::Body,
) -> Result<Response, ManageError> {
    let body = super::read_body(body).await?;
    let scoped = namespace_scope(&state, &caller, &org, true).await?;
    scoped.add_key(&json_of(&body)?).await
}

/// `DELETE /api/v1/organization/{org}/trust/keys/{id}`.
pub async fn org_delete_key(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, id)): ApiPath<(String, String)>,
) -> Result<Response, ManageError> {
    namespace_scope(&state, &caller, &org, true)
        .await?
        .delete_key(&id)
        .await
}

/// `GET /api/v1/organization/{org}/trust/policy`.
pub async fn org_policy(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Response, ManageError> {
    namespace_scope(&state, &caller, &org, false)
        .await?
        .get_policy()
        .await
}

/// `PUT /api/v1/organization/{org}/trust/policy`.
pub async fn org_put_policy(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
    body: axum::body::Body,
) -> Result<Response, ManageError> {
    let body = super::read_body(body).await?;
    let scoped = namespace_scope(&state, &caller, &org, true).await?;
    scoped.put_policy(&json_of(&body)?).await
}

/// The repository-level endpoints, reached through `repository::dispatch`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RepoTrust {
    Keys,
    Key(String),
    Policy,
}

impl Ctx<'_> {
    /// `.../trust/keys`, `.../trust/keys/{id}` and `.../trust/policy` of a repository.
    pub(super) async fn repository_trust(
        &self,
        repo: &RepoName,
        what: RepoTrust,
        method: &axum::http::Method,
        body: impl FnOnce() -> Result<Value, ManageError>,
    ) -> Result<Response, ManageError> {
        use axum::http::Method;
        let write = !matches!(*method, Method::GET | Method::HEAD);
        if write {
            self.require_admin(repo).await?;
        } else {
            self.require_read(repo).await?;
        }
        let scoped = Scoped {
            state: self.state,
            caller: self.caller,
            scope: TrustScope::Repository(repo.clone()),
        };
        match (what, method.clone()) {
            (RepoTrust::Keys, Method::GET) => scoped.list_keys().await,
            (RepoTrust::Keys, Method::POST) => scoped.add_key(&body()?).await,
            (RepoTrust::Key(id), Method::DELETE) => scoped.delete_key(&id).await,
            (RepoTrust::Policy, Method::GET) => scoped.get_policy().await,
            (RepoTrust::Policy, Method::PUT) => scoped.put_policy(&body()?).await,
            (_, m) => Err(ManageError::BadRequest(format!(
                "method {m} is not allowed here"
            ))),
        }
    }

    /// `GET .../manifest/{digest}/signatures`: the verdict of a manifest and every check.
    pub(super) async fn signatures(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Response, ManageError> {
        self.require_read(repo).await?;
        let store = self.state.trust.store();
        let found = store
            .verdicts(repo, std::slice::from_ref(digest))
            .await?
            .into_iter()
            .next();
        let body = match found {
            Some(v) => json!({
                "status": v.verdict.status.as_str(),
                "keys": v.verdict.keys,
                "current": v.current,
                "checks": v.verdict.checks,
            }),
            None => json!({
                "status": Status::Unsigned.as_str(),
                "keys": [],
                "current": true,
                "checks": [],
            }),
        };
        Ok(Json(body).into_response())
    }

    /// The `signature` object of each digest (`unsigned` when never signed), read in one batch.
    pub(super) async fn signature_objects(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<std::collections::HashMap<Digest, Value>, ManageError> {
        let found = self.state.trust.store().verdicts(repo, digests).await?;
        Ok(found
            .into_iter()
            .map(|v| {
                (
                    v.digest,
                    json!({ "status": v.verdict.status.as_str(), "keys": v.verdict.keys }),
                )
            })
            .collect())
    }
}

/// The `signature` object of a manifest never signed.
pub(super) fn unsigned_object() -> Value {
    json!({ "status": Status::Unsigned.as_str(), "keys": [] })
}
