//! `GET|POST /v2/auth`: the Docker token endpoint.
//!
//! Clients authenticate with Basic credentials (a user's password or a robot's token) or none
//! (anonymous) and get a signed token for the scopes they may have; scopes they may not have
//! are dropped rather than refused, as distribution and Quay do.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use oci::ErrorCode;
use serde_json::json;

use super::challenge::Origin;
use crate::app::AppState;
use crate::auth::scope::Scope;
use crate::auth::{decode_basic, AuthError, Identity};
use crate::error::ApiError;

/// Largest form body accepted on `POST /v2/auth`.
const MAX_FORM: usize = 16 * 1024;

fn auth_error(e: AuthError) -> Response {
    match e {
        AuthError::TooManyAttempts => {
            ApiError::new(ErrorCode::TooManyRequests, e.to_string()).into_response()
        }
        AuthError::Metadata(m) => ApiError::internal(m).into_response(),
        other => ApiError::new(ErrorCode::Unauthorized, other.to_string())
            .with_header("www-authenticate", "Basic realm=\"berth\"".into())
            .into_response(),
    }
}

/// Serves the token endpoint.
pub async fn token(State(state): State<AppState>, request: Request) -> Response {
    let client = state.client(request.extensions(), request.headers()).addr;
    let notes = request
        .extensions()
        .get::<super::request_log::Notes>()
        .cloned()
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let mut params: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    match parts.method {
        Method::GET => {}
        Method::POST => match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(b) => params.extend(form_urlencoded::parse(&b).into_owned()),
            Err(_) => {
                return ApiError::new(ErrorCode::SizeInvalid, "form body too large").into_response()
            }
        },
        _ => {
            return ApiError::new(ErrorCode::MethodNotAllowed, "use GET or POST")
                .with_header("allow", "GET, POST".into())
                .into_response()
        }
    }
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };

    // Credentials: Basic header, or an OAuth2 password grant in the form.
    // An Authorization header must be usable Basic credentials: anything else is refused
    // rather than silently answered with an anonymous token.
    let basic = parts.headers.get(header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(decode_basic)
            .ok_or(AuthError::Malformed)
    });
    let credentials = match basic {
        Some(Ok(pair)) => Some(pair),
        Some(Err(e)) => return auth_error(e),
        None => match (param("grant_type"), param("username"), param("password")) {
            (Some("password"), Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
            _ => None,
        },
    };
    notes.account(credentials.as_ref().map(|(user, _)| user.as_str()));
    let identity: Option<Identity> = match credentials {
        Some((user, pass)) => match state.auth.login(&user, &pass, client).await {
            Ok(i) => Some(i),
            Err(e) => {
                if matches!(e, AuthError::BadCredentials) {
                    state
                        .usage
                        .login_failure(Some(&user), client, "v2auth", &e.to_string());
                }
                return auth_error(e);
            }
        },
        None => None,
    };
    let scopes = Scope::parse_all(
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    // Tokens are for this registry only, whatever `service` the request names: /v2 accepts
    // only tokens whose audience is the service its challenges name.
    let service = Origin::of(&state, &parts.headers).host;
    match state
        .auth
        .issue_token(identity.as_ref(), &service, &scopes)
        .await
    {
        Ok(issued) => {
            let body = json!({
                "token": issued.token,
                "access_token": issued.token,
                "expires_in": issued.expires_in,
                "issued_at": super::dates::rfc3339(issued.issued_at),
            })
            .to_string();
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::OK;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}
