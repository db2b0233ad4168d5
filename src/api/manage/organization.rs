//! `/api/v1/organization`: organizations, teams, members and robots.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiCaller, ApiPath, JsonBody, ManageError};
use crate::app::AppState;
use crate::auth::{secret, Identity, RobotError};
use crate::metadata::accounts::{Account, AccountKind, TeamRole};
use crate::metadata::MetadataError;

/// A namespace name must be a valid first component of repository names.
pub fn valid_namespace(name: &str) -> Result<(), ManageError> {
    let ok = !name.contains('/') && name.parse::<oci::RepoName>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(ManageError::BadRequest(format!(
            "{name:?} is not a valid name (lowercase letters and digits, with . _ - inside)"
        )))
    }
}

async fn organization(state: &AppState, org: &str) -> Result<Account, ManageError> {
    match state.auth.accounts().account(org).await? {
        Some(a) if a.kind == AccountKind::Organization => Ok(a),
        _ => Err(ManageError::NotFound(format!(
            "organization {org} not found"
        ))),
    }
}

/// The caller, if it administers `org`. A caller who may not gets the same 403 whether the
/// organization exists or not, so probing tells nothing; only those who could act on it (a
/// superuser) learn that it is missing.
pub(super) async fn org_admin<'a>(
    state: &AppState,
    caller: &'a ApiCaller,
    org: &str,
) -> Result<&'a Identity, ManageError> {
    let who = caller.required()?;
    if !state.auth.is_namespace_admin(who, org).await? {
        return Err(ManageError::Forbidden);
    }
    organization(state, org).await?;
    Ok(who)
}

#[derive(Deserialize)]
pub struct CreateOrg {
    name: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /api/v1/organization/`: any signed-in user may create one and owns it.
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(body): JsonBody<CreateOrg>,
) -> Result<Response, ManageError> {
    let who = caller.required()?;
    if who.kind != AccountKind::User {
        return Err(ManageError::Forbidden);
    }
    valid_namespace(&body.name)?;
    let _ = body.email;
    let taken =
        || ManageError::Conflict(format!("a user or organization named {} exists", body.name));
    // A name in SUPER_USERS stays free for the superuser it is meant for (only a superuser
    // may take it), and is answered like a name that is taken.
    if state.auth.is_reserved_for_superuser(&body.name) && !state.auth.is_superuser(who) {
        return Err(taken());
    }
    state
        .auth
        .accounts()
        .create_organization(&body.name, &who.name)
        .await
        .map_err(|e| match e {
            MetadataError::Conflict => taken(),
            other => other.into(),
        })?;
    state.usage.record(
        caller
            .event("org_create")
            .namespace(&body.name)
            .detail("namespace", body.name.as_str()),
    );
    Ok((StatusCode::CREATED, Json(json!("Created"))).into_response())
}

/// `GET /api/v1/organization/{org}`.
pub async fn get(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<Value>, ManageError> {
    let who = caller.required()?;
    let accounts = state.auth.accounts();
    let is_admin = state.auth.is_namespace_admin(who, &org).await?;
    let members = accounts.organization_members(&org).await?;
    let is_member = is_admin || members.iter().any(|m| m.id == who.id);
    // Members see it; everyone else gets the same 403 whether it exists or not.
    if !is_member {
        return Err(ManageError::Forbidden);
    }
    organization(&state, &org).await?;
    let mut teams = serde_json::Map::new();
    for t in accounts.list_teams(&org).await? {
        let count = accounts.team_members(&org, &t.name).await?.len();
        teams.insert(
            t.name.clone(),
            json!({ "name": t.name, "role": t.role.as_str(), "description": t.description, "member_count": count }),
        );
    }
    Ok(Json(
        json!({ "name": org, "is_admin": is_admin, "is_member": is_member, "teams": teams }),
    ))
}

/// `DELETE /api/v1/organization/{org}`.
pub async fn delete(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    state.auth.accounts().delete_account(&org).await?;
    state.usage.record(
        caller
            .event("org_delete")
            .namespace(&org)
            .detail("namespace", org.as_str()),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/organization/{org}/members`.
pub async fn members(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    let members: Vec<Value> = state
        .auth
        .accounts()
        .organization_members(&org)
        .await?
        .iter()
        .map(|m| json!({ "name": m.name, "kind": m.kind.as_str(), "is_robot": m.kind == AccountKind::Robot }))
        .collect();
    Ok(Json(json!({ "members": members })))
}

#[derive(Deserialize)]
pub struct TeamBody {
    role: String,
    #[serde(default)]
    description: Option<String>,
}

/// `PUT /api/v1/organization/{org}/team/{team}`: create or update.
pub async fn put_team(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, team)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody<TeamBody>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    valid_namespace(&team)?;
    let role = TeamRole::parse(&body.role)
        .ok_or_else(|| ManageError::BadRequest("role must be member, creator or admin".into()))?;
    let t = state
        .auth
        .accounts()
        .put_team(&org, &team, role, body.description.as_deref().unwrap_or(""))
        .await?;
    state.usage.record(
        caller
            .event("org_create_team")
            .namespace(&org)
            .detail("team", team.as_str())
            .detail("role", t.role.as_str()),
    );
    Ok(Json(
        json!({ "name": t.name, "role": t.role.as_str(), "description": t.description, "can_view": true }),
    ))
}

/// `DELETE /api/v1/organization/{org}/team/{team}`.
pub async fn delete_team(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, team)): ApiPath<(String, String)>,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    if state.auth.accounts().delete_team(&org, &team).await? {
        state.usage.record(
            caller
                .event("org_delete_team")
                .namespace(&org)
                .detail("team", team.as_str()),
        );
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ManageError::NotFound(format!("team {team} not found")))
    }
}

/// `GET /api/v1/organization/{org}/team/{team}/members`.
pub async fn team_members(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, team)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    let members: Vec<Value> = state
        .auth
        .accounts()
        .team_members(&org, &team)
        .await?
        .iter()
        .map(|m| json!({ "name": m.name, "kind": m.kind.as_str(), "is_robot": m.kind == AccountKind::Robot }))
        .collect();
    Ok(Json(json!({ "name": team, "members": members })))
}

/// `PUT /api/v1/organization/{org}/team/{team}/members/{member}`.
pub async fn add_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, team, member)): ApiPath<(String, String, String)>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    let accounts = state.auth.accounts();
    match accounts.account(&member).await? {
        Some(a) if a.kind == AccountKind::User => {}
        // Only the organization's own robots may join its teams.
        Some(a) if a.kind == AccountKind::Robot && a.namespace.as_deref() == Some(org.as_str()) => {
        }
        Some(_) => {
            return Err(ManageError::BadRequest(format!(
                "{member} cannot join a team of {org}"
            )))
        }
        None => return Err(ManageError::NotFound(format!("no user or robot {member}"))),
    }
    accounts
        .add_team_member(&org, &team, &member)
        .await
        .map_err(|e| match e {
            MetadataError::NotFound => ManageError::NotFound(format!("team {team} not found")),
            other => other.into(),
        })?;
    state.usage.record(
        caller
            .event("org_add_team_member")
            .namespace(&org)
            .detail("team", team.as_str())
            .detail("member", member.as_str()),
    );
    Ok(Json(
        json!({ "name": member, "kind": if member.contains('+') { "robot" } else { "user" } }),
    ))
}

/// `DELETE /api/v1/organization/{org}/team/{team}/members/{member}`.
pub async fn remove_member(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, team, member)): ApiPath<(String, String, String)>,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    if state
        .auth
        .accounts()
        .remove_team_member(&org, &team, &member)
        .await?
    {
        state.usage.record(
            caller
                .event("org_remove_team_member")
                .namespace(&org)
                .detail("team", team.as_str())
                .detail("member", member.as_str()),
        );
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ManageError::NotFound(format!(
            "{member} is not in team {team}"
        )))
    }
}

/// `GET /api/v1/organization/{org}/robots`.
pub async fn robots(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    list_robots(&state, &org).await
}

pub(super) async fn list_robots(
    state: &AppState,
    namespace: &str,
) -> Result<Json<Value>, ManageError> {
    let robots: Vec<Value> = state
        .auth
        .accounts()
        .list_robots(namespace)
        .await?
        .iter()
        .map(|r| json!({ "name": r.name }))
        .collect();
    Ok(Json(json!({ "robots": robots })))
}

/// Creates robot `namespace+short` and answers with its token, shown this once.
pub(super) async fn new_robot(
    state: &AppState,
    caller: &ApiCaller,
    namespace: &str,
    short: &str,
) -> Result<Response, ManageError> {
    let (name, token) = state
        .auth
        .create_robot(namespace, short)
        .await
        .map_err(|e| match e {
            RobotError::BadName(_) => ManageError::BadRequest(e.to_string()),
            RobotError::Exists(_) => ManageError::Conflict(e.to_string()),
            RobotError::Metadata(m) => m.into(),
        })?;
    state.usage.record(
        caller
            .event("create_robot")
            .namespace(namespace)
            .detail("robot", name.as_str()),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "token": token })),
    )
        .into_response())
}

pub(super) async fn robot_info(
    state: &AppState,
    namespace: &str,
    short: &str,
) -> Result<Json<Value>, ManageError> {
    let name = format!("{namespace}+{short}");
    match state.auth.accounts().account(&name).await? {
        // The token is stored hashed, so unlike Quay berth cannot show it again.
        Some(a) if a.kind == AccountKind::Robot => Ok(Json(json!({ "name": name }))),
        _ => Err(ManageError::NotFound(format!("robot {name} not found"))),
    }
}

pub(super) async fn remove_robot(
    state: &AppState,
    caller: &ApiCaller,
    namespace: &str,
    short: &str,
) -> Result<Response, ManageError> {
    let name = format!("{namespace}+{short}");
    match state.auth.accounts().account(&name).await? {
        Some(a) if a.kind == AccountKind::Robot => {
            state.auth.accounts().delete_account(&name).await?;
            state.usage.record(
                caller
                    .event("delete_robot")
                    .namespace(namespace)
                    .detail("robot", name.as_str()),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ManageError::NotFound(format!("robot {name} not found"))),
    }
}

/// `PUT /api/v1/organization/{org}/robots/{short}`.
pub async fn create_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, short)): ApiPath<(String, String)>,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    new_robot(&state, &caller, &org, &short).await
}

/// `GET /api/v1/organization/{org}/robots/{short}`.
pub async fn get_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, short)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    robot_info(&state, &org, &short).await
}

/// `DELETE /api/v1/organization/{org}/robots/{short}`.
pub async fn delete_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, short)): ApiPath<(String, String)>,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    remove_robot(&state, &caller, &org, &short).await
}

/// `POST /api/v1/organization/{org}/robots/{short}/regenerate`.
pub async fn regenerate_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath((org, short)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ManageError> {
    org_admin(&state, &caller, &org).await?;
    let name = format!("{org}+{short}");
    let token = secret::random_token("");
    state
        .auth
        .accounts()
        .set_robot_token(&name, &secret::token_hash(&token))
        .await
        .map_err(|e| match e {
            MetadataError::NotFound => ManageError::NotFound(format!("robot {name} not found")),
            other => other.into(),
        })?;
    state.usage.record(
        caller
            .event("regenerate_robot_token")
            .namespace(&org)
            .detail("robot", name.as_str()),
    );
    Ok(Json(json!({ "name": name, "token": token })))
}
