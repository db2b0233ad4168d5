//! The web dashboard: server-rendered HTML pages at Quay's URLs, readable without JavaScript.
//!
//! Every page decides what the visitor may see through the same [`crate::auth::Auth`] rules
//! as the registry API (`live_actions`); a repository the visitor may not pull answers 404,
//! exactly like one that does not exist. Forms post back to the page they belong to, carry a
//! CSRF token, and redirect (303) with a one-shot flash message. Markup is built with `maud`,
//! which escapes every interpolated value.

mod assets;
mod kinds;
mod layout;
mod manifest;
mod mirror;
mod namespace;
mod notifications;
mod outline;
mod redirect;
mod render_gate;
mod repositories;
mod repository;
mod session;
mod signin;
mod tokens;
mod trust;
mod usage;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::html;

use crate::app::AppState;
use crate::metadata::MetadataError;
use crate::registry::RegistryError;
pub use render_gate::RenderGate;
pub use session::{Flash, Viewer};

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/repository/") }))
        .route("/signin", get(signin::form).post(signin::submit))
        .route("/signout", axum::routing::post(signin::sign_out))
        .route(
            "/repository",
            get(|| async { Redirect::permanent("/repository/") }),
        )
        .route("/repository/", get(repositories::list))
        .route(
            "/repository/{*path}",
            get(repository::show).post(repository::act),
        )
        .route(
            "/organization/{name}",
            get(namespace::organization).post(namespace::act),
        )
        .route("/user/{name}", get(namespace::user).post(namespace::act))
        .route("/static/{file}", get(assets::serve))
}

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum PageError {
    /// 404: absent, or present but not visible to this visitor (indistinguishable on purpose).
    NotFound,
    /// 403: visible, but the visitor may not do this.
    Forbidden,
    /// 400 with a message for the visitor.
    BadRequest(String),
    /// Sign in first, then come back to this path.
    SignIn(String),
    /// 503 with `Retry-After`: too many heavy pages are being built right now.
    Busy,
    /// 500: logged, never shown.
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<MetadataError> for PageError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::NotFound => PageError::NotFound,
            MetadataError::Refused(m) => PageError::BadRequest(m.to_string()),
            other => PageError::Internal(Box::new(other)),
        }
    }
}

impl From<RegistryError> for PageError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Metadata(m) => m.into(),
            RegistryError::ManifestUnknown
            | RegistryError::BlobUnknown(_)
            | RegistryError::NameUnknown(_) => PageError::NotFound,
            other => PageError::Internal(Box::new(other)),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            PageError::SignIn(back) => {
                let target = format!("/signin?next={}", layout::query_escape(&back));
                return Redirect::to(&target).into_response();
            }
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or you are not allowed to see it.".to_string(),
            ),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "You are not allowed to do this.".to_string(),
            ),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Cannot do that", m),
            PageError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                format!(
                    "berth is building many pages right now; try again in {} seconds.",
                    render_gate::RETRY_AFTER_SECS
                ),
            ),
            PageError::Internal(e) => {
                tracing::error!(error = %e, "dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "berth could not build this page; the server log has the details.".to_string(),
                )
            }
        };
        let body = html! {
            section.error-page {
                h1 { (title) }
                p { (text) }
                p { a href="/repository/" { "Back to repositories" } " · " a href="/signin" { "Sign in" } }
            }
        };
        let mut response = layout::bare_page(title, body).into_response();
        *response.status_mut() = status;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, render_gate::RETRY_AFTER_SECS.into());
        }
        response
    }
}

/// A complete HTML response for `viewer`: security headers, no caching of personal pages,
/// and the cookies the request left to set.
pub(crate) fn html_response(viewer: &Viewer, markup: maud::Markup) -> Response {
    let mut response = layout::with_security_headers(markup.into_string());
    for cookie in &viewer.set_cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A 303 to `location`, carrying the visitor's cookies (session, flash). A location that is
/// not a path on this site (it may come from the client) sends the visitor home instead.
pub(crate) fn see_other(viewer: &Viewer, location: &str) -> Response {
    let location = redirect::local_path_or_home(Some(location));
    let mut response = Redirect::to(&location).into_response();
    for cookie in &viewer.set_cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A form body as name/value pairs.
pub(crate) struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required, trimmed, non-empty field.
    pub fn required(&self, name: &str) -> Result<&str, PageError> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| PageError::BadRequest(format!("the form lacks {name}")))
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormData {
    type Rejection = PageError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, PageError> {
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|e| PageError::BadRequest(e.body_text()))?;
        Ok(FormData(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_page_says_when_to_come_back() {
        let response = PageError::Busy.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::RETRY_AFTER],
            render_gate::RETRY_AFTER_SECS.to_string()
        );
    }
}
