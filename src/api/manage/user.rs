//! `/api/v1/user`: the signed-in user, registration, user robots; superuser user management.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::organization::{list_robots, new_robot, remove_robot, robot_info, valid_namespace};
use super::{ApiCaller, ApiPath, JsonBody, ManageError};
use crate::app::AppState;
use crate::auth::secret;
use crate::metadata::accounts::AccountKind;
use crate::metadata::MetadataError;

/// `GET /api/v1/user/`.
pub async fn me(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ManageError> {
    let who = caller.required()?;
    let accounts = state.auth.accounts();
    let account = accounts
        .account(&who.name)
        .await?
        .ok_or_else(|| ManageError::NotFound("account not found".into()))?;
    let mut orgs = Vec::new();
    for org in accounts.list_accounts(AccountKind::Organization).await? {
        let admin = state.auth.is_namespace_admin(who, &org.name).await?;
        let member = admin
            || accounts
                .organization_members(&org.name)
                .await?
                .iter()
                .any(|m| m.id == who.id);
        if member {
            orgs.push(json!({ "name": org.name, "is_org_admin": admin }));
        }
    }
    Ok(Json(json!({
        "username": who.name,
        "kind": who.kind.as_str(),
        "email": account.email,
        "super_user": state.auth.is_superuser(who),
        "organizations": orgs,
    })))
}

#[derive(Deserialize)]
pub struct NewUser {
    username: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

async fn make_user(state: &AppState, body: &NewUser, password: &str) -> Result<(), ManageError> {
    valid_namespace(&body.username)?;
    if password.len() < 8 {
        return Err(ManageError::BadRequest(
            "password must have at least 8 characters".into(),
        ));
    }
    let hash = secret::hash_password(password);
    state
        .auth
        .accounts()
        .create_user(&body.username, &hash, body.email.as_deref(), false)
        .await
        .map_err(|e| match e {
            MetadataError::Conflict => name_taken(&body.username),
            other => other.into(),
        })?;
    Ok(())
}

fn name_taken(name: &str) -> ManageError {
    ManageError::Conflict(format!("the name {name} is taken"))
}

/// `POST /api/v1/user/`: self-registration, only with `FEATURE_USER_CREATION: true`.
pub async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Response, ManageError> {
    if !state.settings().user_creation {
        return Err(ManageError::Forbidden);
    }
    let password = body
        .password
        .clone()
        .ok_or_else(|| ManageError::BadRequest("password is required".into()))?;
    // A name in SUPER_USERS would make its registrant a superuser: it is answered exactly
    // like a name that is taken.
    if state.auth.is_reserved_for_superuser(&body.username) {
        return Err(name_taken(&body.username));
    }
    make_user(&state, &body, &password).await?;
    Ok((StatusCode::CREATED, Json(json!("Created"))).into_response())
}

/// `GET /api/v1/superuser/users/`.
pub async fn list_users(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ManageError> {
    if !state.auth.is_superuser(caller.required()?) {
        return Err(ManageError::Forbidden);
    }
    let users: Vec<Value> = state
        .auth
        .accounts()
        .list_accounts(AccountKind::User)
        .await?
        .iter()
        .map(|u| json!({ "username": u.name, "email": u.email, "super_user": u.superuser }))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /api/v1/superuser/users/`: creates a user; without a password in the body one is
/// generated and returned once.
pub async fn create_user(
    State(state): State<AppState>,
    caller: ApiCaller,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Response, ManageError> {
    if !state.auth.is_superuser(caller.required()?) {
        return Err(ManageError::Forbidden);
    }
    let (password, generated) = match &body.password {
        Some(p) => (p.clone(), false),
        None => (secret::random_password(), true),
    };
    make_user(&state, &body, &password).await?;
    let mut reply = json!({ "username": body.username, "email": body.email });
    if generated {
        reply["password"] = json!(password);
    }
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// `GET /api/v1/user/robots`.
pub async fn robots(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ManageError> {
    let who = caller.required()?;
    list_robots(&state, &who.name).await
}

fn user_only(caller: &ApiCaller) -> Result<String, ManageError> {
    let who = caller.required()?;
    if who.kind == AccountKind::User {
        Ok(who.name.clone())
    } else {
        Err(ManageError::Forbidden)
    }
}

/// `PUT /api/v1/user/robots/{short}`.
pub async fn create_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(short): ApiPath<String>,
) -> Result<Response, ManageError> {
    new_robot(&state, &caller, &user_only(&caller)?, &short).await
}

/// `GET /api/v1/user/robots/{short}`.
pub async fn get_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(short): ApiPath<String>,
) -> Result<Json<Value>, ManageError> {
    robot_info(&state, &user_only(&caller)?, &short).await
}

/// `DELETE /api/v1/user/robots/{short}`.
pub async fn delete_robot(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(short): ApiPath<String>,
) -> Result<Response, ManageError> {
    remove_robot(&state, &caller, &user_only(&caller)?, &short).await
}
