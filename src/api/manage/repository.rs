//! `/api/v1/repository`: list, create, get, delete, change visibility, tags, permissions.

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use oci::{Digest, RepoName, Tag};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiCaller, JsonBody, ManageError};
use crate::app::AppState;
use crate::metadata::accounts::{AccountKind, Grantee, Role};

fn repo_json(info: &crate::metadata::accounts::RepositoryInfo) -> Value {
    let name = info.name.as_str();
    let (ns, short) = name.split_once('/').unwrap_or((name, ""));
    json!({
        "namespace": ns,
        "name": short,
        "description": info.description,
        "is_public": info.public,
        "kind": "image",
        "state": info.state.as_str(),
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    namespace: Option<String>,
    public: Option<bool>,
}

/// `GET /api/v1/repository?namespace=`: repositories the caller may read, which the database
/// selects (see `Auth::reader`).
pub async fn list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ManageError> {
    let readable = state
        .auth
        .readable_repositories(caller.0.as_ref(), q.namespace.as_deref(), None, u32::MAX)
        .await?;
    let repos: Vec<Value> = readable
        .iter()
        .filter(|info| q.public.is_none_or(|p| p == info.public))
        .map(repo_json)
        .collect();
    Ok(Json(json!({ "repositories": repos })))
}

#[derive(Deserialize)]
pub struct CreateBody {
    namespace: String,
    repository: String,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

fn parse_repo(s: &str) -> Result<RepoName, ManageError> {
    s.parse()
        .map_err(|e| ManageError::BadRequest(format!("repository name {s:?}: {e}")))
}

/// `POST /api/v1/repository`.
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ManageError> {
    let who = caller.required()?;
    let repo = parse_repo(&format!("{}/{}", body.namespace, body.repository))?;
    let public = match body.visibility.as_deref() {
        None | Some("private") => false,
        Some("public") => true,
        Some(other) => {
            return Err(ManageError::BadRequest(format!(
                "visibility {other:?} is not public or private"
            )))
        }
    };
    let accounts = state.auth.accounts();
    // A caller who may not create there gets the same 403 whether the namespace exists or
    // not; only one who could (a superuser) learns that it is missing.
    if !state
        .auth
        .may_create_configured_in(who, repo.namespace())
        .await?
    {
        return Err(ManageError::Forbidden);
    }
    if accounts.account(repo.namespace()).await?.is_none() {
        return Err(ManageError::NotFound(format!(
            "namespace {} does not exist",
            repo.namespace()
        )));
    }
    let creator = if state.auth.is_namespace_admin(who, repo.namespace()).await? {
        None
    } else {
        Some((who.id, Role::Admin))
    };
    let description = body.description.as_deref().unwrap_or("");
    accounts
        .create_repository(&repo, public, description, creator)
        .await
        .map_err(|e| match e {
            crate::metadata::MetadataError::Conflict => {
                ManageError::Conflict(format!("repository {repo} already exists"))
            }
            other => other.into(),
        })?;
    state.usage.record(
        caller
            .event("create_repo")
            .repository(&repo)
            .detail("visibility", if public { "public" } else { "private" }),
    );
    let (ns, short) = repo.as_str().split_once('/').unwrap_or((repo.as_str(), ""));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "namespace": ns, "name": short, "kind": "image" })),
    )
        .into_response())
}

/// What a `/api/v1/repository/...` path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Repository(RepoName),
    ChangeVisibility(RepoName),
    Tags(RepoName),
    Tag(RepoName, String),
    RestoreTag(RepoName, String),
    Permissions(RepoName, &'static str),
    Permission(RepoName, &'static str, String),
    Notifications(RepoName),
    Notification(RepoName, String),
    TestNotification(RepoName, String),
    Trust(RepoName, super::trust::RepoTrust),
    Signatures(RepoName, Digest),
    /// `.../logs` (false) or `.../aggregatelogs` (true).
    Logs(RepoName, bool),
    ChangeState(RepoName),
    Mirror(RepoName, super::mirror::MirrorTarget),
}

/// Parses the path after `/api/v1/repository/`, reading resource words from the end since
/// names contain `/`.
fn parse_target(rest: &str) -> Result<Target, ManageError> {
    let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let trailing_slash = rest.ends_with('/');
    let n = segs.len();
    let name = |k: usize| parse_repo(&segs[..k].join("/"));
    // An account or a tag is named after its resource word, so these come before the
    // one-word resources: `.../permissions/user/mirror` is a user named `mirror`.
    for kind in ["user", "team"] {
        if n >= 4 && segs[n - 2] == "permissions" && segs[n - 1] == kind {
            return Ok(Target::Permissions(name(n - 2)?, kind));
        }
        if n >= 5 && segs[n - 3] == "permissions" && segs[n - 2] == kind {
            return Ok(Target::Permission(
                name(n - 3)?,
                kind,
                segs[n - 1].to_string(),
            ));
        }
    }
    if n >= 5 && segs[n - 3] == "tag" && segs[n - 1] == "restore" {
        return Ok(Target::RestoreTag(name(n - 3)?, segs[n - 2].to_string()));
    }
    if n >= 4 && segs[n - 2] == "tag" {
        return Ok(Target::Tag(name(n - 2)?, segs[n - 1].to_string()));
    }
    if n >= 3 && segs[n - 1] == "changevisibility" {
        return Ok(Target::ChangeVisibility(name(n - 1)?));
    }
    // Quay's path is `changestate` (its operation is `changeRepoState`, which some write as
    // the path); both are served.
    if n >= 3 && matches!(segs[n - 1], "changestate" | "changerepostate") {
        return Ok(Target::ChangeState(name(n - 1)?));
    }
    if n >= 3 && segs[n - 1] == "mirror" {
        return Ok(Target::Mirror(
            name(n - 1)?,
            super::mirror::MirrorTarget::Config,
        ));
    }
    if n >= 4 && segs[n - 2] == "mirror" && matches!(segs[n - 1], "sync-now" | "sync-cancel") {
        let what = if segs[n - 1] == "sync-now" {
            super::mirror::MirrorTarget::SyncNow
        } else {
            super::mirror::MirrorTarget::SyncCancel
        };
        return Ok(Target::Mirror(name(n - 2)?, what));
    }
    if n >= 3 && segs[n - 1] == "notification" && trailing_slash {
        return Ok(Target::Notifications(name(n - 1)?));
    }
    // A notification's segment must be a UUID, so a repository with a `notification`
    // component in its name stays reachable.
    let is_uuid = |s: &str| uuid::Uuid::parse_str(s).is_ok();
    if n >= 5 && segs[n - 3] == "notification" && segs[n - 1] == "test" && is_uuid(segs[n - 2]) {
        return Ok(Target::TestNotification(
            name(n - 3)?,
            segs[n - 2].to_string(),
        ));
    }
    if n >= 4 && segs[n - 2] == "notification" && is_uuid(segs[n - 1]) {
        return Ok(Target::Notification(name(n - 2)?, segs[n - 1].to_string()));
    }
    if n >= 4 && segs[n - 2] == "trust" && matches!(segs[n - 1], "keys" | "policy") {
        let what = match segs[n - 1] {
            "keys" => super::trust::RepoTrust::Keys,
            _ => super::trust::RepoTrust::Policy,
        };
        return Ok(Target::Trust(name(n - 2)?, what));
    }
    // A key's segment must be a UUID, as a notification's.
    if n >= 5 && segs[n - 3] == "trust" && segs[n - 2] == "keys" && is_uuid(segs[n - 1]) {
        return Ok(Target::Trust(
            name(n - 3)?,
            super::trust::RepoTrust::Key(segs[n - 1].to_string()),
        ));
    }
    if n >= 5 && segs[n - 3] == "manifest" && segs[n - 1] == "signatures" {
        if let Ok(digest) = segs[n - 2].parse::<Digest>() {
            return Ok(Target::Signatures(name(n - 3)?, digest));
        }
    }
    if n >= 3 && matches!(segs[n - 1], "logs" | "aggregatelogs") {
        return Ok(Target::Logs(name(n - 1)?, segs[n - 1] == "aggregatelogs"));
    }
    if n >= 3 && segs[n - 1] == "tag" && trailing_slash {
        return Ok(Target::Tags(name(n - 1)?));
    }
    Ok(Target::Repository(name(n)?))
}

/// Every `/api/v1/repository/<name>/...` request.
pub async fn dispatch(
    State(state): State<AppState>,
    caller: ApiCaller,
    method: Method,
    uri: Uri,
    body: axum::body::Body,
) -> Result<Response, ManageError> {
    let body = super::read_body(body).await?;
    let rest = uri.path().strip_prefix("/api/v1/repository/").unwrap_or("");
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let json_body = || -> Result<Value, ManageError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ManageError::BadRequest(format!("invalid JSON body: {e}")))
    };
    let target = parse_target(rest)?;
    let ctx = Ctx {
        state: &state,
        caller: &caller,
    };
    match (target, method) {
        (Target::Repository(r), Method::GET) => ctx.get(&r).await,
        (Target::Repository(r), Method::DELETE) => ctx.delete(&r).await,
        (Target::Repository(r), Method::PUT) => ctx.update(&r, json_body()?).await,
        (Target::ChangeVisibility(r), Method::POST) => {
            ctx.change_visibility(&r, json_body()?).await
        }
        (Target::Tags(r), Method::GET) => {
            let page = param("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1u32)
                .max(1);
            let limit = param("limit")
                .and_then(|p| p.parse().ok())
                .unwrap_or(50u32)
                .clamp(1, 100);
            let only_active = param("onlyActiveTags").is_none_or(|v| v != "false");
            ctx.tags(
                &r,
                page,
                limit,
                param("specificTag").or(param("filter_tag_name")),
                only_active,
            )
            .await
        }
        (Target::Tag(r, t), Method::DELETE) => ctx.delete_tag(&r, &t).await,
        (Target::Tag(r, t), Method::PUT) => ctx.move_tag(&r, &t, json_body()?).await,
        (Target::RestoreTag(r, t), Method::POST) => ctx.restore_tag(&r, &t, json_body()?).await,
        (Target::Permissions(r, kind), Method::GET) => ctx.permissions(&r, kind).await,
        (Target::Permission(r, kind, who), Method::GET) => ctx.permission(&r, kind, &who).await,
        (Target::Permission(r, kind, who), Method::PUT) => {
            ctx.grant(&r, kind, &who, json_body()?).await
        }
        (Target::Permission(r, kind, who), Method::DELETE) => ctx.revoke(&r, kind, &who).await,
        (Target::Notifications(r), Method::GET) => ctx.list_notifications(&r).await,
        (Target::Notifications(r), Method::POST) => ctx.create_notification(&r, json_body()?).await,
        (Target::Notification(r, id), Method::GET) => ctx.get_notification(&r, &id).await,
        (Target::Notification(r, id), Method::DELETE) => ctx.delete_notification(&r, &id).await,
        (Target::Notification(r, id), Method::POST) => ctx.reset_notification(&r, &id).await,
        (Target::TestNotification(r, id), Method::POST) => ctx.test_notification(&r, &id).await,
        (Target::Trust(r, what), m) => ctx.repository_trust(&r, what, &m, json_body).await,
        (Target::Signatures(r, digest), Method::GET) => ctx.signatures(&r, &digest).await,
        (Target::ChangeState(r), Method::PUT) => ctx.change_state(&r, json_body()?).await,
        (Target::Mirror(r, what), m) => ctx.mirror(&r, what, &m, json_body).await,
        (Target::Logs(r, aggregate), Method::GET) => {
            ctx.require_admin(&r).await?;
            super::logs::repository(&state, &r, aggregate, uri.query()).await
        }
        (_, m) => Err(ManageError::BadRequest(format!(
            "method {m} is not allowed here"
        ))),
    }
}

/// The tag of a path and the `manifest_digest` of a JSON body, as tag moves and restores take
/// them.
fn tag_and_digest(tag: &str, body: &Value) -> Result<(Tag, Digest), ManageError> {
    let tag: Tag = tag
        .parse()
        .map_err(|e| ManageError::BadRequest(format!("tag {tag:?}: {e}")))?;
    let digest: Digest = body
        .get("manifest_digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ManageError::BadRequest("manifest_digest is required".into()))?
        .parse()
        .map_err(|e| ManageError::BadRequest(format!("manifest_digest: {e}")))?;
    Ok((tag, digest))
}

pub(super) struct Ctx<'a> {
    pub(super) state: &'a AppState,
    pub(super) caller: &'a ApiCaller,
}

impl Ctx<'_> {
    pub(super) fn record(&self, event: crate::usage_log::Event) {
        self.state.usage.record(event);
    }

    fn credential(&self) -> crate::auth::Credential {
        match &self.caller.0 {
            Some(i) => crate::auth::Credential::Account(i.clone()),
            None => crate::auth::Credential::Anonymous,
        }
    }

    /// The repository's facts, if the caller may read it; a repository the caller may not
    /// read answers exactly like a missing one.
    async fn readable(
        &self,
        repo: &RepoName,
    ) -> Result<crate::metadata::accounts::RepositoryInfo, ManageError> {
        // Anonymous callers get 401 and signed-in callers 404 whether the repository is
        // missing or merely hidden from them, so probing reveals nothing.
        let hidden = || match self.caller.0 {
            None => ManageError::Unauthorized("authentication required".into()),
            Some(_) => ManageError::NotFound(format!("repository {repo} not found")),
        };
        let info = self
            .state
            .auth
            .accounts()
            .repository_info(repo)
            .await?
            .ok_or_else(hidden)?;
        if self.state.auth.may_see(&self.credential(), repo).await? {
            Ok(info)
        } else {
            Err(hidden())
        }
    }

    /// `Ok` if the caller may read the repository (as [`Ctx::readable`] answers otherwise).
    pub(super) async fn require_read(&self, repo: &RepoName) -> Result<(), ManageError> {
        self.readable(repo).await.map(|_| ())
    }

    pub(super) async fn require_admin(&self, repo: &RepoName) -> Result<(), ManageError> {
        self.readable(repo).await?;
        let who = self.caller.required()?;
        if self.state.auth.is_repo_admin(who, repo).await? {
            Ok(())
        } else {
            Err(ManageError::Forbidden)
        }
    }

    /// `Ok` if the caller may change the repository's content (push rights, and a state that
    /// allows changes).
    async fn require_write(&self, repo: &RepoName) -> Result<(), ManageError> {
        self.readable(repo).await?;
        let actions = self
            .state
            .auth
            .live_actions(self.caller.0.as_ref(), repo)
            .await?;
        if actions.push {
            match crate::mirror::content_refusal(self.state, None, repo).await? {
                Some(why) => Err(ManageError::Denied(why)),
                None => Ok(()),
            }
        } else if self.caller.0.is_none() {
            Err(ManageError::Unauthorized("authentication required".into()))
        } else {
            Err(ManageError::Forbidden)
        }
    }

    /// Tags of a proxy cache follow its upstream: none is moved or restored by hand.
    async fn refuse_in_proxy_cache(&self, repo: &RepoName) -> Result<(), ManageError> {
        match crate::proxy::push_refusal(self.state, None, repo).await? {
            Some(why) => Err(ManageError::Denied(why)),
            None => Ok(()),
        }
    }

    async fn get(&self, repo: &RepoName) -> Result<Response, ManageError> {
        let info = self.readable(repo).await?;
        let mut v = repo_json(&info);
        if let Some(who) = &self.caller.0 {
            let actions = self.state.auth.live_actions(Some(who), repo).await?;
            v["can_write"] = json!(actions.push);
            v["can_admin"] = json!(self.state.auth.is_repo_admin(who, repo).await?);
        }
        Ok(Json(v).into_response())
    }

    async fn delete(&self, repo: &RepoName) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        self.state.auth.accounts().delete_repository(repo).await?;
        self.record(self.caller.event("delete_repo").repository(repo));
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn update(&self, repo: &RepoName, body: Value) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let description = body
            .get("description")
            .and_then(Value::as_str)
            .ok_or_else(|| ManageError::BadRequest("description (a string) is required".into()))?;
        if description.len() > 64 * 1024 {
            return Err(ManageError::BadRequest(
                "description is longer than 64 KiB".into(),
            ));
        }
        self.state
            .auth
            .accounts()
            .set_description(repo, description)
            .await?;
        Ok(Json(json!({ "success": true })).into_response())
    }

    async fn change_visibility(
        &self,
        repo: &RepoName,
        body: Value,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let public = match body.get("visibility").and_then(Value::as_str) {
            Some("public") => true,
            Some("private") => false,
            _ => {
                return Err(ManageError::BadRequest(
                    "visibility must be public or private".into(),
                ))
            }
        };
        self.state
            .auth
            .accounts()
            .set_visibility(repo, public)
            .await?;
        self.record(
            self.caller
                .event("change_repo_visibility")
                .repository(repo)
                .detail("visibility", if public { "public" } else { "private" }),
        );
        Ok(Json(json!({ "success": true })).into_response())
    }

    async fn tags(
        &self,
        repo: &RepoName,
        page: u32,
        limit: u32,
        filter: Option<&str>,
        only_active: bool,
    ) -> Result<Response, ManageError> {
        self.readable(repo).await?;
        let offset = (page - 1).saturating_mul(limit);
        let mut rows = self
            .state
            .registry
            .tag_details(
                repo,
                &crate::metadata::TagQuery {
                    filter,
                    cosign_tags: true,
                    offset,
                    limit: limit + 1,
                },
            )
            .await?;
        let has_additional = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let digests: Vec<Digest> = rows.iter().map(|t| t.digest.clone()).collect();
        let signatures = self.signature_objects(repo, &digests).await?;
        let mut tags: Vec<Value> = rows
            .iter()
            .map(|t| {
                json!({
                    "signature": signatures
                        .get(&t.digest)
                        .cloned()
                        .unwrap_or_else(super::trust::unsigned_object),
                    "name": t.name,
                    "manifest_digest": t.digest,
                    "size": t.total_size,
                    "last_modified": crate::api::dates::http_date(t.updated_at),
                    "start_ts": t.updated_at / 1000,
                    "is_manifest_list": oci::media_type::is_index(&t.media_type),
                    "media_type": t.media_type,
                    "kind": t.kind,
                    "reversion": false,
                })
            })
            .collect();
        if !only_active && page == 1 {
            // Quay lists where tags pointed before, with an end time, after the active ones:
            // what `restore` can bring back within DEFAULT_TAG_EXPIRATION.
            let tag = filter.and_then(|f| f.parse::<Tag>().ok());
            let history = self
                .state
                .registry
                .tag_history(repo, tag.as_ref(), limit)
                .await?;
            tags.extend(
                history
                    .iter()
                    .filter(|h| filter.is_none_or(|f| h.name.contains(f)))
                    .map(|h| {
                        json!({
                            "name": h.name,
                            "manifest_digest": h.digest,
                            "start_ts": h.started_at / 1000,
                            "end_ts": h.ended_at / 1000,
                            "last_modified": crate::api::dates::http_date(h.ended_at),
                            "reversion": false,
                        })
                    }),
            );
        }
        Ok(
            Json(json!({ "tags": tags, "page": page, "has_additional": has_additional }))
                .into_response(),
        )
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &str) -> Result<Response, ManageError> {
        self.require_write(repo).await?;
        let tag: Tag = tag
            .parse()
            .map_err(|_| ManageError::NotFound(format!("tag {tag} not found")))?;
        self.state
            .registry
            .delete_manifest(repo, &oci::Reference::Tag(tag.clone()))
            .await
            .map_err(|_| ManageError::NotFound(format!("tag {tag} not found")))?;
        self.record(
            self.caller
                .event("delete_tag")
                .repository(repo)
                .detail("tag", tag.as_str()),
        );
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    async fn move_tag(
        &self,
        repo: &RepoName,
        tag: &str,
        body: Value,
    ) -> Result<Response, ManageError> {
        self.require_write(repo).await?;
        self.refuse_in_proxy_cache(repo).await?;
        let (tag, digest) = tag_and_digest(tag, &body)?;
        let before = match self
            .state
            .registry
            .get_manifest(repo, &oci::Reference::Tag(tag.clone()))
            .await
        {
            Ok(m) => Some(m.digest),
            Err(crate::registry::RegistryError::ManifestUnknown) => None,
            Err(e) => return Err(e.into()),
        };
        if !self.state.registry.move_tag(repo, &tag, &digest).await? {
            return Err(ManageError::NotFound(format!(
                "manifest {digest} not found in {repo}"
            )));
        }
        let event = match &before {
            Some(old) => self
                .caller
                .event("move_tag")
                .detail("original_manifest_digest", old.to_string()),
            None => self.caller.event("create_tag"),
        };
        self.record(
            event
                .repository(repo)
                .detail("tag", tag.as_str())
                .detail("manifest_digest", digest.to_string()),
        );
        Ok((StatusCode::CREATED, Json(json!("Updated"))).into_response())
    }

    /// Quay's `POST .../tag/{tag}/restore`: points the tag back at a manifest it pointed at
    /// within `DEFAULT_TAG_EXPIRATION`.
    async fn restore_tag(
        &self,
        repo: &RepoName,
        tag: &str,
        body: Value,
    ) -> Result<Response, ManageError> {
        self.require_write(repo).await?;
        self.refuse_in_proxy_cache(repo).await?;
        let (tag, digest) = tag_and_digest(tag, &body)?;
        if !self.state.registry.restore_tag(repo, &tag, &digest).await? {
            return Err(ManageError::NotFound(format!(
                "tag {tag} has not pointed at {digest} within the tag expiration window"
            )));
        }
        self.record(
            self.caller
                .event("revert_tag")
                .repository(repo)
                .detail("tag", tag.as_str())
                .detail("manifest_digest", digest.to_string()),
        );
        Ok(Json(json!({})).into_response())
    }

    async fn permissions(&self, repo: &RepoName, kind: &str) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let mut out = serde_json::Map::new();
        for p in self.state.auth.accounts().list_permissions(repo).await? {
            match (&p.grantee, kind) {
                (Grantee::Account(name), "user") => {
                    let is_robot = p.kind == Some(AccountKind::Robot);
                    out.insert(
                        name.clone(),
                        json!({ "role": p.role.as_str(), "name": name, "is_robot": is_robot }),
                    );
                }
                (Grantee::Team(name), "team") => {
                    out.insert(
                        name.clone(),
                        json!({ "role": p.role.as_str(), "name": name }),
                    );
                }
                _ => {}
            }
        }
        Ok(Json(json!({ "permissions": out })).into_response())
    }

    async fn permission(
        &self,
        repo: &RepoName,
        kind: &str,
        who: &str,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let found = self
            .state
            .auth
            .accounts()
            .list_permissions(repo)
            .await?
            .into_iter()
            .find(|p| match &p.grantee {
                Grantee::Account(n) => kind == "user" && n == who,
                Grantee::Team(n) => kind == "team" && n == who,
            });
        match found {
            Some(p) => Ok(Json(json!({ "role": p.role.as_str(), "name": who, "is_robot": p.kind == Some(AccountKind::Robot) })).into_response()),
            None => Err(ManageError::NotFound(format!("no permission for {who}"))),
        }
    }

    async fn grant(
        &self,
        repo: &RepoName,
        kind: &str,
        who: &str,
        body: Value,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let role = body
            .get("role")
            .and_then(Value::as_str)
            .and_then(Role::parse)
            .ok_or_else(|| ManageError::BadRequest("role must be read, write or admin".into()))?;
        let grantee = if kind == "user" {
            Grantee::Account(who.to_string())
        } else {
            Grantee::Team(who.to_string())
        };
        let accounts = self.state.auth.accounts();
        if let Grantee::Account(name) = &grantee {
            match accounts.account(name).await? {
                Some(a) if a.kind == AccountKind::Robot => {
                    // A robot may only be granted rights within its own namespace, so one
                    // organization's robot never reaches another organization's content.
                    if a.namespace.as_deref() != Some(repo.namespace()) {
                        return Err(ManageError::BadRequest(format!(
                            "robot {name} belongs to another namespace"
                        )));
                    }
                }
                Some(a) if a.kind == AccountKind::User => {}
                _ => return Err(ManageError::NotFound(format!("no user or robot {name}"))),
            }
        }
        accounts
            .set_permission(repo, &grantee, role)
            .await
            .map_err(|e| match e {
                crate::metadata::MetadataError::NotFound => {
                    ManageError::NotFound(format!("no {kind} {who}"))
                }
                other => other.into(),
            })?;
        let is_robot = who.contains('+');
        let detail = if kind == "user" { "username" } else { "team" };
        self.record(
            self.caller
                .event("change_repo_permission")
                .repository(repo)
                .detail(detail, who)
                .detail("role", role.as_str()),
        );
        Ok(
            Json(json!({ "role": role.as_str(), "name": who, "is_robot": is_robot }))
                .into_response(),
        )
    }

    async fn revoke(
        &self,
        repo: &RepoName,
        kind: &str,
        who: &str,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let grantee = if kind == "user" {
            Grantee::Account(who.to_string())
        } else {
            Grantee::Team(who.to_string())
        };
        if self
            .state
            .auth
            .accounts()
            .remove_permission(repo, &grantee)
            .await?
        {
            let detail = if kind == "user" { "username" } else { "team" };
            self.record(
                self.caller
                    .event("delete_repo_permission")
                    .repository(repo)
                    .detail(detail, who),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(ManageError::NotFound(format!("no permission for {who}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let r = |s: &str| s.parse::<RepoName>().unwrap();
        assert_eq!(
            parse_target("userorg/app").unwrap(),
            Target::Repository(r("userorg/app"))
        );
        assert_eq!(
            parse_target("userorg/helm/quarkus/tag/").unwrap(),
            Target::Tags(r("userorg/helm/quarkus"))
        );
        assert_eq!(
            parse_target("userorg/app/tag/v1").unwrap(),
            Target::Tag(r("userorg/app"), "v1".into())
        );
        assert_eq!(
            parse_target("userorg/app/changevisibility").unwrap(),
            Target::ChangeVisibility(r("userorg/app"))
        );
        assert_eq!(
            parse_target("userorg/app/permissions/user/").unwrap(),
            Target::Permissions(r("userorg/app"), "user")
        );
        assert_eq!(
            parse_target("userorg/app/permissions/user/userorg+ci").unwrap(),
            Target::Permission(r("userorg/app"), "user", "userorg+ci".into())
        );
        let id = "0f8e4c2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
        assert_eq!(
            parse_target("userorg/app/notification/").unwrap(),
            Target::Notifications(r("userorg/app"))
        );
        assert_eq!(
            parse_target(&format!("userorg/app/notification/{id}")).unwrap(),
            Target::Notification(r("userorg/app"), id.into())
        );
        assert_eq!(
            parse_target(&format!("userorg/app/notification/{id}/test")).unwrap(),
            Target::TestNotification(r("userorg/app"), id.into())
        );
        assert_eq!(
            parse_target("userorg/notification/app").unwrap(),
            Target::Repository(r("userorg/notification/app"))
        );
        for word in ["mirror", "logs", "changestate", "changevisibility"] {
            assert_eq!(
                parse_target(&format!("userorg/app/permissions/user/{word}")).unwrap(),
                Target::Permission(r("userorg/app"), "user", word.into())
            );
            assert_eq!(
                parse_target(&format!("userorg/app/tag/{word}")).unwrap(),
                Target::Tag(r("userorg/app"), word.into())
            );
        }
        assert!(parse_target("../etc").is_err());
    }
}
