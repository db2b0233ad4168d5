//! Quay's repository state and mirroring endpoints (issue 20):
//! `PUT /api/v1/repository/{repo}/changestate` (also at `.../changerepostate`), and `GET|POST|PUT .../mirror`,
//! `POST .../mirror/sync-now`, `POST .../mirror/sync-cancel` while `FEATURE_REPO_MIRROR` is on
//! (otherwise they do not exist, as Quay's `show_if`). Repository admins and superusers only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use oci::RepoName;
use serde_json::{json, Map, Value};

use super::repository::Ctx;
use super::ManageError;
use crate::metadata::accounts::{AccountKind, Grantee, RepoState, Role};
use crate::metadata::mirror::{MirrorRecord, MirrorSettings};
use crate::metadata::{now_millis, MetadataError};
use crate::mirror::{check_external_reference, format_date, parse_start_date};

/// What a `.../mirror` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorTarget {
    Config,
    SyncNow,
    SyncCancel,
}

fn bad(message: impl Into<String>) -> ManageError {
    ManageError::BadRequest(message.into())
}

impl Ctx<'_> {
    /// `PUT .../changestate` (or `.../changerepostate`) with `{"state": "NORMAL" | "READ_ONLY" | "MIRROR"}`.
    pub(super) async fn change_state(
        &self,
        repo: &RepoName,
        body: Value,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let name = body
            .get("state")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("state (a string) is required"))?;
        let state = RepoState::parse(name);
        if state == Some(RepoState::Mirror) && !self.state.settings().repo_mirror {
            return Err(bad(format!("Unknown Repository State: {name}")));
        }
        let state = state.ok_or_else(|| bad(format!("{name} is not a valid Repository state.")))?;
        if !self
            .state
            .auth
            .accounts()
            .set_repository_state(repo, state)
            .await?
        {
            return Err(ManageError::NotFound(format!(
                "repository {repo} not found"
            )));
        }
        self.record(
            self.caller
                .event("change_repo_state")
                .repository(repo)
                .detail("state_changed", state.as_str()),
        );
        Ok(Json(json!({ "success": true })).into_response())
    }

    /// Every `.../mirror` request.
    pub(super) async fn mirror(
        &self,
        repo: &RepoName,
        target: MirrorTarget,
        method: &axum::http::Method,
        body: impl FnOnce() -> Result<Value, ManageError>,
    ) -> Result<Response, ManageError> {
        use axum::http::Method;
        if !self.state.settings().repo_mirror {
            return Err(ManageError::NotFound("not found".into()));
        }
        self.require_admin(repo).await?;
        match (target, method) {
            (MirrorTarget::Config, &Method::GET) => self.get_mirror(repo).await,
            (MirrorTarget::Config, &Method::POST) => self.create_mirror(repo, body()?).await,
            (MirrorTarget::Config, &Method::PUT) => self.update_mirror(repo, body()?).await,
            (MirrorTarget::SyncNow, &Method::POST) => self.sync_now(repo).await,
            (MirrorTarget::SyncCancel, &Method::POST) => self.sync_cancel(repo).await,
            (_, m) => Err(bad(format!("method {m} is not allowed here"))),
        }
    }

    async fn existing_mirror(&self, repo: &RepoName) -> Result<MirrorRecord, ManageError> {
        self.state
            .mirrors
            .store()
            .mirror(repo)
            .await?
            .ok_or_else(|| {
                ManageError::NotFound(format!("repository {repo} has no mirror configuration"))
            })
    }

    async fn get_mirror(&self, repo: &RepoName) -> Result<Response, ManageError> {
        Ok(Json(mirror_json(&self.existing_mirror(repo).await?)).into_response())
    }

    async fn create_mirror(&self, repo: &RepoName, body: Value) -> Result<Response, ManageError> {
        let body = object(&body)?;
        // Checked first, as Quay does, so a second POST grants the robot nothing.
        if self.state.mirrors.store().mirror(repo).await?.is_some() {
            return Err(already_exists(repo));
        }
        for key in [
            "external_reference",
            "sync_interval",
            "sync_start_date",
            "root_rule",
            "robot_username",
        ] {
            if !body.contains_key(key) {
                return Err(bad(format!("'{key}' is a required property")));
            }
        }
        let external_reference = reference(body)?.expect("checked above");
        let (username, password) = match (
            optional_string(body, "external_registry_username")?,
            optional_string(body, "external_registry_password")?,
        ) {
            (None, Some(_)) => {
                return Err(bad(
                    "Unable to set a new password without also specifying a username.",
                ))
            }
            pair => pair,
        };
        let registry_config = registry_config(None, body.get("external_registry_config"))?
            .unwrap_or_else(|| json!({}));
        let settings = MirrorSettings {
            is_enabled: optional_bool(body, "is_enabled")?.unwrap_or(true),
            external_reference,
            robot_id: Some(self.mirror_robot(repo, body).await?.expect("checked above")),
            registry_username: username,
            registry_password_sealed: password
                .map(|p| self.state.mirrors.seal_password(repo, &p))
                .transpose()
                .map_err(|e| ManageError::Internal(Box::new(e)))?,
            registry_config: registry_config.to_string(),
            rule_value: root_rule(body)?.expect("checked above"),
            sync_interval: interval(body)?.expect("checked above"),
            sync_start_date: start_date(body)?.expect("checked above"),
        };
        match self
            .state
            .mirrors
            .store()
            .create_mirror(repo, &settings)
            .await
        {
            Ok(()) => {}
            Err(MetadataError::Conflict) => return Err(already_exists(repo)),
            Err(e) => return Err(e.into()),
        }
        self.record(
            self.caller
                .event("repo_mirror_config_changed")
                .repository(repo)
                .detail("changed", "external_reference")
                .detail("to", settings.external_reference.as_str()),
        );
        if settings.is_enabled {
            self.record(self.caller.event("repo_mirror_enabled").repository(repo));
        }
        self.state.mirrors.wake();
        Ok((StatusCode::CREATED, "").into_response())
    }

    async fn update_mirror(&self, repo: &RepoName, body: Value) -> Result<Response, ManageError> {
        let body = object(&body)?;
        let before = self.existing_mirror(repo).await?;
        let mut next = before.settings.clone();
        // Every value is checked before anything is written, so a refused request changes
        // nothing.
        let mut changes: Vec<(&'static str, Value)> = Vec::new();
        if let Some(enabled) = optional_bool(body, "is_enabled")? {
            next.is_enabled = enabled;
        }
        if let Some(reference) = reference(body)? {
            changes.push(("external_reference", json!(reference)));
            next.external_reference = reference;
        }
        if let Some(robot) = self.mirror_robot(repo, body).await? {
            changes.push(("robot_username", body["robot_username"].clone()));
            next.robot_id = Some(robot);
        }
        if let Some(start) = start_date(body)? {
            changes.push(("sync_start_date", json!(format_date(start))));
            next.sync_start_date = start;
        }
        if let Some(interval) = interval(body)? {
            changes.push(("sync_interval", json!(interval)));
            next.sync_interval = interval;
        }
        match (
            body.contains_key("external_registry_username"),
            body.contains_key("external_registry_password"),
        ) {
            (true, true) => {
                let username = optional_string(body, "external_registry_username")?;
                let password = optional_string(body, "external_registry_password")?;
                if username.is_none() && password.is_some() {
                    return Err(bad("Unable to delete username while setting a password."));
                }
                changes.push(("external_registry_username", json!(username)));
                changes.push((
                    "external_registry_password",
                    json!(password.as_ref().map(|_| "********")),
                ));
                next.registry_username = username;
                next.registry_password_sealed = password
                    .map(|p| self.state.mirrors.seal_password(repo, &p))
                    .transpose()
                    .map_err(|e| ManageError::Internal(Box::new(e)))?;
            }
            (true, false) => {
                let username = optional_string(body, "external_registry_username")?;
                changes.push(("external_registry_username", json!(username)));
                next.registry_username = username;
            }
            (false, true) => {
                return Err(bad(
                    "Unable to set a new password without also specifying a username.",
                ))
            }
            (false, false) => {}
        }
        let current: Value =
            serde_json::from_str(&before.settings.registry_config).unwrap_or_else(|_| json!({}));
        if let Some(config) = registry_config(Some(&current), body.get("external_registry_config"))?
        {
            changes.push(("external_registry_config", config.clone()));
            next.registry_config = config.to_string();
        }
        if let Some(rule) = root_rule(body)? {
            changes.push(("mirror_rule", json!(rule)));
            next.rule_value = rule;
        }
        if !self
            .state
            .mirrors
            .store()
            .update_mirror(repo, &next)
            .await?
        {
            return Err(ManageError::NotFound(format!(
                "repository {repo} has no mirror configuration"
            )));
        }
        if next.is_enabled != before.settings.is_enabled {
            let kind = if next.is_enabled {
                "repo_mirror_enabled"
            } else {
                "repo_mirror_disabled"
            };
            self.record(self.caller.event(kind).repository(repo));
        }
        for (changed, to) in changes {
            self.record(
                self.caller
                    .event("repo_mirror_config_changed")
                    .repository(repo)
                    .detail("changed", changed)
                    .detail("to", to),
            );
        }
        self.state.mirrors.wake();
        Ok((StatusCode::CREATED, "").into_response())
    }

    async fn sync_now(&self, repo: &RepoName) -> Result<Response, ManageError> {
        if !self
            .state
            .mirrors
            .store()
            .request_mirror_sync(repo, now_millis())
            .await?
        {
            return Err(ManageError::NotFound(format!(
                "repository {repo} has no mirror configuration, or a sync is running"
            )));
        }
        self.record(
            self.caller
                .event("repo_mirror_sync_now_requested")
                .repository(repo),
        );
        self.state.mirrors.wake();
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn sync_cancel(&self, repo: &RepoName) -> Result<Response, ManageError> {
        if !self.state.mirrors.store().cancel_mirror_sync(repo).await? {
            return Err(ManageError::NotFound(format!(
                "repository {repo} has no sync to cancel"
            )));
        }
        self.record(
            self.caller
                .event("repo_mirror_config_changed")
                .repository(repo)
                .detail("changed", "sync_status")
                .detail("to", "SYNC_CANCEL"),
        );
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    /// The `robot_username` of `body`, if present: a robot of the repository's namespace,
    /// given write on the repository when it has less (as Quay does).
    async fn mirror_robot(
        &self,
        repo: &RepoName,
        body: &Map<String, Value>,
    ) -> Result<Option<i64>, ManageError> {
        let Some(value) = body.get("robot_username") else {
            return Ok(None);
        };
        let name = value
            .as_str()
            .ok_or_else(|| bad("robot_username: expected a string"))?;
        let accounts = self.state.auth.accounts();
        let robot = accounts
            .account(name)
            .await?
            .filter(|a| a.kind == AccountKind::Robot)
            .ok_or_else(|| bad(format!("Could not find robot with username: {name}")))?;
        if robot.namespace.as_deref() != Some(repo.namespace()) {
            return Err(bad("Invalid robot"));
        }
        if accounts
            .granted_role(robot.id, repo)
            .await?
            .is_none_or(|role| role < Role::Write)
        {
            accounts
                .set_permission(repo, &Grantee::Account(robot.name.clone()), Role::Write)
                .await?;
        }
        Ok(Some(robot.id))
    }
}

/// Quay's 409 (with its spelling).
fn already_exists(repo: &RepoName) -> ManageError {
    ManageError::Conflict(format!(
        "Mirror configuration already exits for repository {repo}"
    ))
}

/// Quay's `ViewMirrorConfig`, never with the password.
fn mirror_json(m: &MirrorRecord) -> Value {
    let config: Value =
        serde_json::from_str(&m.settings.registry_config).unwrap_or_else(|_| json!({}));
    json!({
        "is_enabled": m.settings.is_enabled,
        "mirror_type": "PULL",
        "external_reference": m.settings.external_reference,
        "external_registry_username": m.settings.registry_username,
        "external_registry_config": config,
        "sync_interval": m.settings.sync_interval,
        "sync_start_date": format_date(m.settings.sync_start_date),
        "sync_expiration_date": m.sync_expiration_date.map(format_date),
        "sync_retries_remaining": m.sync_retries_remaining,
        "sync_status": m.sync_status.as_str(),
        "root_rule": { "rule_kind": "tag_glob_csv", "rule_value": m.settings.rule_value },
        "robot_username": m.robot_username,
        "last_sync": m.last_sync_at.map(format_date),
        "sync_log": m
            .last_sync_log
            .as_deref()
            .and_then(|log| serde_json::from_str::<Value>(log).ok()),
    })
}

fn object(body: &Value) -> Result<&Map<String, Value>, ManageError> {
    body.as_object()
        .ok_or_else(|| bad("the request body must be a JSON object"))
}

fn optional_bool(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, ManageError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(format!("{key}: expected a boolean"))),
    }
}

/// A string that may be null (absent and null are both `None`).
fn optional_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ManageError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 4096 => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(bad(format!("{key}: longer than 4096 bytes"))),
        Some(_) => Err(bad(format!("{key}: expected a string or null"))),
    }
}

fn reference(body: &Map<String, Value>) -> Result<Option<String>, ManageError> {
    let Some(value) = body.get("external_reference") else {
        return Ok(None);
    };
    let reference = value
        .as_str()
        .ok_or_else(|| bad("external_reference: expected a string"))?;
    check_external_reference(reference).map_err(bad)?;
    Ok(Some(reference.to_string()))
}

fn interval(body: &Map<String, Value>) -> Result<Option<i64>, ManageError> {
    let Some(value) = body.get("sync_interval") else {
        return Ok(None);
    };
    match value.as_i64() {
        Some(n) if n >= 0 => Ok(Some(n)),
        Some(n) => Err(bad(format!(
            "sync_interval: {n} is less than the minimum of 0"
        ))),
        None => Err(bad(format!(
            "sync_interval: {value} is not of type 'integer'"
        ))),
    }
}

fn start_date(body: &Map<String, Value>) -> Result<Option<i64>, ManageError> {
    let Some(value) = body.get("sync_start_date") else {
        return Ok(None);
    };
    value
        .as_str()
        .and_then(parse_start_date)
        .map(Some)
        .ok_or_else(|| bad("Incorrect DateTime format for sync_start_date."))
}

/// The globs of `root_rule`, if present.
fn root_rule(body: &Map<String, Value>) -> Result<Option<Vec<String>>, ManageError> {
    let Some(rule) = body.get("root_rule") else {
        return Ok(None);
    };
    let rule = rule
        .as_object()
        .ok_or_else(|| bad("root_rule: expected an object"))?;
    for key in ["rule_kind", "rule_value"] {
        if !rule.contains_key(key) {
            return Err(bad(format!("root_rule: '{key}' is a required property")));
        }
    }
    if rule["rule_kind"] != "tag_glob_csv" {
        return Err(bad("validation failed: rule_kind must be \"tag_glob_csv\""));
    }
    let globs: Option<Vec<String>> = rule["rule_value"].as_array().and_then(|values| {
        values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    match globs {
        Some(globs)
            if !globs.is_empty()
                && globs.len() <= 256
                && globs.iter().all(|g| !g.is_empty() && g.len() <= 256) =>
        {
            Ok(Some(globs))
        }
        _ => Err(bad(
            "validation failed: rule_value for TAG_GLOB_CSV must be a list with at least one rule",
        )),
    }
}

/// `external_registry_config` merged into `current` (Quay changes only the keys given), or
/// `None` when the body has none.
fn registry_config(
    current: Option<&Value>,
    given: Option<&Value>,
) -> Result<Option<Value>, ManageError> {
    let Some(given) = given else {
        return Ok(None);
    };
    let given = given
        .as_object()
        .ok_or_else(|| bad("external_registry_config: expected an object"))?;
    let mut out = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for key in ["verify_tls", "unsigned_images"] {
        match given.get(key) {
            None => {}
            Some(Value::Bool(b)) => {
                out.insert(key.into(), json!(b));
            }
            Some(_) => {
                return Err(bad(format!(
                    "external_registry_config.{key}: expected a boolean"
                )))
            }
        }
    }
    if let Some(proxy) = given.get("proxy") {
        let proxy = proxy
            .as_object()
            .ok_or_else(|| bad("external_registry_config.proxy: expected an object"))?;
        let mut merged = out
            .get("proxy")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for key in ["http_proxy", "https_proxy", "no_proxy"] {
            match proxy.get(key) {
                None => {}
                Some(v @ (Value::Null | Value::String(_))) => {
                    if v.as_str().is_some_and(|s| s.len() > 4096) {
                        return Err(bad(format!(
                            "external_registry_config.proxy.{key}: longer than 4096 bytes"
                        )));
                    }
                    merged.insert(key.into(), v.clone());
                }
                Some(_) => {
                    return Err(bad(format!(
                        "external_registry_config.proxy.{key}: expected a string or null"
                    )))
                }
            }
        }
        out.insert("proxy".into(), Value::Object(merged));
    }
    Ok(Some(Value::Object(out)))
}
