//! `GET|POST /v2/auth`: the Docker token endpoint.
//!
//! Clients authenticate with Basic credentials (a user's password or a robot's token) or none
//! (anonymous) and get a signed token for the scopes they may have; scopes they may not have
//! are dropped rather than refused, as distribution and Quay do.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
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
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
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
        _ => return ApiError::new(ErrorCode::MethodNotAllowed, "use GET or POST").into_response(),
    }
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };

    // Credentials: Basic header, or an OAuth2 password grant in the form.
    let basic = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .map(|p| decode_basic(p).ok_or(AuthError::Malformed));
    let credentials = match basic {
        Some(Ok(pair)) => Some(pair),
        Some(Err(e)) => return auth_error(e),
        None => match (param("grant_type"), param("username"), param("password")) {
            (Some("password"), Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
            _ => None,
        },
    };
    let identity: Option<Identity> = match credentials {
        Some((user, pass)) => match state.auth.login(&user, &pass, client).await {
            Ok(i) => Some(i),
            Err(e) => return auth_error(e),
        },
        None => None,
    };
    let scopes = Scope::parse_all(
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let origin = Origin::of(&state, &parts.headers);
    let service = param("service").unwrap_or(&origin.host).to_string();
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
                "issued_at": chrono_like(issued.issued_at),
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

/// RFC 3339 UTC time of a Unix timestamp (the token spec's `issued_at`).
fn chrono_like(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(super::chrono_like(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::chrono_like(1_795_000_000), "2026-11-18T08:26:40Z");
    }
}
